// Online (relaxed) causal convolution: y_t = sum_{j<=t} k_{t-j} v_j per channel, where
// v_t arrives one position at a time and y_t is wanted as soon as v_t is known (a
// decoder: v_t depends on y_{t-1}). Tiling of relaxed polynomial multiplication, as in
// Flash Inference (Oncescu et al., ICLR 2025): when position i-1 completes (1-indexed
// block end i), the block of U = lowbit(i) positions [i-U, i) adds its contribution to
// the accumulators of positions [i, i+U) with one cyclic product of length 2U; every
// pair (j, t), j < t, is summed by exactly one block, and the new position adds only
// its diagonal term k_0 v_t. Level s costs O(U log U) every U steps: amortized
// O(C log^2 t) per position, memory O(t C). Small blocks are summed directly.
// The slow obvious twin is causal_conv_direct below (and OnlineConv::step_direct).
#pragma once

#include <algorithm>
#include <complex>
#include <cstdint>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/fft.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

// The reference: y [n, C] = causal convolution of v [n, C] with k [>= n, C], rows =
// positions, O(n^2 C).
template <class T>
void causal_conv_direct(const Tensor<T>& k, const Tensor<T>& v, Tensor<T>& y) {
  if (v.rank() != 2 || k.rank() != 2 || k.cols() != v.cols() || k.rows() < v.rows())
    fail<ShapeError>("causal_conv_direct: expected k [>= n, C] and v [n, C], got k ", shape_str(k.shape()), " and v ",
                     shape_str(v.shape()));
  const Index n = v.rows(), C = v.cols();
  y.resize({n, C});
  y.set_zero();
  for (Index t = 0; t < n; ++t)
    for (Index j = 0; j <= t; ++j)
      for (Index c = 0; c < C; ++c) y[t * C + c] += k[(t - j) * C + c] * v[j * C + c];
}

// Lowest set bit of i > 0: the size of the block that ends at (1-indexed) position i.
inline Index online_block_size(Index i) { return i & -i; }

// B sequences of C channels decoded together, all at the same position. The kernel
// k [cap, C] is shared by the sequences; each keeps its history v [cap, C] and its
// accumulators acc [cap, C] (acc row t: the sum over every j < t already tiled).
template <class T, class Backend = DefaultFftBackend>
class OnlineConv {
 public:
  OnlineConv() = default;

  // Blocks of fewer positions than this are summed directly (U^2 multiply-adds per
  // channel), larger ones by FFT. Measured on the bench model's 1536 channels
  // (float, 1 thread, tests/test_online_conv's BlockCrossover printout): see README.
  Index direct_below = 64;

  Index capacity() const { return cap_; }
  Index channels() const { return C_; }
  Index batch() const { return B_; }
  Index position() const { return pos_; }

  // Sizes every buffer for B sequences and the kernel k [cap, C] (row r = k_r); the
  // position goes back to 0. Allocates; the steps after it do not.
  void prepare(const Tensor<T>& k, Index batch) {
    if (k.rank() != 2 || k.rows() < 1 || k.cols() < 1)
      fail<ShapeError>("online conv kernel: expected shape [cap >= 1, C >= 1], got ", shape_str(k.shape()));
    if (batch < 1) fail<ValueError>("online conv batch: expected >= 1, got ", batch);
    C_ = k.cols();
    B_ = batch;
    cap_ = 0;
    pos_ = 0;
    acc_valid_ = true;
    hist_.assign(static_cast<std::size_t>(B_), Tensor<T>());
    acc_.assign(static_cast<std::size_t>(B_), Tensor<T>());
    set_kernel(k);
  }

  // A longer kernel k [cap' >= cap, C] (rows [0, cap) must be those given before):
  // history and accumulators are kept and the rows [cap, cap') of the accumulators get
  // the contributions of the blocks already complete, so the state stays exact.
  void grow(const Tensor<T>& k) {
    if (k.rank() != 2 || k.cols() != C_ || k.rows() < cap_)
      fail<ShapeError>("online conv grow: expected a kernel [>= ", cap_, ", ", C_, "], got ", shape_str(k.shape()));
    const Index old = cap_;
    set_kernel(k);
    if (acc_valid_) apply_pending(pos_, old, cap_);
  }

  // Sets every sequence's history to its rows of v [B or 1, n, C] (1: the same for all)
  // and computes the accumulators of the positions after it: position n, the same state
  // as n steps would give (up to rounding), by O(log n) block products.
  void assign(const Tensor<T>& v) {
    if (v.rank() != 3 || (v.dim(0) != B_ && v.dim(0) != 1) || v.dim(2) != C_ || v.dim(1) > cap_)
      fail<ShapeError>("online conv history: expected shape [", B_, " or 1, n <= ", cap_, ", ", C_, "], got ",
                       shape_str(v.shape()));
    const Index n = v.dim(1);
    for (Index b = 0; b < B_; ++b) {
      const T* src = v.data() + (v.dim(0) == 1 ? 0 : b * n * C_);
      std::copy(src, src + n * C_, hist_[std::size_t(b)].data());
    }
    pos_ = n;
    acc_valid_ = false;
  }

  // Forgets every position after the first n; the accumulators are recomputed from the
  // history (exact: the same blocks as n steps would have added).
  void rewind(Index n) {
    if (n < 0 || n > pos_) fail<ValueError>("online conv rewind: expected a position in [0, ", pos_, "], got ", n);
    pos_ = n;
    acc_valid_ = false;
  }

  // The next position of every sequence: v, y [B, C] (rows = sequences). y = the causal
  // convolution at this position; then the block that completes here is tiled forward.
  void step(const T* v, T* y) {
    check_room();
    if (!acc_valid_) rebuild();
    const Index t = pos_;
    const T* k0 = coef_.data();
    for (Index b = 0; b < B_; ++b) {
      T* h = hist_[std::size_t(b)].data() + t * C_;
      const T* a = acc_[std::size_t(b)].data() + t * C_;
      const T* vb = v + b * C_;
      T* yb = y + b * C_;
      for (Index c = 0; c < C_; ++c) {
        h[c] = vb[c];
        yb[c] = a[c] + k0[c] * vb[c];
      }
    }
    pos_ = t + 1;
    if (pos_ < cap_) apply_block(pos_, pos_, cap_);
  }

  // The same position by the direct sum over the whole history, O(t C) (the reference,
  // and faster for short contexts). The accumulators are not kept up; the next step()
  // recomputes them.
  void step_direct(const T* v, T* y) {
    check_room();
    const Index t = pos_;
    acc_valid_ = false;
    const Index j0 = std::max<Index>(0, t - span_ + 1);
    for (Index b = 0; b < B_; ++b) {
      T* hist = hist_[std::size_t(b)].data();
      std::copy(v + b * C_, v + (b + 1) * C_, hist + t * C_);
    }
    // channels split into contiguous ranges over threads for long histories
    const bool parallel = (t - j0 + 1) * C_ * B_ >= grain::kDecodeMinWork;
    const Index parts = parallel ? parallel_threads() : 1;
    const Index width = ((C_ + parts - 1) / parts + 15) / 16 * 16;
    ::tnn::parallel_for(parts, parallel, [&](Index p) {
      const Index c0 = std::min(C_, p * width), c1 = std::min(C_, c0 + width);
      for (Index b = 0; b < B_; ++b) {
        const T* hist = hist_[std::size_t(b)].data();
        T* yb = y + b * C_;
        std::fill(yb + c0, yb + c1, T(0));
        for (Index j = j0; j <= t; ++j) {
          const T* cr = coef_.data() + (t - j) * C_;
          const T* vr = hist + j * C_;
          for (Index c = c0; c < c1; ++c) yb[c] += cr[c] * vr[c];
        }
      }
    });
    pos_ = t + 1;
  }

  const T* history(Index b) const { return hist_[std::size_t(b)].data(); }  // [cap, C]

 private:
  static constexpr Index kGroup = 8;  // channels gathered together (one cache line of floats)

  void check_room() const {
    if (pos_ >= cap_) fail<Error>("online conv: expected a position below the capacity ", cap_, ", got ", pos_);
  }

  void set_kernel(const Tensor<T>& k) {
    const Index cap = k.rows();
    coef_ = k;
    span_ = cap;  // rows past the last nonzero one (a decay underflowed to 0) add exact zeros
    while (span_ > 1 && std::all_of(coef_.data() + (span_ - 1) * C_, coef_.data() + span_ * C_,
                                    [](T x) { return x == T(0); }))
      --span_;
    for (Index b = 0; b < B_; ++b) {
      for (Tensor<T>* m : {&hist_[std::size_t(b)], &acc_[std::size_t(b)]}) {
        Tensor<T> grown({cap, C_});
        if (m->size() > 0) std::copy(m->data(), m->data() + m->size(), grown.data());
        *m = std::move(grown);
      }
    }
    cap_ = cap;
    // Level s (U = 2^s >= direct_below, U < cap): the spectrum of k_0..k_{2U-1} per
    // channel, zero past the kernel's end (rows >= cap never reach an output < cap).
    levels_.clear();
    plans_.clear();
    Index max_u = 0;
    for (Index U = 1; U < cap; U *= 2) {
      if (U < direct_below) {
        levels_.emplace_back();
        plans_.emplace_back();
        continue;
      }
      max_u = U;
      const Index L = 2 * U, bins = fft_row_stride<std::complex<T>>(U + 1);  // rows 64-byte aligned for FFTW
      plans_.emplace_back(L);
      AlignedVector<std::complex<T>> spec(static_cast<std::size_t>(C_ * bins));
      AlignedVector<T> buf(static_cast<std::size_t>(L));
      for (Index c = 0; c < C_; ++c) {
        for (Index r = 0; r < L; ++r) buf[std::size_t(r)] = r < cap ? coef_[r * C_ + c] : T(0);
        plans_.back().r2c(buf.data(), spec.data() + c * bins);
      }
      levels_.push_back(std::move(spec));
    }
    // scratch for every part a block product is split into
    parts_ = std::max(1, parallel_threads());
    const Index L = 2 * std::max<Index>(max_u, 1);
    real_stride_ = fft_row_stride<T>(L);
    cplx_stride_ = fft_row_stride<std::complex<T>>(L / 2 + 1);
    real_.assign(static_cast<std::size_t>(parts_ * kGroup * real_stride_), T(0));
    cplx_.assign(static_cast<std::size_t>(parts_ * kGroup * cplx_stride_), std::complex<T>());
    // Every thread that may run a block product transforms once at every level now: a
    // backend that plans lazily per thread (Eigen's kissfft keeps its twiddles and buffers
    // in a per-thread engine) does its allocating here, and the steps allocate nothing.
    // (FFTW's plans are shared and made above; for it this is a few idle transforms.)
    ::tnn::parallel_for(parts_, parts_ > 1, [&](Index p) {
      T* re = real_.data() + p * kGroup * real_stride_;
      std::complex<T>* co = cplx_.data() + p * kGroup * cplx_stride_;
      for (const auto& plan : plans_) {
        if (plan.length() == 0) continue;  // a level summed directly
        std::fill(re, re + plan.length(), T(0));
        plan.r2c(re, co);
        plan.c2r(co, re);
      }
    });
  }

  // The accumulators of rows >= n from the history [0, n): zero, then every block
  // complete by n whose outputs reach row n.
  void rebuild() {
    for (Index b = 0; b < B_; ++b) {
      T* a = acc_[std::size_t(b)].data();
      std::fill(a + pos_ * C_, a + cap_ * C_, T(0));
    }
    apply_pending(pos_, pos_, cap_);
    acc_valid_ = true;
  }

  // Every block with end i <= n whose outputs [i, i+U) meet [lo, hi), clipped to it.
  // At most one per level when lo >= n: O(log n) products.
  void apply_pending(Index n, Index lo, Index hi) {
    for (Index U = 1; U <= n; U *= 2) {
      // ends i = U (mod 2U), i <= n, i + U > lo
      Index i = std::max<Index>(U, lo - U + 1);
      i = i + ((U - i) % (2 * U) + 2 * U) % (2 * U);
      for (; i <= n; i += 2 * U)
        if (i < hi) apply_block(i, lo, hi);
    }
  }

  // The block ending at i (1-indexed; positions [i-U, i), U = lowbit(i)) adds
  // c_q = sum_m k_{U+q-m} v_{i-U+m} to acc row i+q, for rows in [lo, hi).
  void apply_block(Index i, Index lo, Index hi) {
    const Index U = online_block_size(i);
    const Index q0 = std::max<Index>(0, lo - i), q1 = std::min<Index>(U, std::min(hi, cap_) - i);
    if (q0 >= q1) return;
    if (U < direct_below) {
      for (Index b = 0; b < B_; ++b) {
        const T* v = hist_[std::size_t(b)].data() + (i - U) * C_;
        T* acc = acc_[std::size_t(b)].data() + i * C_;
        for (Index q = q0; q < q1; ++q) {
          T* a = acc + q * C_;
          for (Index m = 0; m < U; ++m) {
            const T* kr = coef_.data() + (U + q - m) * C_;
            const T* vr = v + m * C_;
            for (Index c = 0; c < C_; ++c) a[c] += kr[c] * vr[c];
          }
        }
      }
      return;
    }
    Index s = 0;
    while ((Index(1) << s) < U) ++s;
    const auto& plan = plans_[std::size_t(s)];
    const std::complex<T>* spec = levels_[std::size_t(s)].data();
    const Index L = 2 * U, bins = U + 1, spec_stride = fft_row_stride<std::complex<T>>(bins);
    const T scale = T(1) / static_cast<T>(L);  // the inverse transform is unscaled
    const Index groups = (C_ + kGroup - 1) / kGroup, tasks = B_ * groups;
    const bool parallel = tasks > 1 && U * C_ * B_ >= grain::kDecodeBlockMinWork;
    const Index parts = parallel ? std::min<Index>(parts_, tasks) : 1;
    ::tnn::parallel_for(parts, parallel, [&](Index p) {
      T* re = real_.data() + p * kGroup * real_stride_;
      std::complex<T>* co = cplx_.data() + p * kGroup * cplx_stride_;
      for (Index task = p; task < tasks; task += parts) {
        const Index b = task / groups, c0 = (task % groups) * kGroup, g = std::min(kGroup, C_ - c0);
        const T* v = hist_[std::size_t(b)].data() + (i - U) * C_ + c0;
        T* acc = acc_[std::size_t(b)].data() + i * C_ + c0;
        for (Index m = 0; m < U; ++m)
          for (Index c = 0; c < g; ++c) re[c * real_stride_ + m] = v[m * C_ + c];
        for (Index c = 0; c < g; ++c) {
          T* r = re + c * real_stride_;
          std::complex<T>* x = co + c * cplx_stride_;
          std::fill(r + U, r + L, T(0));
          plan.r2c(r, x);
          const std::complex<T>* kc = spec + (c0 + c) * spec_stride;
          for (Index f = 0; f < bins; ++f) x[f] *= kc[f];
          plan.c2r(x, r);
        }
        for (Index q = q0; q < q1; ++q)
          for (Index c = 0; c < g; ++c) acc[q * C_ + c] += scale * re[c * real_stride_ + U + q];
      }
    });
  }

  Index C_ = 0, B_ = 0, cap_ = 0, pos_ = 0, span_ = 0;
  bool acc_valid_ = true;
  Tensor<T> coef_;                 // [cap, C] k_r
  std::vector<Tensor<T>> hist_;    // [B] x [cap, C] v of every position fed
  std::vector<Tensor<T>> acc_;     // [B] x [cap, C] tiled partial sums
  std::vector<AlignedVector<std::complex<T>>> levels_;  // [levels] x [C, U+1 (row stride)] spectra (empty: direct level)
  std::vector<typename Backend::template Plan<T>> plans_;  // [levels] length 2U
  Index parts_ = 1, real_stride_ = 0, cplx_stride_ = 0;
  AlignedVector<T> real_;                // [parts, kGroup, 2U_max] workspaces
  AlignedVector<std::complex<T>> cplx_;  // [parts, kGroup, U_max+1]
};

}  // namespace tnn
