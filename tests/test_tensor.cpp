#include <gtest/gtest.h>

#include "tnn/core/tensor.hpp"

using tnn::Tensor;

TEST(Tensor, ShapeSizeAndRowMajorMatrixView) {
  Tensor<float> t({2, 3, 4});
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.size(), 24);
  EXPECT_EQ(t.rows(), 6);
  EXPECT_EQ(t.cols(), 4);
  for (tnn::Index i = 0; i < t.size(); ++i) t[i] = float(i);
  auto m = t.matrix();
  EXPECT_EQ(m(1, 2), 6.0f);  // row 1, column 2 of the [6, 4] view
  EXPECT_EQ(m(5, 3), 23.0f);
}

TEST(Tensor, ResizeToAnEarlierSizeKeepsTheBuffer) {
  Tensor<double> t({100});
  const double* p = t.data();
  t.resize({10, 5});
  t.resize({4, 25});
  EXPECT_EQ(t.data(), p);
  EXPECT_EQ(t.size(), 100);
}

TEST(Tensor, RowsAreCacheLineAligned) {
  Tensor<float> t({3, 7});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % 64, 0u);
}

TEST(Tensor, NegativeDimensionIsAShapeError) {
  EXPECT_THROW(Tensor<float>({2, -1}), tnn::ShapeError);
}

TEST(Tensor, ExpectShapeNamesTheArgument) {
  Tensor<float> t({2, 3});
  try {
    t.expect_shape({3, 2}, "weights");
    FAIL() << "expected a ShapeError";
  } catch (const tnn::ShapeError& e) {
    EXPECT_STREQ(e.what(), "weights: expected shape [3, 2], got [2, 3]");
  }
}
