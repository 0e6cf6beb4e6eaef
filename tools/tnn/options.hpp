// The settings of each `tnn` command, as their flags fill them (commands.cpp declares the flags,
// the task files use them). The model's own settings are not here: they are the config's keys
// (flags.hpp's ModelFlags), so the program and a config file share one set of defaults.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <tnn/core/tensor.hpp>

namespace tnncli {

class ModelFlags;

struct TrainOptions {
  std::string task = "lm";
  std::string data, valid, out, config_file, log;
  std::string objective = "clm", schedule = "cosine";
  double valid_fraction = 0.05;
  tnn::Index valid_block = -1;  // -1: 65536 when the file holds round(1 / fraction) such blocks, else 0
  // The default run (tnn train --data F --out M) is the default model (the config's defaults)
  // for 500 steps of 8 x 512 bytes: about two minutes on two cores, and it learns visibly (the
  // README's program section has the measurement).
  tnn::Index seq_len = 512, batch = 8, steps = 500, warmup = 50;
  double lr = 3e-3, min_lr = 1e-4, weight_decay = 0.01, clip = 1.0;
  std::uint64_t seed = 1;
  int threads = 0;
  bool resume = false, force = false;
  // Products in bf16 (fp32 sums and master weights; part of a run's identity), and layer
  // recomputation in backward (less memory, bit-identical gradients, about one more forward).
  std::string precision = "fp32";
  bool recompute = false;
  tnn::Index eval_every = 100, eval_tokens = 65536, log_every = 10, save_every = 0, max_bad_steps = 20, stop_after = 0;
  // Testing hooks (hidden from --help): NaN injected after the backward pass of the listed steps
  // (tests/cli/train_faults.sh), and a pause after a step until a signal arrives, so a signal test
  // cannot miss the run (tests/cli/train_resume.sh).
  std::string inject_nan_steps, inject_nan_grad_steps;
  tnn::Index pause_at_step = 0;

  std::shared_ptr<ModelFlags> model;  // the model flags given
  std::set<std::string> given;        // flags on the command line ("--warmup", ...)
  bool was_given(const std::string& flag) const { return given.count(flag) > 0; }

  // The settings a resumed run must share with the run it continues to be bit-identical to an
  // uninterrupted one (its "identity", with the model config), as f(key, flag, member). Not the
  // length: --resume --steps N extends or shortens a run.
  template <class Self, class F>
  static void visit_settings(Self& o, F&& f) {
    f("seed", "--seed", o.seed);
    f("batch", "--batch", o.batch);
    f("seq_len", "--seq-len", o.seq_len);
    f("objective", "--objective", o.objective);
    f("lr", "--lr", o.lr);
    f("min_lr", "--min-lr", o.min_lr);
    f("warmup", "--warmup", o.warmup);
    f("schedule", "--schedule", o.schedule);
    f("weight_decay", "--weight-decay", o.weight_decay);
    f("clip", "--clip", o.clip);
    f("valid_fraction", "--valid-fraction", o.valid_fraction);
    f("valid_block", "--valid-block", o.valid_block);
  }
};

struct EvalOptions {
  std::vector<std::string> checkpoints, labels;
  std::string data, lengths, plot, title;
  tnn::Index seq_len = 0;  // 0: the model's training length (else 512)
  tnn::Index batch = 1, max_bytes = 0;
  double valid_fraction = 0;
  tnn::Index valid_block = 0;
  int threads = 0;
  bool json = false, all = false;
  std::set<std::string> given;
  bool was_given(const std::string& flag) const { return given.count(flag) > 0; }
};

struct GenerateOptions {
  std::string checkpoint, prompt, prompt_file;
  tnn::Index tokens = 256;
  double temperature = 0.8, top_p = 1.0;
  tnn::Index top_k = 0;
  std::uint64_t seed = 1;
  int threads = 0;
  bool echo = false;
  std::string decoder = "auto";
  tnn::Index samples = 1;
  bool json = false;
};

struct ClassifyOptions {
  std::string checkpoint, images;
  tnn::Index batch = 16, seq_len = 0;
  int threads = 0;
  bool json = false;
};

struct GradOptions {
  std::string checkpoint, inputs, out, dtype = "f32";
};

struct PlotOptions {
  std::vector<std::string> logs;
  std::string out, title;
};

}  // namespace tnncli
