// GLU channel mixer: forward against the formula of spec section 5 and the
// gradient of every parameter and of the input by central differences.
#include <gtest/gtest.h>

#include "gradcheck.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/model/config.hpp"

using namespace tnn;

namespace {
std::vector<std::pair<std::string, Param<double>*>> params_of(Glu<double>& g) {
  std::vector<std::pair<std::string, Param<double>*>> v;
  g.visit("feature_mixer.", [&](const std::string& name, Param<double>& p) { v.emplace_back(name, &p); });
  return v;
}
}  // namespace

TEST(Glu, NamesAndShapesFromConfig) {
  TnnConfig cfg;
  cfg.vocab_size = 10;
  cfg.dim = 4;
  cfg.layers = 1;
  cfg.glu_dim = 6;
  Glu<double> g = make_glu<double>(cfg);
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  for (auto& [n, p] : params_of(g)) {
    names.push_back(n);
    shapes.push_back(p->shape());
  }
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

TEST(Glu, GradcheckEveryActivation) {
  for (Activation a : {Activation::Relu, Activation::Silu, Activation::Gelu, Activation::None}) {
    SCOPED_TRACE(to_string(a));
    Rng rng(4);
    Glu<double> g(4, 7, a);
    g.init_weights(rng);
    Tensor<double> x = gradcheck::random_tensor({2, 3, 4}, 5);
    const Tensor<double> w = gradcheck::random_tensor({2, 3, 4}, 6);
    Glu<double>::Cache c, c2;
    Tensor<double> y, y2, dx;
    auto loss = [&] {
      g.forward(x, y2, c2);
      return gradcheck::dot(y2, w);
    };
    g.forward(x, y, c);
    g.backward(x, w, c, &dx);
    EXPECT_TRUE(gradcheck::ok(gradcheck::check_gradient("dx", x, dx, loss)));
    for (const auto& r : gradcheck::check_params(params_of(g), loss)) EXPECT_TRUE(gradcheck::ok(r));
  }
}

TEST(Glu, BackwardTwiceAccumulatesAndDxIsOverwritten) {
  Rng rng(7);
  Glu<double> g(3, 4, Activation::Silu);
  g.init_weights(rng);
  const Tensor<double> x = gradcheck::random_tensor({5, 3}, 8);
  const Tensor<double> w = gradcheck::random_tensor({5, 3}, 9);
  Glu<double>::Cache c;
  Tensor<double> y, dx1, dx2;
  g.forward(x, y, c);
  g.backward(x, w, c, &dx1);
  std::vector<Tensor<double>> first;
  for (auto& [n, p] : params_of(g)) first.push_back(p->grad);
  g.backward(x, w, c, &dx2);
  for (Index i = 0; i < dx1.size(); ++i) EXPECT_NEAR(dx1[i], dx2[i], 1e-15);
  std::size_t k = 0;
  for (auto& [n, p] : params_of(g)) {
    for (Index i = 0; i < p->grad.size(); ++i) EXPECT_NEAR(p->grad[i], 2 * first[k][i], 1e-13) << n;
    ++k;
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
