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

namespace tnn {

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
// place of `#pragma omp parallel for if (cond)`.
template <class F>
void parallel_for(Index n, bool parallel, F&& f, Schedule schedule = Schedule::Static, Index chunk = 1) {
#ifdef _OPENMP
  if (parallel && n > 1 && parallel_threads() > 1) {
    if (schedule == Schedule::Static) {
#pragma omp parallel for schedule(static)
      for (Index i = 0; i < n; ++i) f(i);
    } else {
      const int c = static_cast<int>(chunk < 1 ? 1 : chunk);
#pragma omp parallel for schedule(dynamic, c)
      for (Index i = 0; i < n; ++i) f(i);
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
