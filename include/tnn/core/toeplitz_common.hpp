// Pieces shared by the 1-D and 2-D Toeplitz kernels: the coefficient count and the
// [B, N, C] shape check. Threads: tnn::parallel_for and detail::thread_id of
// core/parallel.hpp, thresholds in tnn::grain.
#pragma once

#include <algorithm>

#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

inline Index toeplitz_num_coeffs(Index n, bool causal) { return causal ? n : 2 * n - 1; }

namespace detail {
template <class T>
void expect_3d(const Tensor<T>& a, const char* what, Index n, Index c) {
  if (a.rank() != 3 || a.dim(1) != n || a.dim(2) != c)
    fail<ShapeError>(what, ": expected shape [B, ", n, ", ", c, "], got ", shape_str(a.shape()));
}

}  // namespace detail

}  // namespace tnn
