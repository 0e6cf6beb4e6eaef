// What the kernel benchmarks (bench_toeplitz.cpp, bench_toeplitz2d.cpp) share: random
// inputs, the thread count, one registration helper, the timed loop of one kernel call, the
// FFT forward and backward of either Toeplitz operator, and the timed loop of the bare FFT
// round trip that each kernel is held against. The layer and model benchmarks
// (bench_attention.cpp, bench_lm.cpp) share the thread count and their rate counters.
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
#include "tnn/core/toeplitz.hpp"

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

// The timed loop of a kernel benchmark: each iteration one `call()`, then DoNotOptimize on
// the data of each of `outs` (the tensors the call writes) and a memory clobber.
template <class Call, class... Out>
void time_calls(benchmark::State& state, const Call& call, Out&... outs) {
  for (auto _ : state) {
    call();
    (benchmark::DoNotOptimize(outs.data()), ...);
    benchmark::ClobberMemory();
  }
}

// The FFT path of a Toeplitz operator Op (tnn::ToeplitzOp, Toeplitz2dOp) at batch 1, its
// coefficient spectrum prepared once from t (op.prepare(t, prepare_args..., FFT)).
// time_fft_forward: y = T x, after one warm-up call (plans and workspaces).
template <class Op, class... PrepareArgs>
void time_fft_forward(benchmark::State& state, const tnn::Tensor<Scalar>& t, const tnn::Tensor<Scalar>& x,
                      const PrepareArgs&... prepare_args) {
  tnn::Tensor<Scalar> y;
  Op op;
  op.prepare(t, prepare_args..., tnn::ToeplitzMethod::FFT);
  const auto forward = [&] { op.forward(x, y, false); };
  forward();  // warm-up
  time_calls(state, forward, y);
}

// Which outputs of the backward the timed loop keeps (DoNotOptimize).
enum class Kept { Dt, DxDt };

// time_fft_backward: the backward to gradient g (dx and dt) after a forward that saved the
// spectrum of x, and one warm-up call.
template <class Op, class... PrepareArgs>
void time_fft_backward(benchmark::State& state, Kept kept, const tnn::Tensor<Scalar>& t, const tnn::Tensor<Scalar>& x,
                       const tnn::Tensor<Scalar>& g, const PrepareArgs&... prepare_args) {
  tnn::Tensor<Scalar> y, dx, dt;
  Op op;
  op.prepare(t, prepare_args..., tnn::ToeplitzMethod::FFT);
  op.forward(x, y, true);
  const auto backward = [&] { op.backward(g, &dx, &dt); };
  backward();  // warm-up
  if (kept == Kept::DxDt)
    time_calls(state, backward, dx, dt);
  else
    time_calls(state, backward, dt);
}

// The rate counters of a layer or model benchmark: `tokens` and `flops` per iteration
// (tokens/s and FLOP/s over the main thread's CPU time; FLOP/step), and the OpenMP threads.
inline void set_model_counters(benchmark::State& state, double tokens, double flops) {
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/step"] = flops;
  state.counters["threads"] = omp_threads();
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
  const auto round_trips = [&] {
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
  };
  time_calls(state, round_trips, out);
}

}  // namespace tnn_bench
