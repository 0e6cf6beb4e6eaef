// Direct O(N^2) Toeplitz and circulant products and their backward passes: the
// reference every FFT path is tested against, and the path ToeplitzOp takes for
// short sequences. Layout as in tnn/core/toeplitz.hpp.
#pragma once

#include <algorithm>

#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz_common.hpp"

namespace tnn {

// ---------------------------------------------------------------------------
// Direct O(N^2) forms: the reference every FFT path is tested against, and the
// path ToeplitzOp takes for short sequences. Each output row is one sum, taken
// in a fixed order by one thread, so results do not depend on the thread count
// or on which thread takes which rows (dynamic schedules here and below keep a
// thread that the OS preempts from holding the others up).
// ---------------------------------------------------------------------------

// y = T x. t: [K, C]; x, y: [B, N, C].
template <class T>
void toeplitz_forward_direct(const Tensor<T>& t, const Tensor<T>& x, Tensor<T>& y, bool causal) {
  const Index B = x.rank() == 3 ? x.dim(0) : 0, N = x.rank() == 3 ? x.dim(1) : 0, C = x.cols();
  detail::expect_3d(x, "toeplitz x", N, C);
  t.expect_shape({toeplitz_num_coeffs(N, causal), C}, "toeplitz coefficients");
  y.resize({B, N, C});
  const Index off = causal ? 0 : N - 1;
  // y_i = sum_j t_{i-j} x_j, rows (b, i) spread over threads.
  ::tnn::parallel_for(B * N, B * N * N * C >= grain::kToeplitzDirectMinWork, [&](Index r) {
    const Index b = r / N, i = r % N;
    T* yi = y.data() + r * C;
    std::fill(yi, yi + C, T(0));
    const Index j_end = causal ? i + 1 : N;
    for (Index j = 0; j < j_end; ++j) {
      const T* tk = t.data() + (i - j + off) * C;
      const T* xj = x.data() + (b * N + j) * C;
      for (Index c = 0; c < C; ++c) yi[c] += tk[c] * xj[c];
    }
  }, Schedule::Dynamic, grain::kToeplitzRowChunk);
}

// dx = T^T g (overwritten, if dx != nullptr); dt = dLoss/dt (overwritten, if dt != nullptr).
template <class T>
void toeplitz_backward_direct(const Tensor<T>& t, const Tensor<T>& x, const Tensor<T>& g, Tensor<T>* dx,
                              Tensor<T>* dt, bool causal) {
  const Index B = x.rank() == 3 ? x.dim(0) : 0, N = x.rank() == 3 ? x.dim(1) : 0, C = x.cols();
  detail::expect_3d(x, "toeplitz x", N, C);
  g.expect_shape(x.shape(), "toeplitz grad_output");
  const Index K = toeplitz_num_coeffs(N, causal);
  t.expect_shape({K, C}, "toeplitz coefficients");
  const Index off = causal ? 0 : N - 1;
  const bool parallel = B * N * N * C >= grain::kToeplitzDirectMinWork;
  if (dx) {
    dx->resize({B, N, C});
    // dx_j = sum_i t_{i-j} g_i over i >= j (causal) or all i.
    T* dxp = dx->data();
    ::tnn::parallel_for(B * N, parallel, [&](Index r) {
      const Index b = r / N, j = r % N;
      T* dxj = dxp + r * C;
      std::fill(dxj, dxj + C, T(0));
      for (Index i = causal ? j : 0; i < N; ++i) {
        const T* tk = t.data() + (i - j + off) * C;
        const T* gi = g.data() + (b * N + i) * C;
        for (Index c = 0; c < C; ++c) dxj[c] += tk[c] * gi[c];
      }
    }, Schedule::Dynamic, grain::kToeplitzRowChunk);
  }
  if (dt) {
    dt->resize({K, C});
    // dt_k = sum_b sum_i g_i x_{i-k}, row k + off of dt.
    T* dtp = dt->data();
    ::tnn::parallel_for(K, parallel, [&](Index row) {
      const Index k = row - off;
      T* dtk = dtp + row * C;
      std::fill(dtk, dtk + C, T(0));
      for (Index b = 0; b < B; ++b)
        for (Index i = std::max(Index(0), k); i < std::min(N, N + k); ++i) {
          const T* gi = g.data() + (b * N + i) * C;
          const T* xj = x.data() + (b * N + i - k) * C;
          for (Index c = 0; c < C; ++c) dtk[c] += gi[c] * xj[c];
        }
    }, Schedule::Dynamic, grain::kToeplitzRowChunk);
  }
}

// Circulant product y_i = sum_j c_{(i-j) mod L} x_j, c: [L, C], x, y: [B, L, C].
template <class T>
void circulant_forward_direct(const Tensor<T>& c, const Tensor<T>& x, Tensor<T>& y) {
  const Index L = c.rank() == 2 ? c.dim(0) : 0, C = c.cols();
  detail::expect_3d(x, "circulant x", L, C);
  const Index B = x.dim(0);
  y.resize({B, L, C});
  y.set_zero();
  for (Index b = 0; b < B; ++b)
    for (Index i = 0; i < L; ++i)
      for (Index j = 0; j < L; ++j) {
        const T* ck = c.data() + ((i - j + L) % L) * C;
        const T* xj = x.data() + (b * L + j) * C;
        T* yi = y.data() + (b * L + i) * C;
        for (Index ch = 0; ch < C; ++ch) yi[ch] += ck[ch] * xj[ch];
      }
}

template <class T>
void circulant_backward_direct(const Tensor<T>& c, const Tensor<T>& x, const Tensor<T>& g, Tensor<T>* dx,
                               Tensor<T>* dc) {
  const Index L = c.rank() == 2 ? c.dim(0) : 0, C = c.cols();
  detail::expect_3d(x, "circulant x", L, C);
  g.expect_shape(x.shape(), "circulant grad_output");
  const Index B = x.dim(0);
  if (dx) {
    dx->resize({B, L, C});
    dx->set_zero();
  }
  if (dc) {
    dc->resize({L, C});
    dc->set_zero();
  }
  for (Index b = 0; b < B; ++b)
    for (Index i = 0; i < L; ++i)
      for (Index j = 0; j < L; ++j) {
        const Index k = (i - j + L) % L;
        const T* gi = g.data() + (b * L + i) * C;
        if (dx) {
          T* dxj = dx->data() + (b * L + j) * C;
          for (Index ch = 0; ch < C; ++ch) dxj[ch] += c.data()[k * C + ch] * gi[ch];
        }
        if (dc) {
          const T* xj = x.data() + (b * L + j) * C;
          for (Index ch = 0; ch < C; ++ch) dc->data()[k * C + ch] += gi[ch] * xj[ch];
        }
      }
}

}  // namespace tnn
