// Train a small TNN language model on a text file with the library's trainer (the loop `tnn
// train` runs: validation, CSV log, atomic checkpoints, resume, Ctrl-C), then save it.
//   train_lm FILE [STEPS]   ->  writes train_lm.safetensors, train_lm.optim.safetensors, train_lm.csv
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

#include <tnn/tnn.hpp>

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TEXT_FILE [STEPS]\n", argv[0]);
    return 2;
  }
  const std::int64_t steps = argc > 2 ? std::stoll(argv[2]) : 200;

  tnn::TnnConfig cfg;    // every other key keeps its default (docs/model.md)
  cfg.vocab_size = 256;  // bytes
  cfg.dim = 128;
  cfg.layers = 2;
  cfg.expand_ratio = 2;
  cfg.rpe_dim = 32;
  tnn::TnnLM<float> model(cfg);
  model.init_weights(/*seed=*/1);

  const tnn::DataSplit data = tnn::load_split(argv[1], /*valid_fraction=*/0.05);
  // The model/batch/loss step: batches of 8 x 256 bytes, next-byte targets.
  tnn::LmTask<float> task(model, data.train, data.valid, /*batch=*/8, /*seq_len=*/256, tnn::LmObjective::Clm, /*seed=*/1);

  tnn::TrainerConfig tc;
  tc.steps = steps;
  tc.schedule = {tnn::ScheduleKind::Cosine, /*peak=*/3e-3, /*min=*/1e-4, /*warmup=*/std::min<std::int64_t>(20, steps / 10), /*total=*/steps};
  tc.eval_every = 100;
  tc.out = "train_lm.safetensors";  // + train_lm.optim.safetensors: trainer.resume() continues from it
  tc.log_path = "train_lm.csv";

  tnn::ScopedStopSignals ctrl_c;  // Ctrl-C: save at the end of the step and stop
  tnn::TrainHooks<float> hooks;
  hooks.stop_requested = [&] { return ctrl_c.received(); };
  hooks.on_event = [](const tnn::TrainEvent& e) {  // the library never prints; you choose what to show
    if (e.kind == tnn::TrainEvent::Kind::Step && e.step % 20 == 0)
      std::printf("step %4lld  loss %.3f nats/byte\n", (long long)e.step, e.loss);
    if (e.kind == tnn::TrainEvent::Kind::Validation)
      std::printf("step %4lld  validation %.3f bits/byte\n", (long long)e.step, e.eval.bpb());
  };
  tnn::Trainer<float> trainer(task, tc, hooks);
  trainer.run();
  std::printf("saved %s (%lld parameters)\n", tc.out.c_str(), (long long)model.num_parameters());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_lm: %s\n", e.what());
  return 1;
}
