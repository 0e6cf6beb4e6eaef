// The FFT engine under ToeplitzOp and CirculantOp: batched circulant products of
// many channels through real FFTs, with the layout moves (channel-last <-> one row
// per channel) and the spectrum products it is built from.
#pragma once

#include <algorithm>
#include <complex>
#include <string>
#include <vector>

#include "tnn/core/fft.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz_common.hpp"

namespace tnn {

namespace detail {
// out[i] = a[i] * b[i] (conj_b: a[i] * conj(b[i])), written out by hand: std::complex's
// operator* guards against inf/nan with a library call that defeats vectorization.
template <class T>
inline void cmul(const std::complex<T>* a, const std::complex<T>* b, std::complex<T>* out, Index n, bool conj_b) {
  const T* pa = reinterpret_cast<const T*>(a);
  const T* pb = reinterpret_cast<const T*>(b);
  T* po = reinterpret_cast<T*>(out);
  const T s = conj_b ? T(-1) : T(1);
  for (Index i = 0; i < n; ++i) {
    const T ar = pa[2 * i], ai = pa[2 * i + 1], br = pb[2 * i], bi = s * pb[2 * i + 1];
    po[2 * i] = ar * br - ai * bi;
    po[2 * i + 1] = ar * bi + ai * br;
  }
}
// acc[i] += a[i] * conj(b[i])
template <class T>
inline void cmul_conj_acc(const std::complex<T>* a, const std::complex<T>* b, std::complex<T>* acc, Index n) {
  const T* pa = reinterpret_cast<const T*>(a);
  const T* pb = reinterpret_cast<const T*>(b);
  T* po = reinterpret_cast<T*>(acc);
  for (Index i = 0; i < n; ++i) {
    const T ar = pa[2 * i], ai = pa[2 * i + 1], br = pb[2 * i], bi = -pb[2 * i + 1];
    po[2 * i] += ar * br - ai * bi;
    po[2 * i + 1] += ar * bi + ai * br;
  }
}
// Asks for n elements from p into the outer caches (not L1, which the FFT fills).
template <class T>
inline void prefetch_l2(const T* p, Index n) {
#if defined(__GNUC__) || defined(__clang__)
  const char* b = reinterpret_cast<const char*>(p);
  for (Index off = 0; off < n * Index(sizeof(T)); off += 64) __builtin_prefetch(b + off, 0, 1);
#else
  (void)p;
  (void)n;
#endif
}
template <class T>
inline void prefetch(const T* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

// dst[c * ds + r] = scale * src[r * ss + c] for an R x Cn tile. Fixed sizes and
// a local buffer let both the loads and the stores run along contiguous memory.
template <Index R, Index Cn, class T>
inline void transpose_tile(const T* src, Index ss, T* dst, Index ds, T scale) {
  alignas(64) T buf[R][Cn];
  for (Index r = 0; r < R; ++r)
    for (Index c = 0; c < Cn; ++c) buf[r][c] = src[r * ss + c];
  for (Index c = 0; c < Cn; ++c)
    for (Index r = 0; r < R; ++r) dst[c * ds + r] = buf[r][c] * scale;
}

// Moves between the channel-last layout (ds or ss = C, channels contiguous) and
// one contiguous row per channel (stride rs), for a block of cb <= kB channels
// and len positions; a full block goes through kB x kTile tiles.
inline constexpr Index kTile = 16;  // positions per tile

// dst[cc * rs + i] = src[i * C + cc]
template <Index kB, class T>
void channels_to_rows(const T* src, Index C, Index cb, Index len, T* dst, Index rs) {
  Index i0 = 0;
  if (cb == kB)
    for (; i0 + kTile <= len; i0 += kTile) {
      // Strided reads step over pages, where the hardware prefetcher stops:
      // ask for the rows of the tile after next.
      if (i0 + 3 * kTile <= len)
        for (Index r = 2 * kTile; r < 3 * kTile; ++r) prefetch(src + (i0 + r) * C);
      transpose_tile<kTile, kB>(src + i0 * C, C, dst + i0, rs, T(1));
    }
  for (Index i = i0; i < len; ++i)
    for (Index cc = 0; cc < cb; ++cc) dst[cc * rs + i] = src[i * C + cc];
}
// dst[i * C + cc] = scale * src[cc * rs + i]
template <Index kB, class T>
void rows_to_channels(const T* src, Index rs, Index cb, Index len, T scale, T* dst, Index C) {
  Index i0 = 0;
  if (cb == kB)
    for (; i0 + kTile <= len; i0 += kTile) transpose_tile<kB, kTile>(src + i0, rs, dst + i0 * C, C, scale);
  for (Index i = i0; i < len; ++i)
    for (Index cc = 0; cc < cb; ++cc) dst[i * C + cc] = src[cc * rs + i] * scale;
}
}  // namespace detail

// ---------------------------------------------------------------------------
// FFT engine: per channel, y[0:n] = (Circ(col) * pad_L(x))[0:n], where col is a
// circulant first column of length L held as its spectrum. Channels are processed
// in blocks of kBlock: each block is transposed from the channel-last layout into
// contiguous rows, transformed, and transposed back; OpenMP spreads the
// (batch, channel block) tasks over threads, each with its own workspace.
// ---------------------------------------------------------------------------
template <class T, class Backend = DefaultFftBackend>
class CirculantEngine {
 public:
  using Complex = std::complex<T>;
  // Channels per task: 16 floats fill a cache line of the channel-last layout,
  // and 16 rows of length L stay in L2 up to L ~ 8192.
  static constexpr Index kBlock = 16;

  // n: rows of x and y; L >= n: circulant size; C: channels.
  void configure(Index n, Index L, Index C) {
    n_ = n;
    L_ = L;
    C_ = C;
    Lh_ = L / 2 + 1;
    rs_ = fft_row_stride<T>(L);
    cs_ = fft_row_stride<Complex>(Lh_);
    plan_ = typename Backend::template Plan<T>(L);
    spec_.resize(static_cast<std::size_t>(C * cs_));
  }
  Index n() const { return n_; }
  Index length() const { return L_; }
  Index channels() const { return C_; }

  // Sets the coefficient spectrum from first columns written a block of channels
  // at a time: fill(c0, cb, rows, rs) writes the length-L column of channel c0 + cc
  // into rows[cc * rs ...] (already zeroed), cc < cb.
  template <class Fill>
  void set_columns(Fill&& fill) {
    const Index nblocks = (C_ + kBlock - 1) / kBlock;
    ensure_workspaces();
    ::tnn::parallel_for(nblocks, nblocks > 1, [&](Index blk) {
      const Index c0 = blk * kBlock, cb = std::min(kBlock, C_ - c0);
      Work& w = work_[static_cast<std::size_t>(detail::thread_id())];
      std::fill(w.real.begin(), w.real.end(), T(0));
      fill(c0, cb, w.real.data(), rs_);
      for (Index cc = 0; cc < cb; ++cc) plan_.r2c(w.real.data() + cc * rs_, spec_.data() + (c0 + cc) * cs_);
    }, Schedule::Dynamic, 1);
  }

  // y[B, n, C] = product. If save, keeps rfft(x) for backward.
  void forward(const T* x, T* y, Index B, bool save) {
    ensure_workspaces();
    if (save) xspec_.resize(static_cast<std::size_t>(B * C_ * cs_));
    saved_batch_ = save ? B : -1;
    const Index nblocks = (C_ + kBlock - 1) / kBlock;
    const T scale = T(1) / static_cast<T>(L_);
    ::tnn::parallel_for(B * nblocks, B * nblocks > 1, [&](Index task) {
      const Index b = task / nblocks, c0 = (task % nblocks) * kBlock, cb = std::min(kBlock, C_ - c0);
      Work& w = work_[static_cast<std::size_t>(detail::thread_id())];
      gather(x + b * n_ * C_, c0, cb, w.real.data());
      for (Index cc = 0; cc < cb; ++cc) {
        const Index c = c0 + cc;
        Complex* X = save ? xspec_.data() + (b * C_ + c) * cs_ : w.cplx.data();
        detail::prefetch_l2(spec_.data() + c * cs_, Lh_);  // arrives while r2c runs
        plan_.r2c(w.real.data() + cc * rs_, X);
        detail::cmul(X, spec_.data() + c * cs_, w.prod.data(), Lh_, false);
        plan_.c2r(w.prod.data(), w.real.data() + cc * rs_);
      }
      scatter(w.real.data(), c0, cb, scale, y + b * n_ * C_);
    }, Schedule::Dynamic, 1);
  }

  // g[B, n, C] -> dx = Circ^T g (overwritten, if dx) and the circular
  // cross-correlation r_c[k] = sum_b sum_i g_i x_{(i-k) mod L} (if dcol), handed
  // over a block of channels at a time: take_corr(c0, cb, rows, rs, scale) with
  // r_{c0+cc}[k] = scale * rows[cc * rs + k], k < L. Needs the spectra saved by
  // forward(save = true).
  template <class TakeCorr>
  void backward(const T* g, T* dx, Index B, bool dcol, TakeCorr&& take_corr) {
    if (dcol && saved_batch_ != B)
      fail<Error>("toeplitz backward: expected a forward with save_for_backward over batch ", B,
                  " first, got ", saved_batch_ < 0 ? std::string("none") : std::to_string(saved_batch_));
    ensure_workspaces();
    const Index nblocks = (C_ + kBlock - 1) / kBlock;
    const T scale = T(1) / static_cast<T>(L_);
    ::tnn::parallel_for(nblocks, nblocks > 1, [&](Index blk) {
      const Index c0 = blk * kBlock, cb = std::min(kBlock, C_ - c0);
      Work& w = work_[static_cast<std::size_t>(detail::thread_id())];
      if (dcol) std::fill(w.acc.begin(), w.acc.end(), Complex(0));
      for (Index b = 0; b < B; ++b) {
        gather(g + b * n_ * C_, c0, cb, w.real.data());
        for (Index cc = 0; cc < cb; ++cc) {
          const Index c = c0 + cc;
          Complex* G = w.cplx.data();
          if (dcol) detail::prefetch_l2(xspec_.data() + (b * C_ + c) * cs_, Lh_);
          if (dx) detail::prefetch_l2(spec_.data() + c * cs_, Lh_);
          plan_.r2c(w.real.data() + cc * rs_, G);
          if (dcol) detail::cmul_conj_acc(G, xspec_.data() + (b * C_ + c) * cs_, w.acc.data() + cc * cs_, Lh_);
          if (dx) {
            detail::cmul(G, spec_.data() + c * cs_, w.prod.data(), Lh_, true);
            plan_.c2r(w.prod.data(), w.real.data() + cc * rs_);
          }
        }
        if (dx) scatter(w.real.data(), c0, cb, scale, dx + b * n_ * C_);
      }
      if (dcol) {
        for (Index cc = 0; cc < cb; ++cc) plan_.c2r(w.acc.data() + cc * cs_, w.real.data() + cc * rs_);
        take_corr(c0, cb, static_cast<const T*>(w.real.data()), rs_, scale);
      }
    }, Schedule::Dynamic, 1);
  }

  // Coefficient spectrum row of channel c (Lh complex values), for inspection and tests.
  const Complex* spectrum(Index c) const { return spec_.data() + c * cs_; }

 private:
  struct Work {
    AlignedVector<T> real;      // [kBlock, rs]  transposed block, zero-padded rows
    AlignedVector<Complex> cplx;  // [cs]        one spectrum
    AlignedVector<Complex> prod;  // [cs]        product spectrum (destroyed by c2r)
    AlignedVector<Complex> acc;   // [kBlock, cs] accumulated cross-spectrum
  };

  void ensure_workspaces() {
    const auto nt = static_cast<std::size_t>(detail::max_threads());
    if (work_.size() < nt) work_.resize(nt);
    for (auto& w : work_) {
      w.real.resize(static_cast<std::size_t>(kBlock * rs_));
      w.cplx.resize(static_cast<std::size_t>(cs_));
      w.prod.resize(static_cast<std::size_t>(cs_));
      w.acc.resize(static_cast<std::size_t>(kBlock * cs_));
    }
  }
  // rows cc of ws <- src[:, c0 + cc], zero-padded from n to L.
  void gather(const T* src, Index c0, Index cb, T* ws) const {
    for (Index cc = 0; cc < cb; ++cc) std::fill(ws + cc * rs_ + n_, ws + cc * rs_ + L_, T(0));
    detail::channels_to_rows<kBlock>(src + c0, C_, cb, n_, ws, rs_);
  }
  // dst[:, c0 + cc] <- scale * rows cc of ws, first n positions.
  void scatter(const T* ws, Index c0, Index cb, T scale, T* dst) const {
    detail::rows_to_channels<kBlock>(ws, rs_, cb, n_, scale, dst + c0, C_);
  }

  Index n_ = 0, L_ = 0, C_ = 0, Lh_ = 0, rs_ = 0, cs_ = 0;
  Index saved_batch_ = -1;
  typename Backend::template Plan<T> plan_;
  AlignedVector<Complex> spec_;   // [C, cs]     coefficient spectra
  AlignedVector<Complex> xspec_;  // [B, C, cs]  rfft(x) saved by forward for backward
  std::vector<Work> work_;        // one per OpenMP thread
};

}  // namespace tnn
