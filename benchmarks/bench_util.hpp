// What the kernel benchmarks (bench_toeplitz.cpp, bench_toeplitz2d.cpp) share: random
// inputs, the thread count, one registration helper, and the timed loop of the bare FFT
// round trip that each kernel is held against.
#pragma once

#include <benchmark/benchmark.h>

#include <complex>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tnn/core/fft.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn_bench {

using Scalar = float;  // the precision models train in

inline tnn::Tensor<Scalar> random_tensor(const tnn::Shape& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  tnn::Tensor<Scalar> t(s);
  for (auto& v : t) v = nd(rng);
  return t;
}

inline int omp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// One family "op/C:<C>" over the arguments `args` (named `arg_name`), in microseconds of
// wall time, with a complexity fit.
inline void add_family(const char* op, void (*fn)(benchmark::State&, tnn::Index), tnn::Index C,
                       const char* arg_name, const std::vector<int64_t>& args) {
  const std::string name = std::string(op) + "/C:" + std::to_string(C);
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn, C);
  b->ArgName(arg_name)->Unit(benchmark::kMicrosecond)->UseRealTime()->Complexity();
  for (int64_t a : args) b->Arg(a);
}

// The floor of an FFT kernel: per channel c, one forward and one inverse real transform
// (`plan`: a 1-D or 2-D plan of the backend) of in[c * stride ..] into out, spread over the
// threads like the kernel (dynamic chunks of 16 channels); `spectrum` complex values of
// scratch per thread. No transposes, no spectrum product, no scaling.
template <class Plan>
void time_round_trips(benchmark::State& state, const Plan& plan, tnn::Index C, tnn::Index stride,
                      tnn::Index spectrum, const tnn::AlignedVector<Scalar>& in, tnn::AlignedVector<Scalar>& out) {
  using Complex = std::complex<Scalar>;
  std::vector<tnn::AlignedVector<Complex>> spec(static_cast<std::size_t>(omp_threads()),
                                                tnn::AlignedVector<Complex>(static_cast<std::size_t>(spectrum)));
  for (auto _ : state) {
    TNN_OMP(parallel for schedule(dynamic, 16))
    for (tnn::Index c = 0; c < C; ++c) {
      int tid = 0;
#ifdef _OPENMP
      tid = omp_get_thread_num();
#endif
      Complex* s = spec[static_cast<std::size_t>(tid)].data();
      plan.r2c(in.data() + c * stride, s);
      plan.c2r(s, out.data() + c * stride);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

}  // namespace tnn_bench
