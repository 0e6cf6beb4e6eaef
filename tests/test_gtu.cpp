// Gated Toeplitz unit: checkpoint names, the forward against the formula of spec
// section 4 written out by hand, central-difference gradients of the input and of
// every parameter across the configuration space, and a training step that does
// not touch the heap once its caches are warm.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "gradcheck.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/model/config.hpp"

// Counts operator new calls while g_counting is set (Tensor storage, std::vector,
// std::string all come through here).
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
void* counted_alloc(std::size_t n, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace
void* operator new(std::size_t n) { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace tnn;

namespace {

using Params = std::vector<std::pair<std::string, Param<double>*>>;

Params params_of(Gtu<double>& g) {
  Params v;
  g.visit("token_mixer.", [&](const std::string& name, Param<double>& p) { v.emplace_back(name, &p); });
  return v;
}

const NormType kNorms[] = {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm};
const Activation kActs[] = {Activation::Relu, Activation::Silu, Activation::Gelu, Activation::None};

// D = 4, E = 6 (expand 1.5), RPE width 4.
TnnConfig small_config(Index heads, bool causal) {
  TnnConfig cfg;
  cfg.vocab_size = 11;
  cfg.dim = 4;
  cfg.layers = 1;
  cfg.heads = heads;
  cfg.expand_ratio = 1.5;
  cfg.rpe_dim = 4;
  cfg.rpe_layers = 1;
  cfg.gamma = 0.9;
  cfg.causal = causal;
  return cfg;
}

void set_decay(TnnConfig& cfg, int which) {  // 0 none, 1 use_decay, 2 use_multi_decay
  cfg.use_decay = which == 1;
  cfg.use_multi_decay = which == 2;
}

// Norm parameters and theta drawn too, so none of them can be silently ignored.
void randomize(Gtu<double>& g, std::uint64_t seed) {
  Rng rng(seed);
  g.init_weights(rng);
  for (auto& [n, p] : params_of(g))
    if (n.find(".0.scale") != std::string::npos || n.find(".0.weight") != std::string::npos ||
        n.find(".0.bias") != std::string::npos)
      for (auto& v : p->value) v = 1.0 + rng.normal(0.0, 0.3);
}

Tensor<double> naive_linear(const Linear<double>& l, const Tensor<double>& x) {
  const Index in = l.in_features(), out = l.out_features(), rows = x.rows();
  Tensor<double> y({x.dim(0), x.dim(1), out});
  for (Index r = 0; r < rows; ++r)
    for (Index o = 0; o < out; ++o) {
      double s = l.bias.value[o];
      for (Index i = 0; i < in; ++i) s += l.weight.value[o * in + i] * x[r * in + i];
      y[r * out + o] = s;
    }
  return y;
}

Tensor<double> naive_gtu(const Gtu<double>& g, const Tensor<double>& x) {
  const Index B = x.dim(0), N = x.dim(1), E = g.inner_dim();
  Tensor<double> u = naive_linear(g.u_proj, x), v = naive_linear(g.v_proj, x);
  for (auto& a : u) a = act_forward(g.activation(), a);
  for (auto& a : v) a = act_forward(g.activation(), a);
  const Tensor<double> t = g.toep.coefficients(N);  // checked against hand-made t_k in test_tno
  const Index off = g.toep.causal() ? 0 : N - 1;
  Tensor<double> z({B, N, E});
  for (Index b = 0; b < B; ++b)
    for (Index i = 0; i < N; ++i)
      for (Index e = 0; e < E; ++e) {
        double s = 0;
        for (Index j = 0; j < N; ++j) {
          if (g.toep.causal() && j > i) continue;
          s += t[(i - j + off) * E + e] * v[(b * N + j) * E + e];
        }
        z[(b * N + i) * E + e] = u[(b * N + i) * E + e] * s;
      }
  return naive_linear(g.o, z);
}

}  // namespace

TEST(Gtu, NamesAndShapesFollowTheCheckpointLayout) {
  TnnConfig cfg = small_config(3, true);
  cfg.rpe_layers = 2;
  cfg.norm_type = NormType::RMSNorm;
  set_decay(cfg, 2);
  Gtu<double> g = make_gtu<double>(cfg);
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  for (auto& [n, p] : params_of(g)) {
    names.push_back(n);
    shapes.push_back(p->shape());
  }
  const std::string m = "token_mixer.";
  EXPECT_EQ(names, (std::vector<std::string>{
                       m + "u_proj.weight", m + "u_proj.bias", m + "v_proj.weight", m + "v_proj.bias",
                       m + "o.weight", m + "o.bias", m + "toep.gamma", m + "toep.rpe.pos_proj.weight",
                       m + "toep.rpe.pos_proj.bias", m + "toep.rpe.layers.0.0.scale", m + "toep.rpe.layers.0.2.weight",
                       m + "toep.rpe.layers.0.2.bias", m + "toep.rpe.layers.1.0.scale",
                       m + "toep.rpe.layers.1.2.weight", m + "toep.rpe.layers.1.2.bias", m + "toep.rpe.out.0.scale",
                       m + "toep.rpe.out.2.weight", m + "toep.rpe.out.2.bias"}));
  EXPECT_EQ(shapes, (std::vector<Shape>{{6, 4}, {6}, {6, 4}, {6}, {4, 6}, {4}, {3, 1, 2}, {4, 1}, {4}, {4}, {4, 4},
                                        {4}, {4}, {4, 4}, {4}, {4}, {6, 4}, {6}}));
}

TEST(Gtu, InitIsPyTorchLikeAndSeeded) {
  TnnConfig cfg = small_config(3, true);
  cfg.dim = 8;  // in_features of u_proj/v_proj: bound 1/sqrt(8)
  set_decay(cfg, 1);
  Gtu<double> a = make_gtu<double>(cfg), b = make_gtu<double>(cfg), c = make_gtu<double>(cfg);
  a.init_weights(7);
  b.init_weights(7);
  c.init_weights(8);
  auto pa = params_of(a), pb = params_of(b), pc = params_of(c);
  bool differs = false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const auto& [name, p] = pa[i];
    for (Index j = 0; j < p->value.size(); ++j) {
      EXPECT_EQ(p->value[j], pb[i].second->value[j]) << name;
      differs |= p->value[j] != pc[i].second->value[j];
    }
    if (name.find("gamma") != std::string::npos) {
      for (double v : p->value) EXPECT_DOUBLE_EQ(v, 0.9);  // fixed decay keeps lambda = gamma
      continue;
    }
    const Index in = p->value.rank() == 2 ? p->value.dim(1) : -1;
    if (in > 0) {  // weight: |w| <= 1/sqrt(in), and not all tiny
      double mx = 0;
      for (double v : p->value) mx = std::max(mx, std::abs(v));
      EXPECT_LE(mx, 1.0 / std::sqrt(double(in))) << name;
      EXPECT_GT(mx, 0.3 / std::sqrt(double(in))) << name;
    }
  }
  EXPECT_TRUE(differs);
}

TEST(Gtu, ForwardMatchesFormula) {
  for (bool causal : {true, false})
    for (Index heads : {1, 3})
      for (Index n : {1, 2, 17, 300}) {
        SCOPED_TRACE(testing::Message() << "causal=" << causal << " heads=" << heads << " N=" << n);
        TnnConfig cfg = small_config(heads, causal);
        cfg.gtu_act = Activation::Gelu;
        set_decay(cfg, 2);
        Gtu<double> g = make_gtu<double>(cfg);
        randomize(g, 3);
        const Tensor<double> x = gradcheck::random_tensor({2, n, 4}, 4);
        Tensor<double> y;
        Gtu<double>::Cache c;
        g.forward(x, y, c);
        EXPECT_LT(gradcheck::max_rel_diff(y, naive_gtu(g, x)), 1e-12);
      }
}

TEST(Gtu, GradcheckAcrossConfigurations) {
  int combo = 0;
  for (bool causal : {true, false})
    for (Index heads : {1, 3})
      for (int decay : {0, 1, 2})
        for (Index n : {1, 2, 17, 300}) {
          TnnConfig cfg = small_config(heads, causal);
          set_decay(cfg, decay);
          cfg.norm_type = kNorms[combo % 3];
          cfg.rpe_act = kActs[combo % 4];
          cfg.gtu_act = kActs[(combo / 3) % 4];
          cfg.rpe_layers = (combo / 2) % 2 == 0 ? 0 : 2;
          ++combo;
          SCOPED_TRACE(testing::Message() << "causal=" << causal << " heads=" << heads << " decay=" << decay
                                          << " norm=" << to_string(cfg.norm_type) << " rpe_act="
                                          << to_string(cfg.rpe_act) << " gtu_act=" << to_string(cfg.gtu_act)
                                          << " rpe_layers=" << cfg.rpe_layers << " N=" << n);
          Gtu<double> g = make_gtu<double>(cfg);
          randomize(g, 20 + std::uint64_t(combo));
          Tensor<double> x = gradcheck::random_tensor({2, n, 4}, 30 + std::uint64_t(combo));
          const Tensor<double> w = gradcheck::random_tensor(x.shape(), 40 + std::uint64_t(combo));
          Gtu<double>::Cache c, c2;
          Tensor<double> y, y2, dx;
          g.forward(x, y, c);
          g.backward(x, w, c, &dx);
          auto loss = [&] {
            g.forward(x, y2, c2);
            return gradcheck::dot(y2, w);
          };
          gradcheck::Options opt;
          if (n >= 17) opt.max_entries = n == 300 ? 12 : 30;
          const bool relu = cfg.rpe_act == Activation::Relu || cfg.gtu_act == Activation::Relu;
          EXPECT_TRUE(gradcheck::check_kinked("dx", x, dx, loss, opt, relu));
          for (auto& [nm, p] : params_of(g)) {
            if (!p->trainable) {
              for (double v : p->grad) EXPECT_EQ(v, 0.0) << nm << " is frozen: no gradient";
              continue;
            }
            const Tensor<double> analytic = p->grad;
            EXPECT_TRUE(gradcheck::check_kinked(nm, p->value, analytic, loss, opt, relu));
          }
        }
}

TEST(Gtu, BackwardAccumulatesAndOverwritesDx) {
  TnnConfig cfg = small_config(3, false);
  set_decay(cfg, 2);
  Gtu<double> g = make_gtu<double>(cfg);
  randomize(g, 51);
  const Tensor<double> x = gradcheck::random_tensor({2, 40, 4}, 52);
  const Tensor<double> w = gradcheck::random_tensor(x.shape(), 53);
  Gtu<double>::Cache c;
  Tensor<double> y, dx1, dx2;
  g.forward(x, y, c);
  g.backward(x, w, c, &dx1);
  std::vector<Tensor<double>> first;
  for (auto& [n, p] : params_of(g)) first.push_back(p->grad);
  dx2 = gradcheck::random_tensor(x.shape(), 54);
  g.backward(x, w, c, &dx2);
  EXPECT_LT(gradcheck::max_rel_diff(dx2, dx1), 1e-15);
  std::size_t k = 0;
  for (auto& [n, p] : params_of(g)) {
    for (Index i = 0; i < p->grad.size(); ++i) EXPECT_NEAR(p->grad[i], 2 * first[k][i], 1e-12) << n;
    ++k;
  }
  g.backward(x, w, c, nullptr);
}

TEST(Gtu, SameLayerRunsAtTwoLengths) {
  for (bool causal : {true, false}) {
    TnnConfig cfg = small_config(3, causal);
    Gtu<double> g = make_gtu<double>(cfg);
    randomize(g, 61);
    Index count = 0;
    for (auto& [n, p] : params_of(g)) count += p->value.size();
    Gtu<double>::Cache c;
    Tensor<double> y, dx;
    for (Index n : {7, 80, 7}) {
      const Tensor<double> x = gradcheck::random_tensor({1, n, 4}, 62 + std::uint64_t(n));
      g.forward(x, y, c);
      EXPECT_LT(gradcheck::max_rel_diff(y, naive_gtu(g, x)), 1e-12) << "N=" << n;
      g.backward(x, x, c, &dx);
      EXPECT_EQ(dx.shape(), x.shape());
    }
    Index after = 0;
    for (auto& [n, p] : params_of(g)) after += p->value.size();
    EXPECT_EQ(after, count);
  }
}

TEST(Gtu, SteadyStateTrainingStepDoesNotAllocate) {
  for (Index n : {17, 200})  // direct and FFT Toeplitz paths
    for (bool causal : {true, false}) {
      SCOPED_TRACE(testing::Message() << "N=" << n << " causal=" << causal);
      TnnConfig cfg = small_config(3, causal);
      cfg.norm_type = NormType::LayerNorm;
      cfg.rpe_layers = 2;
      set_decay(cfg, 2);
      Gtu<float> g = make_gtu<float>(cfg);
      g.init_weights(1);
      Tensor<float> x({4, n, 4}), dy({4, n, 4}), y, dx;
      Rng rng(2);
      for (auto& v : x) v = float(rng.normal());
      for (auto& v : dy) v = float(rng.normal());
      Gtu<float>::Cache c;
      for (int step = 0; step < 2; ++step) {  // warm-up: caches, workspaces, FFT plans
        g.forward(x, y, c);
        g.backward(x, dy, c, &dx);
      }
      g_allocs = 0;
      g_counting = true;
      g.forward(x, y, c);
      g.backward(x, dy, c, &dx);
      g_counting = false;
      const long gtu_allocs = g_allocs.load();

      // The bare Toeplitz kernel under the same shapes is the floor: the layer
      // must add nothing of its own on top of it.
      const Index E = g.inner_dim();
      Tensor<float> t({toeplitz_num_coeffs(n, causal), E}, 0.5f), v({4, n, E}, 1.0f), yt, dv, dt;
      ToeplitzOp<float> op;
      for (int step = 0; step < 3; ++step) {
        if (step == 2) {
          g_allocs = 0;
          g_counting = true;
        }
        op.prepare(t, n, causal);
        op.forward(v, yt);
        op.backward(v, &dv, &dt);
        g_counting = false;
      }
      const long kernel_allocs = g_allocs.load();
      EXPECT_EQ(gtu_allocs, kernel_allocs) << "the GTU step allocates beyond its Toeplitz kernel";
      if (kernel_allocs != 0) std::printf("note: ToeplitzOp step itself allocates %ld times (N=%ld)\n",
                                          kernel_allocs, static_cast<long>(n));
    }
}

TEST(Gtu, Errors) {
  Gtu<double> g = make_gtu<double>(small_config(3, true));
  Gtu<double>::Cache c;
  Tensor<double> y, dx;
  EXPECT_THROW(g.forward(Tensor<double>({2, 5, 3}), y, c), ShapeError);
  EXPECT_THROW(g.forward(Tensor<double>({10, 4}), y, c), ShapeError);
  const Tensor<double> x({2, 5, 4});
  EXPECT_THROW(g.backward(x, x, c, &dx), Error);  // no forward yet
  g.forward(x, y, c);
  EXPECT_THROW(g.backward(x, Tensor<double>({2, 5, 3}), c, &dx), ShapeError);
  EXPECT_THROW(g.backward(Tensor<double>({2, 6, 4}), Tensor<double>({2, 6, 4}), c, &dx), ShapeError);
}
