// Embedding: gather, scatter-add backward (repeated ids) by value, id range
// errors. Its central-difference gradient: the op-check harness (test_ops.cpp).
#include <gtest/gtest.h>

#include "gradcheck.hpp"
#include "test_helpers.hpp"
#include "tnn/layers/embedding.hpp"

using namespace tnn;
using testing_helpers::ids;

TEST(Embedding, ForwardGathersRows) {
  Rng rng(1);
  Embedding<double> emb(5, 3);
  emb.init_normal(rng, 1.0);
  const auto tok = ids({2, 2}, {4, 0, 2, 4});
  Tensor<double> y;
  emb.forward(tok, y);
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
  for (Index i = 0; i < 4; ++i)
    for (Index d = 0; d < 3; ++d) EXPECT_EQ(y[i * 3 + d], emb.weight.value[tok[i] * 3 + d]);
}

TEST(Embedding, BackwardScatterAddsRepeatedIds) {
  Rng rng(2);
  Embedding<double> emb(6, 4);
  emb.init_normal(rng, 0.5);
  const auto tok = ids({2, 3}, {1, 3, 1, 5, 1, 0});  // id 1 three times
  const Tensor<double> w = gradcheck::random_tensor({2, 3, 4}, 3);
  emb.backward(tok, w);
  for (Index d = 0; d < 4; ++d) {
    EXPECT_EQ(emb.weight.grad[2 * 4 + d], 0.0);  // unused id
    EXPECT_NEAR(emb.weight.grad[1 * 4 + d], w[0 * 4 + d] + w[2 * 4 + d] + w[4 * 4 + d], 1e-15);
  }
  emb.backward(tok, w);  // accumulates
  EXPECT_NEAR(emb.weight.grad[5 * 4 + 2], 2 * w[3 * 4 + 2], 1e-15);
}

TEST(Embedding, OutOfRangeIdIsValueErrorNamingPositionAndId) {
  Embedding<float> emb(5, 2);
  Tensor<float> y;
  const auto bad = ids({2, 3}, {0, 1, 2, 3, 5, 4});
  EXPECT_TRUE(testing_helpers::throws<ValueError>([&] { emb.forward(bad, y); }, {"[1, 1]", "got 5"}));
  EXPECT_THROW(emb.forward(ids({1, 2}, {-1, 0}), y), ValueError);
  Tensor<float> dy({2, 3, 2});
  EXPECT_THROW(emb.backward(bad, dy), ValueError);
}

TEST(Embedding, BackwardShapeError) {
  Embedding<double> emb(5, 2);
  Tensor<double> dy({2, 3, 3});
  EXPECT_THROW(emb.backward(ids({2, 3}, {0, 0, 0, 0, 0, 0}), dy), ShapeError);
}
