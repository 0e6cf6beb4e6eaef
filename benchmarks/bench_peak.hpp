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
//
// The loop they share: kChains register accumulators started at 0.001 i, each round one
// multiply-add `madd(acc)` on every one (unrolled in full: independent chains), then their
// sum, kept so that the loop is not dead. Lanes: the vector type V and its broadcast and
// add. The ISA-specific parts (Lanes' members, madd) carry their target attribute and are
// inlined into the caller, which carries the same one; they take the vectors by reference,
// so that this function (no target of its own) passes none by value. Returns the FLOPs:
// 2 per multiply-add, kMaddsPerLane multiply-adds per lane of V per accumulator per round.
template <int kChains, int kMaddsPerLane, class Lanes, class Madd>
__attribute__((always_inline)) inline double run_chains(long iters, const Madd& madd) {
  using V = typename Lanes::V;
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) Lanes::set1(acc[i], 0.001f * float(i));
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) madd(acc[i]);
  }
  V s = acc[0];
  for (int i = 1; i < kChains; ++i) Lanes::add_to(s, acc[i]);
  benchmark::DoNotOptimize(s);
  return double(iters) * kChains * int(sizeof(V) / sizeof(float)) * 2 * kMaddsPerLane;
}

#ifdef TNN_GEMM_X86
struct Lanes512 {
  using V = __m512;
  TNN_TARGET_AVX512 static void set1(V& v, float a) { v = _mm512_set1_ps(a); }
  TNN_TARGET_AVX512 static void add_to(V& s, const V& a) { s = _mm512_add_ps(s, a); }
};
struct Lanes256 {
  using V = __m256;
  TNN_TARGET_AVX2 static void set1(V& v, float a) { v = _mm256_set1_ps(a); }
  TNN_TARGET_AVX2 static void add_to(V& s, const V& a) { s = _mm256_add_ps(s, a); }
};

TNN_TARGET_AVX512 inline double fma_loop_avx512(long iters) {
  const __m512 x = _mm512_set1_ps(0.9999f), y = _mm512_set1_ps(1e-7f);
  return run_chains<16, 1, Lanes512>(iters, [x, y](__m512& a) TNN_TARGET_AVX512 { a = _mm512_fmadd_ps(a, x, y); });
}
TNN_TARGET_AVX2 inline double fma_loop_avx2(long iters) {
  const __m256 x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(1e-7f);
  return run_chains<12, 1, Lanes256>(iters, [x, y](__m256& a) TNN_TARGET_AVX2 { a = _mm256_fmadd_ps(a, x, y); });
}
// vdpbf16ps: 16 lanes x 2 products each per instruction.
TNN_TARGET_AVX512BF16 inline double bf16_loop(long iters) {
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-1e-3f));
  return run_chains<16, 2, Lanes512>(iters, [x, y](__m512& a) TNN_TARGET_AVX512BF16 { a = _mm512_dpbf16_ps(a, x, y); });
}
#endif

// The portable form (4-lane vectors) for CPUs with neither.
struct Lanes128 {
  typedef float V __attribute__((vector_size(16)));
  static void set1(V& v, float a) { v = V{} + a; }
  static void add_to(V& s, const V& a) { s += a; }
};
inline double fma_loop_portable(long iters) {
  using V = Lanes128::V;
  const V x = V{} + 0.9999f, y = V{} + 1e-7f;
  return run_chains<8, 1, Lanes128>(iters, [x, y](V& a) { a = a * x + y; });
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
