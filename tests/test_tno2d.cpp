// The 2-D layers: the 2-D RPE's offsets, the 2-D TNO against a naive loop over
// coefficients computed by hand (the RPE of each offset pair alone, lambda^(|di|+|dj|)
// by pow), the 2-D TNO on a 1 x N grid against the 1-D TNO, and central-difference
// gradients of the 2-D TNO and the 2-D GTU (input, theta and every parameter).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "reference.hpp"
#include "tnn/layers/gtu2d.hpp"
#include "tnn/layers/tno2d.hpp"

using namespace tnn;

namespace {

using Params = std::vector<std::pair<std::string, Param<double>*>>;

template <class M>
Params params_of(M& m, const std::string& prefix) {
  Params v;
  m.visit(prefix, [&](const std::string& name, Param<double>& p) { v.emplace_back(name, &p); });
  return v;
}
template <class M>
void randomize(M& m, std::uint64_t seed) {
  Rng rng(seed);
  for (auto& [n, p] : params_of(m, ""))
    if (p->trainable)
      for (auto& v : p->value) v = rng.normal(0.0, 0.7);
}

// The layer's backward against central differences of L = <layer(x), w>: the input's gradient
// (named `input`) and every parameter's in `params`, each to 1e-7.
template <class Layer>
void expect_gradients_match(Layer& layer, const char* input, Tensor<double>& x, const Tensor<double>& w,
                            const Params& params) {
  typename Layer::Cache c;
  Tensor<double> y, dx;
  layer.forward(x, y, c);
  layer.backward(x, w, c, &dx);
  auto loss = [&] {
    typename Layer::Cache cc;
    Tensor<double> yy;
    layer.forward(x, yy, cc);
    return gradcheck::dot(yy, w);
  };
  EXPECT_TRUE(gradcheck::ok(gradcheck::check_gradient(input, x, dx, loss), 1e-7));
  for (const auto& r : gradcheck::check_params(params, loss)) EXPECT_TRUE(gradcheck::ok(r, 1e-7));
}

const TnoDecay kDecays[] = {TnoDecay::None, TnoDecay::Fixed, TnoDecay::Learned};

Tno2d<double> make(Index H, Index W, TnoDecay decay, NormType norm = NormType::SimpleRMSNorm,
                   Activation act = Activation::Silu) {
  return Tno2d<double>(TnoOptions{/*heads=*/2, false, decay, 0.8, RpeOptions{/*rpe_dim=*/4, /*rpe_layers=*/1, norm, act}}, /*head_dim=*/2, H, W);
}

// y[b, i, j] = sum_{i', j'} t(i-i', j-j') v[b, i', j'] with t from the RPE of each
// offset pair alone and lambda^(|di|+|dj|) by std::pow.
Tensor<double> naive_tno2d(const Tno2d<double>& tno, const Tensor<double>& v) {
  const Index B = v.dim(0), H = tno.grid_h(), W = tno.grid_w(), E = tno.channels();
  Tensor<double> y({B, H * W, E});
  for (Index di = -(H - 1); di < H; ++di)
    for (Index dj = -(W - 1); dj < W; ++dj) {
      Tensor<double> pos({1, 2}), r;
      pos[0] = double(di);
      pos[1] = double(dj);
      Rpe<double>::Cache c;
      tno.rpe.forward(pos, r, c);
      for (Index e = 0; e < E; ++e) {
        const double t = r[e] * std::pow(reference::decay_lambda(tno, e), double(std::abs(di) + std::abs(dj)));
        for (Index b = 0; b < B; ++b)
          for (Index i = std::max(Index(0), di); i < std::min(H, H + di); ++i)
            for (Index j = std::max(Index(0), dj); j < std::min(W, W + dj); ++j)
              y[(b * H * W + i * W + j) * E + e] += t * v[(b * H * W + (i - di) * W + (j - dj)) * E + e];
      }
    }
  return y;
}

}  // namespace

TEST(Rpe2d, OffsetsFollowTheKernelLayout) {
  Tensor<double> pos;
  rpe2d_offsets(2, 3, pos);
  ASSERT_EQ(pos.shape(), (Shape{3 * 5, 2}));
  // row p * 5 + q holds (p - 1, q - 2)
  for (Index p = 0; p < 3; ++p)
    for (Index q = 0; q < 5; ++q) {
      EXPECT_EQ(pos[2 * (p * 5 + q)], double(p - 1));
      EXPECT_EQ(pos[2 * (p * 5 + q) + 1], double(q - 2));
    }
  EXPECT_THROW(rpe2d_offsets(0, 3, pos), ShapeError);
}

TEST(Rpe2d, TakesOffsetPairsAndNamesItsParametersAsTheOneDimensionalRpe) {
  auto rpe = Rpe<double>(RpeOptions{4, 2, NormType::LayerNorm, Activation::Relu}, 6, 2);
  EXPECT_EQ(rpe.pos_proj.in_features(), 2);
  Rpe<double> rpe1(RpeOptions{4, 2, NormType::LayerNorm, Activation::Relu}, 6);
  std::vector<std::string> a, b;
  rpe.visit("rpe.", [&](const std::string& n, Param<double>&) { a.push_back(n); });
  rpe1.visit("rpe.", [&](const std::string& n, Param<double>&) { b.push_back(n); });
  EXPECT_EQ(a, b);
  Tensor<double> y;
  Rpe<double>::Cache c;
  try {
    rpe.forward(Tensor<double>({5, 1}), y, c);
    FAIL() << "no exception";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[K, 2]"), std::string::npos) << e.what();
  }
}

TEST(Tno2d, MatchesNaiveLoopForEveryDecayAndBothPaths) {
  for (TnoDecay decay : kDecays)
    for (auto method : {ToeplitzMethod::Direct, ToeplitzMethod::FFT})
      for (auto [H, W] : std::vector<std::pair<Index, Index>>{{1, 1}, {3, 4}, {5, 2}, {1, 6}}) {
        SCOPED_TRACE(testing::Message() << "H=" << H << " W=" << W << " decay=" << int(decay));
        auto tno = make(H, W, decay, NormType::LayerNorm, Activation::Relu);
        randomize(tno, 3);
        tno.method = method;
        auto v = gradcheck::random_tensor({2, H * W, tno.channels()}, 4);
        Tensor<double> y;
        Tno2d<double>::Cache c;
        tno.forward(v, y, c);
        EXPECT_EQ(c.op.uses_fft(), method == ToeplitzMethod::FFT);
        EXPECT_LT(gradcheck::max_rel_diff(y, naive_tno2d(tno, v)), 1e-12);
      }
}

// On a 1 x N grid, di = 0 always: with the dj column of pos_proj equal to the 1-D
// RPE's weight, the 2-D TNO is the bidirectional 1-D TNO.
TEST(Tno2d, OneRowGridEqualsTheOneDimensionalTno) {
  for (TnoDecay decay : kDecays) {
    const Index N = 7;
    auto tno2 = make(1, N, decay);
    Tno<double> tno1(TnoOptions{2, /*causal=*/false, decay, 0.8, RpeOptions{4, 1, NormType::SimpleRMSNorm, Activation::Silu}}, 2);
    randomize(tno1, 5);
    randomize(tno2, 6);  // then everything but pos_proj's di column copied from tno1
    auto p1 = params_of(tno1, ""), p2 = params_of(tno2, "");
    ASSERT_EQ(p1.size(), p2.size());
    for (std::size_t k = 0; k < p1.size(); ++k) {
      ASSERT_EQ(p1[k].first, p2[k].first);
      if (p1[k].first == "rpe.pos_proj.weight") {
        for (Index r = 0; r < 4; ++r) p2[k].second->value[2 * r + 1] = p1[k].second->value[r];  // [R, 2] <- [R, 1]
      } else {
        p2[k].second->value = p1[k].second->value;
      }
    }
    auto v = gradcheck::random_tensor({2, N, 4}, 7);
    Tensor<double> y1, y2;
    Tno<double>::Cache c1;
    Tno2d<double>::Cache c2;
    tno1.forward(v, y1, c1);
    tno2.forward(v, y2, c2);
    EXPECT_LT(gradcheck::max_rel_diff(y2, y1), 1e-12) << int(decay);
  }
}

TEST(Tno2d, GradientsMatchCentralDifferences) {
  for (TnoDecay decay : kDecays)
    for (auto method : {ToeplitzMethod::Direct, ToeplitzMethod::FFT}) {
      SCOPED_TRACE(testing::Message() << "decay=" << int(decay) << " fft=" << (method == ToeplitzMethod::FFT));
      const Index H = 3, W = 4;
      auto tno = make(H, W, decay, NormType::RMSNorm, Activation::Silu);
      randomize(tno, 8);
      tno.method = method;
      auto v = gradcheck::random_tensor({2, H * W, tno.channels()}, 9);
      auto w = gradcheck::random_tensor({2, H * W, tno.channels()}, 10);
      expect_gradients_match(tno, "v", v, w, params_of(tno, "toep."));
    }
}

TEST(Tno2d, BackwardChecksItsInputs) {
  auto tno = make(2, 3, TnoDecay::Learned);
  Tno2d<double>::Cache c;
  Tensor<double> y, dv;
  auto v = gradcheck::random_tensor({2, 6, 4}, 1);
  EXPECT_THROW(tno.backward(v, v, c, &dv), Error);  // no forward
  EXPECT_THROW(tno.forward(gradcheck::random_tensor({2, 5, 4}, 1), y, c), ShapeError);
  tno.forward(v, y, c);
  EXPECT_THROW(tno.backward(v, gradcheck::random_tensor({2, 6, 3}, 1), c, &dv), ShapeError);
  EXPECT_THROW(Tno2d<double>(TnoOptions{2, false, TnoDecay::None, 0.9, RpeOptions{4, 1, NormType::RMSNorm, Activation::Relu}}, 2, 0, 3), ConfigError);
}

TEST(Gtu2d, GradientsMatchCentralDifferences) {
  for (auto method : {ToeplitzMethod::Direct, ToeplitzMethod::FFT}) {
    const Index H = 3, W = 3, D = 3;
    auto g = Gtu2d<double>(D, Activation::Silu, make(H, W, TnoDecay::Learned, NormType::LayerNorm));
    randomize(g, 11);
    g.toep.method = method;
    EXPECT_EQ(g.inner_dim(), 4);
    auto x = gradcheck::random_tensor({2, H * W, D}, 12);
    auto w = gradcheck::random_tensor({2, H * W, D}, 13);
    const auto ps = params_of(g, "token_mixer.");
    EXPECT_EQ(ps.front().first, "token_mixer.u_proj.weight");
    expect_gradients_match(g, "x", x, w, ps);
  }
}
