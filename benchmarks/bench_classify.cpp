// The ListOps classifier's training step (examples/listops_demo.sh's model: bytes in, 10
// classes, bidirectional, first-position pooling; float32, batch 8, every row at full length N):
// BM_Classify_TrainStep/<N> for N in {1024, 2000, 4096}, forward with loss and backward (no
// optimizer step), tokens/s reported. Threads: OMP_NUM_THREADS.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tnn/core/gemm.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/model/models.hpp"

using namespace tnn;

namespace {

// Keep in step with the --config JSON in examples/listops_demo.sh.
TnnConfig listops_config() {
  return TnnConfig::parse(R"({"vocab_size": 256, "dim": 64, "layers": 4, "heads": 1, "expand_ratio": 2,
      "glu_dim": 128, "rpe_dim": 32, "rpe_layers": 1, "causal": false, "decay": "learned", "gamma": 0.9,
      "task": "classify", "num_classes": 10, "pooling": "first"})");
}

constexpr Index kBatch = 8;

[[maybe_unused]] const int kThreadsSet = tnn::set_num_threads(0);

void BM_Classify_TrainStep(benchmark::State& state) {
  const Index N = state.range(0);
  const TnnConfig cfg = listops_config();
  auto model = std::make_unique<TnnClassifier<float>>(cfg);
  model->init_weights(1);
  Tensor<std::int32_t> tokens({kBatch, N}), lengths({kBatch}), labels({kBatch});
  Rng rng(2);
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng.below(16)) + '0';
  for (Index b = 0; b < kBatch; ++b) {
    lengths[b] = static_cast<std::int32_t>(N);
    labels[b] = static_cast<std::int32_t>(b % cfg.num_classes);
  }
  model->zero_grad();
  model->forward(tokens, labels, &lengths);
  model->backward();
  for (auto _ : state) {
    model->zero_grad();
    const float loss = model->forward(tokens, labels, &lengths);
    model->backward();
    benchmark::DoNotOptimize(loss);
  }
  state.counters["tokens/s"] =
      benchmark::Counter(double(kBatch * N), benchmark::Counter::kIsIterationInvariantRate);
#ifdef _OPENMP
  state.counters["threads"] = omp_get_max_threads();
#endif
}
BENCHMARK(BM_Classify_TrainStep)->Arg(1024)->Arg(2000)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
