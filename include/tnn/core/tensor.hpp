// The one tensor type the library shares: a shape plus contiguous row-major
// storage, with Eigen Map views for the math. Not an autograd framework: every
// backward pass is written by hand against these buffers.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <new>
#include <numeric>
#include <vector>

#include "tnn/core/error.hpp"

namespace tnn {

using Index = std::ptrdiff_t;
using Shape = std::vector<Index>;

// Row-major Eigen views used throughout.
template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatMap = Eigen::Map<Mat<T>>;
template <class T>
using ConstMatMap = Eigen::Map<const Mat<T>>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using VecMap = Eigen::Map<Vec<T>>;
template <class T>
using ConstVecMap = Eigen::Map<const Vec<T>>;

// 64-byte aligned allocator: FFT and SIMD code may rely on rows starting on a
// cache line. Memory comes from aligned operator new, so leak checkers and
// counting allocators see it.
template <class T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() noexcept = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Align)));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(Align)); }
  template <class U>
  bool operator==(const AlignedAllocator<U, Align>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const AlignedAllocator<U, Align>&) const noexcept {
    return false;
  }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

inline Index shape_numel(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), Index(1), [](Index a, Index b) { return a * b; });
}

inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

namespace detail {
// "[b, n]" for a flat index into a tensor of shape s.
inline std::string position_str(const Shape& s, Index flat) {
  Shape idx(s.size());
  for (std::size_t k = s.size(); k-- > 0;) {
    idx[k] = s[k] == 0 ? 0 : flat % s[k];
    flat = s[k] == 0 ? 0 : flat / s[k];
  }
  return shape_str(idx);
}
}  // namespace detail

template <class T>
class Tensor {
 public:
  using Scalar = T;

  Tensor() = default;
  explicit Tensor(Shape shape, T fill = T(0)) : shape_(std::move(shape)) {
    check_shape(shape_);
    data_.assign(static_cast<std::size_t>(shape_numel(shape_)), fill);
  }
  Tensor(std::initializer_list<Index> shape) : Tensor(Shape(shape)) {}

  // Changes the shape; keeps the capacity, so a workspace resized to a size it
  // has held before does not allocate. New elements are zero; old ones are kept
  // in flat order (callers that need zeros call set_zero()).
  void resize(const Shape& shape) {
    check_shape(shape);
    shape_.assign(shape.begin(), shape.end());
    data_.resize(static_cast<std::size_t>(shape_numel(shape_)), T(0));
  }
  void resize(std::initializer_list<Index> shape) {
    check_dims(shape.begin(), shape.end());
    shape_.assign(shape.begin(), shape.end());
    data_.resize(static_cast<std::size_t>(shape_numel(shape_)), T(0));
  }

  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  Index dim(int i) const { return shape_.at(static_cast<std::size_t>(i < 0 ? i + rank() : i)); }
  Index size() const { return static_cast<Index>(data_.size()); }
  bool empty() const { return data_.empty(); }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T& operator[](Index i) { return data_[static_cast<std::size_t>(i)]; }
  const T& operator[](Index i) const { return data_[static_cast<std::size_t>(i)]; }
  T* begin() { return data(); }
  T* end() { return data() + size(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size(); }

  void set_zero() { std::fill(data_.begin(), data_.end(), T(0)); }
  void fill(T v) { std::fill(data_.begin(), data_.end(), v); }

  // All leading dimensions folded into rows, the last one as columns.
  MatMap<T> matrix() { return MatMap<T>(data(), rows(), cols()); }
  ConstMatMap<T> matrix() const { return ConstMatMap<T>(data(), rows(), cols()); }
  VecMap<T> vec() { return VecMap<T>(data(), size()); }
  ConstVecMap<T> vec() const { return ConstVecMap<T>(data(), size()); }

  Index cols() const { return shape_.empty() ? 1 : shape_.back(); }
  Index rows() const { return cols() == 0 ? 0 : size() / cols(); }

  // Throws ShapeError naming `what` unless the shape is exactly `expected`.
  void expect_shape(const Shape& expected, const char* what) const {
    if (shape_ != expected)
      fail<ShapeError>(what, ": expected shape ", shape_str(expected), ", got ", shape_str(shape_));
  }
  // The same for a braced list, expect_shape({K, C}, ...), without building a Shape
  // (a heap allocation) unless it throws: hot paths check shapes on every call.
  void expect_shape(std::initializer_list<Index> expected, const char* what) const {
    if (!std::equal(expected.begin(), expected.end(), shape_.begin(), shape_.end()))
      expect_shape(Shape(expected), what);
  }

 private:
  static void check_shape(const Shape& s) { check_dims(s.begin(), s.end()); }
  // Every dim >= 0, and the element count small enough for its bytes to be addressable:
  // shape_numel would otherwise wrap around (an overflowing [B, N] from a flag once gave a
  // tiny buffer that the data loader then wrote past). The product of the non-zero dims is
  // checked, so no partial product overflows whatever the order.
  template <class It>
  static void check_dims(It first, It last) {
    constexpr Index kMaxElements = PTRDIFF_MAX / Index(sizeof(T));
    Index n = 1;
    for (It it = first; it != last; ++it) {
      const Index d = *it;
      if (d < 0) fail<ShapeError>("tensor dimension: expected >= 0, got ", d);
      if (d > 0 && n > kMaxElements / d)
        fail<ShapeError>("tensor shape ", shape_str(Shape(first, last)), ": expected at most ", kMaxElements,
                         " elements, got more");
      if (d > 0) n *= d;
    }
  }
  Shape shape_;
  AlignedVector<T> data_;
};

// The row lengths of a ragged batch of B rows of N positions: `lengths` [B] with values in
// [1, N] (a ShapeError or ValueError naming `what` otherwise) into `out`; null: `out` empty.
inline void read_row_lengths(const Tensor<std::int32_t>* lengths, Index B, Index N, const char* what,
                             std::vector<Index>& out) {
  out.clear();
  if (!lengths) return;
  if (lengths->rank() != 1 || lengths->dim(0) != B)
    fail<ShapeError>(what, ": expected shape [", B, "] (the batch), got ", shape_str(lengths->shape()));
  out.resize(static_cast<std::size_t>(B));
  for (Index b = 0; b < B; ++b) {
    const Index n = (*lengths)[b];
    if (n < 1 || n > N) fail<ValueError>(what, ": expected values in [1, ", N, "], got ", n, " at row ", b);
    out[static_cast<std::size_t>(b)] = n;
  }
}

}  // namespace tnn
