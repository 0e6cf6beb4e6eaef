// Multi-head softmax attention (layers/attention.hpp) and sinusoidal positions
// (layers/positions.hpp): every configuration through the op-check harness (forward against
// the formula written out in tests/reference.hpp, central differences, float vs double,
// accumulation), the Tiled path against its Direct twin, ragged rows against rows run alone,
// the KV cache against the full forward at every position, allocation-free warm steps, and
// every error.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "count_new.hpp"
#include "op_check.hpp"
#include "reference.hpp"
#include "tnn/layers/attention.hpp"
#include "tnn/layers/positions.hpp"

using namespace tnn;
using opcheck::Case;
using opcheck::OpSpec;
using opcheck::Options;
using opcheck::random;
using testing_helpers::throws;
using testing_helpers::without_key_bias;

namespace {

// As the `tnn` program runs: OpenMP's threads for tnn's loops, one BLAS thread per call, so the
// layer's own parallel loops run here (a BLAS left multithreaded makes them serial).
[[maybe_unused]] const int kThreadsSet = tnn::set_num_threads(0);

constexpr Index kDim = 6;  // divisible by H = 1, 2, 3

Tensor<std::int32_t> lengths_tensor(const std::vector<Index>& v) {
  Tensor<std::int32_t> t({Index(v.size())});
  for (std::size_t i = 0; i < v.size(); ++i) t[Index(i)] = static_cast<std::int32_t>(v[i]);
  return t;
}

struct PathChoice {
  AttentionMethod method;
  Index tile_q, tile_k;  // Tiled only
  std::string name() const {
    if (method == AttentionMethod::Direct) return "direct";
    if (tile_q == Attention<double>::kDefaultTile && tile_k == tile_q) return "tiled";
    return opcheck::cat("tiled", tile_q, "x", tile_k);
  }
};
const PathChoice kDirect{AttentionMethod::Direct, 0, 0};
const PathChoice kTiled{AttentionMethod::Tiled, Attention<double>::kDefaultTile, Attention<double>::kDefaultTile};

template <class T>
Attention<T> make_layer(Index H, bool causal, const PathChoice& path, std::uint64_t seed) {
  Attention<T> a(kDim, H, causal);
  a.init_weights(seed);
  // Scores of order 1 or more, so the softmax is far from uniform and masking errors show.
  for (Linear<T>* l : {&a.q_proj, &a.k_proj})
    for (auto& w : l->weight.value) w *= T(3);
  a.set_method(path.method);
  if (path.method == AttentionMethod::Tiled) a.set_tiles(path.tile_q, path.tile_k);
  return a;
}

// One op: B = 2 (or lengths.size()), N, H heads of D = 6, one path.
OpSpec attention_spec(bool causal, Index H, Index N, const PathChoice& path, std::vector<Index> lengths = {}) {
  Options o;
  if (N >= 17) o.max_entries = N > 100 ? 10 : 24;
  o.float_tol = 2e-4;
  o.float_grad_tol = 2e-3;
  const std::uint64_t seed = 100 + std::uint64_t(N) * 7 + std::uint64_t(H) * 3 + (causal ? 1 : 0);
  const std::string name = opcheck::cat("Attention_", causal ? "causal" : "bidir", "_H", H, "_N", N, "_",
                                        path.name(), lengths.empty() ? "" : "_ragged");
  return opcheck::op(name, o, [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      Attention<T> a;
      typename Attention<T>::Cache c;
      Tensor<T> x;
      Tensor<std::int32_t> len;
    };
    auto st = std::make_shared<St>();
    st->a = make_layer<T>(H, causal, path, seed);
    const Index B = lengths.empty() ? 2 : Index(lengths.size());
    st->x = random<T>({B, N, kDim}, seed + 1);
    if (!lengths.empty()) st->len = lengths_tensor(lengths);
    Case<T> c;
    c.inputs = {{"x", &st->x}};
    c.params = without_key_bias(opcheck::params_of(st->a, "token_mixer."));
    const bool ragged = !lengths.empty();
    c.forward = [st, ragged](Tensor<T>& y) { st->a.forward(st->x, y, st->c, ragged ? &st->len : nullptr); };
    c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& dx) { st->a.backward(st->x, dy, st->c, &dx[0]); };
    if constexpr (std::is_same_v<T, double>)
      c.reference = [st, ragged](Tensor<T>& y) { y = reference::attention(st->a, st->x, ragged ? &st->len : nullptr); };
    return c;
  });
}

std::vector<OpSpec> attention_ops() {
  std::vector<OpSpec> v;
  const PathChoice small{AttentionMethod::Tiled, 4, 3};  // N = 17: 5 query blocks x 6 key blocks, tails
  for (bool causal : {true, false})
    for (Index H : {1, 2, 3})
      for (Index N : {1, 2, 17})
        for (const PathChoice& p : {kDirect, kTiled, small}) v.push_back(attention_spec(causal, H, N, p));
  for (bool causal : {true, false}) {
    // beyond the default tile: blocks of 128, 128 and a tail of 44
    v.push_back(attention_spec(causal, 3, 300, kDirect));
    v.push_back(attention_spec(causal, 3, 300, kTiled));
    // query and key blocks of different sizes: causal rows with nothing visible in a block
    v.push_back(attention_spec(causal, 2, 17, PathChoice{AttentionMethod::Tiled, 5, 7}));
    v.push_back(attention_spec(causal, 2, 17, PathChoice{AttentionMethod::Tiled, 7, 2}));
    // ragged: a full row, a partial one, a row of one position
    v.push_back(attention_spec(causal, 2, 17, kDirect, {17, 6, 1}));
    v.push_back(attention_spec(causal, 2, 17, small, {17, 6, 1}));
    v.push_back(attention_spec(causal, 1, 300, kTiled, {300, 129, 1}));
  }
  return v;
}

}  // namespace

// The suite shares test_ops.cpp's name, so the policies that ctest name patterns carry for the op
// harness (e.g. no central differences under the sanitizers) cover these cases too.
TNN_OP_CHECKS(OpCheck, attention_ops());

namespace {

// Forward output and every gradient (dx and each parameter's) of one layer on x, dy.
struct LayerRun {
  Tensor<double> y, dx;
  std::vector<Tensor<double>> grads;
};
LayerRun run_layer(Attention<double> a, const Tensor<double>& x, const Tensor<double>& dy,
              const Tensor<std::int32_t>* lengths = nullptr) {
  LayerRun r;
  Attention<double>::Cache c;
  a.forward(x, r.y, c, lengths);
  a.backward(x, dy, c, &r.dx);
  a.visit("", [&](const std::string& name, Param<double>& p) {
    if (name != "k_proj.bias") r.grads.push_back(p.grad);  // 0 up to rounding: see without_key_bias
  });
  return r;
}

// Largest |a - b| over max(largest |b|, 1e-3), over the output and every gradient: the floor
// because at N = 1 the softmax is 1 whatever q and k, so their gradients are 0 in one path and
// rounding noise in the other (every other tensor here is of order 1).
double max_run_diff(const LayerRun& a, const LayerRun& b) {
  auto rel = [](const Tensor<double>& u, const Tensor<double>& v) {
    EXPECT_EQ(u.shape(), v.shape());
    double d = 0, s = 0;
    for (Index i = 0; i < u.size() && i < v.size(); ++i) {
      d = std::max(d, std::abs(u[i] - v[i]));
      s = std::max(s, std::abs(v[i]));
    }
    return std::isfinite(d) ? d / std::max(s, 1e-3) : INFINITY;
  };
  double e = std::max(rel(a.y, b.y), rel(a.dx, b.dx));
  for (std::size_t i = 0; i < a.grads.size(); ++i) e = std::max(e, rel(a.grads[i], b.grads[i]));
  return e;
}

}  // namespace

TEST(Attention, NamesAndShapesFollowFairseq) {
  Attention<double> a(kDim, 3, true);
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  a.visit("token_mixer.", [&](const std::string& n, const Param<double>& p) {
    names.push_back(n);
    shapes.push_back(p.shape());
  });
  const std::string m = "token_mixer.";
  EXPECT_EQ(names, (std::vector<std::string>{m + "q_proj.weight", m + "q_proj.bias", m + "k_proj.weight",
                                             m + "k_proj.bias", m + "v_proj.weight", m + "v_proj.bias",
                                             m + "out_proj.weight", m + "out_proj.bias"}));
  for (std::size_t i = 0; i < shapes.size(); ++i)
    EXPECT_EQ(shapes[i], i % 2 == 0 ? Shape({kDim, kDim}) : Shape({kDim})) << names[i];
  EXPECT_EQ(a.dim(), kDim);
  EXPECT_EQ(a.heads(), 3);
  EXPECT_EQ(a.head_dim(), 2);
}

TEST(Attention, InitIsPyTorchLinearInOrderAndSeeded) {
  Attention<double> a(8, 2, true), b(8, 2, true);
  a.init_weights(7);
  b.init_weights(8);
  Rng rng(7);  // the same draws, projection after projection
  Linear<double> expect[4] = {Linear<double>(8, 8), Linear<double>(8, 8), Linear<double>(8, 8), Linear<double>(8, 8)};
  for (auto& l : expect) l.init_uniform(rng);
  const Linear<double>* got[4] = {&a.q_proj, &a.k_proj, &a.v_proj, &a.out_proj};
  const Linear<double>* other[4] = {&b.q_proj, &b.k_proj, &b.v_proj, &b.out_proj};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(gradcheck::max_rel_diff(got[i]->weight.value, expect[i].weight.value), 0.0) << i;
    EXPECT_EQ(gradcheck::max_rel_diff(got[i]->bias.value, expect[i].bias.value), 0.0) << i;
    EXPECT_GT(gradcheck::max_rel_diff(got[i]->weight.value, other[i]->weight.value), 0.0) << i;
    double mx = 0;
    for (double w : got[i]->weight.value) mx = std::max(mx, std::abs(w));
    EXPECT_LE(mx, 1.0 / std::sqrt(8.0));
    EXPECT_GT(mx, 0.3 / std::sqrt(8.0));
  }
}

TEST(Attention, KeyBiasHasNoEffectAndNoGradient) {
  for (const PathChoice& p : {kDirect, kTiled, PathChoice{AttentionMethod::Tiled, 4, 3}})
    for (bool causal : {true, false}) {
      Attention<double> a = make_layer<double>(3, causal, p, 90);
      const Tensor<double> x = gradcheck::random_tensor({2, 17, kDim}, 91), dy = gradcheck::random_tensor({2, 17, kDim}, 92);
      Attention<double>::Cache c;
      Tensor<double> y0, y1, dx;
      a.forward(x, y0, c);
      a.backward(x, dy, c, &dx);
      double kb = 0, kw = 0;
      for (double g : a.k_proj.bias.grad) kb = std::max(kb, std::abs(g));
      for (double g : a.k_proj.weight.grad) kw = std::max(kw, std::abs(g));
      EXPECT_GT(kw, 1e-3);
      EXPECT_LT(kb, 1e-13 * kw) << p.name() << " causal=" << causal;
      for (double& b : a.k_proj.bias.value) b += 5.0;
      a.forward(x, y1, c);
      EXPECT_LT(gradcheck::max_rel_diff(y1, y0), 1e-13);
    }
}

TEST(Attention, AutoTakesTheTiledPathAndAForcedPathIsKept) {
  Attention<float> a(8, 2, true);
  EXPECT_EQ(a.method(), AttentionMethod::Auto);
  for (Index n : {1, 64, 100000}) EXPECT_EQ(a.method_for(n), AttentionMethod::Tiled);
  a.set_method(AttentionMethod::Direct);
  EXPECT_EQ(a.method_for(100000), AttentionMethod::Direct);
  Attention<float>::Cache c;
  Tensor<float> x = random<float>({1, 5, 8}, 1), y;
  a.set_method(AttentionMethod::Tiled);
  a.forward(x, y, c);
  EXPECT_EQ(c.path, AttentionMethod::Tiled);
  EXPECT_TRUE(c.p.empty());  // nothing N x N held
  EXPECT_EQ(c.lse.shape(), Shape({1, 2, 5}));
  for (AttentionMethod m : enum_values<AttentionMethod>()) EXPECT_EQ(parse_attention_method(to_string(m)), m);
}

// The fast path against its twin, output and every gradient, over lengths around and beyond
// the tiles, several tile shapes, ragged batches.
TEST(Attention, TiledMatchesDirect) {
  double worst = 0;
  for (bool causal : {true, false})
    for (Index H : {1, 3})
      for (Index N : {1, 127, 128, 129, 300})
        for (auto [tq, tk] : {std::pair<Index, Index>{128, 128}, {64, 32}, {33, 100}, {1, 1000}}) {
          if ((tq == 1 || tk < 64) && N > 129) continue;  // the small tiles are covered at 127..129
          SCOPED_TRACE(opcheck::cat("causal=", causal, " H=", H, " N=", N, " tiles=", tq, "x", tk));
          Attention<double> a = make_layer<double>(H, causal, kDirect, 5 + std::uint64_t(N));
          const Tensor<double> x = gradcheck::random_tensor({2, N, kDim}, 6), dy = gradcheck::random_tensor({2, N, kDim}, 7);
          Attention<double> t = a;
          t.set_method(AttentionMethod::Tiled);
          t.set_tiles(tq, tk);
          const Tensor<std::int32_t> len = lengths_tensor({N, std::max<Index>(1, N / 2 + 1)});
          for (const Tensor<std::int32_t>* l : {static_cast<const Tensor<std::int32_t>*>(nullptr), &len}) {
            const double e = max_run_diff(run_layer(t, x, dy, l), run_layer(a, x, dy, l));
            EXPECT_LT(e, 1e-12);
            if (N > 1) worst = std::max(worst, e);  // N = 1: see max_run_diff
          }
        }
  // One (row, head) and more threads than that: query blocks split over tasks, partial key
  // gradients summed afterwards (when the loop runs parallel: N 700 is above its threshold).
  for (bool causal : {true, false}) {
    Attention<double> a = make_layer<double>(1, causal, kDirect, 9);
    const Tensor<double> x = gradcheck::random_tensor({1, 700, kDim}, 10), dy = gradcheck::random_tensor({1, 700, kDim}, 11);
    Attention<double> t = a;
    t.set_method(AttentionMethod::Tiled);
    t.set_tiles(64, 64);
    const double e = max_run_diff(run_layer(t, x, dy), run_layer(a, x, dy));
    EXPECT_LT(e, 1e-12) << "B = H = 1, causal=" << causal;
    worst = std::max(worst, e);
  }
  std::cout << "[ worst ] Tiled vs Direct (double), output and gradients, N > 1: " << worst << "\n";
}

TEST(Attention, TiledMatchesDirectInFloat) {
  for (bool causal : {true, false}) {
    Attention<float> a(64, 4, causal);
    a.init_weights(3);
    Attention<float> t = a;
    a.set_method(AttentionMethod::Direct);
    t.set_method(AttentionMethod::Tiled);
    const Tensor<float> x = random<float>({2, 300, 64}, 8);
    Tensor<float> ya, yt;
    Attention<float>::Cache ca, ct;
    a.forward(x, ya, ca);
    t.forward(x, yt, ct);
    EXPECT_LT(gradcheck::max_rel_diff(yt, ya), 1e-5) << "causal=" << causal;
  }
}

// A row of a ragged batch, at positions below its length, equals the row run alone at its
// length: output, and (with dy 0 at the padding) dx and every parameter gradient.
TEST(Attention, RaggedRowsEqualRowsRunAlone) {
  for (bool causal : {true, false})
    for (const PathChoice& p : {kDirect, kTiled, PathChoice{AttentionMethod::Tiled, 4, 3}})
      for (Index N : {17, 300}) {
        if (N == 300 && p.tile_q == 4) continue;
        SCOPED_TRACE(opcheck::cat("causal=", causal, " path=", p.name(), " N=", N));
        const std::vector<Index> lens = {N, N / 3, 1};
        const Index B = Index(lens.size());
        Attention<double> a = make_layer<double>(2, causal, p, 40);
        const Tensor<double> x = gradcheck::random_tensor({B, N, kDim}, 41);
        Tensor<double> dy = gradcheck::random_tensor({B, N, kDim}, 42);
        for (Index b = 0; b < B; ++b)
          std::fill(dy.data() + (b * N + lens[std::size_t(b)]) * kDim, dy.data() + (b + 1) * N * kDim, 0.0);
        const Tensor<std::int32_t> len = lengths_tensor(lens);
        const LayerRun all = run_layer(a, x, dy, &len);
        std::vector<Tensor<double>> grad_sum(all.grads.size());
        for (std::size_t i = 0; i < all.grads.size(); ++i) {
          grad_sum[i] = all.grads[i];
          grad_sum[i].set_zero();
        }
        for (Index b = 0; b < B; ++b) {
          const Index n = lens[std::size_t(b)];
          Tensor<double> xb({1, n, kDim}), dyb({1, n, kDim});
          std::copy(x.data() + b * N * kDim, x.data() + (b * N + n) * kDim, xb.data());
          std::copy(dy.data() + b * N * kDim, dy.data() + (b * N + n) * kDim, dyb.data());
          const LayerRun alone = run_layer(a, xb, dyb);
          double ey = 0, edx = 0, scale = 0;
          for (Index i = 0; i < n * kDim; ++i) {
            ey = std::max(ey, std::abs(all.y[b * N * kDim + i] - alone.y[i]));
            edx = std::max(edx, std::abs(all.dx[b * N * kDim + i] - alone.dx[i]));
            scale = std::max(scale, std::abs(alone.y[i]));
          }
          EXPECT_LT(ey, 1e-12 * std::max(scale, 1.0)) << "row " << b;
          EXPECT_LT(edx, 1e-12) << "row " << b;
          for (Index i = n * kDim; i < N * kDim; ++i)  // padding: dy 0 there, and its keys masked
            ASSERT_LT(std::abs(all.dx[b * N * kDim + i]), 1e-15) << "row " << b << " padding entry " << i;
          for (std::size_t i = 0; i < grad_sum.size(); ++i)
            for (Index k = 0; k < grad_sum[i].size(); ++k) grad_sum[i][k] += alone.grads[i][k];
        }
        for (std::size_t i = 0; i < grad_sum.size(); ++i)
          EXPECT_LT(gradcheck::max_rel_diff(all.grads[i], grad_sum[i]), 1e-12) << "parameter " << i;
      }
}

// step() over every position, one at a time and in chunks, equals the full causal forward.
TEST(Attention, KvCacheStepMatchesFullForwardAtEveryPosition) {
  double worst = 0;
  for (Index H : {1, 2, 3})
    for (const PathChoice& p : {kDirect, kTiled, PathChoice{AttentionMethod::Tiled, 4, 3}}) {
      SCOPED_TRACE(opcheck::cat("H=", H, " path=", p.name()));
      const Index B = 2, N = 40;
      Attention<double> a = make_layer<double>(H, true, p, 70 + std::uint64_t(H));
      const Tensor<double> x = gradcheck::random_tensor({B, N, kDim}, 71);
      Tensor<double> y;
      Attention<double>::Cache c;
      a.forward(x, y, c);
      auto rows = [&](Index t0, Index n) {  // x[:, t0 .. t0+n-1]
        Tensor<double> r({B, n, kDim});
        for (Index b = 0; b < B; ++b)
          std::copy(x.data() + (b * N + t0) * kDim, x.data() + (b * N + t0 + n) * kDim, r.data() + b * n * kDim);
        return r;
      };
      auto expect_rows = [&](const Tensor<double>& yt, Index t0) {
        const Index n = yt.dim(1);
        for (Index b = 0; b < B; ++b)
          for (Index t = 0; t < n; ++t) {
            double d = 0, s = 0;
            for (Index k = 0; k < kDim; ++k) {
              d = std::max(d, std::abs(yt[(b * n + t) * kDim + k] - y[(b * N + t0 + t) * kDim + k]));
              s = std::max(s, std::abs(y[(b * N + t0 + t) * kDim + k]));
            }
            EXPECT_LT(d / s, 1e-12) << "sequence " << b << " position " << t0 + t;
            worst = std::max(worst, d / s);
          }
      };
      // one position at a time, from a cache of capacity 3: it grows on the way
      Attention<double>::KvCache kv;
      a.reserve(kv, B, 3);
      Tensor<double> yt;
      for (Index t = 0; t < N; ++t) {
        a.step(rows(t, 1), yt, kv);
        expect_rows(yt, t);
      }
      EXPECT_EQ(kv.position(), N);
      EXPECT_GE(kv.capacity(), N);
      // a prompt of 13 at once, then single positions, then a chunk of 9, then the rest
      kv.reset();
      Index t = 0;
      for (Index n : {13, 1, 1, 9, 16}) {
        a.step(rows(t, n), yt, kv);
        expect_rows(yt, t);
        t += n;
      }
      // rewind: the positions after 20 forgotten, fed again
      kv.rewind(20);
      a.step(rows(20, 20), yt, kv);
      expect_rows(yt, 20);
    }
  std::cout << "[ worst ] KV cache step vs full forward (double): " << worst << "\n";
}

// A warm training step (either path) and a warm decoding step from a reserved cache do not
// touch the heap.
TEST(Attention, WarmStepsDoNotAllocate) {
  for (const PathChoice& p : {kDirect, kTiled, PathChoice{AttentionMethod::Tiled, 16, 8}})
    for (bool causal : {true, false}) {
      SCOPED_TRACE(opcheck::cat("path=", p.name(), " causal=", causal));
      Attention<float> a(16, 2, causal);
      a.init_weights(1);
      a.set_method(p.method);
      if (p.method == AttentionMethod::Tiled) a.set_tiles(p.tile_q, p.tile_k);
      const Tensor<float> x = random<float>({3, 150, 16}, 2), dy = random<float>({3, 150, 16}, 3);
      const Tensor<std::int32_t> len = lengths_tensor({150, 70, 9});
      Tensor<float> y, dx;
      Attention<float>::Cache c;
      for (int s = 0; s < 2; ++s) {
        a.forward(x, y, c, &len);
        a.backward(x, dy, c, &dx);
      }
      g_allocs = 0;
      g_counting = true;
      a.forward(x, y, c, &len);
      a.backward(x, dy, c, &dx);
      g_counting = false;
      EXPECT_EQ(g_allocs.load(), 0) << "operator new calls in a warm forward + backward";
      if (!causal) continue;
      Attention<float>::KvCache kv;
      a.reserve(kv, 3, 150);
      Tensor<float> xt = random<float>({3, 1, 16}, 4), yt;
      a.step(xt, yt, kv);  // sizes the one-position workspaces
      g_allocs = 0;
      g_counting = true;
      for (int s = 1; s < 150; ++s) a.step(xt, yt, kv);
      g_counting = false;
      EXPECT_EQ(g_allocs.load(), 0) << "operator new calls in 149 decoding steps within the reserved capacity";
    }
}

TEST(Attention, ErrorsSayWhatWasExpected) {
  EXPECT_TRUE(throws<ConfigError>([] { Attention<double>(10, 3, true); }, {"divisible by heads", "10", "3"}));
  EXPECT_TRUE(throws<ConfigError>([] { Attention<double>(8, 0, true); }, {"heads >= 1", "0"}));
  EXPECT_TRUE(throws<ConfigError>([] { Attention<double>(0, 1, true); }, {"dim >= 1"}));
  Attention<double> a(kDim, 2, true);
  a.init_weights(1);
  Attention<double>::Cache c;
  Tensor<double> y, dx;
  EXPECT_TRUE(throws<ShapeError>([&] { a.forward(Tensor<double>({2, 5, 4}), y, c); }, {"[B >= 1, N >= 1, 6]", "[2, 5, 4]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { a.forward(Tensor<double>({5, 6}), y, c); }, {"[5, 6]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { a.forward(Tensor<double>({2, 0, 6}), y, c); }, {"[2, 0, 6]"}));
  const Tensor<double> x = random<double>({2, 5, kDim}, 3);
  Tensor<double> same = x;
  EXPECT_TRUE(throws<ValueError>([&] { a.forward(same, same, c); }, {"different tensor"}));
  const Tensor<std::int32_t> bad_shape = lengths_tensor({5, 5, 5}), bad_value = lengths_tensor({5, 6}),
                             zero = lengths_tensor({0, 5});
  EXPECT_TRUE(throws<ShapeError>([&] { a.forward(x, y, c, &bad_shape); }, {"lengths", "[2]", "[3]"}));
  EXPECT_TRUE(throws<ValueError>([&] { a.forward(x, y, c, &bad_value); }, {"[1, 5]", "got 6", "row 1"}));
  EXPECT_TRUE(throws<ValueError>([&] { a.forward(x, y, c, &zero); }, {"[1, 5]", "got 0", "row 0"}));
  Attention<double>::Cache fresh;
  EXPECT_TRUE(throws<ShapeError>([&] { a.backward(x, x, fresh, &dx); }, {"cache", "[2, 5, 6]"}));
  a.forward(x, y, c);
  EXPECT_TRUE(throws<ShapeError>([&] { a.backward(x, Tensor<double>({2, 4, 6}), c, &dx); }, {"dy", "[2, 5, 6]", "[2, 4, 6]"}));
  const Tensor<double> longer = random<double>({2, 7, kDim}, 4);
  EXPECT_TRUE(throws<ShapeError>([&] { a.backward(longer, Tensor<double>({2, 7, 6}), c, &dx); }, {"cache", "[2, 7, 6]", "[2, 5, 6]"}));
  EXPECT_TRUE(throws<ValueError>([&] { a.set_tiles(0, 4); }, {">= 1", "got 0 and 4"}));
  EXPECT_TRUE(throws<ValueError>([] { parse_attention_method("flash"); }, {"auto, direct, tiled", "\"flash\""}));
  // decoding
  Attention<double>::KvCache kv;
  Tensor<double> yt;
  Attention<double> bidir(kDim, 2, false);
  EXPECT_TRUE(throws<ConfigError>([&] { bidir.step(random<double>({1, 1, kDim}, 5), yt, kv); }, {"causal", "bidirectional"}));
  EXPECT_TRUE(throws<ShapeError>([&] { a.step(Tensor<double>({1, 1, 4}), yt, kv); }, {"step x", "[1, 1, 4]"}));
  a.step(random<double>({2, 1, kDim}, 6), yt, kv);
  EXPECT_TRUE(throws<ShapeError>([&] { a.step(random<double>({3, 1, kDim}, 7), yt, kv); }, {"batch 2", "[3, 1, 6]"}));
  EXPECT_TRUE(throws<ValueError>([&] { kv.rewind(2); }, {"[0, 1]", "got 2"}));
  EXPECT_TRUE(throws<ShapeError>([&] { a.reserve(kv, 3, 100); }, {"batch 2", "got 3"}));
  EXPECT_TRUE(throws<ValueError>([&] { a.reserve(kv, 2, 0); }, {"capacity >= 1"}));
  Attention<double> wider(8, 2, true);
  EXPECT_TRUE(throws<ShapeError>([&] { wider.reserve(kv, 2, 100); }, {"width 8", "[2,"}));
}

// ---- sinusoidal positions ----

TEST(SinusoidalPositions, MatchTheFormulaByHand) {
  // D = 8: half 4, frequencies 10000^(-i/3) = 1, 10000^(-1/3), 10000^(-2/3), 1e-4
  Tensor<double> x({1, 3, 8});
  add_sinusoidal_positions(x, 5);
  const double w[4] = {1.0, std::pow(10000.0, -1.0 / 3), std::pow(10000.0, -2.0 / 3), 1e-4};
  for (Index n = 0; n < 3; ++n)
    for (Index i = 0; i < 4; ++i) {
      const double p = double(5 + n);
      EXPECT_NEAR(x[n * 8 + i], std::sin(p * w[i]), 1e-15) << n << " " << i;
      EXPECT_NEAR(x[n * 8 + 4 + i], std::cos(p * w[i]), 1e-15) << n << " " << i;
    }
  // position 0: sines 0, cosines 1; an odd D leaves its last channel alone
  Tensor<float> z({2, 1, 7});
  z.fill(0.5f);
  add_sinusoidal_positions(z);
  for (Index b = 0; b < 2; ++b) {
    for (Index i = 0; i < 3; ++i) {
      EXPECT_EQ(z[b * 7 + i], 0.5f);
      EXPECT_EQ(z[b * 7 + 3 + i], 1.5f);
    }
    EXPECT_EQ(z[b * 7 + 6], 0.5f);
  }
  // D = 2 (half 1): w_0 = 1; D = 1: nothing to add
  Tensor<double> two({1, 2, 2}), one({1, 2, 1});
  add_sinusoidal_positions(two);
  add_sinusoidal_positions(one);
  EXPECT_DOUBLE_EQ(two[2], std::sin(1.0));
  EXPECT_DOUBLE_EQ(two[3], std::cos(1.0));
  EXPECT_EQ(one[0], 0.0);
  EXPECT_EQ(one[1], 0.0);
}

TEST(SinusoidalPositions, TableEqualsTheFunctionAndOffsetsShift) {
  for (Index D : {1, 2, 7, 64}) {
    const Tensor<float> x = random<float>({3, 20, D}, 9);
    Tensor<float> by_fn = x, by_table = x;
    add_sinusoidal_positions(by_fn, 11);
    SinusoidalPositions<float> table(D, 4);  // grows on the way
    table.add(by_table, 11);
    EXPECT_GE(table.capacity(), 31);
    EXPECT_EQ(gradcheck::max_rel_diff(by_table, by_fn), 0.0) << "D=" << D;
    // offset 11 adds to every row of the batch what positions 11 .. 30 of a sequence get
    Tensor<float> longer({1, 31, D});
    add_sinusoidal_positions(longer);
    for (Index b = 0; b < 3; ++b)
      for (Index n = 0; n < 20; ++n)
        for (Index d = 0; d < D; ++d)
          ASSERT_EQ(by_fn[(b * 20 + n) * D + d], x[(b * 20 + n) * D + d] + longer[(11 + n) * D + d]) << D << " " << n;
  }
  Tensor<float> bad({4, 5});
  EXPECT_TRUE(throws<ShapeError>([&] { add_sinusoidal_positions(bad); }, {"[B, N, D]", "[4, 5]"}));
  Tensor<float> x({1, 2, 3});
  EXPECT_TRUE(throws<ValueError>([&] { add_sinusoidal_positions(x, -1); }, {"offset >= 0", "-1"}));
  SinusoidalPositions<float> table(4);
  EXPECT_TRUE(throws<ShapeError>([&] { table.add(x); }, {"[B, N, 4]", "[1, 2, 3]"}));
  EXPECT_TRUE(throws<ValueError>([] { SinusoidalPositions<float>(0); }, {"dim >= 1"}));
}
