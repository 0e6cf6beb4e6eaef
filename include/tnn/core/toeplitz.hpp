// Toeplitz and circulant matrix-vector products, many channels at once, with
// their backward passes: the kernel every TNN layer stands on (spec section 1).
//
// Memory layout (row-major, channel fastest, the layout of the model's activations):
//   x, y, g, dx : [B, N, C]   B sequences of N positions, C independent channels
//   t, dt       : [K, C]      Toeplitz coefficients, one column per channel:
//                             non-causal K = 2N-1, row k + N-1 holds t_k, k = -(N-1)..N-1
//                             causal     K = N,    row k holds t_k,         k = 0..N-1
//   c, dc       : [L, C]      circulant first columns (circulant product, n = L)
// y_i = sum_j t_{i-j} x_j, per channel. The direct O(N^2) forms sit beside the
// FFT ones; ToeplitzOp picks the direct form below a measured crossover length.
#pragma once

#include <algorithm>
#include <complex>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

// OpenMP pragmas go through _Pragma so that a build without OpenMP sees nothing
// (no -Wunknown-pragmas) and runs serially.
#ifdef _OPENMP
#define TNN_PRAGMA_(x) _Pragma(#x)
#define TNN_OMP(x) TNN_PRAGMA_(omp x)
#else
#define TNN_OMP(x)
#endif

#include "tnn/core/fft.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

inline Index toeplitz_num_coeffs(Index n, bool causal) { return causal ? n : 2 * n - 1; }

namespace detail {
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
// Runs f(i) for i in [0, n): over the OpenMP threads (dynamic chunks of `chunk`)
// when `parallel`, else in the calling thread without entering a parallel region:
// libgomp allocates a fresh team for every region that an `if` clause makes
// single-threaded, and the training step must not allocate.
template <class F>
void parallel_for(Index n, bool parallel, Index chunk, F&& f) {
#ifdef _OPENMP
  if (parallel && n > 1 && omp_get_max_threads() > 1) {
    TNN_OMP(parallel for schedule(dynamic, chunk))
    for (Index i = 0; i < n; ++i) f(i);
    return;
  }
#endif
  (void)parallel;
  (void)chunk;
  for (Index i = 0; i < n; ++i) f(i);
}
template <class T>
void expect_3d(const Tensor<T>& a, const char* what, Index n, Index c) {
  if (a.rank() != 3 || a.dim(1) != n || a.dim(2) != c)
    fail<ShapeError>(what, ": expected shape [B, ", n, ", ", c, "], got ", shape_str(a.shape()));
}

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
// Direct O(N^2) forms: the reference every FFT path is tested against, and the
// path ToeplitzOp takes for short sequences. Each output row is one sum, taken
// in a fixed order by one thread, so results do not depend on the thread count
// or on which thread takes which rows (dynamic schedules here and below keep a
// thread that the OS preempts from holding the others up).
// ---------------------------------------------------------------------------
namespace detail {
// Below this many multiply-adds a thread team costs more than it saves (and on a
// busy machine waking a second thread can cost a whole scheduler time slice).
inline constexpr Index kParallelMinWork = Index(1) << 17;
}  // namespace detail

// y = T x. t: [K, C]; x, y: [B, N, C].
template <class T>
void toeplitz_forward_direct(const Tensor<T>& t, const Tensor<T>& x, Tensor<T>& y, bool causal) {
  const Index B = x.rank() == 3 ? x.dim(0) : 0, N = x.rank() == 3 ? x.dim(1) : 0, C = x.cols();
  detail::expect_3d(x, "toeplitz x", N, C);
  t.expect_shape({toeplitz_num_coeffs(N, causal), C}, "toeplitz coefficients");
  y.resize({B, N, C});
  const Index off = causal ? 0 : N - 1;
  // y_i = sum_j t_{i-j} x_j, rows (b, i) spread over threads.
  detail::parallel_for(B * N, B * N * N * C >= detail::kParallelMinWork, 16, [&](Index r) {
    const Index b = r / N, i = r % N;
    T* yi = y.data() + r * C;
    std::fill(yi, yi + C, T(0));
    const Index j_end = causal ? i + 1 : N;
    for (Index j = 0; j < j_end; ++j) {
      const T* tk = t.data() + (i - j + off) * C;
      const T* xj = x.data() + (b * N + j) * C;
      for (Index c = 0; c < C; ++c) yi[c] += tk[c] * xj[c];
    }
  });
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
  const bool parallel = B * N * N * C >= detail::kParallelMinWork;
  if (dx) {
    dx->resize({B, N, C});
    // dx_j = sum_i t_{i-j} g_i over i >= j (causal) or all i.
    T* dxp = dx->data();
    detail::parallel_for(B * N, parallel, 16, [&](Index r) {
      const Index b = r / N, j = r % N;
      T* dxj = dxp + r * C;
      std::fill(dxj, dxj + C, T(0));
      for (Index i = causal ? j : 0; i < N; ++i) {
        const T* tk = t.data() + (i - j + off) * C;
        const T* gi = g.data() + (b * N + i) * C;
        for (Index c = 0; c < C; ++c) dxj[c] += tk[c] * gi[c];
      }
    });
  }
  if (dt) {
    dt->resize({K, C});
    // dt_k = sum_b sum_i g_i x_{i-k}, row k + off of dt.
    T* dtp = dt->data();
    detail::parallel_for(K, parallel, 16, [&](Index row) {
      const Index k = row - off;
      T* dtk = dtp + row * C;
      std::fill(dtk, dtk + C, T(0));
      for (Index b = 0; b < B; ++b)
        for (Index i = std::max(Index(0), k); i < std::min(N, N + k); ++i) {
          const T* gi = g.data() + (b * N + i) * C;
          const T* xj = x.data() + (b * N + i - k) * C;
          for (Index c = 0; c < C; ++c) dtk[c] += gi[c] * xj[c];
        }
    });
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
    detail::parallel_for(nblocks, nblocks > 1, 1, [&](Index blk) {
      const Index c0 = blk * kBlock, cb = std::min(kBlock, C_ - c0);
      Work& w = work_[static_cast<std::size_t>(detail::thread_id())];
      std::fill(w.real.begin(), w.real.end(), T(0));
      fill(c0, cb, w.real.data(), rs_);
      for (Index cc = 0; cc < cb; ++cc) plan_.r2c(w.real.data() + cc * rs_, spec_.data() + (c0 + cc) * cs_);
    });
  }

  // y[B, n, C] = product. If save, keeps rfft(x) for backward.
  void forward(const T* x, T* y, Index B, bool save) {
    ensure_workspaces();
    if (save) xspec_.resize(static_cast<std::size_t>(B * C_ * cs_));
    saved_batch_ = save ? B : -1;
    const Index nblocks = (C_ + kBlock - 1) / kBlock;
    const T scale = T(1) / static_cast<T>(L_);
    detail::parallel_for(B * nblocks, B * nblocks > 1, 1, [&](Index task) {
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
    });
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
    detail::parallel_for(nblocks, nblocks > 1, 1, [&](Index blk) {
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
    });
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
