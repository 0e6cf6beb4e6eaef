// TnnBlock: checkpoint names, pre-norm and post-norm residual structure against
// a composition of its parts, shape errors. Central-difference gradients and
// accumulation of every variant: the op-check harness (test_ops.cpp, Block_*).
#include <gtest/gtest.h>

#include "gradcheck.hpp"
#include "test_helpers.hpp"
#include "tnn/model/block.hpp"
#include "tiny_configs.hpp"

using namespace tnn;

namespace {

testing_helpers::ParamList<double> params_of(TnnBlock<double>& b) { return testing_helpers::params_of(b, "layers.0."); }

// Initialized, then every trainable entry moved off its init value (norm scales
// away from 1, biases away from 0) so each parameter's gradient path is exercised.
TnnBlock<double> make_block(const TnnConfig& cfg, std::uint64_t seed) {
  TnnBlock<double> b = tnn::make_block<double>(cfg);
  Rng rng(seed);
  b.init_weights(rng);
  for (auto& [name, p] : params_of(b))
    if (p->trainable)
      for (auto& v : p->value) v += rng.normal(0.0, 0.1);
  return b;
}

}  // namespace

TEST(TnnBlock, NamesFollowTheSpec) {
  TnnBlock<double> b = tnn::make_block<double>(testing_helpers::tiny_block_config(NormType::RMSNorm, true, true));
  std::vector<std::string> names;
  for (auto& [n, p] : params_of(b)) names.push_back(n);
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(names.front(), "layers.0.token_norm.scale");
  EXPECT_EQ(names[1], "layers.0.token_mixer.u_proj.weight");
  const std::vector<std::string> tail = {"layers.0.feature_norm.scale",      "layers.0.feature_mixer.l1.weight",
                                         "layers.0.feature_mixer.l1.bias",   "layers.0.feature_mixer.l2.weight",
                                         "layers.0.feature_mixer.l2.bias",   "layers.0.feature_mixer.l3.weight",
                                         "layers.0.feature_mixer.l3.bias"};
  EXPECT_EQ(std::vector<std::string>(names.end() - 7, names.end()), tail);
}

TEST(TnnBlock, ForwardIsTheResidualComposition) {
  for (bool prenorm : {true, false}) {
    const TnnConfig cfg = testing_helpers::tiny_block_config(NormType::LayerNorm, prenorm, true);
    auto b = make_block(cfg, 3);
    const Tensor<double> x = gradcheck::random_tensor({2, 5, 8}, 4);
    Tensor<double> y;
    TnnBlock<double>::Cache c;
    b.forward(x, y, c);
    // Recompute with the parts.
    Tensor<double> a, m, mid(x.shape()), out(x.shape());
    Norm<double>::Cache nc;
    TokenMixer<double>::Cache gc;
    Glu<double>::Cache lc;
    // m = mixer(norm(in)) (pre-norm) or norm(mixer(in)) (post-norm), through a.
    auto sublayer = [&](auto& norm, auto& mixer, const Tensor<double>& in, auto& mixer_cache) {
      if (prenorm) {
        norm.forward(in, a, nc);
        mixer.forward(a, m, mixer_cache);
      } else {
        mixer.forward(in, a, mixer_cache);
        norm.forward(a, m, nc);
      }
    };
    sublayer(b.token_norm, b.token_mixer, x, gc);
    for (Index i = 0; i < x.size(); ++i) mid[i] = x[i] + m[i];
    sublayer(b.feature_norm, b.feature_mixer, mid, lc);
    for (Index i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], mid[i] + m[i], 1e-13) << "prenorm=" << prenorm;
  }
}

TEST(TnnBlock, ShapeErrors) {
  auto b = make_block(testing_helpers::tiny_block_config(NormType::SimpleRMSNorm, true, true), 1);
  Tensor<double> x({2, 3, 7}), y, dx;
  TnnBlock<double>::Cache c;
  EXPECT_THROW(b.forward(x, y, c), ShapeError);
  Tensor<double> x8({2, 3, 8}), dy({2, 4, 8});
  b.forward(x8, y, c);
  EXPECT_THROW(b.backward(x8, dy, c, dx), ShapeError);
}
