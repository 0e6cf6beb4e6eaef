// Activations: values against closed forms, scalar derivatives against central
// differences (gradcheck.hpp's), stability, in-place use. The tensor backward's
// gradient check: the op-check harness (test_ops.cpp, Activation_*).
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "tnn/layers/activation.hpp"

using namespace tnn;

namespace {
const std::vector<Activation> kAll = enum_values<Activation>();
}

TEST(Activation, ValuesMatchDefinitions) {
  for (double x : {-3.0, -0.5, 0.0, 0.25, 2.0}) {
    EXPECT_DOUBLE_EQ(act_forward(Activation::Relu, x), x > 0 ? x : 0.0);
    EXPECT_NEAR(act_forward(Activation::Silu, x), x / (1 + std::exp(-x)), 1e-15);
    EXPECT_NEAR(act_forward(Activation::Gelu, x), 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))), 1e-15);
    EXPECT_DOUBLE_EQ(act_forward(Activation::None, x), x);
  }
  // gelu(1) = Phi(1) = 0.8413447460685429 (exact erf form, not the tanh approximation 0.8411920)
  EXPECT_NEAR(act_forward(Activation::Gelu, 1.0), 0.8413447460685429, 1e-15);
}

TEST(Activation, SiluIsStableForLargeInputs) {
  EXPECT_EQ(act_forward(Activation::Silu, -1000.0), -0.0);
  EXPECT_DOUBLE_EQ(act_forward(Activation::Silu, 1000.0), 1000.0);
  // silu'(-1000) = s (1 + x (1 - s)) with s = sigmoid(-1000) ~ e^-1000: 0 in float, not NaN.
  EXPECT_EQ(act_derivative(Activation::Silu, -1000.0f), 0.0f);
  EXPECT_FLOAT_EQ(act_derivative(Activation::Silu, 1000.0f), 1.0f);
}

TEST(Activation, DerivativeMatchesCentralDifference) {
  for (Activation a : kAll)
    for (double x : {-2.5, -0.3, 0.2, 1.7}) {
      Tensor<double> t({1}, x);
      const double num = gradcheck::numeric_derivative(t, 0, [&] { return act_forward(a, t[0]); }, 1e-4);
      EXPECT_NEAR(act_derivative(a, x), num, 1e-9) << to_string(a) << " at " << x;
    }
  EXPECT_EQ(act_derivative(Activation::Relu, 0.0), 0.0);  // PyTorch's convention
}

TEST(Activation, InPlaceForwardAndBackward) {
  for (Activation a : kAll) {
    const Tensor<float> x = [] {
      Tensor<float> t({2, 6});
      for (Index i = 0; i < t.size(); ++i) t[i] = 0.37f * float(i) - 2.0f;
      return t;
    }();
    Tensor<float> y = x, ref;
    activation_forward(a, x, ref);
    activation_forward(a, y, y);
    for (Index i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], ref[i]);
    Tensor<float> g(x.shape(), 0.5f), dref;
    activation_backward(a, x, g, dref);
    activation_backward(a, x, g, g);
    for (Index i = 0; i < x.size(); ++i) EXPECT_EQ(g[i], dref[i]);
  }
}

TEST(Activation, BackwardShapeMismatchIsShapeError) {
  Tensor<double> x({2, 3}), dy({3, 2}), dx;
  EXPECT_THROW(activation_backward(Activation::Silu, x, dy, dx), ShapeError);
}
