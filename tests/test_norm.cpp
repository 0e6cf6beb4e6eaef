// Norms: values against the definitions of model.md §6, closed forms where
// central differences cannot resolve the gradient (one feature, a zero row),
// in-place backward, names and errors. Central-difference gradients and
// accumulation of every type: the op-check harness (test_ops.cpp, Norm_*).
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "test_helpers.hpp"
#include "tnn/layers/norm.hpp"

using namespace tnn;

namespace {
const NormType kAll[] = {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm};

using testing_helpers::params_of;

// Non-trivial parameter values so the test sees their effect.
void randomize(Norm<double>& n, std::uint64_t seed) {
  Rng rng(seed);
  for (auto& [name, p] : params_of(n))
    for (auto& v : p->value) v = rng.uniform(0.5, 1.5) * (name == "bias" ? 0.3 : 1.0);
}
}  // namespace

TEST(Norm, ValuesMatchDefinitions) {
  const Index d = 5;
  const Tensor<double> x = gradcheck::random_tensor({3, d}, 4);
  for (NormType t : kAll) {
    Norm<double> n(t, d);
    randomize(n, 9);
    Norm<double>::Cache c;
    Tensor<double> y;
    n.forward(x, y, c);
    for (Index r = 0; r < 3; ++r) {
      double ss = 0, mean = 0;
      for (Index j = 0; j < d; ++j) {
        ss += x[r * d + j] * x[r * d + j];
        mean += x[r * d + j];
      }
      mean /= d;
      double var = 0;
      for (Index j = 0; j < d; ++j) var += (x[r * d + j] - mean) * (x[r * d + j] - mean);
      var /= d;
      for (Index j = 0; j < d; ++j) {
        const double xs = x[r * d + j] / (std::sqrt(ss) / std::sqrt(double(d)) + 1e-8);
        double expect = xs;
        if (t == NormType::RMSNorm) expect = n.param("scale").value[j] * xs;
        if (t == NormType::LayerNorm)
          expect = (x[r * d + j] - mean) / std::sqrt(var + 1e-5) * n.param("weight").value[j] + n.param("bias").value[j];
        EXPECT_NEAR(y[r * d + j], expect, 1e-13) << to_string(t);
      }
    }
  }
}

TEST(Norm, EpsIsAddedToTheRmsNotInsideTheSqrt) {
  // For a tiny row the two conventions differ by orders of magnitude.
  Norm<double> n(NormType::SimpleRMSNorm, 4);
  Tensor<double> x({1, 4}, 1e-9), y;
  Norm<double>::Cache c;
  n.forward(x, y, c);
  EXPECT_NEAR(y[0], 1e-9 / (1e-9 + 1e-8), 1e-15);
}

// d = 1: the rms norms are x / (|x| + eps) ~ sign(x), whose derivative
// eps / (|x| + eps)^2 ~ 1e-8 is below what central differences resolve, so it
// is checked against the closed form; layernorm gives y = bias, dx = 0.
TEST(Norm, SingleFeatureClosedForm) {
  const Tensor<double> x = [] {
    Tensor<double> t({4, 1});
    t[0] = -1.3, t[1] = 0.02, t[2] = 0.7, t[3] = -4.0;
    return t;
  }();
  const Tensor<double> g = gradcheck::random_tensor({4, 1}, 3);
  for (NormType t : kAll) {
    Norm<double> n(t, 1);
    randomize(n, 2);
    Norm<double>::Cache c;
    Tensor<double> y, dx;
    n.forward(x, y, c);
    n.backward(x, g, c, dx);
    for (Index i = 0; i < 4; ++i) {
      const double s = std::abs(x[i]) + 1e-8;
      if (t == NormType::LayerNorm) {
        EXPECT_EQ(y[i], n.param("bias").value[0]);
        EXPECT_NEAR(dx[i], 0.0, 1e-12);
      } else {
        const double sc = t == NormType::RMSNorm ? n.param("scale").value[0] : 1.0;
        EXPECT_NEAR(y[i], sc * x[i] / s, 1e-15);
        // dx = g/s - x(g.x)/(s^2 rms) cancels to ~eps/s^2: relative rounding ~1e-16 s/eps
        EXPECT_NEAR(dx[i], g[i] * sc * 1e-8 / (s * s), 1e-6 * std::abs(g[i] * sc * 1e-8 / (s * s)));
      }
    }
  }
}

TEST(Norm, BackwardInPlaceOnDyAndAccumulates) {
  for (NormType t : kAll) {
    Norm<double> n(t, 4);
    randomize(n, 8);
    const Tensor<double> x = gradcheck::random_tensor({5, 4}, 1);
    Tensor<double> g = gradcheck::random_tensor({5, 4}, 2);
    Norm<double>::Cache c;
    Tensor<double> y, dx;
    n.forward(x, y, c);
    n.backward(x, g, c, dx);
    std::vector<Tensor<double>> first;
    for (auto& [name, p] : params_of(n)) first.push_back(p->grad);
    n.backward(x, g, c, g);  // dx aliasing dy
    for (Index i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], dx[i], 1e-15) << to_string(t);
    std::size_t k = 0;
    for (auto& [name, p] : params_of(n)) {
      for (Index i = 0; i < p->grad.size(); ++i) EXPECT_NEAR(p->grad[i], 2 * first[k][i], 1e-13) << name;
      ++k;
    }
  }
}

// A zero row (d = 3) has exact values: the rms norms give y = 0 and, since the
// x (g.x) term vanishes with x, dx = g * scale / eps; layernorm gives y = bias
// and dx = (g w - mean(g w)) / sqrt(eps); the zero row adds nothing to the scale
// and weight gradients (x and xhat are 0), and g to the bias gradient.
TEST(Norm, ZeroRowHasExactOutputAndGradient) {
  const double g0[3] = {1.0, 2.0, 3.0}, p[3] = {0.5, 1.0, 2.0}, b[3] = {0.1, 0.2, 0.3};
  for (NormType t : kAll) {
    SCOPED_TRACE(to_string(t));
    Norm<double> n(t, 3);
    for (Index j = 0; j < 3; ++j) {
      if (t == NormType::RMSNorm) n.param("scale").value[j] = p[j];
      if (t == NormType::LayerNorm) n.param("weight").value[j] = p[j], n.param("bias").value[j] = b[j];
    }
    Tensor<double> x({1, 3}), y, dx, g({1, 3});  // x all zero
    for (Index j = 0; j < 3; ++j) g[j] = g0[j];
    Norm<double>::Cache c;
    n.forward(x, y, c);
    n.backward(x, g, c, dx);
    const double mean_gw = (g0[0] * p[0] + g0[1] * p[1] + g0[2] * p[2]) / 3;
    for (Index j = 0; j < 3; ++j) {
      if (t == NormType::LayerNorm) {
        EXPECT_DOUBLE_EQ(y[j], b[j]);
        EXPECT_NEAR(dx[j], (g0[j] * p[j] - mean_gw) / std::sqrt(1e-5), 1e-12 * 1e3);
        EXPECT_EQ(n.param("weight").grad[j], 0.0);
        EXPECT_EQ(n.param("bias").grad[j], g0[j]);
      } else {
        const double sc = t == NormType::RMSNorm ? p[j] : 1.0;
        EXPECT_EQ(y[j], 0.0);
        EXPECT_NEAR(dx[j], g0[j] * sc / 1e-8, 1e-15 * 1e9);
        if (t == NormType::RMSNorm) {
          EXPECT_EQ(n.param("scale").grad[j], 0.0);
        }
      }
    }
  }
}

TEST(Norm, ParamsNamesAndInit) {
  Norm<float> s(NormType::SimpleRMSNorm, 3), r(NormType::RMSNorm, 3), l(NormType::LayerNorm, 3);
  std::vector<std::string> names;
  auto rec = [&](const std::string& n, Param<float>&) { names.push_back(n); };
  s.visit("a.", rec);
  r.visit("b.", rec);
  l.visit("c.", rec);
  EXPECT_EQ(names, (std::vector<std::string>{"b.scale", "c.weight", "c.bias"}));
  for (float v : r.param("scale").value) EXPECT_EQ(v, 1.0f);
  for (float v : l.param("weight").value) EXPECT_EQ(v, 1.0f);
  for (float v : l.param("bias").value) EXPECT_EQ(v, 0.0f);
}

TEST(Norm, ShapeErrors) {
  Norm<double> n(NormType::LayerNorm, 4);
  Tensor<double> x({2, 3}), y, dx;
  Norm<double>::Cache c;
  EXPECT_THROW(n.forward(x, y, c), ShapeError);
  Tensor<double> x4({2, 4}), dy({2, 3});
  n.forward(x4, y, c);
  EXPECT_THROW(n.backward(x4, dy, c, dx), ShapeError);
  Tensor<double> x_other({3, 4});
  Tensor<double> dy_other({3, 4});
  EXPECT_THROW(n.backward(x_other, dy_other, c, dx), ShapeError);  // cache from another x
  EXPECT_THROW(Norm<double>(NormType::RMSNorm, 0), ShapeError);
}
