// Row-major GEMM, the one entry point of every dense product in the model:
// C = alpha op(A) op(B) + beta C.
//  - With TNN_USE_BLAS (the CMake option of that name): the BLAS's cblas_?gemm. On
//    this project's machines (OpenBLAS, AVX-512 kernels) it runs ~25% faster than
//    Eigen's product and keeps its packing buffers for the life of the process.
//  - Otherwise Eigen's product, whose packing buffers are heap-allocated per call
//    for large shapes.
// Threads: tnn never changes the BLAS's (or OpenMP's) process-wide settings by itself.
//  - When the BLAS runs one thread per call (a serial BLAS; OpenBLAS's OpenMP build,
//    which runs one thread inside a parallel region; OpenBLAS's pthreads build set to
//    one thread), a large product is split into row (or column) blocks over tnn's
//    OpenMP threads, one BLAS call per block: one thread pool for the whole step, no
//    oversubscription between BLAS threads and the FFT kernels' OpenMP threads, and no
//    per-call allocation (a multithreaded OpenBLAS call allocates its job array).
//  - A pthreads OpenBLAS left at several threads gets each product in one call and
//    splits it over its own threads, as the caller configured it.
// tnn::set_num_threads (below) is the explicit call that gives the first, fastest
// setup; the `tnn` program, the benchmarks and the allocation test make it. Every
// output element is computed by one call, so results are deterministic for a fixed
// thread count.
#pragma once

#include <algorithm>
#include <climits>

#ifdef TNN_USE_BLAS
#include <cblas.h>
#endif

#include "tnn/core/error.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

enum class Op { N, T };  // op(A) = A or A^T

namespace detail {

template <class T>
using StridedMap = Eigen::Map<const Mat<T>, 0, Eigen::OuterStride<>>;
template <class T>
using StridedMutMap = Eigen::Map<Mat<T>, 0, Eigen::OuterStride<>>;

// OpenBLAS's small-matrix NN kernels (SkylakeX/Cooperlake, 0.3.21) malloc a packing
// buffer on every call; it takes NN products of m n k <= 100^3. Those go to a
// coefficient-based Eigen product instead, which allocates nothing.
inline constexpr double kBlasSmallNN = 100.0 * 100.0 * 100.0;

// Eigen's product on strided row-major maps (C already scaled by beta).
template <class T>
void eigen_gemm_acc(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb,
                    T* c, Index ldc, bool lazy) {
  StridedMutMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  const StridedMap<T> A(a, ta == Op::N ? m : k, ta == Op::N ? k : m, Eigen::OuterStride<>(lda));
  const StridedMap<T> B(b, tb == Op::N ? k : n, tb == Op::N ? n : k, Eigen::OuterStride<>(ldb));
  if (lazy) {  // coefficient-based: no packing buffers, no temporaries
    if (ta == Op::N && tb == Op::N) C.noalias() += alpha * A.lazyProduct(B);
    if (ta == Op::N && tb == Op::T) C.noalias() += alpha * A.lazyProduct(B.transpose());
    if (ta == Op::T && tb == Op::N) C.noalias() += alpha * A.transpose().lazyProduct(B);
    if (ta == Op::T && tb == Op::T) C.noalias() += alpha * A.transpose().lazyProduct(B.transpose());
    return;
  }
  if (ta == Op::N && tb == Op::N) C.noalias() += alpha * A * B;
  if (ta == Op::N && tb == Op::T) C.noalias() += alpha * A * B.transpose();
  if (ta == Op::T && tb == Op::N) C.noalias() += alpha * A.transpose() * B;
  if (ta == Op::T && tb == Op::T) C.noalias() += alpha * A.transpose() * B.transpose();
}

#ifdef TNN_USE_BLAS
inline CBLAS_TRANSPOSE cblas_op(Op o) { return o == Op::N ? CblasNoTrans : CblasTrans; }
inline void blas_gemm(Op ta, Op tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                      int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, cblas_op(ta), cblas_op(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas_gemm(Op ta, Op tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                      int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, cblas_op(ta), cblas_op(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
// y[rows or cols] = alpha op(M) x + beta y, M row-major [rows, cols]; op = M^T when trans.
inline void blas_gemv(bool trans, int rows, int cols, float alpha, const float* M, int ld, const float* x, int incx,
                      float beta, float* y) {
  cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, alpha, M, ld, x, incx, beta, y, 1);
}
inline void blas_gemv(bool trans, int rows, int cols, double alpha, const double* M, int ld, const double* x,
                      int incx, double beta, double* y) {
  cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, alpha, M, ld, x, incx, beta, y, 1);
}
#endif

// Threads one BLAS call uses when made from the calling thread: more than one only
// for a pthreads OpenBLAS set to several threads (read, never changed).
inline int blas_threads_per_call() {
#if defined(TNN_USE_BLAS) && defined(OPENBLAS_VERSION)
  return openblas_get_parallel() == OPENBLAS_THREAD ? openblas_get_num_threads() : 1;
#else
  return 1;
#endif
}

inline int blas_int(Index v, const char* what) {
  if (v < 0 || v > INT_MAX) fail<ShapeError>("gemm ", what, ": expected a value in [0, ", INT_MAX, "], got ", v);
  return static_cast<int>(v);
}

// A few rows of A times B stored [n, k] (ta = N, tb = T: a Linear forward of one or a handful
// of tokens, as in decoding): every row of B is read once, for all m rows of A together, four
// rows of B at a time, where a GEMM packs the whole of B on every call (for m = 8 at the bench
// model's shapes that packing was half the decoding step's time). Measured against OpenBLAS
// 0.3.21 on a Xeon (family 6 model 207, AVX-512), 1 thread, B [1536, 512]: m = 1 98 us vs
// sgemv 98 us (203 us with the Prescott kernels OpenBLAS falls back to on a CPU it does not
// know); m = 8 380 us vs sgemm 446 us (653 us); m = 16 705 us vs 493 us: so up to 8 rows.
inline constexpr Index kSkinnyMaxRows = 8;

// The `omp simd` reductions below let GCC vectorize float sums without -ffast-math; clang at
// -O0/-O1 (e.g. a sanitizer build) cannot, and says so with -Wpass-failed: not a defect here.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
template <class T>
void skinny_nt(Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T beta, T* c,
               Index ldc) {
  auto store = [&](Index i, Index j, T s) {
    T& out = c[i * ldc + j];
    out = beta == T(0) ? alpha * s : alpha * s + beta * out;  // beta = 0 ignores C (NaN included)
  };
  Index j = 0;
  for (; j + 4 <= n; j += 4) {
    const T* b0 = b + j * ldb;
    const T* b1 = b0 + ldb;
    const T* b2 = b1 + ldb;
    const T* b3 = b2 + ldb;
    Index i = 0;
    // 2 rows of A x 4 rows of B: 8 independent sums, each B value loaded once for both rows
    for (; i + 2 <= m; i += 2) {
      const T* x0 = a + i * lda;
      const T* x1 = x0 + lda;
      T s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      TNN_OMP(simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13))
      for (Index p = 0; p < k; ++p) {
        const T u = x0[p], v = x1[p], w0 = b0[p], w1 = b1[p], w2 = b2[p], w3 = b3[p];
        s00 += u * w0;
        s01 += u * w1;
        s02 += u * w2;
        s03 += u * w3;
        s10 += v * w0;
        s11 += v * w1;
        s12 += v * w2;
        s13 += v * w3;
      }
      store(i, j, s00);
      store(i, j + 1, s01);
      store(i, j + 2, s02);
      store(i, j + 3, s03);
      store(i + 1, j, s10);
      store(i + 1, j + 1, s11);
      store(i + 1, j + 2, s12);
      store(i + 1, j + 3, s13);
    }
    for (; i < m; ++i) {
      const T* x0 = a + i * lda;
      T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      TNN_OMP(simd reduction(+ : s0, s1, s2, s3))
      for (Index p = 0; p < k; ++p) {
        const T u = x0[p];
        s0 += u * b0[p];
        s1 += u * b1[p];
        s2 += u * b2[p];
        s3 += u * b3[p];
      }
      store(i, j, s0);
      store(i, j + 1, s1);
      store(i, j + 2, s2);
      store(i, j + 3, s3);
    }
  }
  for (; j < n; ++j) {
    const T* bj = b + j * ldb;
    for (Index i = 0; i < m; ++i) {
      const T* ai = a + i * lda;
      T s = 0;
      TNN_OMP(simd reduction(+ : s))
      for (Index p = 0; p < k; ++p) s += ai[p] * bj[p];
      store(i, j, s);
    }
  }
}
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

// One thread's product.
template <class T>
void gemm_serial(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb,
                 T beta, T* c, Index ldc) {
  if (m == 0 || n == 0) return;
  const double work = double(m) * double(n) * double(k);
  if (m <= kSkinnyMaxRows && ta == Op::N && tb == Op::T && k > 0) {
    skinny_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#ifdef TNN_USE_BLAS
  if (m == 1 && k > 0) {
    // One row that skinny_nt above did not take (A transposed, or B stored [k, n]): a
    // matrix-vector product, y = op(B)^T a. Row-major B stored [n, k] (tb = T) is multiplied
    // as is, [k, n] (tb = N) transposed.
    const int inca = ta == Op::N ? 1 : int(lda);
    if (tb == Op::T)
      blas_gemv(false, int(n), int(k), alpha, b, int(ldb), a, inca, beta, c);
    else
      blas_gemv(true, int(k), int(n), alpha, b, int(ldb), a, inca, beta, c);
    return;
  }
  if (!(ta == Op::N && tb == Op::N && work <= kBlasSmallNN)) {
    blas_gemm(ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
    return;
  }
#endif
  StridedMutMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  if (beta == T(0))
    C.setZero();
  else if (beta != T(1))
    C *= beta;
  if (k > 0) eigen_gemm_acc(ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc, work <= kBlasSmallNN);
}

}  // namespace detail

// C [m, n] (leading dimension ldc) = alpha op(A) op(B) + beta C, all row-major;
// op(A) is [m, k], op(B) is [k, n]; lda, ldb are the row strides of A and B as
// stored. beta = 0 ignores C's old contents (NaN included), as BLAS does.
template <class T>
void gemm(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T beta,
          T* c, Index ldc) {
  if (m == 0 || n == 0) return;
  detail::blas_int(m, "m");
  detail::blas_int(n, "n");
  detail::blas_int(k, "k");
  detail::blas_int(lda, "lda");
  detail::blas_int(ldb, "ldb");
  detail::blas_int(ldc, "ldc");
  // A multithreaded BLAS splits the product itself; tnn's split would multiply the threads.
  const int threads = detail::blas_threads_per_call() > 1 ? 1 : parallel_threads();
  const double work = double(m) * double(n) * double(k);
  // Blocks of whole 16-row (or 16-column) panels, one per thread, along the longer side.
  constexpr Index kPanel = 16;
  const bool split_rows = m >= n;
  const Index len = split_rows ? m : n;
  const Index per = (len + threads - 1) / threads;
  const Index block = (per + kPanel - 1) / kPanel * kPanel;
  const Index nblocks = block > 0 ? (len + block - 1) / block : 0;
  if (threads < 2 || work < grain::kGemmMinWork || nblocks < 2) {
    detail::gemm_serial(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  ::tnn::parallel_for(nblocks, true, [&](Index i) {
    const Index i0 = i * block, cnt = std::min(block, len - i0);
    if (split_rows) {
      // rows i0.. of op(A) and C
      const T* ai = ta == Op::N ? a + i0 * lda : a + i0;
      detail::gemm_serial(ta, tb, cnt, n, k, alpha, ai, lda, b, ldb, beta, c + i0 * ldc, ldc);
    } else {
      // columns i0.. of op(B) and C
      const T* bi = tb == Op::N ? b + i0 : b + i0 * ldb;
      detail::gemm_serial(ta, tb, m, cnt, k, alpha, a, lda, bi, ldb, beta, c + i0, ldc);
    }
  });
}

// Thread settings for a program that gives tnn the machine's cores; the only function
// in tnn that changes process-wide settings, and tnn never calls it by itself.
//  - OpenMP runs `threads` threads (omp_set_num_threads); 0 keeps OpenMP's own count
//    (OMP_NUM_THREADS, else one per core).
//  - With TNN_USE_BLAS and OpenBLAS's pthreads build: OpenBLAS runs one thread per call
//    (openblas_set_num_threads(1)), since tnn splits large products over its OpenMP
//    threads itself (see the top of this file): the fastest setup for tnn's training
//    and decoding steps, and the one in which a training step allocates nothing.
// Returns the number of OpenMP threads tnn's loops will use (1 without OpenMP).
inline int set_num_threads(int threads) {
  if (threads < 0) fail<ValueError>("set_num_threads: expected a thread count >= 0 (0: keep OpenMP's), got ", threads);
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#endif
#if defined(TNN_USE_BLAS) && defined(OPENBLAS_VERSION)
  if (openblas_get_parallel() == OPENBLAS_THREAD) openblas_set_num_threads(1);
#endif
  return parallel_threads();
}

// The three forms a layer needs (alpha = 1):
// C [m, n] = A [m, k] B [k, n] + beta C
template <class T>
void gemm_nn(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T beta, T* c, Index ldc) {
  gemm(Op::N, Op::N, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
}
// C [m, n] = A [m, k] B^T (B stored [n, k]) + beta C: a Linear forward, x W^T
template <class T>
void gemm_nt(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T beta, T* c, Index ldc) {
  gemm(Op::N, Op::T, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
}
// C [m, n] = A^T (A stored [k, m]) B [k, n] + beta C: a weight gradient, dy^T x
template <class T>
void gemm_tn(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T beta, T* c, Index ldc) {
  gemm(Op::T, Op::N, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
}

}  // namespace tnn
