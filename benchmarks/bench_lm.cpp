// Whole-model benchmarks of the bench model (vocab 256, D 512, 1 layer,
// 1 head, expand 3, GLU 512, RPE 64 x 6 layers, causal, fixed decay 0.99, batch 1,
// float32): a training step, a forward, and the GEMM
// of the model's dominant shapes through the same GEMM path the model uses, the
// practical limit the training step is held against; and the same step and forward with
// attention as the token mixer (bench_attention_config: 8 heads, sinusoidal positions), the
// Transformer baseline in the same backbone, BM_Attention_TrainStep/<N>, BM_Attention_Forward/<N>
// (docs/paper.md, "Speed by length"). Names are compared with other
// implementations: BM_LM_TrainStep/<N>, BM_LM_Forward/<N>,
// BM_Gemm_Roofline (decoding: bench_decode.cpp). Threads: OMP_NUM_THREADS. "peak%" is the
// rate against the fp32 FMA peak measured in the same process (bench_peak.hpp) times the
// threads; BM_Gemm_Roofline_Bf16, _Kernel and _Eigen run the same products in bf16, through
// each of tnn's kernels on one thread, and through Eigen's product.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "bench_model.hpp"
#include "bench_peak.hpp"
#include "bench_util.hpp"
#include "tnn/core/gemm.hpp"
#include "tnn/model/models.hpp"

using namespace tnn;

namespace {

using Scalar = float;

using tnn_bench::bench_attention_config;
using tnn_bench::bench_config;
using tnn_bench::omp_threads;
using tnn_bench::set_model_counters;

// Multiply-adds of attention's N x N products in one forward over B rows: q k^T and p v per
// head, over the visible (query, key) pairs (N (N + 1) / 2 of them when causal).
double attention_pair_macs(const TnnConfig& c, Index B, Index N) {
  const double pairs = c.causal ? double(N) * double(N + 1) / 2 : double(N) * double(N);
  return 2 * double(B) * pairs * double(c.dim);
}

// Dense FLOPs (2 m n k per matrix product) of one forward over B x N tokens: the
// GTU's u, v and o projections, the GLU's three, the RPE MLP over its K offsets
// (once per forward, not per batch row) and the vocabulary head. With attention: its four
// D x D projections and its N x N products in place of the GTU's.
double forward_flops(const TnnConfig& c, Index B, Index N) {
  const double D = double(c.dim), E = double(c.inner_dim()), G = double(c.glu_width()), V = double(c.vocab_size);
  if (c.token_mixer == TokenMixerKind::Attention) {
    const double tok = double(B * N);
    const double per_layer = 2 * tok * (4 * D * D + 3 * D * G) + 2 * attention_pair_macs(c, B, N);
    return double(c.layers) * per_layer + 2 * tok * D * V;
  }
  const double R = double(c.rpe_dim), K = double(toeplitz_num_coeffs(N, c.causal)), tok = double(B * N);
  const double per_layer = 2 * tok * (3 * D * E + 3 * D * G) + 2 * K * (R + double(c.rpe_layers) * R * R + R * E);
  return double(c.layers) * per_layer + 2 * tok * D * V;
}

void make_tokens(Index N, std::uint64_t seed, Index V, Tensor<std::int32_t>& tokens, Tensor<std::int32_t>& targets) {
  tokens.resize({1, N});
  targets.resize({1, N});
  Rng rng(seed);
  for (Index i = 0; i < N; ++i) tokens[i] = static_cast<std::int32_t>(rng.uniform(0.0, double(V))) % std::int32_t(V);
  for (Index i = 0; i + 1 < N; ++i) targets[i] = tokens[i + 1];
  targets[N - 1] = -1;
}

// As the `tnn` program does: OpenMP's threads for tnn, one BLAS thread per call
// (tnn splits large products itself), before any benchmark runs.
[[maybe_unused]] const int kThreadsSet = tnn::set_num_threads(0);

// Attention's work grows as N^2: lengths whose iteration would take minutes on one core are
// skipped with a message rather than run. The bound is on the multiply-adds of its N x N
// products (forward: N^2 D causal; a training step 3.5 N^2 D, the backward recomputing the
// probabilities and making four products): 2^42, a bit over a minute at the ~60 G per second one
// Zen 5 core sustains on them (BM_Attention_Forward/8192: 0.85 s for 2^35 of them plus the
// projections). It leaves out only the training step at 65,536 (7 * 2^40). The tiled layer
// holds O(N D), so memory (a few GB at 65,536) is never the limit.
constexpr double kMaxAttentionMacs = 4398046511104.0;  // 2^42
bool skip_long_attention(benchmark::State& state, const TnnConfig& cfg, Index N, double passes) {
  if (cfg.token_mixer != TokenMixerKind::Attention) return false;
  const double macs = passes * attention_pair_macs(cfg, 1, N) * double(cfg.layers);
  if (macs <= kMaxAttentionMacs) return false;
  char why[200];
  std::snprintf(why, sizeof why,
                "skipped: attention's N x N products would take %.2g multiply-adds an iteration (minutes on one "
                "core), above kMaxAttentionMacs = %.2g",
                macs, kMaxAttentionMacs);
  state.SkipWithError(why);
  return true;
}

// One forward with loss and one backward (no optimizer step), at a fixed [1, N]:
// after the warm-up step every buffer has its size and nothing is allocated.
void train_step_bench(benchmark::State& state, const TnnConfig& cfg, Precision precision = Precision::F32) {
  const Index N = state.range(0);
  if (skip_long_attention(state, cfg, N, 3.5)) return;
  auto model = std::make_unique<TnnLM<Scalar>>(cfg);
  model->init_weights(1);
  model->set_precision(precision);
  Tensor<std::int32_t> tokens, targets;
  make_tokens(N, 2, cfg.vocab_size, tokens, targets);
  model->zero_grad();
  model->forward(tokens, targets);
  model->backward();
  tnn_bench::fma_peak();
  const double t0 = tnn_bench::thread_seconds();
  for (auto _ : state) {
    model->zero_grad();
    const Scalar loss = model->forward(tokens, targets);
    model->backward();
    benchmark::DoNotOptimize(loss);
  }
  set_model_counters(state, double(N), 3 * forward_flops(cfg, 1, N));
  tnn_bench::set_peak_fraction(state, 3 * forward_flops(cfg, 1, N), t0, omp_threads());
}
void BM_LM_TrainStep(benchmark::State& state) { train_step_bench(state, bench_config()); }
// The same step with bf16 products (tnn train --precision bf16); the FLOP/s and peak% counters
// still count against the fp32 FMA peak, so the ratio to BM_LM_TrainStep is the speed-up.
void BM_LM_TrainStep_Bf16(benchmark::State& state) { train_step_bench(state, bench_config(), Precision::Bf16); }
void BM_Attention_TrainStep(benchmark::State& state) { train_step_bench(state, bench_attention_config()); }

// Logits only (evaluation).
void forward_bench(benchmark::State& state, const TnnConfig& cfg) {
  const Index N = state.range(0);
  if (skip_long_attention(state, cfg, N, 1)) return;
  auto model = std::make_unique<TnnLM<Scalar>>(cfg);
  model->init_weights(1);
  Tensor<std::int32_t> tokens, targets;
  make_tokens(N, 2, cfg.vocab_size, tokens, targets);
  model->forward(tokens);
  for (auto _ : state) {
    const Tensor<Scalar>& logits = model->forward(tokens);
    benchmark::DoNotOptimize(logits.data());
  }
  set_model_counters(state, double(N), forward_flops(cfg, 1, N));
}
void BM_LM_Forward(benchmark::State& state) { forward_bench(state, bench_config()); }
void BM_Attention_Forward(benchmark::State& state) { forward_bench(state, bench_attention_config()); }

// The model's dominant GEMMs at N = 2048: the D -> E projection forward (y = x W^T), its
// weight gradient (dW += dy^T x) and its input gradient (dx = dy W), [2048 x 512] x
// [512 x 1536] and transposes, through `product` (tnn::gemm, the path Linear uses, or one
// kernel).
using Product = void (*)(Op, Op, Index, Index, Index, float, const float*, Index, const float*, Index, float, float*,
                         Index);
void run_roofline(benchmark::State& state, Product product, int threads) {
  const Index N = 2048, D = 512, E = 1536;
  Rng rng(5);
  auto filled = [&](Shape s) {
    Tensor<Scalar> t(std::move(s));
    for (auto& v : t) v = static_cast<Scalar>(rng.uniform(-1.0, 1.0));
    return t;
  };
  Tensor<Scalar> x = filled({N, D}), w = filled({E, D}), dy = filled({N, E});
  Tensor<Scalar> y({N, E}), dw({E, D}), dx({N, D});
  auto run = [&] {
    product(Op::N, Op::T, N, E, D, 1.0f, x.data(), D, w.data(), D, 0.0f, y.data(), E);     // y = x W^T
    product(Op::T, Op::N, E, D, N, 1.0f, dy.data(), E, x.data(), D, 1.0f, dw.data(), D);   // dW += dy^T x
    product(Op::N, Op::N, N, D, E, 1.0f, dy.data(), E, w.data(), D, 0.0f, dx.data(), D);   // dx = dy W
  };
  run();
  tnn_bench::fma_peak();
  const double t0 = tnn_bench::thread_seconds();
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dw.data());
    benchmark::DoNotOptimize(dx.data());
  }
  const double flops = 3 * 2.0 * double(N) * double(D) * double(E);
  set_model_counters(state, double(N), flops);
  state.counters["threads"] = threads;
  tnn_bench::set_peak_fraction(state, flops, t0, threads);
}

template <Precision P>
void gemm_at(Op ta, Op tb, Index m, Index n, Index k, float alpha, const float* a, Index lda, const float* b,
             Index ldb, float beta, float* c, Index ldc) {
  gemm<float>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, P);
}

void BM_Gemm_Roofline(benchmark::State& state) { run_roofline(state, &gemm_at<Precision::F32>, omp_threads()); }

// The same products in bf16 (inputs rounded to bf16, fp32 sums).
void BM_Gemm_Roofline_Bf16(benchmark::State& state) {
  run_roofline(state, &gemm_at<Precision::Bf16>, omp_threads());
  state.SetLabel(detail::cpu().avx512_bf16 ? "vdpbf16ps" : "rounded inputs, fp32 kernel (no AVX512_BF16)");
}

// One thread through each of tnn's kernels, fp32 then bf16: Arg(kernel index in
// detail::kGemmKernels), Arg(0 fp32, 1 bf16). Kernels the CPU lacks are skipped.
template <detail::GemmKernel K, Precision P>
void own_at(Op ta, Op tb, Index m, Index n, Index k, float alpha, const float* a, Index lda, const float* b,
            Index ldb, float beta, float* c, Index ldc) {
  detail::own_gemm(K, P, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void BM_Gemm_Roofline_Kernel(benchmark::State& state) {
  using detail::GemmKernel;
  const auto kernel = detail::kGemmKernels[state.range(0)];
  const bool bf16 = state.range(1) != 0;
  if (!detail::gemm_kernel_runs(kernel)) {
    state.SkipWithError((std::string("this CPU does not run the ") + detail::gemm_kernel_name(kernel) + " kernel").c_str());
    return;
  }
  static const Product table[4][2] = {
      {&own_at<GemmKernel::Portable, Precision::F32>, &own_at<GemmKernel::Portable, Precision::Bf16>},
      {&own_at<GemmKernel::Avx2, Precision::F32>, &own_at<GemmKernel::Avx2, Precision::Bf16>},
      {&own_at<GemmKernel::Avx512, Precision::F32>, &own_at<GemmKernel::Avx512, Precision::Bf16>},
      {&own_at<GemmKernel::Avx512Bf16, Precision::F32>, &own_at<GemmKernel::Avx512Bf16, Precision::Bf16>}};
  run_roofline(state, table[state.range(0)][bf16 ? 1 : 0], 1);
  state.SetLabel(std::string(detail::gemm_kernel_name(kernel)) + (bf16 ? " bf16" : " fp32"));
}

// Eigen's product on one thread.
void BM_Gemm_Roofline_Eigen(benchmark::State& state) { run_roofline(state, &detail::eigen_gemm<float>, 1); }

}  // namespace

// Registered without MinTime/UseRealTime/Iterations, which would append suffixes to
// the names other implementations are compared by: pass --benchmark_min_time on the
// command line. "Time" is wall-clock; the rate counters divide by the main thread's
// CPU time (google-benchmark's rule without UseRealTime), which on a shared machine
// leaves out the time the process was preempted.
// The TNN and attention families share their lengths, 512 .. 65536 by doubling (the table of
// docs/paper.md); attention skips those beyond kMaxAttentionMacs.
BENCHMARK(BM_LM_TrainStep)->RangeMultiplier(2)->Range(512, 65536)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LM_TrainStep_Bf16)->RangeMultiplier(2)->Range(512, 8192)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Attention_TrainStep)->RangeMultiplier(2)->Range(512, 65536)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LM_Forward)->RangeMultiplier(2)->Range(512, 65536)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Attention_Forward)->RangeMultiplier(2)->Range(512, 65536)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gemm_Roofline)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gemm_Roofline_Bf16)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gemm_Roofline_Kernel)
    ->ArgsProduct({{0, 1, 2, 3}, {0, 1}})
    ->ArgNames({"kernel", "bf16"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gemm_Roofline_Eigen)->Unit(benchmark::kMillisecond);
