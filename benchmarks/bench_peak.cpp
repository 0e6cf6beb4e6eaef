// The core's measured arithmetic peak (bench_peak.hpp): BM_Peak_Fma (fp32 FMAs, the widest
// vectors the CPU runs), BM_Peak_Fma_Threads (the same on every OpenMP thread at once) and
// BM_Peak_Bf16 (vdpbf16ps; skipped on CPUs without AVX512_BF16). Counter FLOP/s.
#include <benchmark/benchmark.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_peak.hpp"

namespace {

constexpr long kIters = 1'000'000;

void BM_Peak_Fma(benchmark::State& state) {
  double flops = 0;
  for (auto _ : state) flops = tnn_bench::fma_loop(kIters);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(tnn_bench::fma_isa());
}

// Every OpenMP thread runs the loop at once; the rate divides by the main thread's CPU time,
// as the model benchmarks' rates do.
void BM_Peak_Fma_Threads(benchmark::State& state) {
  double flops = 0;
  int threads = 1;
  for (auto _ : state) {
#ifdef _OPENMP
#pragma omp parallel
    {
      const double f = tnn_bench::fma_loop(kIters);
#pragma omp master
      {
        threads = omp_get_num_threads();
        flops = f * threads;
      }
    }
#else
    flops = tnn_bench::fma_loop(kIters);
#endif
  }
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
  state.SetLabel(tnn_bench::fma_isa());
}

void BM_Peak_Bf16(benchmark::State& state) {
  if (!tnn::detail::cpu().avx512_bf16) {
    state.SkipWithError("this CPU has no AVX512_BF16 (vdpbf16ps): tnn's bf16 products run the fp32 kernel");
    return;
  }
  double flops = 0;
#ifdef TNN_GEMM_X86
  for (auto _ : state) flops = tnn_bench::bf16_loop(kIters);
#endif
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("avx512_bf16");
}

}  // namespace

BENCHMARK(BM_Peak_Fma)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Peak_Fma_Threads)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Peak_Bf16)->Unit(benchmark::kMillisecond);
