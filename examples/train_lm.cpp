// Train a small TNN language model on a text file, then save it.
//   train_lm FILE [STEPS]   ->  writes train_lm.safetensors
#include <cstdio>
#include <string>

#include <tnn/tnn.hpp>

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TEXT_FILE [STEPS]\n", argv[0]);
    return 2;
  }
  const std::int64_t steps = argc > 2 ? std::stoll(argv[2]) : 200;

  tnn::TnnConfig cfg;  // every other key keeps its spec default
  cfg.vocab_size = 256;  // bytes
  cfg.dim = 128;
  cfg.layers = 2;
  cfg.expand_ratio = 2;
  cfg.rpe_dim = 32;

  tnn::TnnLM<float> model(cfg);
  model.init_weights(/*seed=*/1);
  auto params = model.named_parameters();
  tnn::AdamW<float> opt(params);
  tnn::LrSchedule lr{tnn::ScheduleKind::Cosine, /*peak=*/3e-3, /*min=*/1e-4, /*warmup=*/20, /*total=*/steps};

  tnn::DataSplit data = tnn::load_split(argv[1], /*valid_fraction=*/0.05);
  tnn::BatchSampler sampler(data.train, /*batch=*/8, /*seq_len=*/256, tnn::LmObjective::Clm, /*seed=*/1);
  tnn::Batch batch;
  for (std::int64_t step = 0; step < steps; ++step) {
    sampler.sample(step, batch);               // tokens and next-byte targets, [8, 256]
    model.zero_grad();
    const float loss = model.forward(batch.tokens, batch.targets);
    model.backward();
    tnn::clip_grad_norm(params, 1.0);
    opt.step(lr(step));
    if (step % 20 == 0) std::printf("step %4lld  loss %.3f nats/byte\n", (long long)step, loss);
  }
  tnn::save_model("train_lm.safetensors", model);
  std::printf("saved train_lm.safetensors (%lld parameters)\n", (long long)model.num_parameters());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_lm: %s\n", e.what());
  return 1;
}
