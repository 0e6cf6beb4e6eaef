// The attention token mixer (layers/attention.hpp) beside the GTU it replaces, each layer alone
// at the bench model's width (D 512; attention with 8 heads of 64, fairseq transformer_lm's;
// the GTU of bench_model.hpp: E 1536, RPE 64 x 6, decay 0.99), causal, batch 1, float32:
//   BM_AttentionLayer_Forward/<N>, BM_AttentionLayer_FwdBwd/<N>   Auto (the Tiled path)
//   BM_AttentionLayer_FwdBwd_Direct/<N>, ..._Tiled/<N>            each path forced (what Auto rests on)
//   BM_AttentionLayer_FwdBwd_Tile/tile:<rows>/N:<N>               Tiled with square tiles of <rows>
//   BM_AttentionLayer_DecodeStep/<N>                              one KV-cache step at position N - 1
//   BM_Gtu_Forward/<N>, BM_Gtu_FwdBwd/<N>                         the GTU, same N, same run
// (The whole bench model with attention as its mixer: BM_Attention_TrainStep and
// BM_Attention_Forward in bench_lm.cpp.)
// FLOP/s counts the model's dense products, 2 m n k each: attention's four projections and,
// over the (causal) query-key pairs it computes, Q K^T and P V; the GTU's three projections and
// its RPE (its FFTs uncounted, as in bench_lm.cpp). FwdBwd counts 3x the forward (the backward's
// recomputation of the scores is not counted). Threads: OMP_NUM_THREADS.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#include "bench_model.hpp"
#include "bench_util.hpp"
#include "tnn/core/gemm.hpp"
#include "tnn/layers/attention.hpp"
#include "tnn/model/config.hpp"

using namespace tnn;

namespace {

using Scalar = float;
constexpr Index kHeads = 8;

[[maybe_unused]] const int kThreadsSet = tnn::set_num_threads(0);

Tensor<Scalar> random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<Scalar> t(s);
  for (auto& v : t) v = static_cast<Scalar>(rng.normal());
  return t;
}

double attention_forward_flops(Index D, Index N, bool causal) {
  const double pairs = causal ? double(N) * double(N + 1) / 2 : double(N) * double(N);
  return 4 * 2.0 * double(N) * double(D) * double(D) + 2 * 2.0 * pairs * double(D);
}

double gtu_forward_flops(const TnnConfig& c, Index N) {
  const double D = double(c.dim), E = double(c.inner_dim()), R = double(c.rpe_dim);
  const double K = double(toeplitz_num_coeffs(N, c.causal));
  return 2 * double(N) * 3 * D * E + 2 * K * (R + double(c.rpe_layers) * R * R + R * E);
}

std::unique_ptr<Attention<Scalar>> make_attention(AttentionMethod m, Index tile = Attention<Scalar>::kDefaultTile) {
  auto a = std::make_unique<Attention<Scalar>>(tnn_bench::bench_config().dim, kHeads, true);
  a->init_weights(1);
  a->set_method(m);
  a->set_tiles(tile, tile);
  return a;
}

// One forward of `layer` (Attention or Gtu) over [1, N, its width], after a warm-up pass that
// sizes every buffer; `flops` per iteration.
template <class Layer>
void run_forward(benchmark::State& state, Layer& layer, Index N, double flops) {
  const Tensor<Scalar> x = random_tensor({1, N, layer.dim()}, 2);
  Tensor<Scalar> y;
  typename Layer::Cache c;
  layer.forward(x, y, c);
  for (auto _ : state) {
    layer.forward(x, y, c);
    benchmark::DoNotOptimize(y.data());
  }
  tnn_bench::set_model_counters(state, double(N), flops);
}

// One forward and one backward, likewise; `forward_flops` of one forward (the iteration counts 3x).
template <class Layer>
void run_fwd_bwd(benchmark::State& state, Layer& layer, Index N, double forward_flops) {
  const Index D = layer.dim();
  const Tensor<Scalar> x = random_tensor({1, N, D}, 2), dy = random_tensor({1, N, D}, 3);
  Tensor<Scalar> y, dx;
  typename Layer::Cache c;
  layer.forward(x, y, c);
  layer.backward(x, dy, c, &dx);
  for (auto _ : state) {
    layer.forward(x, y, c);
    layer.backward(x, dy, c, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  tnn_bench::set_model_counters(state, double(N), 3 * forward_flops);
}

// Attention with method `m` (and square tiles of `tile` rows) over N positions.
void attention_fwd_bwd(benchmark::State& state, AttentionMethod m, Index N,
                       Index tile = Attention<Scalar>::kDefaultTile) {
  auto a = make_attention(m, tile);
  run_fwd_bwd(state, *a, N, attention_forward_flops(a->dim(), N, true));
}

void BM_AttentionLayer_Forward(benchmark::State& state) {
  const Index N = state.range(0);
  auto a = make_attention(AttentionMethod::Auto);
  run_forward(state, *a, N, attention_forward_flops(a->dim(), N, true));
}

void BM_AttentionLayer_FwdBwd(benchmark::State& state) {
  attention_fwd_bwd(state, AttentionMethod::Auto, state.range(0));
}
void BM_AttentionLayer_FwdBwd_Direct(benchmark::State& state) {
  attention_fwd_bwd(state, AttentionMethod::Direct, state.range(0));
}
void BM_AttentionLayer_FwdBwd_Tiled(benchmark::State& state) {
  attention_fwd_bwd(state, AttentionMethod::Tiled, state.range(0));
}
void BM_AttentionLayer_FwdBwd_Tile(benchmark::State& state) {
  attention_fwd_bwd(state, AttentionMethod::Tiled, state.range(1), state.range(0));
}

// One token through a cache holding N - 1 positions (the newest one forgotten again after it).
void BM_AttentionLayer_DecodeStep(benchmark::State& state) {
  const Index N = state.range(0);
  auto a = make_attention(AttentionMethod::Auto);
  const Index D = a->dim();
  Attention<Scalar>::KvCache kv;
  a->reserve(kv, 1, N);
  Tensor<Scalar> y, yt;
  a->step(random_tensor({1, N - 1, D}, 4), y, kv);
  const Tensor<Scalar> xt = random_tensor({1, 1, D}, 5);
  for (auto _ : state) {
    kv.rewind(N - 1);
    a->step(xt, yt, kv);
    benchmark::DoNotOptimize(yt.data());
  }
  tnn_bench::set_model_counters(state, 1, 4 * 2.0 * double(D) * double(D) + 2 * 2.0 * double(N) * double(D));
}

// The bench model's GTU over N positions: a forward, or (`backward`) a forward and a backward.
void run_gtu(benchmark::State& state, bool backward) {
  const Index N = state.range(0);
  const TnnConfig cfg = tnn_bench::bench_config();
  Gtu<Scalar> g = make_gtu<Scalar>(cfg);
  g.init_weights(1);
  if (backward)
    run_fwd_bwd(state, g, N, gtu_forward_flops(cfg, N));
  else
    run_forward(state, g, N, gtu_forward_flops(cfg, N));
}
void BM_Gtu_Forward(benchmark::State& state) { run_gtu(state, false); }
void BM_Gtu_FwdBwd(benchmark::State& state) { run_gtu(state, true); }

// 512 .. 16384, doubling, and 3072 where attention and the GTU cross.
void lengths(benchmark::internal::Benchmark* b) {
  for (int64_t n : {512, 1024, 2048, 3072, 4096, 8192, 16384}) b->Arg(n);
}

}  // namespace

// Registered without MinTime/UseRealTime/Iterations (they would append suffixes to the names):
// pass --benchmark_min_time on the command line. N stops at 16384: the Tiled path holds O(N D)
// (tens of MB there), but one causal forward + backward is ~1e12 FLOP. The Direct path holds
// H N^2 probabilities (8 x 4096^2 floats = 512 MB at 4096), so its family stops at 4096.
BENCHMARK(BM_AttentionLayer_Forward)->Apply(lengths)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionLayer_FwdBwd)->Apply(lengths)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionLayer_FwdBwd_Direct)->RangeMultiplier(2)->Range(64, 4096)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionLayer_FwdBwd_Tiled)->RangeMultiplier(2)->Range(64, 4096)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionLayer_FwdBwd_Tile)
    ->ArgsProduct({{32, 64, 128, 256}, {512, 4096}})
    ->ArgNames({"tile", "N"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionLayer_DecodeStep)->Arg(512)->Arg(4096)->Arg(16384)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Gtu_Forward)->Apply(lengths)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gtu_FwdBwd)->Apply(lengths)->Unit(benchmark::kMillisecond);
