// Gated Toeplitz unit: checkpoint names, init, the forward against the formula
// written out by hand (tests/reference.hpp), lengths, errors, and a training step
// that does not touch the heap once its caches are warm. Central-difference
// gradients and accumulation across the configuration space: the op-check
// harness (test_ops.cpp, Gtu_*).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <vector>

#include "count_new.hpp"
#include "gradcheck.hpp"
#include "reference.hpp"
#include "test_helpers.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/model/config.hpp"
#include "tiny_configs.hpp"

using namespace tnn;

namespace {

template <class T>
testing_helpers::ParamList<T> params_of(Gtu<T>& g) {
  return testing_helpers::params_of(g, "token_mixer.");
}

void set_decay(TnnConfig& cfg, int which) {  // 0 none, 1 fixed, 2 learned
  cfg.decay = (which == 2) ? TnoDecay::Learned : (which == 1) ? TnoDecay::Fixed : TnoDecay::None;
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

}  // namespace

TEST(Gtu, NamesAndShapesFollowTheCheckpointLayout) {
  TnnConfig cfg = testing_helpers::tiny_gtu_config(3, true);
  cfg.rpe_layers = 2;
  cfg.norm_type = NormType::RMSNorm;
  set_decay(cfg, 2);
  Gtu<double> g = make_gtu<double>(cfg);
  const auto params = params_of(g);
  const std::vector<std::string> names = testing_helpers::names_of(params);
  const std::vector<Shape> shapes = testing_helpers::shapes_of(params);
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
  TnnConfig cfg = testing_helpers::tiny_gtu_config(3, true);
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
        TnnConfig cfg = testing_helpers::tiny_gtu_config(heads, causal);
        cfg.gtu_act = Activation::Gelu;
        set_decay(cfg, 2);
        Gtu<double> g = make_gtu<double>(cfg);
        randomize(g, 3);
        const Tensor<double> x = gradcheck::random_tensor({2, n, 4}, 4);
        Tensor<double> y;
        Gtu<double>::Cache c;
        g.forward(x, y, c);
        EXPECT_LT(gradcheck::max_rel_diff(y, reference::gtu(g, x)), 1e-12);
      }
}

TEST(Gtu, SameLayerRunsAtTwoLengths) {
  for (bool causal : {true, false}) {
    TnnConfig cfg = testing_helpers::tiny_gtu_config(3, causal);
    Gtu<double> g = make_gtu<double>(cfg);
    randomize(g, 61);
    testing_helpers::expect_runs_at_lengths(
        g, {7, 80, 7}, [](Index n) { return gradcheck::random_tensor({1, n, 4}, 62 + std::uint64_t(n)); },
        [&](Index n, const Tensor<double>& x, const Tensor<double>& y) {
          EXPECT_LT(gradcheck::max_rel_diff(y, reference::gtu(g, x)), 1e-12) << "N=" << n;
        });
  }
}

TEST(Gtu, SteadyStateTrainingStepDoesNotAllocate) {
  for (Index n : {17, 200})  // direct and FFT Toeplitz paths
    for (bool causal : {true, false}) {
      SCOPED_TRACE(testing::Message() << "N=" << n << " causal=" << causal);
      TnnConfig cfg = testing_helpers::tiny_gtu_config(3, causal);
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

      EXPECT_EQ(gtu_allocs, 0) << "operator new calls in one warm GTU forward + backward";

      // The bare Toeplitz kernel under the same shapes, prepare included (the GTU
      // re-prepares its kernel every step), allocates nothing either.
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
      EXPECT_EQ(g_allocs.load(), 0) << "operator new calls in one warm ToeplitzOp prepare + forward + backward";
    }
  // The counter is live: a first forward (cold caches) does allocate.
  Gtu<float> g = make_gtu<float>(testing_helpers::tiny_gtu_config(3, true));
  Gtu<float>::Cache c;
  Tensor<float> x({1, 5, 4}, 1.0f), y;
  g_allocs = 0;
  g_counting = true;
  g.forward(x, y, c);
  g_counting = false;
  EXPECT_GT(g_allocs.load(), 0);
}

TEST(Gtu, Errors) {
  Gtu<double> g = make_gtu<double>(testing_helpers::tiny_gtu_config(3, true));
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
