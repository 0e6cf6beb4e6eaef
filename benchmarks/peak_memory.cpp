// Peak resident memory of a training step of the bench model (bench_model.hpp) at one
// sequence length: build the model, run warm-up + measured steps (forward with loss,
// backward, AdamW), print getrusage's ru_maxrss and the peak per token. One length per
// process, since the peak never goes down: run it once per N and compare (linear in N).
//   tnn_peak_memory N [steps] [--layers L] [--recompute]
// --layers L: L layers of the bench model's width; --recompute: keep only each layer's input in
// the forward and recompute the layer in backward (Backbone::set_recompute).
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_model.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/optimizer.hpp"

namespace {
long max_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;  // KiB on Linux
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s N [steps] [--layers L] [--recompute]\n", argv[0]);
    return 2;
  }
  const tnn::Index N = std::atol(argv[1]);
  int steps = 2;
  tnn::Index layers = 1;
  bool recompute = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--recompute")
      recompute = true;
    else if (a == "--layers" && i + 1 < argc)
      layers = std::atol(argv[++i]);
    else
      steps = std::atoi(argv[i]);
  }
  if (N < 1 || steps < 1 || layers < 1) {
    std::fprintf(stderr, "N, steps and layers must be positive\n");
    return 2;
  }
  tnn::TnnConfig c = tnn_bench::bench_config();
  c.layers = layers;
  const long base = max_rss_kib();
  tnn::TnnLM<float> model(c);
  model.init_weights(1);
  model.backbone.set_recompute(recompute);
  const auto params = model.named_parameters();
  tnn::AdamW<float> opt(params);
  const long with_model = max_rss_kib();
  tnn::Tensor<std::int32_t> tokens({1, N}), targets({1, N});
  for (tnn::Index i = 0; i < N; ++i) tokens[i] = static_cast<std::int32_t>((i * 31 + 7) % c.vocab_size);
  for (tnn::Index i = 0; i + 1 < N; ++i) targets[i] = tokens[i + 1];
  targets[N - 1] = -1;
  float loss = 0;
  for (int s = 0; s < steps; ++s) {
    model.zero_grad();
    loss = model.forward(tokens, targets);
    model.backward();
    opt.step();
  }
  const long peak = max_rss_kib();
  std::printf("N=%ld layers=%ld recompute=%d steps=%d loss=%.4f maxrss_start_kib=%ld maxrss_model_kib=%ld "
              "maxrss_peak_kib=%ld peak_MiB=%.1f KiB_per_token=%.1f\n",
              static_cast<long>(N), static_cast<long>(layers), int(recompute), steps, double(loss), base, with_model,
              peak, double(peak) / 1024.0, double(peak - with_model) / double(N));
  return 0;
}
