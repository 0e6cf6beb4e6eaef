// The one parallel loop of the library, and the sizes at which it is worth waking a
// thread, named in one place.
// OpenMP loops that cost nothing when they run on one thread. libgomp (GCC 12)
// heap-allocates a team for every parallel region of one thread, including a
// `parallel if(false)` and any region under OMP_NUM_THREADS=1, and frees it at the
// end; so a steady-state step that must not allocate runs such loops serially
// without entering a region at all.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tnn/core/tensor.hpp"

// OpenMP pragmas go through _Pragma so that a build without OpenMP sees nothing
// (no -Wunknown-pragmas) and runs serially.
#ifdef _OPENMP
#define TNN_PRAGMA_(x) _Pragma(#x)
#define TNN_OMP(x) TNN_PRAGMA_(omp x)
#else
#define TNN_OMP(x)
#endif

namespace tnn {

// When a loop is worth splitting over threads. Below these sizes the fork/join of a
// thread team costs more than it saves (and on a busy machine waking a second thread
// can cost a whole scheduler time slice). Measured on this project's machine (see the
// README's benchmarks); every threshold of every header is here.
namespace grain {
// Direct O(N^2) Toeplitz forms (1-D and 2-D): multiply-adds of one call.
inline constexpr Index kToeplitzDirectMinWork = Index(1) << 17;
// Rows (output positions) a thread takes at a time in the direct Toeplitz forms.
inline constexpr Index kToeplitzRowChunk = 16;
// GEMM: multiply-adds m n k of one product.
inline constexpr double kGemmMinWork = double(1 << 21);
// Fused elementwise passes (activations): elements per thread task.
inline constexpr Index kElementwiseBlock = Index(1) << 15;
// TNO decay powers lambda^|k|: positions x channels.
inline constexpr Index kDecayPowersMinWork = Index(1) << 16;
// Incremental decoding's history sum, multiply-adds of one step: between two decoding
// steps the other threads go to sleep, and waking them costs more than they save
// (bench model, 2 threads: DecodeToken/512, 0.8 M multiply-adds a layer, was 0.74 ms
// split vs 0.63 ms serial; at 4096, 6.3 M, the split wins 3.58 vs 4.51 ms).
inline constexpr Index kDecodeMinWork = Index(1) << 21;
// Incremental decoding's FFT blocks (online convolution): block length x channels x batch.
inline constexpr Index kDecodeBlockMinWork = Index(1) << 16;
}  // namespace grain

namespace detail {
// The index of the calling thread inside the running parallel_for's team, 0 outside
// one (also in a caller's own OpenMP threads): workspaces [max_threads()] are taken by it.
inline int& worker_slot() {
  thread_local int slot = 0;
  return slot;
}
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() { return worker_slot(); }
}  // namespace detail

// Threads a parallel_for may use here: 1 inside an enclosing parallel region.
inline int parallel_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

enum class Schedule { Static, Dynamic };

// f(i) for i in [0, n), split over the threads when `parallel` holds and more than
// one thread is available; serially otherwise. Static: the same split for the same
// thread count. Dynamic: tasks of `chunk` indices taken as threads free up (for
// uneven tasks; deterministic too when each i writes its own outputs). Use it in
// place of `#pragma omp parallel for if (cond)`; inside f, detail::thread_id() is the
// index of the thread running it (a workspace slot).
template <class F>
void parallel_for(Index n, bool parallel, F&& f, Schedule schedule = Schedule::Static, Index chunk = 1) {
#ifdef _OPENMP
  if (parallel && n > 1 && parallel_threads() > 1) {
    if (schedule == Schedule::Static) {
#pragma omp parallel
      {
        detail::worker_slot() = omp_get_thread_num();
#pragma omp for schedule(static)
        for (Index i = 0; i < n; ++i) f(i);
        detail::worker_slot() = 0;
      }
    } else {
      const int c = static_cast<int>(chunk < 1 ? 1 : chunk);
#pragma omp parallel
      {
        detail::worker_slot() = omp_get_thread_num();
#pragma omp for schedule(dynamic, c)
        for (Index i = 0; i < n; ++i) f(i);
        detail::worker_slot() = 0;
      }
    }
    return;
  }
#else
  (void)schedule;
  (void)chunk;
#endif
  for (Index i = 0; i < n; ++i) f(i);
}

}  // namespace tnn
