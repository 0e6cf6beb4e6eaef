// GLU channel mixer: names and shapes from the config, forward against the
// formula of model.md §5, shape errors. Central-difference gradients and
// accumulation for every activation: the op-check harness (test_ops.cpp, Glu_*).
#include <gtest/gtest.h>

#include "gradcheck.hpp"
#include "test_helpers.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/model/config.hpp"

using namespace tnn;

namespace {
testing_helpers::ParamList<double> params_of(Glu<double>& g) { return testing_helpers::params_of(g, "feature_mixer."); }
}  // namespace

TEST(Glu, NamesAndShapesFromConfig) {
  Glu<double> g = make_glu<double>(TnnConfig::parse(R"({"vocab_size": 10, "dim": 4, "layers": 1, "glu_dim": 6})"));
  const auto params = params_of(g);
  const std::vector<std::string> names = testing_helpers::names_of(params);
  const std::vector<Shape> shapes = testing_helpers::shapes_of(params);
  EXPECT_EQ(names, (std::vector<std::string>{"feature_mixer.l1.weight", "feature_mixer.l1.bias",
                                             "feature_mixer.l2.weight", "feature_mixer.l2.bias",
                                             "feature_mixer.l3.weight", "feature_mixer.l3.bias"}));
  EXPECT_EQ(shapes, (std::vector<Shape>{{6, 4}, {6}, {6, 4}, {6}, {4, 6}, {4}}));
}

TEST(Glu, ForwardMatchesFormula) {
  Rng rng(1);
  Glu<double> g(3, 5, Activation::Gelu);
  g.init_weights(rng);
  const Tensor<double> x = gradcheck::random_tensor({2, 3}, 2);
  Tensor<double> y;
  Glu<double>::Cache c;
  g.forward(x, y, c);
  ASSERT_EQ(y.shape(), (Shape{2, 3}));
  for (Index r = 0; r < 2; ++r)
    for (Index o = 0; o < 3; ++o) {
      double s = g.l3.bias.value[o];
      for (Index k = 0; k < 5; ++k) {
        double h1 = g.l1.bias.value[k], h2 = g.l2.bias.value[k];
        for (Index i = 0; i < 3; ++i) {
          h1 += g.l1.weight.value[k * 3 + i] * x[r * 3 + i];
          h2 += g.l2.weight.value[k * 3 + i] * x[r * 3 + i];
        }
        s += g.l3.weight.value[o * 5 + k] * act_forward(Activation::Gelu, h1) * h2;
      }
      EXPECT_NEAR(y[r * 3 + o], s, 1e-14);
    }
}

TEST(Glu, ShapeErrors) {
  Glu<double> g(3, 4, Activation::Silu);
  Tensor<double> x({2, 5}), y, dx;
  Glu<double>::Cache c;
  EXPECT_THROW(g.forward(x, y, c), ShapeError);
  Tensor<double> x3({2, 3}), dy({2, 3}), other({4, 3});
  g.forward(x3, y, c);
  EXPECT_THROW(g.backward(other, other, c, &dx), ShapeError);
}
