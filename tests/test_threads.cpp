// Process-wide thread settings: tnn's products never change the BLAS's or OpenMP's
// settings by themselves; tnn::set_num_threads (core/gemm.hpp) is the one explicit call
// that does, and does what it documents. Also the workspace slot parallel_for hands
// out (detail::thread_id), which must stay below max_threads() wherever it is called from.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tnn/core/error.hpp"
#include "tnn/core/gemm.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/rng.hpp"

namespace {

using tnn::Index;

#if defined(TNN_USE_BLAS) && defined(OPENBLAS_VERSION)
constexpr bool kPthreadsOpenBlasPossible = true;
int blas_threads() { return openblas_get_num_threads(); }
void set_blas_threads(int n) { openblas_set_num_threads(n); }
bool blas_is_pthreads() { return openblas_get_parallel() == OPENBLAS_THREAD; }
#else
constexpr bool kPthreadsOpenBlasPossible = false;
int blas_threads() { return 1; }
void set_blas_threads(int) {}
bool blas_is_pthreads() { return false; }
#endif

int omp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
void set_omp_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

// C = A B by the obvious triple loop in double, A [m, k], B [k, n].
std::vector<double> reference_product(const std::vector<float>& a, const std::vector<float>& b, Index m, Index n,
                                      Index k) {
  std::vector<double> c(static_cast<std::size_t>(m * n), 0.0);
  for (Index i = 0; i < m; ++i)
    for (Index p = 0; p < k; ++p)
      for (Index j = 0; j < n; ++j) c[i * n + j] += double(a[i * k + p]) * double(b[p * n + j]);
  return c;
}

// A product large enough that tnn would split it over threads (m n k above
// grain::kGemmMinWork), checked against the reference.
double max_error_of_large_product() {
  const Index m = 256, n = 192, k = 96;
  static_assert(256.0 * 192.0 * 96.0 > tnn::grain::kGemmMinWork, "the product must be large enough to split");
  tnn::Rng rng(2);
  std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n)),
      c(static_cast<std::size_t>(m * n), 0.f);
  for (auto& v : a) v = static_cast<float>(rng.uniform(-1, 1));
  for (auto& v : b) v = static_cast<float>(rng.uniform(-1, 1));
  tnn::gemm_nn<float>(m, n, k, a.data(), k, b.data(), n, 0.f, c.data(), n);
  const std::vector<double> ref = reference_product(a, b, m, n, k);
  double err = 0;
  for (std::size_t i = 0; i < c.size(); ++i) err = std::max(err, std::abs(double(c[i]) - ref[i]));
  return err;
}

TEST(Threads, GemmLeavesTheBlasAndOpenMpThreadCountsAlone) {
  const int omp_before = omp_threads();
  if (blas_is_pthreads()) set_blas_threads(2);
  const int blas_before = blas_threads();
  EXPECT_LT(max_error_of_large_product(), 1e-4);
  EXPECT_EQ(blas_threads(), blas_before) << "a product changed the BLAS's thread count";
  EXPECT_EQ(omp_threads(), omp_before) << "a product changed OpenMP's thread count";
  if (kPthreadsOpenBlasPossible && blas_is_pthreads()) {
    EXPECT_EQ(blas_before, 2);
  }
}

TEST(Threads, SetNumThreadsDoesWhatItSays) {
  const int omp_before = omp_threads();
  if (blas_is_pthreads()) set_blas_threads(2);
  // 0 keeps OpenMP's count and makes the BLAS single-threaded.
  EXPECT_EQ(tnn::set_num_threads(0), omp_before);
  EXPECT_EQ(omp_threads(), omp_before);
  EXPECT_EQ(blas_threads(), 1);
  EXPECT_LT(max_error_of_large_product(), 1e-4);
#ifdef _OPENMP
  EXPECT_EQ(tnn::set_num_threads(1), 1);
  EXPECT_EQ(omp_threads(), 1);
  EXPECT_EQ(tnn::set_num_threads(3), 3);
  EXPECT_EQ(omp_threads(), 3);
#endif
  EXPECT_THROW(tnn::set_num_threads(-1), tnn::ValueError);
  set_omp_threads(omp_before);
}

TEST(Threads, ResultsDoNotDependOnWhoSplitsTheProduct) {
  // The BLAS splitting a product over its own threads and tnn splitting it into
  // single-threaded calls must both give the reference.
  if (!blas_is_pthreads()) GTEST_SKIP() << "needs OpenBLAS's pthreads build";
  set_blas_threads(2);
  const double err_blas_split = max_error_of_large_product();
  tnn::set_num_threads(0);
  const double err_tnn_split = max_error_of_large_product();
  EXPECT_LT(err_blas_split, 1e-4);
  EXPECT_LT(err_tnn_split, 1e-4);
}

TEST(Threads, WorkspaceSlotIsTheThreadInsideParallelForAndZeroOutside) {
  EXPECT_EQ(tnn::detail::thread_id(), 0);
  const int nt = tnn::detail::max_threads();
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(nt));
  std::atomic<int> bad{0};
  tnn::parallel_for(
      1000, true,
      [&](Index) {
        const int s = tnn::detail::thread_id();
        if (s < 0 || s >= nt)
          ++bad;
        else
          ++seen[static_cast<std::size_t>(s)];
      },
      tnn::Schedule::Dynamic, 1);
  EXPECT_EQ(bad.load(), 0);
  int total = 0;
  for (auto& v : seen) total += v.load();
  EXPECT_EQ(total, 1000);
  EXPECT_EQ(tnn::detail::thread_id(), 0) << "the calling thread's slot must be 0 again after the loop";
}

#ifdef _OPENMP
TEST(Threads, WorkspaceSlotInsideACallersOwnWiderTeamIsZero) {
  // A caller's own region with more threads than max_threads(): parallel_for runs
  // serially in each of them, and the slot it hands out stays 0 (a workspace index
  // below max_threads), not the caller's thread number.
  const int nt = tnn::detail::max_threads();
  std::atomic<int> nonzero{0}, calls{0};
#pragma omp parallel num_threads(nt + 2)
  {
    tnn::parallel_for(10, true, [&](Index) {
      ++calls;
      if (tnn::detail::thread_id() != 0) ++nonzero;
    });
  }
  EXPECT_EQ(nonzero.load(), 0);
  EXPECT_GE(calls.load(), 10);
}
#endif

}  // namespace
