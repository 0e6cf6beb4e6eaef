// tnn::gemm against a plain triple loop: every op(A) op(B) combination, beta 0
// (old contents ignored, NaN included), 1 and other, strided operands, the
// one-row (matrix-vector) path, the small-NN path and products large enough to be
// split over threads.
#include <gtest/gtest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "tnn/core/gemm.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/rng.hpp"

using namespace tnn;

namespace {

// tnn's own split of large products is what these tests check: one BLAS thread per call,
// as tnn::set_num_threads sets it (a multithreaded OpenBLAS would get whole products).
[[maybe_unused]] const int kThreadSetup = set_num_threads(0);

template <class T>
std::vector<T> random_vec(Index n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<T>(rng.uniform(-1.0, 1.0));
  return v;
}

// The product under test: gemm, or one of its kernels called directly.
template <class T>
using Product = void (*)(Op, Op, Index, Index, Index, T, const T*, Index, const T*, Index, T, T*, Index);

// Checks one product; operands stored with row strides larger than their width.
template <class T>
void check(Op ta, Op tb, Index m, Index n, Index k, T beta, double tol, Product<T> product = &gemm<T>) {
  const Index ar = ta == Op::N ? m : k, ac = ta == Op::N ? k : m;
  const Index br = tb == Op::N ? k : n, bc = tb == Op::N ? n : k;
  const Index lda = ac + 3, ldb = bc + 5, ldc = n + 2;
  const auto a = random_vec<T>(ar * lda, 1), b = random_vec<T>(br * ldb, 2);
  auto c = random_vec<T>(m * ldc, 3);
  if (beta == T(0))  // the [m, n] block only: the padding must come back untouched
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) c[i * ldc + j] = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> ref = c;
  const T alpha = T(0.75);
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) {
      double s = 0;
      for (Index p = 0; p < k; ++p) {
        const T av = ta == Op::N ? a[i * lda + p] : a[p * lda + i];
        const T bv = tb == Op::N ? b[p * ldb + j] : b[j * ldb + p];
        s += double(av) * double(bv);
      }
      const double old = beta == T(0) ? 0.0 : double(beta) * double(ref[i * ldc + j]);
      ref[i * ldc + j] = static_cast<T>(double(alpha) * s + old);
    }
  product(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  double err = 0;
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) err = std::max(err, std::abs(double(c[i * ldc + j]) - double(ref[i * ldc + j])));
  EXPECT_LE(err, tol * std::sqrt(double(k) + 1)) << "op " << int(ta) << int(tb) << " m=" << m << " n=" << n
                                                 << " k=" << k << " beta=" << beta;
  // Padding columns beyond n are untouched.
  for (Index i = 0; i < m; ++i)
    for (Index j = n; j < ldc; ++j) EXPECT_EQ(c[i * ldc + j], ref[i * ldc + j]);
}

const Op kOps[] = {Op::N, Op::T};

}  // namespace

TEST(Gemm, EveryTransposeAndBetaSmall) {
  for (Op ta : kOps)
    for (Op tb : kOps)
      for (double beta : {0.0, 1.0, -0.5}) {
        check<double>(ta, tb, 7, 5, 9, beta, 1e-14);
        check<float>(ta, tb, 7, 5, 9, float(beta), 1e-5);
      }
}

TEST(Gemm, OneRowIsAMatrixVectorProduct) {
  for (Op ta : kOps)
    for (Op tb : kOps)
      for (double beta : {0.0, 1.0}) {
        check<float>(ta, tb, 1, 300, 70, float(beta), 1e-5);
        check<double>(ta, tb, 1, 33, 250, beta, 1e-14);
      }
}

// 1..kSkinnyMaxRows rows times B^T (batched decoding) take the skinny kernel, with n not a
// multiple of its 4-row blocks and an odd m; one row past it the GEMM again.
TEST(Gemm, FewRowsTimesTransposedB) {
  for (Index m : {Index(1), Index(2), Index(3), detail::kSkinnyMaxRows, detail::kSkinnyMaxRows + 1})
    for (double beta : {0.0, 1.0, -0.5}) {
      check<float>(Op::N, Op::T, m, 1538, 70, float(beta), 1e-5);
      check<double>(Op::N, Op::T, m, 37, 250, beta, 1e-14);
      check<double>(Op::N, Op::T, m, 3, 5, beta, 1e-14);
    }
}

// Each skinny kernel called directly (gemm takes only the widest the build has): rows 1..8
// (the 4-, 2- and 1-row passes), n not a multiple of 4, k below, at and past the vector width
// with a tail.
template <class T>
void check_skinny_kernel(Product<T> kernel) {
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-14;
  for (Index m = 1; m <= detail::kSkinnyMaxRows; ++m)
    for (Index k : {Index(1), Index(7), Index(16), Index(37), Index(512)})
      for (double beta : {0.0, 1.0, -0.5}) {
        check<T>(Op::N, Op::T, m, 11, k, T(beta), tol, kernel);
        check<T>(Op::N, Op::T, m, 64, k, T(beta), tol, kernel);
      }
}

TEST(Gemm, SkinnyKernelsAgreeWithTheTripleLoop) {
  check_skinny_kernel<float>([](Op, Op, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                                const float* b, Index ldb, float beta, float* c, Index ldc) {
    detail::skinny_nt_portable<float>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
  check_skinny_kernel<double>([](Op, Op, Index m, Index n, Index k, double alpha, const double* a, Index lda,
                                 const double* b, Index ldb, double beta, double* c, Index ldc) {
    detail::skinny_nt_portable<double>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
#ifdef TNN_SKINNY_SIMD
  check_skinny_kernel<float>([](Op, Op, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                                const float* b, Index ldb, float beta, float* c, Index ldc) {
    detail::skinny_nt_f32<detail::F32x8>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
#ifdef __AVX512F__
  check_skinny_kernel<float>([](Op, Op, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                                const float* b, Index ldb, float beta, float* c, Index ldc) {
    detail::skinny_nt_f32<detail::F32x16>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
#endif
#else
  GTEST_SKIP() << "no AVX2/FMA target: the vector kernels are not compiled (the portable one was checked)";
#endif
}

TEST(Gemm, LargeProductsSplitOverThreads) {
  for (Op ta : kOps)
    for (Op tb : kOps) {
      check<float>(ta, tb, 300, 170, 130, 1.0f, 1e-5);  // rows split
      check<float>(ta, tb, 90, 400, 120, 0.0f, 1e-5);   // columns split
      check<double>(ta, tb, 260, 150, 100, 0.5, 1e-14);
    }
}

TEST(Gemm, EmptyDimensions) {
  check<float>(Op::N, Op::T, 4, 6, 0, 0.0f, 0);  // k = 0: C = beta C
  check<float>(Op::N, Op::T, 4, 6, 0, 2.0f, 1e-6);
  std::vector<float> c(4, 1.0f);
  gemm<float>(Op::N, Op::N, 0, 4, 3, 1.0f, nullptr, 3, nullptr, 4, 0.0f, c.data(), 4);
  EXPECT_EQ(c[0], 1.0f);
}

// Large enough to be split over threads (m n k above grain::kGemmMinWork): at each
// thread count the same call twice is bit-identical (a static split), and 1, 2 and
// 3 threads agree with each other and with the triple loop to float rounding
// (each count splits the rows differently, so only rounding may differ).
TEST(Gemm, ResultsAreDeterministicAtEachThreadCountAndAgreeAcrossCounts) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP: one thread only";
#else
  const Index m = 257, n = 129, k = 300;
  ASSERT_GT(double(m) * n * k, grain::kGemmMinWork);
  const auto a = random_vec<float>(m * k, 4), b = random_vec<float>(n * k, 5);
  std::vector<double> ref(static_cast<std::size_t>(m * n));
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) {
      double s = 0;
      for (Index p = 0; p < k; ++p) s += double(a[i * k + p]) * double(b[j * k + p]);
      ref[i * n + j] = s;
    }
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> by_count;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    ASSERT_EQ(parallel_threads(), threads);
    std::vector<float> c1(static_cast<std::size_t>(m * n)), c2(c1.size(), 7.0f);
    gemm_nt<float>(m, n, k, a.data(), k, b.data(), k, 0.0f, c1.data(), n);
    gemm_nt<float>(m, n, k, a.data(), k, b.data(), k, 0.0f, c2.data(), n);
    EXPECT_EQ(c1, c2) << threads << " threads: two identical calls differ";
    double err = 0;
    for (std::size_t i = 0; i < c1.size(); ++i) err = std::max(err, std::abs(double(c1[i]) - ref[i]));
    EXPECT_LE(err, 1e-5 * std::sqrt(double(k))) << threads << " threads vs the triple loop";
    by_count.push_back(c1);
  }
  omp_set_num_threads(saved);
  for (std::size_t t = 1; t < by_count.size(); ++t) {
    double d = 0;
    for (std::size_t i = 0; i < by_count[0].size(); ++i)
      d = std::max(d, std::abs(double(by_count[t][i]) - double(by_count[0][i])));
    EXPECT_LE(d, 2e-5 * std::sqrt(double(k))) << t + 1 << " threads vs 1 thread";
  }
#endif
}
