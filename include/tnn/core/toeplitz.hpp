// Toeplitz and circulant matrix-vector products, many channels at once, with
// their backward passes: the kernel every TNN layer stands on (model.md §1).
//
// Memory layout (row-major, channel fastest, the layout of the model's activations):
//   x, y, g, dx : [B, N, C]   B sequences of N positions, C independent channels
//   t, dt       : [K, C]      Toeplitz coefficients, one column per channel:
//                             non-causal K = 2N-1, row k + N-1 holds t_k, k = -(N-1)..N-1
//                             causal     K = N,    row k holds t_k,         k = 0..N-1
//   c, dc       : [L, C]      circulant first columns (circulant product, n = L)
// y_i = sum_j t_{i-j} x_j, per channel. The direct O(N^2) forms sit beside the
// FFT ones; ToeplitzOp picks the direct form below a measured crossover length.
// This header holds the operators (ToeplitzOp, CirculantOp); the direct forms are in
// toeplitz_direct.hpp, the FFT engine in toeplitz_fft.hpp (both included here).
#pragma once

#include "tnn/core/fft.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz_common.hpp"  // toeplitz_num_coeffs, thread helpers
#include "tnn/core/toeplitz_direct.hpp"  // the O(N^2) references
#include "tnn/core/toeplitz_fft.hpp"     // CirculantEngine

namespace tnn {

enum class ToeplitzMethod { Auto, Direct, FFT };

// Up to these lengths ToeplitzMethod::Auto takes the direct product: the
// crossover measured for 512 channels, batch 1, float (benchmarks/bench_toeplitz.cpp,
// BM_Toeplitz_FFT against BM_Toeplitz_Direct / _NonCausal; table in the README).
// The non-causal product does twice the multiply-adds for the same FFT, so its
// crossover comes earlier. Narrow layers (8 channels) cross over near N = 32.
inline constexpr Index kToeplitzDirectMaxN = 96;          // causal
inline constexpr Index kToeplitzDirectMaxNNonCausal = 64;  // non-causal

// A Toeplitz operator for fixed (N, C, causal): prepare() takes the coefficients
// once (their spectrum is computed there and reused by every forward and
// backward), forward() saves what backward() needs. This object is what a layer
// keeps in its forward cache.
template <class T, class Backend = DefaultFftBackend>
class ToeplitzOp {
 public:
  // t: [K, C] as in the header comment.
  void prepare(const Tensor<T>& t, Index n, bool causal, ToeplitzMethod method = ToeplitzMethod::Auto) {
    if (n < 1) fail<ShapeError>("toeplitz sequence length: expected >= 1, got ", n);
    if (t.rank() != 2) fail<ShapeError>("toeplitz coefficients: expected shape [K, C], got ", shape_str(t.shape()));
    const Index C = t.dim(1);
    t.expect_shape({toeplitz_num_coeffs(n, causal), C}, "toeplitz coefficients");
    n_ = n;
    C_ = C;
    causal_ = causal;
    const Index direct_max = causal ? kToeplitzDirectMaxN : kToeplitzDirectMaxNNonCausal;
    direct_ = method == ToeplitzMethod::Direct || (method == ToeplitzMethod::Auto && n <= direct_max);
    if (direct_) {
      t_ = t;
      return;
    }
    const Index L = fft_fast_size(2 * n - 1);
    eng_.configure(n, L, C);
    const T* tp = t.data();
    constexpr Index kB = CirculantEngine<T, Backend>::kBlock;
    eng_.set_columns([&](Index c0, Index cb, T* rows, Index rs) {
      if (causal) {
        detail::channels_to_rows<kB>(tp + c0, C, cb, n, rows, rs);
      } else {
        // t_0 .. t_{n-1} at 0 .. n-1; t_{-(n-1)} .. t_{-1} (rows 0 .. n-2 of t) at L-n+1 .. L-1.
        detail::channels_to_rows<kB>(tp + (n - 1) * C + c0, C, cb, n, rows, rs);
        detail::channels_to_rows<kB>(tp + c0, C, cb, n - 1, rows + L - n + 1, rs);
      }
    });
  }

  bool uses_fft() const { return !direct_; }
  Index n() const { return n_; }
  Index channels() const { return C_; }
  bool causal() const { return causal_; }

  // x, y: [B, N, C].
  void forward(const Tensor<T>& x, Tensor<T>& y, bool save_for_backward = true) {
    expect_prepared("forward");
    if (x.rank() != 3) fail<ShapeError>("toeplitz x: expected shape [B, ", n_, ", ", C_, "], got ", shape_str(x.shape()));
    detail::expect_3d(x, "toeplitz x", n_, C_);
    if (direct_) {
      toeplitz_forward_direct(t_, x, y, causal_);
      if (save_for_backward) x_ = x;
      return;
    }
    y.resize(x.shape());
    eng_.forward(x.data(), y.data(), x.dim(0), save_for_backward);
  }

  // g: [B, N, C]. dx = T^T g (overwritten), dt: [K, C] (overwritten); either may be null.
  void backward(const Tensor<T>& g, Tensor<T>* dx, Tensor<T>* dt) {
    expect_prepared("backward");
    if (g.rank() != 3) fail<ShapeError>("toeplitz grad_output: expected shape [B, ", n_, ", ", C_, "], got ", shape_str(g.shape()));
    detail::expect_3d(g, "toeplitz grad_output", n_, C_);
    if (direct_) {
      if (dt && x_.shape() != g.shape())
        fail<Error>("toeplitz backward: expected a forward with save_for_backward of shape ", shape_str(g.shape()),
                    " first, got ", shape_str(x_.shape()));
      toeplitz_backward_direct(t_, dt ? x_ : g, g, dx, dt, causal_);
      return;
    }
    const Index B = g.dim(0), N = n_, C = C_, L = eng_.length();
    if (dx) dx->resize(g.shape());
    if (dt) dt->resize({toeplitz_num_coeffs(N, causal_), C});
    T* dtp = dt ? dt->data() : nullptr;
    const bool causal = causal_;
    constexpr Index kB = CirculantEngine<T, Backend>::kBlock;
    eng_.backward(g.data(), dx ? dx->data() : nullptr, B, dt != nullptr,
                  [&](Index c0, Index cb, const T* rows, Index rs, T scale) {
                    // dt_k = r[k] for k >= 0; dt_{-k} = r[L-k]: rows 0 .. N-2 of dt
                    // (k = -(N-1) .. -1) are r[L-N+1 .. L-1], in order.
                    const Index pos = causal ? 0 : N - 1;
                    detail::rows_to_channels<kB>(rows, rs, cb, N, scale, dtp + pos * C + c0, C);
                    if (!causal) detail::rows_to_channels<kB>(rows + L - N + 1, rs, cb, N - 1, scale, dtp + c0, C);
                  });
  }

 private:
  void expect_prepared(const char* what) const {
    if (n_ == 0) fail<Error>("toeplitz ", what, ": expected prepare() with the coefficients first, got none");
  }
  Index n_ = 0, C_ = 0;
  bool causal_ = false, direct_ = true;
  Tensor<T> t_, x_;  // direct path: coefficients and the saved input
  CirculantEngine<T, Backend> eng_;
};

// Circulant operator y = Circ(c) x, c: [L, C] first columns, x, y: [B, L, C].
template <class T, class Backend = DefaultFftBackend>
class CirculantOp {
 public:
  void prepare(const Tensor<T>& c) {
    if (c.rank() != 2 || c.dim(0) < 1)
      fail<ShapeError>("circulant columns: expected shape [L >= 1, C], got ", shape_str(c.shape()));
    const Index L = c.dim(0), C = c.dim(1);
    eng_.configure(L, L, C);
    const T* cp = c.data();
    constexpr Index kB = CirculantEngine<T, Backend>::kBlock;
    eng_.set_columns([&](Index c0, Index cb, T* rows, Index rs) {
      detail::channels_to_rows<kB>(cp + c0, C, cb, L, rows, rs);
    });
  }
  void forward(const Tensor<T>& x, Tensor<T>& y, bool save_for_backward = true) {
    expect_prepared("forward");
    detail::expect_3d(x, "circulant x", eng_.length(), eng_.channels());
    y.resize(x.shape());
    eng_.forward(x.data(), y.data(), x.dim(0), save_for_backward);
  }
  void backward(const Tensor<T>& g, Tensor<T>* dx, Tensor<T>* dc) {
    expect_prepared("backward");
    detail::expect_3d(g, "circulant grad_output", eng_.length(), eng_.channels());
    const Index L = eng_.length(), C = eng_.channels();
    if (dx) dx->resize(g.shape());
    if (dc) dc->resize({L, C});
    T* dcp = dc ? dc->data() : nullptr;
    constexpr Index kB = CirculantEngine<T, Backend>::kBlock;
    eng_.backward(g.data(), dx ? dx->data() : nullptr, g.dim(0), dc != nullptr,
                  [&](Index c0, Index cb, const T* rows, Index rs, T scale) {
                    detail::rows_to_channels<kB>(rows, rs, cb, L, scale, dcp + c0, C);
                  });
  }

 private:
  void expect_prepared(const char* what) const {
    if (eng_.length() == 0) fail<Error>("circulant ", what, ": expected prepare() with the columns first, got none");
  }
  CirculantEngine<T, Backend> eng_;
};

// One-shot convenience: y = T x with coefficients t (see layout above).
template <class T, class Backend = DefaultFftBackend>
Tensor<T> toeplitz_matvec(const Tensor<T>& t, const Tensor<T>& x, bool causal,
                          ToeplitzMethod method = ToeplitzMethod::Auto) {
  if (x.rank() != 3) fail<ShapeError>("toeplitz x: expected shape [B, N, C], got ", shape_str(x.shape()));
  ToeplitzOp<T, Backend> op;
  op.prepare(t, x.dim(1), causal, method);
  Tensor<T> y;
  op.forward(x, y, false);
  return y;
}

}  // namespace tnn
