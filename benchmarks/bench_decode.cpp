// Decoding benchmarks of the bench model (bench_model.hpp; float32, batch 1 or 8):
//   BM_LM_DecodeToken/<T>          one step with exactly T tokens of context (direct sum),
//   BM_LM_Generate/<L>             L tokens generated after a 1-token prompt by the tiled
//                                  FFT decoder (core/online_conv.hpp): the counter
//                                  ms_per_token is the average over the L tokens;
//   BM_LM_GenerateDirect/<L>       the same by the direct O(t) history sum;
//   BM_LM_GenerateBatch8/<L>, BM_LM_GenerateDirectBatch8/<L>: 8 sequences at once
//                                  (ms_per_token per step of all 8; tokens/s counts all 8).
//   BM_OnlineConv_Blocks/<n>/<fft>  the online convolution alone (C = 1536 channels) over n
//                                  positions with every block product direct (fft 0) or by FFT
//                                  (fft 1): the measurement behind OnlineConv::direct_below.
// One iteration generates all L tokens (google-benchmark stops after one iteration longer
// than --benchmark_min_time). benchmarks/plot_decode.py draws ms_per_token against L.
// Threads: OMP_NUM_THREADS (the decoding figures in docs are for 1 thread).
#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_model.hpp"
#include "tnn/core/online_conv.hpp"
#include "tnn/infer/decoder.hpp"
#include "tnn/model/models.hpp"

using namespace tnn;

namespace {

using Scalar = float;

// CPU time of the calling thread (POSIX).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

void set_threads_counter(benchmark::State& state) {
#ifdef _OPENMP
  state.counters["threads"] = omp_get_max_threads();
#else
  state.counters["threads"] = 1;
#endif
}

// One step of the direct decoder with T tokens of context already fed. The context is
// filled once, before timing (prefill); after each timed step the decoder is rewound to
// T positions, so every timed step runs at context exactly T.
void BM_LM_DecodeToken(benchmark::State& state) {
  const Index T = state.range(0);
  const TnnConfig cfg = tnn_bench::bench_config();
  auto model = std::make_unique<TnnLM<Scalar>>(cfg);
  model->init_weights(1);
  Rng rng(3);
  Tensor<std::int32_t> prompt({T});
  for (auto& t : prompt) t = static_cast<std::int32_t>(rng.below(std::uint64_t(cfg.vocab_size)));
  IncrementalDecoder<Scalar> dec(*model, T + 1, 1, DecoderMethod::Direct);
  dec.prefill(prompt);  // the context, by one full forward (setup, not timed)
  for (auto _ : state) {
    const Tensor<Scalar>& logits = dec.step(prompt[0]);
    benchmark::DoNotOptimize(logits.data());
    dec.rewind(T);
  }
  state.counters["context"] = double(T);
  set_threads_counter(state);
}

// L tokens after a 1-token prompt, B sequences; the tokens fed are fixed pseudo-random
// ids (what is fed does not change the cost). The decoder is sized for L + 1 positions
// before timing (the coefficients of every offset computed then, as reserve() does).
void generate(benchmark::State& state, DecoderMethod method, Index B) {
  const Index L = state.range(0);
  const TnnConfig cfg = tnn_bench::bench_config();
  auto model = std::make_unique<TnnLM<Scalar>>(cfg);
  model->init_weights(1);
  IncrementalDecoder<Scalar> dec(*model, L + 1, B, method);
  Tensor<std::int32_t> first({B, 1}), tok({B});
  Rng rng(5);
  for (auto& t : first) t = static_cast<std::int32_t>(rng.below(std::uint64_t(cfg.vocab_size)));
  double seconds = 0, cpu_seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    dec.reset();
    dec.prefill(first);
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    for (Index i = 0; i < L; ++i) {
      for (Index b = 0; b < B; ++b) tok[b] = static_cast<std::int32_t>((i * 31 + b * 7) % cfg.vocab_size);
      const Tensor<Scalar>& logits = dec.step(tok);
      benchmark::DoNotOptimize(logits.data());
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu_seconds += thread_cpu_seconds() - c0;
  }
  const double steps = double(state.iterations()) * double(L);
  state.counters["ms_per_token"] = 1e3 * seconds / steps;  // wall clock, per step of all B sequences
  // the main thread's CPU time per step: the steadier figure on a shared machine (1 thread)
  state.counters["cpu_ms_per_token"] = 1e3 * cpu_seconds / steps;
  state.counters["tokens/s"] = double(B) * steps / seconds;
  state.counters["batch"] = double(B);
  set_threads_counter(state);
}

void BM_LM_Generate(benchmark::State& state) { generate(state, DecoderMethod::Fft, 1); }
void BM_LM_GenerateDirect(benchmark::State& state) { generate(state, DecoderMethod::Direct, 1); }
void BM_LM_GenerateBatch8(benchmark::State& state) { generate(state, DecoderMethod::Fft, 8); }
void BM_LM_GenerateDirectBatch8(benchmark::State& state) { generate(state, DecoderMethod::Direct, 8); }

}  // namespace

// Registered without MinTime/Iterations (they would append suffixes to the names).
BENCHMARK(BM_LM_DecodeToken)->Arg(512)->Arg(4096)->Arg(16384)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LM_Generate)->Arg(512)->Arg(4096)->Arg(16384)->Arg(65536)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LM_GenerateDirect)->Arg(512)->Arg(4096)->Arg(16384)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LM_GenerateBatch8)->Arg(512)->Arg(4096)->Arg(16384)->Arg(65536)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LM_GenerateDirectBatch8)->Arg(512)->Arg(4096)->Arg(16384)->Unit(benchmark::kMillisecond);

namespace {
void BM_OnlineConv_Blocks(benchmark::State& state) {
  const Index n = state.range(0), C = 1536;
  const bool fft = state.range(1) != 0;
  Tensor<float> k({n, C}), v({n, C}), y({1, C});
  Rng rng(1);
  for (auto& x : k) x = static_cast<float>(rng.normal());
  for (auto& x : v) x = static_cast<float>(rng.normal());
  for (auto _ : state) {
    OnlineConv<float> conv;
    conv.direct_below = fft ? 1 : n;
    conv.prepare(k, 1);
    for (Index t = 0; t < n - 1; ++t) conv.step(v.data() + t * C, y.data());
    benchmark::DoNotOptimize(y.data());
  }
}
}  // namespace
BENCHMARK(BM_OnlineConv_Blocks)->ArgsProduct({{32, 64, 128, 256, 512, 1024, 2048, 4096}, {0, 1}})->Unit(benchmark::kMillisecond);
