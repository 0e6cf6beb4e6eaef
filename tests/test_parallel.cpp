// parallel_for visits every index exactly once, in parallel or not, with either
// schedule, and runs serially inside an enclosing parallel region.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "tnn/core/parallel.hpp"

using namespace tnn;

TEST(Parallel, EveryIndexOnceWhateverTheMode) {
  for (bool par : {false, true})
    for (Schedule s : {Schedule::Static, Schedule::Dynamic})
      for (Index n : {0, 1, 7, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        parallel_for(n, par, [&](Index i) { hits[static_cast<std::size_t>(i)]++; }, s, 3);
        for (Index i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<std::size_t>(i)].load(), 1) << i;
      }
}

TEST(Parallel, NoNestedTeams) {
  std::atomic<int> outer_threads{0};
  parallel_for(4, true, [&](Index) {
    EXPECT_EQ(parallel_threads(), 1);  // inside a region (or with one thread anyway)
    outer_threads++;
  });
  EXPECT_EQ(outer_threads.load(), 4);
}
