// The core's arithmetic peak, measured: fp32 FMAs on independent register accumulators with
// the widest vectors the CPU runs (picked from CPUID as tnn's GEMM picks its kernel), and
// bf16 dot products (vdpbf16ps) where the CPU has them. Every GEMM figure is stated as a
// fraction of the peak measured in the same run.
#pragma once

#include <benchmark/benchmark.h>

#include <time.h>

#include <algorithm>

#include "tnn/core/gemm_packed.hpp"

namespace tnn_bench {

// CPU time of the calling thread: the benchmarks' rates divide by it, so a process that the
// shared machine preempts is not charged for the time it waited.
inline double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Each loop runs `iters` rounds of one multiply-add per accumulator and returns the FLOPs done
// (2 per multiply-add). Twelve to sixteen chains: more than latency x pipes (4 x 2 on Zen 4/5
// and recent Intel cores), so the pipes never wait on a result.
#ifdef TNN_GEMM_X86
TNN_TARGET_AVX512 inline double fma_loop_avx512(long iters) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * float(i));
  const __m512 x = _mm512_set1_ps(0.9999f), y = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  benchmark::DoNotOptimize(s);
  return double(iters) * kChains * 16 * 2;
}
TNN_TARGET_AVX2 inline double fma_loop_avx2(long iters) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(0.001f * float(i));
  const __m256 x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  benchmark::DoNotOptimize(s);
  return double(iters) * kChains * 8 * 2;
}
// vdpbf16ps: 16 lanes x 2 products each per instruction.
TNN_TARGET_AVX512BF16 inline double bf16_loop(long iters) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * float(i));
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-1e-3f));
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  benchmark::DoNotOptimize(s);
  return double(iters) * kChains * 16 * 2 * 2;
}
#endif

// The portable form (4-lane vectors) for CPUs with neither.
inline double fma_loop_portable(long iters) {
  typedef float V __attribute__((vector_size(16)));
  constexpr int kChains = 8;
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = V{} + 0.001f * float(i);
  const V x = V{} + 0.9999f, y = V{} + 1e-7f;
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * x + y;
  V s = acc[0];
  for (int i = 1; i < kChains; ++i) s += acc[i];
  benchmark::DoNotOptimize(s);
  return double(iters) * kChains * 4 * 2;
}

// The widest fp32 FMA loop this CPU runs, and its name.
inline const char* fma_isa() {
  const tnn::detail::CpuFeatures& f = tnn::detail::cpu();
  return f.avx512 ? "avx512" : f.avx2_fma ? "avx2+fma" : "portable";
}
inline double fma_loop(long iters) {
#ifdef TNN_GEMM_X86
  if (tnn::detail::cpu().avx512) return fma_loop_avx512(iters);
  if (tnn::detail::cpu().avx2_fma) return fma_loop_avx2(iters);
#endif
  return fma_loop_portable(iters);
}

// One core's fp32 peak in FLOP/s, measured once per process (best of 5 runs of ~0.05 s), for
// the benchmarks' "peak%" counters.
inline double fma_peak() {
  static const double peak = [] {
    double best = 0;
    for (int r = 0; r < 5; ++r) {
      const double t0 = thread_seconds();
      const double flops = fma_loop(4'000'000);
      best = std::max(best, flops / (thread_seconds() - t0));
    }
    return best;
  }();
  return peak;
}

// Sets "peak%": `flops` per iteration over the thread CPU time [t0, now), against `threads`
// cores' measured fp32 peak.
inline void set_peak_fraction(benchmark::State& state, double flops, double t0, int threads) {
  const double rate = flops * double(state.iterations()) / (thread_seconds() - t0);
  state.counters["peak%"] = 100.0 * rate / (fma_peak() * threads);
}

}  // namespace tnn_bench
