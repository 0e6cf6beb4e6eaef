// The 2-D Toeplitz product (a block-Toeplitz matrix with Toeplitz blocks), many
// channels at once, with its backward pass: the token mixer of the image TNN.
//
// Memory layout (row-major, channel fastest):
//   x, y, g, dx : [B, H, W, C]        B grids of H x W positions, C independent channels
//   t, dt       : [2H-1, 2W-1, C]     t[di + H-1, dj + W-1, c] is the coefficient of the
//                                     offset (di, dj), di = -(H-1)..H-1, dj = -(W-1)..W-1
// y[b,i,j,c] = sum_{i',j'} t[i-i', j-j', c] x[b,i',j',c].
// Toeplitz2dOp embeds the product in a 2-D circular convolution on an Lh x Lw grid
// (Lh >= 2H-1, Lw >= 2W-1, so no offset wraps onto another) and runs it through real
// 2-D FFTs; the direct O((HW)^2) forms beside it are its reference.
#pragma once

#include <algorithm>
#include <complex>
#include <string>
#include <vector>

#include "tnn/core/fft.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz.hpp"  // ToeplitzMethod, the thread helpers, the layout moves

namespace tnn {

// Side of the padded FFT grid for a side of n positions: the power of two >= 2n-1.
// FFTW_ESTIMATE's 2-D plans run 2-3x slower per point at 2^a 3^b 5^c sides (30 x 30
// took 3x the time of 32 x 32, 40 x 40 as long as 64 x 64), so the 1-D choice
// fft_fast_size is not used here.
inline Index toeplitz2d_grid_size(Index n) {
  Index L = 2;
  while (L < 2 * n - 1) L *= 2;
  return L;
}

namespace detail {
template <class T>
void expect_4d(const Tensor<T>& a, const char* what, Index h, Index w, Index c) {
  if (a.rank() != 4 || a.dim(1) != h || a.dim(2) != w || a.dim(3) != c)
    fail<ShapeError>(what, ": expected shape [B, ", h, ", ", w, ", ", c, "], got ", shape_str(a.shape()));
}
template <class T>
void expect_2d_coeffs(const Tensor<T>& t, Index h, Index w) {
  if (t.rank() != 3 || t.dim(0) != 2 * h - 1 || t.dim(1) != 2 * w - 1)
    fail<ShapeError>("toeplitz2d coefficients: expected shape [", 2 * h - 1, ", ", 2 * w - 1, ", C], got ",
                     shape_str(t.shape()));
}
}  // namespace detail

// ---------------------------------------------------------------------------
// Direct O((HW)^2) forms: the reference. Each output position is one sum taken in
// a fixed order by one thread, so results do not depend on the thread count.
// ---------------------------------------------------------------------------

// y = T x. t: [2H-1, 2W-1, C]; x, y: [B, H, W, C].
template <class T>
void toeplitz2d_forward_direct(const Tensor<T>& t, const Tensor<T>& x, Tensor<T>& y) {
  if (x.rank() != 4) fail<ShapeError>("toeplitz2d x: expected shape [B, H, W, C], got ", shape_str(x.shape()));
  const Index B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  detail::expect_2d_coeffs(t, H, W);
  t.expect_shape({2 * H - 1, 2 * W - 1, C}, "toeplitz2d coefficients");
  y.resize({B, H, W, C});
  const Index tw = 2 * W - 1;
  const Index P = H * W;
  ::tnn::parallel_for(B * P, B * P * P * C >= grain::kToeplitzDirectMinWork, [&](Index r) {
    const Index b = r / P, i = (r % P) / W, j = r % W;
    T* yo = y.data() + r * C;
    std::fill(yo, yo + C, T(0));
    for (Index i2 = 0; i2 < H; ++i2)
      for (Index j2 = 0; j2 < W; ++j2) {
        const T* tk = t.data() + ((i - i2 + H - 1) * tw + (j - j2 + W - 1)) * C;
        const T* xk = x.data() + ((b * H + i2) * W + j2) * C;
        for (Index c = 0; c < C; ++c) yo[c] += tk[c] * xk[c];
      }
  }, Schedule::Dynamic, grain::kToeplitzRowChunk);
}

// dx = T^T g (overwritten, if dx); dt = dLoss/dt (overwritten, if dt).
template <class T>
void toeplitz2d_backward_direct(const Tensor<T>& t, const Tensor<T>& x, const Tensor<T>& g, Tensor<T>* dx,
                                Tensor<T>* dt) {
  if (x.rank() != 4) fail<ShapeError>("toeplitz2d x: expected shape [B, H, W, C], got ", shape_str(x.shape()));
  const Index B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  detail::expect_2d_coeffs(t, H, W);
  t.expect_shape({2 * H - 1, 2 * W - 1, C}, "toeplitz2d coefficients");
  g.expect_shape(x.shape(), "toeplitz2d grad_output");
  const Index tw = 2 * W - 1, P = H * W;
  const bool parallel = B * P * P * C >= grain::kToeplitzDirectMinWork;
  if (dx) {
    dx->resize({B, H, W, C});
    T* dxp = dx->data();
    // dx[i', j'] = sum_{i,j} t[i-i', j-j'] g[i, j]
    ::tnn::parallel_for(B * P, parallel, [&](Index r) {
      const Index b = r / P, i2 = (r % P) / W, j2 = r % W;
      T* d = dxp + r * C;
      std::fill(d, d + C, T(0));
      for (Index i = 0; i < H; ++i)
        for (Index j = 0; j < W; ++j) {
          const T* tk = t.data() + ((i - i2 + H - 1) * tw + (j - j2 + W - 1)) * C;
          const T* gk = g.data() + ((b * H + i) * W + j) * C;
          for (Index c = 0; c < C; ++c) d[c] += tk[c] * gk[c];
        }
    }, Schedule::Dynamic, grain::kToeplitzRowChunk);
  }
  if (dt) {
    dt->resize({2 * H - 1, tw, C});
    T* dtp = dt->data();
    // dt[di, dj] = sum_b sum_{i,j} g[i, j] x[i-di, j-dj]
    ::tnn::parallel_for((2 * H - 1) * tw, parallel, [&](Index row) {
      const Index di = row / tw - (H - 1), dj = row % tw - (W - 1);
      T* d = dtp + row * C;
      std::fill(d, d + C, T(0));
      for (Index b = 0; b < B; ++b)
        for (Index i = std::max(Index(0), di); i < std::min(H, H + di); ++i)
          for (Index j = std::max(Index(0), dj); j < std::min(W, W + dj); ++j) {
            const T* gk = g.data() + ((b * H + i) * W + j) * C;
            const T* xk = x.data() + ((b * H + i - di) * W + j - dj) * C;
            for (Index c = 0; c < C; ++c) d[c] += gk[c] * xk[c];
          }
    }, Schedule::Dynamic, grain::kToeplitzRowChunk);
  }
}

// Up to this many grid positions (H * W) ToeplitzMethod::Auto takes the direct
// product: the crossover of BM_Toeplitz2d_FFT and BM_Toeplitz2d_Direct
// (benchmarks/bench_toeplitz2d.cpp, 192 channels, float, one thread) lies between
// 14 x 14 (direct 0.59 ms, FFT 0.86 ms) and 16 x 16 (direct 1.04 ms, FFT 0.76 ms).
inline constexpr Index kToeplitz2dDirectMaxPositions = 196;

// A 2-D Toeplitz operator for fixed (H, W, C): prepare() takes the coefficients once
// and keeps their spectrum, forward() saves the spectrum of x for backward(), which
// reuses both. Per channel the FFT path transforms an Lh x Lw grid; channels go in
// blocks of kBlock, moved between the channel-last layout and one grid per channel
// by the tiled transposes of the 1-D engine, (batch, block) tasks over the threads.
template <class T, class Backend = DefaultFftBackend>
class Toeplitz2dOp {
 public:
  using Complex = std::complex<T>;
  static constexpr Index kBlock = 16;

  void prepare(const Tensor<T>& t, Index H, Index W, ToeplitzMethod method = ToeplitzMethod::Auto) {
    if (H < 1 || W < 1) fail<ShapeError>("toeplitz2d grid: expected H, W >= 1, got ", H, " x ", W);
    detail::expect_2d_coeffs(t, H, W);
    const Index C = t.dim(2);
    H_ = H;
    W_ = W;
    C_ = C;
    direct_ = method == ToeplitzMethod::Direct ||
              (method == ToeplitzMethod::Auto && H * W <= kToeplitz2dDirectMaxPositions);
    saved_batch_ = -1;
    if (direct_) {
      t_ = t;
      return;
    }
    Lh_ = toeplitz2d_grid_size(H);
    Lw_ = toeplitz2d_grid_size(W);
    bins_ = Lh_ * (Lw_ / 2 + 1);
    gs_ = fft_row_stride<T>(Lh_ * Lw_);
    cs_ = fft_row_stride<Complex>(bins_);
    plan_ = typename Backend::template Plan2d<T>(Lh_, Lw_);
    spec_.resize(static_cast<std::size_t>(C * cs_));
    ensure_workspaces();
    const Index nblocks = (C + kBlock - 1) / kBlock, tw = 2 * W - 1;
    const T* tp = t.data();
    ::tnn::parallel_for(nblocks, nblocks > 1, [&](Index blk) {
      const Index c0 = blk * kBlock, cb = std::min(kBlock, C - c0);
      Work& w = work_[static_cast<std::size_t>(detail::thread_id())];
      std::fill(w.real.begin(), w.real.end(), T(0));
      // Offset (di, dj) goes to grid cell (di mod Lh, dj mod Lw): per row of t,
      // dj = 0..W-1 to columns 0..W-1 and dj = -(W-1)..-1 to columns Lw-W+1..Lw-1.
      for (Index p = 0; p < 2 * H - 1; ++p) {
        const Index di = p - (H - 1), gr = di >= 0 ? di : Lh_ + di;
        const T* src = tp + p * tw * C + c0;
        T* dst = w.real.data() + gr * Lw_;
        detail::channels_to_rows<kBlock>(src + (W - 1) * C, C, cb, W, dst, gs_);
        detail::channels_to_rows<kBlock>(src, C, cb, W - 1, dst + Lw_ - W + 1, gs_);
      }
      for (Index cc = 0; cc < cb; ++cc) plan_.r2c(w.real.data() + cc * gs_, spec_.data() + (c0 + cc) * cs_);
    }, Schedule::Dynamic, 1);
  }

  bool uses_fft() const { return !direct_; }
  Index height() const { return H_; }
  Index width() const { return W_; }
  Index channels() const { return C_; }
  // The padded FFT grid (0 x 0 on the direct path).
  Index grid_rows() const { return direct_ ? 0 : Lh_; }
  Index grid_cols() const { return direct_ ? 0 : Lw_; }

  // x, y: [B, H, W, C].
  void forward(const Tensor<T>& x, Tensor<T>& y, bool save_for_backward = true) {
    expect_prepared("forward");
    detail::expect_4d(x, "toeplitz2d x", H_, W_, C_);
    const Index B = x.dim(0);
    if (direct_) {
      toeplitz2d_forward_direct(t_, x, y);
      if (save_for_backward) x_ = x;
      saved_batch_ = save_for_backward ? B : -1;
      return;
    }
    y.resize(x.shape());
    ensure_workspaces();
    if (save_for_backward) xspec_.resize(static_cast<std::size_t>(B * C_ * cs_));
    saved_batch_ = save_for_backward ? B : -1;
    const Index nblocks = (C_ + kBlock - 1) / kBlock;
    const T scale = T(1) / static_cast<T>(Lh_ * Lw_);
    const T* xp = x.data();
    T* yp = y.data();
    const bool save = save_for_backward;
    ::tnn::parallel_for(B * nblocks, B * nblocks > 1, [&](Index task) {
      const Index b = task / nblocks, c0 = (task % nblocks) * kBlock, cb = std::min(kBlock, C_ - c0);
      Work& w = work_[static_cast<std::size_t>(detail::thread_id())];
      gather(xp + b * H_ * W_ * C_, c0, cb, w.real.data());
      for (Index cc = 0; cc < cb; ++cc) {
        const Index c = c0 + cc;
        Complex* X = save ? xspec_.data() + (b * C_ + c) * cs_ : w.cplx.data();
        detail::prefetch_l2(spec_.data() + c * cs_, bins_);
        plan_.r2c(w.real.data() + cc * gs_, X);
        detail::cmul(X, spec_.data() + c * cs_, w.prod.data(), bins_, false);
        plan_.c2r(w.prod.data(), w.real.data() + cc * gs_);
      }
      scatter(w.real.data(), c0, cb, scale, yp + b * H_ * W_ * C_);
    }, Schedule::Dynamic, 1);
  }

  // g: [B, H, W, C]. dx = T^T g (overwritten), dt: [2H-1, 2W-1, C] (overwritten);
  // either may be null. dt needs the forward's saved input (save_for_backward).
  void backward(const Tensor<T>& g, Tensor<T>* dx, Tensor<T>* dt) {
    expect_prepared("backward");
    detail::expect_4d(g, "toeplitz2d grad_output", H_, W_, C_);
    const Index B = g.dim(0);
    if (dt && saved_batch_ != B)
      fail<Error>("toeplitz2d backward: expected a forward with save_for_backward over batch ", B, " first, got ",
                  saved_batch_ < 0 ? std::string("none") : std::to_string(saved_batch_));
    if (direct_) {
      toeplitz2d_backward_direct(t_, dt ? x_ : g, g, dx, dt);
      return;
    }
    if (dx) dx->resize(g.shape());
    const Index tw = 2 * W_ - 1;
    if (dt) dt->resize({2 * H_ - 1, tw, C_});
    ensure_workspaces();
    const Index nblocks = (C_ + kBlock - 1) / kBlock;
    const T scale = T(1) / static_cast<T>(Lh_ * Lw_);
    const T* gp = g.data();
    T* dxp = dx ? dx->data() : nullptr;
    T* dtp = dt ? dt->data() : nullptr;
    ::tnn::parallel_for(nblocks, nblocks > 1, [&](Index blk) {
      const Index c0 = blk * kBlock, cb = std::min(kBlock, C_ - c0);
      Work& w = work_[static_cast<std::size_t>(detail::thread_id())];
      if (dtp) std::fill(w.acc.begin(), w.acc.end(), Complex(0));
      for (Index b = 0; b < B; ++b) {
        gather(gp + b * H_ * W_ * C_, c0, cb, w.real.data());
        for (Index cc = 0; cc < cb; ++cc) {
          const Index c = c0 + cc;
          Complex* G = w.cplx.data();
          plan_.r2c(w.real.data() + cc * gs_, G);
          // dt: the cross-correlation of g with x, accumulated over the batch as spectra.
          if (dtp) detail::cmul_conj_acc(G, xspec_.data() + (b * C_ + c) * cs_, w.acc.data() + cc * cs_, bins_);
          if (dxp) {
            detail::cmul(G, spec_.data() + c * cs_, w.prod.data(), bins_, true);
            plan_.c2r(w.prod.data(), w.real.data() + cc * gs_);
          }
        }
        if (dxp) scatter(w.real.data(), c0, cb, scale, dxp + b * H_ * W_ * C_);
      }
      if (dtp) {
        for (Index cc = 0; cc < cb; ++cc) plan_.c2r(w.acc.data() + cc * cs_, w.real.data() + cc * gs_);
        // dt[di, dj] = r[di mod Lh, dj mod Lw], the inverse of prepare()'s placement.
        for (Index p = 0; p < 2 * H_ - 1; ++p) {
          const Index di = p - (H_ - 1), gr = di >= 0 ? di : Lh_ + di;
          const T* src = w.real.data() + gr * Lw_;
          T* dst = dtp + p * tw * C_ + c0;
          detail::rows_to_channels<kBlock>(src, gs_, cb, W_, scale, dst + (W_ - 1) * C_, C_);
          detail::rows_to_channels<kBlock>(src + Lw_ - W_ + 1, gs_, cb, W_ - 1, scale, dst, C_);
        }
      }
    }, Schedule::Dynamic, 1);
  }

  // Coefficient spectrum of channel c (Lh x (Lw/2+1) bins, row-major), for tests.
  const Complex* spectrum(Index c) const { return spec_.data() + c * cs_; }

 private:
  struct Work {
    AlignedVector<T> real;        // [kBlock, gs]  one zero-padded Lh x Lw grid per channel
    AlignedVector<Complex> cplx;  // [cs]          one spectrum
    AlignedVector<Complex> prod;  // [cs]          product spectrum (destroyed by c2r)
    AlignedVector<Complex> acc;   // [kBlock, cs]  accumulated cross-spectra
  };
  void expect_prepared(const char* what) const {
    if (H_ == 0) fail<Error>("toeplitz2d ", what, ": expected prepare() with the coefficients first, got none");
  }
  void ensure_workspaces() {
    const auto nt = static_cast<std::size_t>(detail::max_threads());
    if (work_.size() < nt) work_.resize(nt);
    for (auto& w : work_) {
      w.real.resize(static_cast<std::size_t>(kBlock * gs_));
      w.cplx.resize(static_cast<std::size_t>(cs_));
      w.prod.resize(static_cast<std::size_t>(cs_));
      w.acc.resize(static_cast<std::size_t>(kBlock * cs_));
    }
  }
  // grids cc of ws <- src[:, :, c0 + cc] (src one [H, W, C] image), zero outside H x W.
  void gather(const T* src, Index c0, Index cb, T* ws) const {
    for (Index cc = 0; cc < cb; ++cc) {
      T* grid = ws + cc * gs_;
      for (Index i = 0; i < H_; ++i) std::fill(grid + i * Lw_ + W_, grid + (i + 1) * Lw_, T(0));
      std::fill(grid + H_ * Lw_, grid + Lh_ * Lw_, T(0));
    }
    for (Index i = 0; i < H_; ++i) detail::channels_to_rows<kBlock>(src + i * W_ * C_ + c0, C_, cb, W_, ws + i * Lw_, gs_);
  }
  // dst[:, :, c0 + cc] <- scale * the top-left H x W of grid cc.
  void scatter(const T* ws, Index c0, Index cb, T scale, T* dst) const {
    for (Index i = 0; i < H_; ++i)
      detail::rows_to_channels<kBlock>(ws + i * Lw_, gs_, cb, W_, scale, dst + i * W_ * C_ + c0, C_);
  }

  Index H_ = 0, W_ = 0, C_ = 0, Lh_ = 0, Lw_ = 0, bins_ = 0, gs_ = 0, cs_ = 0;
  Index saved_batch_ = -1;
  bool direct_ = true;
  typename Backend::template Plan2d<T> plan_;
  AlignedVector<Complex> spec_;   // [C, cs]     coefficient spectra
  AlignedVector<Complex> xspec_;  // [B, C, cs]  rfft2(x) saved by forward for backward
  Tensor<T> t_, x_;               // direct path: coefficients and the saved input
  std::vector<Work> work_;        // one per OpenMP thread
};

}  // namespace tnn
