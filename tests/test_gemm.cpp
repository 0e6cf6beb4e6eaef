// tnn::gemm and each of its kernels against the triple loop (detail::gemm_naive): every
// op(A) op(B) combination, beta 0 (old contents ignored, NaN included), 1 and other,
// strided operands, every tail of the packed kernels' register tiles and cache blocks, the
// bf16 product, the one-row (matrix-vector) path, the small-NN path and products large
// enough to be split over threads.
#include <gtest/gtest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <functional>
#include <limits>
#include <string>
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
using Product = std::function<void(Op, Op, Index, Index, Index, T, const T*, Index, const T*, Index, T, T*, Index)>;

template <class T>
Product<T> public_gemm() {
  return [](Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T beta,
            T* c, Index ldc) { gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); };
}

// Checks one product against the triple loop (`reference`: detail::gemm_naive, or its bf16
// form); operands stored with row strides larger than their width.
template <class T>
void check(Op ta, Op tb, Index m, Index n, Index k, T beta, double tol, const Product<T>& product = public_gemm<T>(),
           const Product<T>& reference = &detail::gemm_naive<T>, T alpha = T(0.75)) {
  const Index ar = ta == Op::N ? m : k, ac = ta == Op::N ? k : m;
  const Index br = tb == Op::N ? k : n, bc = tb == Op::N ? n : k;
  const Index lda = ac + 3, ldb = bc + 5, ldc = n + 2;
  const auto a = random_vec<T>(ar * lda, 1), b = random_vec<T>(br * ldb, 2);
  auto c = random_vec<T>(m * ldc, 3);
  if (beta == T(0))  // the [m, n] block only: the padding must come back untouched
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) c[i * ldc + j] = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> ref = c;
  reference(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, ref.data(), ldc);
  product(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  double err = 0;
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) {
      const double d = std::abs(double(c[i * ldc + j]) - double(ref[i * ldc + j]));
      err = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(err, d);
    }
  EXPECT_LE(err, tol * std::sqrt(double(k) + 1)) << "op " << int(ta) << int(tb) << " m=" << m << " n=" << n
                                                 << " k=" << k << " beta=" << beta;
  // Padding columns beyond n are untouched.
  for (Index i = 0; i < m; ++i)
    for (Index j = n; j < ldc; ++j) EXPECT_EQ(c[i * ldc + j], ref[i * ldc + j]);
}

const Op kOps[] = {Op::N, Op::T};

}  // namespace

// The twin itself, on a product small enough to do by hand.
TEST(Gemm, TripleLoopIsTheProduct) {
  const float a[] = {1, 2, 3, 4, 5, 6};  // [2, 3]
  const float b[] = {1, 0, 2, 1, 0, 3};  // [3, 2]
  float c[] = {1, 1, 1, 1};
  detail::gemm_naive<float>(Op::N, Op::N, 2, 2, 3, 2.0f, a, 3, b, 2, 0.5f, c, 2);
  EXPECT_EQ(c[0], 2.0f * (1 + 4 + 0) + 0.5f);
  EXPECT_EQ(c[1], 2.0f * (0 + 2 + 9) + 0.5f);
  EXPECT_EQ(c[2], 2.0f * (4 + 10 + 0) + 0.5f);
  EXPECT_EQ(c[3], 2.0f * (0 + 5 + 18) + 0.5f);
}

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
  check<float>(Op::T, Op::N, 20, 40, 0, 0.0f, 0);
  check<float>(Op::T, Op::N, 20, 40, 0, -0.5f, 1e-6);
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

namespace {

// Shapes for the packed kernels: m, n, k of 1; tails of every register tile (14 x 32, 6 x 16,
// 4 x 8) and of the 16-unit transposes; k past one cache block (256 units: 600 fp32 units,
// 300 bf16 pairs) and odd (the last bf16 pair half empty); m past MC (336 rows) and n past
// NC (3072 columns).
struct Shape3 {
  Index m, n, k;
};
const Shape3 kPackedShapes[] = {{1, 1, 1},    {1, 37, 5},     {15, 1, 9},     {3, 2, 1},   {29, 65, 17},
                                {14, 32, 16}, {33, 70, 257},  {50, 40, 601},  {350, 20, 9}, {3, 3100, 5},
                                {7, 33, 1200}, {6, 16, 2}, {28, 96, 31}};

Product<float> own_kernel(detail::GemmKernel kernel, Precision prec) {
  return [=](Op ta, Op tb, Index m, Index n, Index k, float alpha, const float* a, Index lda, const float* b,
             Index ldb, float beta, float* c, Index ldc) {
    detail::own_gemm(kernel, prec, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  };
}

}  // namespace

// Every kernel of tnn's own GEMM that this CPU runs, fp32 and bf16, against the triple loop
// (the bf16 product against the triple loop on bf16-rounded inputs, to fp32 summation's
// tolerance). The kernels this CPU lacks are named in the output.
TEST(Gemm, PackedKernelsAgreeWithTheTripleLoop) {
  std::string skipped;
  for (detail::GemmKernel kernel : detail::kGemmKernels) {
    if (!detail::gemm_kernel_runs(kernel)) {
      skipped += std::string(" ") + detail::gemm_kernel_name(kernel);
      continue;
    }
    for (Precision prec : {Precision::F32, Precision::Bf16}) {
      SCOPED_TRACE(std::string(detail::gemm_kernel_name(kernel)) +
                   (prec == Precision::Bf16 ? " bf16" : " fp32"));
      const Product<float> reference = prec == Precision::Bf16 ? Product<float>(&detail::gemm_naive_bf16)
                                                                       : Product<float>(&detail::gemm_naive<float>);
      for (const Shape3& s : kPackedShapes)
        for (Op ta : kOps)
          for (Op tb : kOps)
            for (float beta : {0.0f, 1.0f, -0.5f})
              check<float>(ta, tb, s.m, s.n, s.k, beta, 1e-5, own_kernel(kernel, prec), reference);
      check<float>(Op::N, Op::T, 19, 45, 70, 0.5f, 1e-5, own_kernel(kernel, prec), reference, -2.0f);  // alpha
    }
  }
  if (!skipped.empty()) std::cout << "kernels this CPU does not run (not checked):" << skipped << "\n";
}

// The bf16 product through the public entry points: close to the fp32 product (inputs
// rounded to 8 significant bits), exactly what the triple loop on rounded inputs gives to
// fp32 summation's tolerance, split over threads like the fp32 one.
TEST(Gemm, Bf16ProductIsTheProductOfRoundedInputs) {
  for (Op ta : kOps)
    for (Op tb : kOps)
      for (const Shape3 s : {Shape3{7, 5, 9}, Shape3{300, 170, 130}, Shape3{90, 400, 121}}) {
        const Product<float> bf16 = [](Op a_op, Op b_op, Index m, Index n, Index k, float alpha, const float* a,
                                       Index lda, const float* b, Index ldb, float beta, float* c, Index ldc) {
          gemm<float>(a_op, b_op, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Precision::Bf16);
        };
        check<float>(ta, tb, s.m, s.n, s.k, 0.5f, 1e-5, bf16, &detail::gemm_naive_bf16);
        check<float>(ta, tb, s.m, s.n, s.k, 0.0f, 1e-2, bf16, &detail::gemm_naive<float>);
      }
  std::vector<float> a(6, 1.0f), b(6, 1.0f), c(4, 0.0f);
  gemm_nn<float>(2, 2, 3, a.data(), 3, b.data(), 2, 0.0f, c.data(), 2, Precision::Bf16);
  EXPECT_EQ(c[0], 3.0f);
}

TEST(Gemm, Bf16RoundsToNearestEven) {
  EXPECT_EQ(detail::bf16_round(1.0f), 1.0f);
  EXPECT_EQ(detail::bf16_round(1.0f + 1.0f / 256), 1.0f);                   // a tie: to even (down)
  EXPECT_EQ(detail::bf16_round(1.0f + 3.0f / 256), 1.0f + 4.0f / 256);      // a tie: to even (up)
  EXPECT_EQ(detail::bf16_round(1.0f + 1.0f / 256 + 1e-6f), 1.0f + 2.0f / 256);  // past the tie
  EXPECT_TRUE(std::isnan(detail::bf16_round(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(detail::bf16_round(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
}

TEST(Gemm, Bf16OfDoublesIsRefused) {
  std::vector<double> a(4, 1.0), c(4, 0.0);
  EXPECT_THROW(gemm_nn<double>(2, 2, 2, a.data(), 2, a.data(), 2, 0.0, c.data(), 2, Precision::Bf16), ValueError);
}

// The other backends, called directly: Eigen's product is always compiled; the BLAS's when
// tnn is configured with TNN_GEMM=blas.
TEST(Gemm, EigenAndBlasBackendsAgreeWithTheTripleLoop) {
  const Product<float> eigen_f = &detail::eigen_gemm<float>;
  const Product<double> eigen_d = &detail::eigen_gemm<double>;
  for (Op ta : kOps)
    for (Op tb : kOps)
      for (double beta : {0.0, 1.0, -0.5}) {
        check<float>(ta, tb, 37, 45, 29, float(beta), 1e-5, eigen_f);
        check<float>(ta, tb, 130, 120, 110, float(beta), 1e-5, eigen_f);  // past the small-product threshold
        check<double>(ta, tb, 37, 45, 29, beta, 1e-14, eigen_d);
      }
#ifdef TNN_USE_BLAS
  const Product<float> blas_f = [](Op ta, Op tb, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                                   const float* b, Index ldb, float beta, float* c, Index ldc) {
    detail::blas_gemm(ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
  };
  for (Op ta : kOps)
    for (Op tb : kOps)
      for (double beta : {0.0, 1.0, -0.5}) check<float>(ta, tb, 37, 45, 29, float(beta), 1e-5, blas_f);
#else
  std::cout << "built without a BLAS (TNN_GEMM is not blas): the BLAS backend is not checked\n";
#endif
}
