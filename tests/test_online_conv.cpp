// The online (relaxed) causal convolution equals the direct causal sum at every
// position: across every block boundary, after an assigned history of any length,
// after rewind and grow, for several sequences at once, by FFT and by direct blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "tnn/core/online_conv.hpp"
#include "tnn/core/rng.hpp"
#include "test_helpers.hpp"

using namespace tnn;

namespace {

template <class T>
Tensor<T> random_tensor(Shape shape, std::uint64_t seed, double decay = 1.0) {
  Tensor<T> x(std::move(shape));
  Rng rng(seed);
  const Index C = x.cols();
  for (Index i = 0; i < x.size(); ++i)
    x[i] = static_cast<T>(rng.uniform(-1.0, 1.0) * std::pow(decay, double(i / C)));
  return x;
}

// max |online - direct| / max |direct| over positions [from, n) of each of B sequences.
template <class T>
double online_vs_direct(Index n, Index C, Index B, Index direct_below, Index prompt, Index cap, bool use_step_direct = false) {
  const Tensor<T> k = random_tensor<T>({std::max(n, cap), C}, 1, 0.999);
  std::vector<Tensor<T>> v, ref;
  for (Index b = 0; b < B; ++b) {
    v.push_back(random_tensor<T>({n, C}, 10 + std::uint64_t(b)));
    ref.emplace_back();
    causal_conv_direct(k, v.back(), ref.back());
  }
  Tensor<T> kc({cap, C});
  std::copy(k.data(), k.data() + cap * C, kc.data());
  OnlineConv<T> conv;
  conv.direct_below = direct_below;
  conv.prepare(kc, B);
  if (prompt > 0) {
    Tensor<T> hist({B, prompt, C});
    for (Index b = 0; b < B; ++b) std::copy(v[std::size_t(b)].data(), v[std::size_t(b)].data() + prompt * C, hist.data() + b * prompt * C);
    conv.assign(hist);
  }
  Tensor<T> vin({B, C}), y({B, C});
  double diff = 0, scale = 0;
  for (Index t = prompt; t < n; ++t) {
    if (conv.position() == conv.capacity()) {  // grow by doubling, as the decoder does
      const Index c2 = std::min(2 * conv.capacity(), k.rows());
      Tensor<T> k2({c2, C});
      std::copy(k.data(), k.data() + c2 * C, k2.data());
      conv.grow(k2);
    }
    for (Index b = 0; b < B; ++b) std::copy(v[std::size_t(b)].data() + t * C, v[std::size_t(b)].data() + (t + 1) * C, vin.data() + b * C);
    if (use_step_direct && t % 3 == 0)
      conv.step_direct(vin.data(), y.data());
    else
      conv.step(vin.data(), y.data());
    for (Index b = 0; b < B; ++b)
      for (Index c = 0; c < C; ++c) {
        const double r = double(ref[std::size_t(b)][t * C + c]);
        diff = std::max(diff, std::abs(double(y[b * C + c]) - r));
        scale = std::max(scale, std::abs(r));
      }
  }
  EXPECT_EQ(conv.position(), n);
  return diff / scale;
}

}  // namespace

TEST(OnlineConv, DirectReferenceMatchesHandComputedSum) {
  Tensor<double> k({3, 1}), v({3, 1}), y;
  k[0] = 1, k[1] = 2, k[2] = 3;
  v[0] = 5, v[1] = 7, v[2] = 11;
  causal_conv_direct(k, v, y);
  EXPECT_EQ(y[0], 5.0);
  EXPECT_EQ(y[1], 7.0 + 2 * 5.0);
  EXPECT_EQ(y[2], 11.0 + 2 * 7.0 + 3 * 5.0);
}

TEST(OnlineConv, EveryBlockByFftMatchesDirectSumDouble) {
  EXPECT_LT(online_vs_direct<double>(1100, 3, 1, /*direct_below=*/1, 0, 1100), 1e-12);
}

TEST(OnlineConv, EveryBlockDirectMatchesDirectSumDouble) {
  EXPECT_LT(online_vs_direct<double>(700, 3, 1, /*direct_below=*/Index(1) << 30, 0, 700), 1e-12);
}

TEST(OnlineConv, MixedBlocksAndChannelGroupsMatch) {
  // 19 channels: two full groups of 8 and a partial one
  EXPECT_LT(online_vs_direct<double>(600, 19, 1, 8, 0, 600), 1e-12);
}

TEST(OnlineConv, AssignedHistoryOfAnyLengthContinuesExactly) {
  for (Index prompt : {1, 2, 3, 5, 63, 64, 65, 100, 255, 257, 513}) {
    SCOPED_TRACE(prompt);
    EXPECT_LT(online_vs_direct<double>(prompt + 300, 4, 1, 4, prompt, prompt + 300), 1e-12);
  }
}

TEST(OnlineConv, GrowingTheCapacityKeepsItExact) {
  EXPECT_LT(online_vs_direct<double>(900, 5, 1, 4, 0, 3), 1e-12);
  EXPECT_LT(online_vs_direct<double>(900, 5, 1, 4, 37, 40), 1e-12);  // grow right after assign
}

TEST(OnlineConv, BatchOfSequencesMatchesEachAlone) {
  EXPECT_LT(online_vs_direct<double>(520, 6, 3, 4, 21, 520), 1e-12);
}

TEST(OnlineConv, DirectStepsInterleavedKeepItExact) {
  EXPECT_LT(online_vs_direct<double>(400, 5, 2, 4, 9, 400, /*use_step_direct=*/true), 1e-12);
}

TEST(OnlineConv, FloatWithinRounding) {
  EXPECT_LT(online_vs_direct<float>(3000, 16, 1, 32, 77, 3000), 1e-4);
}

TEST(OnlineConv, RewindRecomputesTheAccumulatorsExactly) {
  const Index n = 300, C = 4;
  const Tensor<double> k = random_tensor<double>({n, C}, 2), v = random_tensor<double>({n, C}, 3);
  Tensor<double> ref;
  causal_conv_direct(k, v, ref);
  OnlineConv<double> conv;
  conv.direct_below = 4;
  conv.prepare(k, 1);
  Tensor<double> y({1, C});
  Tensor<double> junk = random_tensor<double>({1, C}, 4);
  for (Index t = 0; t < 200; ++t) conv.step(v.data() + t * C, y.data());
  for (Index t = 0; t < 77; ++t) conv.step(junk.data(), y.data());  // positions 200..276 hold junk
  conv.rewind(200);
  for (Index t = 200; t < n; ++t) {
    conv.step(v.data() + t * C, y.data());
    for (Index c = 0; c < C; ++c) EXPECT_NEAR(y[c], ref[t * C + c], 1e-12 * (1 + std::abs(ref[t * C + c])));
  }
  EXPECT_THROW(conv.rewind(n + 1), ValueError);
  EXPECT_THROW(conv.step(v.data(), y.data()), Error);  // full: the caller grows first
}

TEST(OnlineConv, RefusesBadShapes) {
  OnlineConv<float> conv;
  EXPECT_THROW(conv.prepare(Tensor<float>({4}), 1), ShapeError);
  EXPECT_THROW(conv.prepare(Tensor<float>({4, 2}), 0), ValueError);
  conv.prepare(Tensor<float>({4, 2}), 2);
  EXPECT_THROW(conv.assign(Tensor<float>({2, 5, 2})), ShapeError);  // longer than the capacity
  EXPECT_THROW(conv.assign(Tensor<float>({3, 2, 2})), ShapeError);  // neither B nor 1 sequences
  EXPECT_THROW(conv.grow(Tensor<float>({3, 2})), ShapeError);       // shorter
}
