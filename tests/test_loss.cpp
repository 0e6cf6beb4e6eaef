// Cross-entropy: value against a direct log-softmax, the gradient's zero rows
// and row sums, ignored targets, stability for large logits, range errors. Its
// central-difference gradient: the op-check harness (test_ops.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "test_helpers.hpp"
#include "tnn/model/loss.hpp"

using namespace tnn;
using testing_helpers::ids;

TEST(CrossEntropy, ValueMatchesDirectLogSoftmax) {
  const Tensor<double> z = gradcheck::random_tensor({2, 3, 5}, 1, 2.0);
  const auto t = ids({2, 3}, {0, -1, 4, 2, 2, -1});
  const double loss = cross_entropy(z, t, static_cast<Tensor<double>*>(nullptr));
  double expect = 0;
  for (Index r = 0; r < 6; ++r) {
    if (t[r] == -1) continue;
    double s = 0;
    for (Index v = 0; v < 5; ++v) s += std::exp(z[r * 5 + v]);
    expect += -(z[r * 5 + t[r]] - std::log(s));
  }
  EXPECT_NEAR(loss, expect / 4, 1e-14);
}

TEST(CrossEntropy, GradientIsZeroOnIgnoredRowsAndSumsToZero) {
  Tensor<double> z = gradcheck::random_tensor({3, 4, 7}, 2, 3.0);
  const auto t = ids({3, 4}, {1, 6, -1, 0, -1, -1, 3, 3, 5, 2, -1, 4});
  Tensor<double> dz;
  cross_entropy(z, t, &dz);
  ASSERT_EQ(dz.shape(), z.shape());
  for (Index r : {2, 4, 5, 10})
    for (Index v = 0; v < 7; ++v) EXPECT_EQ(dz[r * 7 + v], 0.0);
  // each counted row sums to 0 (softmax - onehot)
  double s = 0;
  for (Index v = 0; v < 7; ++v) s += dz[7 + v];
  EXPECT_NEAR(s, 0.0, 1e-16);
}

TEST(CrossEntropy, InPlaceGradientMatches) {
  Tensor<double> z = gradcheck::random_tensor({2, 2, 4}, 3);
  const auto t = ids({2, 2}, {3, 0, -1, 1});
  Tensor<double> dz;
  const double l1 = cross_entropy(z, t, &dz);
  const double l2 = cross_entropy(z, t, &z);
  EXPECT_EQ(l1, l2);
  for (Index i = 0; i < z.size(); ++i) EXPECT_EQ(z[i], dz[i]);
}

TEST(CrossEntropy, NoTargetsGivesZeroLossAndGradient) {
  Tensor<double> z = gradcheck::random_tensor({1, 3, 4}, 4);
  Tensor<double> dz({1, 3, 4}, 7.0);
  EXPECT_EQ(cross_entropy(z, ids({1, 3}, {-1, -1, -1}), &dz), 0.0);
  for (double v : dz) EXPECT_EQ(v, 0.0);
}

TEST(CrossEntropy, StableForHugeLogits) {
  Tensor<float> z({1, 1, 3});
  z[0] = 1000.f;
  z[1] = -1000.f;
  z[2] = 999.f;
  Tensor<float> dz;
  const float l = cross_entropy(z, ids({1, 1}, {2}), &dz);
  EXPECT_NEAR(l, std::log1p(std::exp(-1.0)) + 1.0, 1e-5);
  // softmax - onehot: e^0 / (1 + e^-1), e^-2000 / (...) = 0 in float, e^-1 / (1 + e^-1) - 1
  EXPECT_NEAR(dz[0], 1 / (1 + std::exp(-1.0)), 1e-6);
  EXPECT_EQ(dz[1], 0.0f);
  EXPECT_NEAR(dz[2], 1 / (1 + std::exp(1.0)) - 1, 1e-6);
}

TEST(CrossEntropy, Errors) {
  Tensor<double> z({2, 3, 4}), dz;
  try {
    cross_entropy(z, ids({2, 3}, {0, 1, 2, 3, 4, 0}), &dz);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("[1, 1]"), std::string::npos) << m;
    EXPECT_NE(m.find("got 4"), std::string::npos) << m;
  }
  EXPECT_THROW(cross_entropy(z, ids({2, 3}, {0, -2, 0, 0, 0, 0}), &dz), ValueError);
  EXPECT_THROW(cross_entropy(z, ids({3, 2}, {0, 0, 0, 0, 0, 0}), &dz), ShapeError);
}
