// Linear: forward against a loop, the gradient checker's power to fail,
// accumulation with and without dx, initialization bounds and shape errors.
// Central-difference gradients: the op-check harness (test_ops.cpp, Linear_*).
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "tnn/layers/linear.hpp"

using namespace tnn;

namespace {

// Linear(in, out) initialized as PyTorch's default, from Rng(seed).
template <class T = double>
Linear<T> initialized(Index in, Index out, std::uint64_t seed) {
  Rng rng(seed);
  Linear<T> lin(in, out);
  lin.init_uniform(rng);
  return lin;
}

}  // namespace

TEST(Linear, ForwardMatchesLoops) {
  Linear<double> lin = initialized(4, 3, 3);
  const Tensor<double> x = gradcheck::random_tensor({2, 5, 4}, 11);
  Tensor<double> y;
  lin.forward(x, y);
  ASSERT_EQ(y.shape(), (Shape{2, 5, 3}));
  for (Index r = 0; r < 10; ++r)
    for (Index o = 0; o < 3; ++o) {
      double s = lin.bias.value[o];
      for (Index i = 0; i < 4; ++i) s += lin.weight.value[o * 4 + i] * x[r * 4 + i];
      EXPECT_NEAR(y[r * 3 + o], s, 1e-14);
    }
}

// The checker must be able to fail: a wrong gradient entry is reported.
TEST(Linear, GradcheckDetectsAWrongGradient) {
  Linear<double> lin = initialized(3, 2, 9);
  const Tensor<double> x = gradcheck::random_tensor({4, 3}, 1);
  const Tensor<double> w = gradcheck::random_tensor({4, 2}, 2);
  Tensor<double> y;
  auto loss = [&] {
    lin.forward(x, y);
    return gradcheck::dot(y, w);
  };
  lin.backward(x, w, nullptr);
  Tensor<double> wrong = lin.weight.grad;
  wrong[3] += 1e-5;  // max |grad| ~ 2: a relative error of ~5e-6
  EXPECT_TRUE(gradcheck::ok(gradcheck::check_gradient("weight", lin.weight.value, lin.weight.grad, loss)));
  const auto r = gradcheck::check_gradient("weight", lin.weight.value, wrong, loss);
  EXPECT_FALSE(gradcheck::ok(r));
  EXPECT_EQ(r.worst, 3);
}

TEST(Linear, BackwardAccumulatesAndOverwritesDx) {
  Linear<double> lin = initialized(3, 2, 1);
  const Tensor<double> x = gradcheck::random_tensor({4, 3}, 2);
  const Tensor<double> g = gradcheck::random_tensor({4, 2}, 3);
  Tensor<double> dx1, dx2({4, 3}, 99.0);
  lin.backward(x, g, &dx1);
  const Tensor<double> w1 = lin.weight.grad, b1 = lin.bias.grad;
  lin.backward(x, g, &dx2);
  for (Index i = 0; i < w1.size(); ++i) EXPECT_NEAR(lin.weight.grad[i], 2 * w1[i], 1e-14);
  for (Index i = 0; i < b1.size(); ++i) EXPECT_NEAR(lin.bias.grad[i], 2 * b1[i], 1e-14);
  for (Index i = 0; i < dx1.size(); ++i) EXPECT_EQ(dx1[i], dx2[i]);
  lin.backward(x, g, nullptr);  // weight grads only
  for (Index i = 0; i < w1.size(); ++i) EXPECT_NEAR(lin.weight.grad[i], 3 * w1[i], 1e-14);
}

TEST(Linear, InitIsPyTorchDefaultUniform) {
  const Linear<float> lin = initialized<float>(16, 64, 42);
  const double bound = 1.0 / 4.0;
  double wmax = 0, bmax = 0;
  for (float v : lin.weight.value) wmax = std::max(wmax, std::abs(double(v)));
  for (float v : lin.bias.value) bmax = std::max(bmax, std::abs(double(v)));
  EXPECT_LE(wmax, bound);
  EXPECT_GT(wmax, 0.9 * bound);  // 1024 draws reach near the edge
  EXPECT_LE(bmax, bound);
  EXPECT_GT(bmax, 0.5 * bound);
  const Linear<float> lin2 = initialized<float>(16, 64, 42);  // the same seed again
  for (Index i = 0; i < lin.weight.value.size(); ++i) EXPECT_EQ(lin.weight.value[i], lin2.weight.value[i]);
}

TEST(Linear, VisitNames) {
  Linear<double> a(2, 3), b(2, 3, false);
  std::vector<std::string> names;
  a.visit("x.", [&](const std::string& n, Param<double>& p) {
    names.push_back(n);
    EXPECT_TRUE(p.trainable);
  });
  b.visit("y.", [&](const std::string& n, Param<double>&) { names.push_back(n); });
  EXPECT_EQ(names, (std::vector<std::string>{"x.weight", "x.bias", "y.weight"}));
  EXPECT_EQ(a.weight.shape(), (Shape{3, 2}));
  EXPECT_EQ(a.bias.shape(), (Shape{3}));
}

TEST(Linear, ShapeErrors) {
  Linear<double> lin(3, 2);
  Tensor<double> x({4, 5}), y, dx;
  EXPECT_THROW(lin.forward(x, y), ShapeError);
  Tensor<double> x2({4, 3}), dy_bad({4, 3}), dy_rows({5, 2});
  EXPECT_THROW(lin.backward(x2, dy_bad, &dx), ShapeError);
  EXPECT_THROW(lin.backward(x2, dy_rows, &dx), ShapeError);
  EXPECT_THROW(Linear<double>(0, 2), ShapeError);
  try {
    lin.forward(x, y);
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 5]"), std::string::npos) << e.what();
  }
}

TEST(Linear, EmptyBatch) {
  Linear<double> lin(3, 2);
  Tensor<double> x({0, 3}), y, dx;
  lin.forward(x, y);
  EXPECT_EQ(y.shape(), (Shape{0, 2}));
  lin.backward(x, y, &dx);
  EXPECT_EQ(dx.shape(), (Shape{0, 3}));
}
