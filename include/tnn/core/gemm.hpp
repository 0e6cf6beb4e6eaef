// Row-major GEMM, the one entry point of every dense product in the model:
// C = alpha op(A) op(B) + beta C, in fp32 or, for float operands, bf16 (Precision::Bf16:
// A and B rounded to bf16, products summed in fp32).
// Backends, chosen when tnn is configured (CMake TNN_GEMM; a consumer compiling the headers
// by hand gets the first):
//  - own (default): tnn's packed kernels (core/gemm_packed.hpp), the widest the CPU runs
//    picked from CPUID at run time, for float; Eigen's product for double. No library, and
//    the same speed whatever a BLAS's table of CPU models or OPENBLAS_CORETYPE says (an
//    OpenBLAS told Haswell runs its AVX2 kernels at half an AVX-512 core's speed; 0.3.21
//    falls back to SSE3 kernels on CPUs newer than its table).
//  - TNN_USE_BLAS (TNN_GEMM=blas): the BLAS's cblas_?gemm for float and double.
//  - TNN_GEMM_EIGEN (TNN_GEMM=eigen): Eigen's product, whose packing buffers are
//    heap-allocated per call for large shapes.
// bf16 products always take tnn's kernels (vdpbf16ps where the CPU has AVX512_BF16).
// Threads: tnn never changes the BLAS's (or OpenMP's) process-wide settings by itself.
//  - tnn's kernels, and a BLAS that runs one thread per call (a serial BLAS; OpenBLAS's
//    OpenMP build, which runs one thread inside a parallel region; OpenBLAS's pthreads
//    build set to one thread): a large product is split into row (or column) blocks over
//    tnn's OpenMP threads, one serial product per block: one thread pool for the whole
//    step, no oversubscription between BLAS threads and the FFT kernels' OpenMP threads,
//    and no per-call allocation (tnn's kernels keep one set of packing buffers per thread;
//    a multithreaded OpenBLAS call allocates its job array).
//  - A pthreads OpenBLAS left at several threads gets each product in one call and
//    splits it over its own threads, as the caller configured it.
// tnn::set_num_threads (below) is the explicit call that gives the first, fastest
// setup; the `tnn` program, the benchmarks and the allocation test make it. Every
// output element is computed by one call, so results are deterministic for a fixed
// thread count.
#pragma once

#include <algorithm>
#include <climits>
#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TNN_SKINNY_SIMD 1  // the float skinny GEMM below has an AVX2 / AVX-512 kernel
#endif

#ifdef TNN_USE_BLAS
#include <cblas.h>
#endif

#include "tnn/core/enum_table.hpp"
#include "tnn/core/error.hpp"
#include "tnn/core/gemm_packed.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

template <>
struct EnumTable<Precision> {
  static constexpr EnumRow<Precision> rows[] = {{Precision::F32, "fp32"}, {Precision::Bf16, "bf16"}};
};

// True when the CPU multiplies bf16 in hardware (AVX512_BF16); elsewhere a bf16 product rounds
// its operands the same way and runs tnn's fp32 kernels, as fast as an fp32 product.
inline bool cpu_has_bf16() { return detail::cpu().avx512_bf16; }


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
// (Those are the portable kernel's times; the float kernel with AVX2/AVX-512 below takes m = 8
// in about half.)
inline constexpr Index kSkinnyMaxRows = 8;

// The portable kernel: 2 rows of A x 4 rows of B per pass. The `omp simd` reductions let GCC
// vectorize the float sums without -ffast-math; clang at -O0/-O1 (e.g. a sanitizer build)
// cannot, and says so with -Wpass-failed: not a defect here.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
template <class T>
void skinny_nt_portable(Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T beta, T* c,
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

#ifdef TNN_SKINNY_SIMD
// The float kernel with x86 vectors (compiled when the target has AVX2 and FMA, e.g. with
// TNN_NATIVE on an x86 machine): 4 rows of A x 4 rows of B per pass, 16 vector accumulators,
// then one horizontal reduction per 4 outputs. Twice the portable kernel's speed at m = 8
// (B [1536, 512], the Xeon above, 1 thread: 173 us vs 332 us with 16 lanes; 187 us with 8).
// Lanes: F32x8 (AVX2) or F32x16 (AVX-512F); SkinnyLanes is the widest the target has, and
// the tests run both where both compile.
struct F32x8 {
  using V = __m256;
  static constexpr Index lanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static __m128 sum4(V a0, V a1, V a2, V a3) {  // [sum a0, sum a1, sum a2, sum a3]
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  }
};
#ifdef __AVX512F__
struct F32x16 {
  using V = __m512;
  static constexpr Index lanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static __m256 fold(V v) {  // lanes i and i + 8 added
    // masked extracts: GCC 12 warns that the unmasked extract's and the 512 -> 256 cast's
    // undefined pass-through is uninitialized, which fails a -Werror build at -march=native
    const __m512d d = _mm512_castps_pd(v);
    const __m256d z = _mm256_setzero_pd();
    const __m256 lo = _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(z, 0xff, d, 0));
    const __m256 hi = _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(z, 0xff, d, 1));
    return _mm256_add_ps(lo, hi);
  }
  static __m128 sum4(V a0, V a1, V a2, V a3) { return F32x8::sum4(fold(a0), fold(a1), fold(a2), fold(a3)); }
};
using SkinnyLanes = F32x16;
#else
using SkinnyLanes = F32x8;
#endif

// out[4 r + q] = sum_p a[r lda + p] b[(q ldb) + p] for r < MR, q < 4.
template <class S, int MR>
inline void skinny_block_f32(Index k, const float* a, Index lda, const float* b0, Index ldb, float* out) {
  using V = typename S::V;
  V acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < 4; ++q) acc[r][q] = S::zero();
  const float* b1 = b0 + ldb;
  const float* b2 = b1 + ldb;
  const float* b3 = b2 + ldb;
  Index p = 0;
  for (; p + S::lanes <= k; p += S::lanes) {
    const V w0 = S::load(b0 + p), w1 = S::load(b1 + p), w2 = S::load(b2 + p), w3 = S::load(b3 + p);
    for (int r = 0; r < MR; ++r) {
      const V u = S::load(a + r * lda + p);
      acc[r][0] = S::fma(u, w0, acc[r][0]);
      acc[r][1] = S::fma(u, w1, acc[r][1]);
      acc[r][2] = S::fma(u, w2, acc[r][2]);
      acc[r][3] = S::fma(u, w3, acc[r][3]);
    }
  }
  for (int r = 0; r < MR; ++r) _mm_storeu_ps(out + 4 * r, S::sum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
  for (; p < k; ++p)  // the k % lanes tail
    for (int r = 0; r < MR; ++r) {
      const float u = a[r * lda + p];
      out[4 * r] += u * b0[p];
      out[4 * r + 1] += u * b1[p];
      out[4 * r + 2] += u * b2[p];
      out[4 * r + 3] += u * b3[p];
    }
}

template <class S>
void skinny_nt_f32(Index m, Index n, Index k, float alpha, const float* a, Index lda, const float* b, Index ldb,
                   float beta, float* c, Index ldc) {
  auto store = [&](Index i, Index j, float s) {
    float& o = c[i * ldc + j];
    o = beta == 0.0f ? alpha * s : alpha * s + beta * o;  // beta = 0 ignores C (NaN included)
  };
  float out[16];
  auto rows = [&](auto mr, Index i, Index j) {
    constexpr int MR = decltype(mr)::value;
    skinny_block_f32<S, MR>(k, a + i * lda, lda, b + j * ldb, ldb, out);
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < 4; ++q) store(i + r, j + q, out[4 * r + q]);
  };
  Index j = 0;
  for (; j + 4 <= n; j += 4) {
    Index i = 0;
    for (; i + 4 <= m; i += 4) rows(std::integral_constant<int, 4>{}, i, j);
    if (i + 2 <= m) {
      rows(std::integral_constant<int, 2>{}, i, j);
      i += 2;
    }
    if (i < m) rows(std::integral_constant<int, 1>{}, i, j);
  }
  if (j < n)  // the last n % 4 rows of B
    skinny_nt_portable<float>(m, n - j, k, alpha, a, lda, b + j * ldb, ldb, beta, c + j, ldc);
}
#endif  // TNN_SKINNY_SIMD

// Few rows of A times B stored [n, k]: the vector kernel for float where it is compiled,
// else the portable one.
template <class T>
void skinny_nt(Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T beta, T* c,
               Index ldc) {
#ifdef TNN_SKINNY_SIMD
  if constexpr (std::is_same_v<T, float>) {
    skinny_nt_f32<SkinnyLanes>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  skinny_nt_portable<T>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Eigen's product of one thread (the EIGEN backend, and double with tnn's own kernels).
template <class T>
void eigen_gemm(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb,
                T beta, T* c, Index ldc) {
  if (m == 0 || n == 0) return;
  StridedMutMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  if (beta == T(0))
    C.setZero();
  else if (beta != T(1))
    C *= beta;
  const double work = double(m) * double(n) * double(k);
  if (k > 0) eigen_gemm_acc(ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc, work <= kBlasSmallNN);
}

// One thread's product.
template <class T>
void gemm_serial(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb,
                 T beta, T* c, Index ldc, Precision prec) {
  if (m == 0 || n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (prec == Precision::Bf16) {
      own_gemm(best_gemm_kernel(), Precision::Bf16, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
  }
  if (m <= kSkinnyMaxRows && ta == Op::N && tb == Op::T && k > 0) {
    skinny_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#ifdef TNN_USE_BLAS
  const double work = double(m) * double(n) * double(k);
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
#elif !defined(TNN_GEMM_EIGEN)
  if constexpr (std::is_same_v<T, float>) {
    own_gemm(best_gemm_kernel(), Precision::F32, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  eigen_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace detail

// C [m, n] (leading dimension ldc) = alpha op(A) op(B) + beta C, all row-major;
// op(A) is [m, k], op(B) is [k, n]; lda, ldb are the row strides of A and B as
// stored. beta = 0 ignores C's old contents (NaN included), as BLAS does.
// Precision::Bf16 takes float operands only (a double product in bf16 is a caller's error).
template <class T>
void gemm(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T beta,
          T* c, Index ldc, Precision prec = Precision::F32) {
  if (!std::is_same_v<T, float> && prec != Precision::F32)
    fail<ValueError>("gemm: expected float operands for a bf16 product, got ", sizeof(T) * 8, "-bit floats");
  if (m == 0 || n == 0) return;
  detail::blas_int(m, "m");
  detail::blas_int(n, "n");
  detail::blas_int(k, "k");
  detail::blas_int(lda, "lda");
  detail::blas_int(ldb, "ldb");
  detail::blas_int(ldc, "ldc");
  // A multithreaded BLAS splits the product itself; tnn's split would multiply the threads.
  const int threads = prec == Precision::F32 && detail::blas_threads_per_call() > 1 ? 1 : parallel_threads();
  const double work = double(m) * double(n) * double(k);
  // Blocks of whole 16-row (or 16-column) panels, one per thread, along the longer side.
  constexpr Index kPanel = 16;
  const bool split_rows = m >= n;
  const Index len = split_rows ? m : n;
  const Index per = (len + threads - 1) / threads;
  const Index block = (per + kPanel - 1) / kPanel * kPanel;
  const Index nblocks = block > 0 ? (len + block - 1) / block : 0;
  if (threads < 2 || work < grain::kGemmMinWork || nblocks < 2) {
    detail::gemm_serial(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, prec);
    return;
  }
  ::tnn::parallel_for(nblocks, true, [&](Index i) {
    const Index i0 = i * block, cnt = std::min(block, len - i0);
    if (split_rows) {
      // rows i0.. of op(A) and C
      const T* ai = ta == Op::N ? a + i0 * lda : a + i0;
      detail::gemm_serial(ta, tb, cnt, n, k, alpha, ai, lda, b, ldb, beta, c + i0 * ldc, ldc, prec);
    } else {
      // columns i0.. of op(B) and C
      const T* bi = tb == Op::N ? b + i0 : b + i0 * ldb;
      detail::gemm_serial(ta, tb, m, cnt, k, alpha, a, lda, bi, ldb, beta, c + i0, ldc, prec);
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
void gemm_nn(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T beta, T* c, Index ldc,
             Precision prec = Precision::F32) {
  gemm(Op::N, Op::N, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc, prec);
}
// C [m, n] = A [m, k] B^T (B stored [n, k]) + beta C: a Linear forward, x W^T
template <class T>
void gemm_nt(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T beta, T* c, Index ldc,
             Precision prec = Precision::F32) {
  gemm(Op::N, Op::T, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc, prec);
}
// C [m, n] = A^T (A stored [k, m]) B [k, n] + beta C: a weight gradient, dy^T x
template <class T>
void gemm_tn(Index m, Index n, Index k, const T* a, Index lda, const T* b, Index ldb, T beta, T* c, Index ldc,
             Precision prec = Precision::F32) {
  gemm(Op::T, Op::N, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc, prec);
}

}  // namespace tnn
