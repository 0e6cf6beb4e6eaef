// Peak resident memory of a training step of the bench model (bench_lm.cpp) at one
// sequence length: build the model, run warm-up + measured steps (forward with loss,
// backward, AdamW), print getrusage's ru_maxrss. One length per process, since the
// peak never goes down: run it once per N and compare (linear in N expected).
//   tnn_peak_memory N [steps]
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
    std::fprintf(stderr, "usage: %s N [steps]\n", argv[0]);
    return 2;
  }
  const tnn::Index N = std::atol(argv[1]);
  const int steps = argc > 2 ? std::atoi(argv[2]) : 2;
  if (N < 1 || steps < 1) {
    std::fprintf(stderr, "N and steps must be positive\n");
    return 2;
  }
  const tnn::TnnConfig c = tnn_bench::bench_config();
  const long base = max_rss_kib();
  tnn::TnnLM<float> model(c);
  model.init_weights(1);
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
  std::printf("N=%ld steps=%d loss=%.4f maxrss_start_kib=%ld maxrss_model_kib=%ld maxrss_peak_kib=%ld peak_MiB=%.1f\n",
              static_cast<long>(N), steps, double(loss), base, with_model, peak, double(peak) / 1024.0);
  return 0;
}
