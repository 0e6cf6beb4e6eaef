// `tnn train`: trains a TNN language model on a byte-level text file. This file parses the
// flags, builds the model and the data, and prints; the loop itself (validation, CSV log,
// atomic checkpoints, exact resume, non-finite steps, stop on a signal) is the library's
// tnn::Trainer (include/tnn/train/trainer.hpp), which documents the files it writes:
//   CKPT.safetensors        the model: what eval and generate read
//   CKPT.optim.safetensors  the whole training state; --resume reads only this file
//   CKPT.csv                one line per logged step and per validation
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/data.hpp>
#include <tnn/train/optimizer.hpp>
#include <tnn/train/schedule.hpp>
#include <tnn/train/classify.hpp>
#include <tnn/train/image_data.hpp>
#include <tnn/train/trainer.hpp>

#include <tnn/dist/trainer_hooks.hpp>
#include <tnn/io/stream.hpp>

#include "commands.hpp"
#include "processes.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace tnncli {
namespace {

struct TrainOptions {
  std::string data, valid, out, config_file, objective = "clm", schedule = "cosine", log;
  double valid_fraction = 0.05;
  tnn::Index valid_block = 0;
  tnn::Index seq_len = 512, batch = 8, steps = 1000, warmup = 100;
  double lr = 2e-3, min_lr = 1e-4, weight_decay = 0.01, clip = 1.0;
  std::uint64_t seed = 1;
  int threads = 0;
  bool resume = false, force = false;
  bool warmup_given = false;  // --warmup on the command line (else it may be lowered for a short run)
  tnn::Index eval_every = 200, eval_tokens = 65536, log_every = 10, save_every = 0, max_bad_steps = 20, stop_after = 0;
  std::string inject_nan_steps, inject_nan_grad_steps;  // testing hooks: see parse_inject_steps
  // model flags (used when no --config file is given)
  tnn::Index dim = 256, layers = 4, heads = 1, glu_dim = -1, rpe_dim = 32, rpe_layers = 1;
  double expand_ratio = 2, gamma = 0.99;
  std::string decay = "fixed", norm = "simplermsnorm";
  bool tie = false, postnorm = false;
  std::string task = "lm", pooling = "mean";  // --task classify / image: run_train_classify, run_train_image
  tnn::Index patch_size = 1;                   // --task image, when the --config does not say
};

// The --config file as JSON: at most 1 MB, a regular file or a pipe (not /dev/zero), strict
// JSON (io/json.hpp).
nlohmann::json config_file_json(const TrainOptions& o) {
  const std::vector<std::uint8_t> bytes = tnn::read_file_bounded(o.config_file, 1 << 20, "--config");
  return tnn::parse_json_strict<tnn::ConfigError>(std::string(bytes.begin(), bytes.end()),
                                                  "--config " + tnn::quote_path(o.config_file));
}

// The config the model flags describe (not validated: the caller completes it first).
tnn::TnnConfig flags_config(const TrainOptions& o, tnn::Index vocab, bool causal) {
  tnn::TnnConfig c;
  c.vocab_size = vocab;
  c.dim = o.dim;
  c.layers = o.layers;
  c.heads = o.heads;
  c.expand_ratio = o.expand_ratio;
  c.glu_dim = o.glu_dim;
  c.rpe_dim = o.rpe_dim;
  c.rpe_layers = o.rpe_layers;
  c.gamma = o.gamma;
  c.decay = tnn::parse_enum<tnn::TnoDecay>(o.decay, "--decay");
  c.norm_type = tnn::parse_enum<tnn::NormType>(o.norm, "--norm");
  c.tie_embeddings = o.tie;
  c.prenorm = !o.postnorm;
  c.causal = causal;
  return c;
}

// `defaults`: keys the task fills in when the --config file lacks them (a classifier's task,
// num_classes and pooling).
tnn::TnnConfig model_config(const TrainOptions& o, tnn::Index vocab, bool causal,
                            const nlohmann::json& defaults = nlohmann::json::object()) {
  if (!o.config_file.empty()) {
    nlohmann::json j = config_file_json(o);
    if (j.is_object()) {
      if (!j.contains("vocab_size")) j["vocab_size"] = vocab;
      if (!j.contains("causal")) j["causal"] = causal;
      // (only for the task they belong to: a file naming another task is refused below)
      const bool same_task = !j.contains("task") || !defaults.contains("task") || j["task"] == defaults["task"];
      for (const auto& [key, value] : defaults.items())
        if (same_task && !j.contains(key)) j[key] = value;
    }
    tnn::TnnConfig c = tnn::TnnConfig::from_json(j);
    if (c.causal != causal)
      tnn::fail<tnn::ConfigError>("--config: 'causal' is ", c.causal, " but --objective ", o.objective, " needs ", causal);
    if (c.vocab_size < vocab)
      tnn::fail<tnn::ConfigError>("--config: vocab_size: expected >= ", vocab, " for --objective ", o.objective,
                                  ", got ", c.vocab_size);
    return c;
  }
  tnn::TnnConfig c = flags_config(o, vocab, causal);
  c.validate();
  return c;
}

// The settings a resumed run must share with the run it continues for the
// result to be bit-identical to an uninterrupted one.
nlohmann::json run_identity(const TrainOptions& o, const tnn::TnnConfig& cfg) {
  return {{"config", cfg.to_json()}, {"seed", o.seed},   {"batch", o.batch},       {"seq_len", o.seq_len},
          {"objective", o.objective}, {"steps", o.steps}, {"lr", o.lr},             {"min_lr", o.min_lr},
          {"warmup", o.warmup},       {"schedule", o.schedule}, {"weight_decay", o.weight_decay},
          {"clip", o.clip}, {"valid_fraction", o.valid_fraction}, {"valid_block", o.valid_block}};
}

// --inject-nan-steps and --inject-nan-grad-steps, testing hooks (tests/cli/train_faults.sh):
// after the backward pass of each listed step (1-based, as the progress lines count), the loss
// and one gradient entry (or only the gradient entry) are set to NaN, as a numerical blow-up
// would leave them, so the fault handling runs for real.
std::set<tnn::Index> parse_inject_steps(const std::string& s, const char* flag) {
  const std::vector<tnn::Index> steps = parse_positive_list(s, flag);
  return std::set<tnn::Index>(steps.begin(), steps.end());
}

// Every file the run writes is checked before any work (a bad --out found only at the first
// save would waste up to --eval-every steps), and an existing run is never replaced silently:
// without --resume (continue it) or --force (replace it), an existing model, training state
// or log is an error and the files are left untouched.
// An output naming an input (--out naming --data) is refused, and the run locks --out (and a
// --log of another name) for its whole life: a second run on the same files is refused with one
// line, and the lock dies with its process (tnn::OutputLock). The log is locked too: another run
// may name it as its --log. Under mpirun rank 0 alone writes files and holds the locks.
void check_outputs(const TrainOptions& o, const std::string& state_path, const std::string& log_path,
                   std::vector<tnn::OutputLock>& locks) {
  const char* log_flag = o.log.empty() ? "--out (its log)" : "--log";
  tnn::check_output_path(o.out, "--out");
  tnn::check_output_path(state_path, "--out (its training state)");
  tnn::check_output_path(log_path, log_flag);
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"--data", o.data}, {"--valid", o.valid}, {"--config", o.config_file}};
  tnn::check_output_not_input(o.out, "--out", inputs);
  tnn::check_output_not_input(state_path, "--out (its training state)", inputs);
  tnn::check_output_not_input(log_path, log_flag, inputs);
  if (launcher_rank() == 0) {
    locks.push_back(tnn::OutputLock::acquire(o.out, "--out"));
    locks.push_back(tnn::OutputLock::acquire(log_path, log_flag));
  }
  if (o.resume || o.force) return;
  for (const std::string& p : {o.out, state_path, log_path})
    if (::access(p.c_str(), F_OK) == 0)
      tnn::fail<tnn::IoError>("--out ", tnn::quote_path(o.out), ": ", tnn::quote_path(p),
                              " already exists; give --resume to continue that run or --force to replace it "
                              "(nothing was changed)");
}

void check_options(const TrainOptions& o) {
  auto at_least = [](tnn::Index v, tnn::Index lo, const char* flag) {
    if (v < lo) tnn::fail<tnn::ValueError>(flag, ": expected >= ", lo, ", got ", v);
  };
  at_least(o.seq_len, 1, "--seq-len");
  at_least(o.batch, 1, "--batch");
  at_least(o.steps, 1, "--steps");
  at_least(o.warmup, 0, "--warmup");
  if (o.schedule == "cosine" && o.warmup >= o.steps)
    tnn::fail<tnn::ValueError>("--warmup: expected fewer steps than --steps (", o.steps,
                               ") for --schedule cosine, got ", o.warmup);
  at_least(o.eval_every, 0, "--eval-every");
  at_least(o.eval_tokens, 0, "--eval-tokens");
  at_least(o.log_every, 1, "--log-every");
  at_least(o.save_every, 0, "--save-every");
  at_least(o.max_bad_steps, 0, "--max-bad-steps");
  at_least(o.stop_after, 0, "--stop-after");
  if (!(o.valid_fraction >= 0 && o.valid_fraction < 1))
    tnn::fail<tnn::ValueError>("--valid-fraction: expected a value in [0, 1), got ", o.valid_fraction);
  if (!(o.clip > 0)) tnn::fail<tnn::ValueError>("--clip: expected > 0, got ", o.clip);
  if (!(o.weight_decay >= 0)) tnn::fail<tnn::ValueError>("--weight-decay: expected >= 0, got ", o.weight_decay);
}

// The data the run trains and validates on: --valid, or the held-out part of --data.
struct TrainData {
  tnn::DataSplit split;
  tnn::ByteCorpus valid;  // the first --eval-tokens of split.valid (empty: no validation)
};

TrainData load_data(const TrainOptions& o, tnn::LmObjective objective) {
  TrainData d;
  d.split = o.valid.empty() ? held_out_split(tnn::ByteCorpus::from_file(o.data), o.valid_fraction, o.valid_block)
                            : tnn::load_split(o.data, o.valid);
  d.valid = corpus_prefix(d.split.valid, o.eval_tokens);
  // Checked now rather than at the first validation, which may come after hours of training.
  if (!d.valid.empty()) {  // --valid-fraction 0: no validation at all
    try {
      const tnn::EvalWindows windows(d.valid, o.batch, o.seq_len, objective);
      (void)windows;
    } catch (const tnn::FormatError& e) {
      tnn::fail<tnn::FormatError>(e.what(), " (for validation: a larger --valid-fraction or --eval-tokens, or "
                                  "--valid-fraction 0 for none)");
    }
  }
  return d;
}

tnn::TrainerConfig trainer_config(const TrainOptions& o, const tnn::TnnConfig& cfg, const std::string& log_path) {
  tnn::TrainerConfig t;
  t.steps = o.steps;
  t.schedule.kind = tnn::parse_schedule_kind(o.schedule);
  t.schedule.peak_lr = o.lr;
  t.schedule.min_lr = std::min(o.min_lr, o.lr);
  t.schedule.warmup_steps = o.warmup;
  t.schedule.total_steps = o.steps;
  t.adamw.weight_decay = o.weight_decay;
  t.clip = o.clip;
  t.log_every = o.log_every;
  t.eval_every = o.eval_every;
  t.save_every = o.save_every > 0 ? o.save_every : o.eval_every;
  t.max_bad_steps = o.max_bad_steps;
  t.stop_after = o.stop_after;
  t.out = o.out;
  t.log_path = log_path;
  t.identity = run_identity(o, cfg);
  return t;
}

// Prints the trainer's events: the progress bar or lines, skipped steps, validations.
void report(const tnn::TrainEvent& e, Progress& progress, const TrainOptions& o, const std::string& state_path,
            bool mlm) {
  using Kind = tnn::TrainEvent::Kind;
  switch (e.kind) {
    case Kind::Resumed:
      std::fprintf(stderr, "resuming '%s' at step %lld of %lld\n", state_path.c_str(), (long long)e.step,
                   (long long)o.steps);
      break;
    case Kind::Step:
      progress.update(e.step - 1, e.loss, e.tokens_per_s, e.lr);
      break;
    case Kind::BadStep:
      progress.line("step " + std::to_string(e.step) + ": non-finite " + (e.bad_loss ? "loss" : "gradient") +
                    ", update skipped (" + std::to_string(e.bad_steps) + " of at most " +
                    std::to_string(o.max_bad_steps) + ")");
      break;
    case Kind::Validation: {
      const tnn::EvalResult& r = e.eval;
      std::ostringstream s;
      s.precision(4);
      s << std::fixed << "step " << e.step << ": validation loss " << r.loss << " nats, " << r.bpb()
        << " bits/byte, ppl " << r.ppl();
      if (mlm) s << ", masked-token accuracy " << r.accuracy;
      s << " (" << r.tokens << " tokens)";
      progress.line(s.str());
      break;
    }
    case Kind::Saved:
      break;
  }
}

// What every task's run shares (lm, classify, image) once it has a model and a TrainTask: the
// checks made before any work, the hooks (progress and validation lines, --inject-nan-*, the
// stop signal), --resume, and the run under the progress bar with SIGINT/SIGTERM handling and
// its closing message (exit 128 + signal when interrupted). Each task, in order:
//   TrainSession s(o);  ... model, data, task ...;  Trainer t(task, tc, s.hooks(params, kind));
//   s.resume(t);  t.begin();  <the model/data line>;  s.run(t);
class TrainSession {
 public:
  enum class Validation { Lm, Mlm, Accuracy };  // what a validation line reports

  explicit TrainSession(const TrainOptions& o)
      : o_((check_options(o), o)),
        state_path_(tnn::optimizer_state_path(o.out)),
        log_path_(o.log.empty() ? o.out + ".csv" : o.log),
        inject_nan_(parse_inject_steps(o.inject_nan_steps, "--inject-nan-steps")),
        inject_nan_grad_(parse_inject_steps(o.inject_nan_grad_steps, "--inject-nan-grad-steps")),
        resume_printer_(o.steps, 0, false, o.log_every) {
    set_threads(o.threads);
  }
  TrainSession(const TrainSession&) = delete;
  TrainSession& operator=(const TrainSession&) = delete;

  const std::string& state_path() const { return state_path_; }
  const std::string& log_path() const { return log_path_; }
  // Every output path, before any work, and the locks on them (check_outputs).
  void check_outputs() { tnncli::check_outputs(o_, state_path_, log_path_, locks_); }

  // The hooks every task installs; `params` are the model's (the NaN injection poisons the first).
  tnn::TrainHooks<float> hooks(tnn::NamedParams<float> params, Validation kind) {
    tnn::TrainHooks<float> h;
    h.on_event = [this, kind](const tnn::TrainEvent& e) {
      Progress& p = progress_ ? *progress_ : resume_printer_;
      if (kind != Validation::Accuracy || e.kind != tnn::TrainEvent::Kind::Validation)
        return report(e, p, o_, state_path_, kind == Validation::Mlm);
      std::ostringstream s;
      s.precision(4);
      s << std::fixed << "step " << e.step << ": validation accuracy " << e.eval.accuracy << ", loss " << e.eval.loss
        << " nats (" << e.eval.tokens << " examples)";
      p.line(s.str());
    };
    h.after_backward = [this, params = std::move(params)](std::int64_t step, tnn::StepStats& st) {
      if (inject_nan_.count(step + 1) || inject_nan_grad_.count(step + 1)) {
        params.front().second->grad[0] = std::numeric_limits<float>::quiet_NaN();
        if (inject_nan_.count(step + 1)) st.loss = std::numeric_limits<float>::quiet_NaN();
      }
    };
    h.stop_requested = [this] { return signals_ ? signals_->received() : 0; };
    return h;
  }

  void resume(tnn::Trainer<float>& trainer) const {
    if (!o_.resume) return;
    try {
      trainer.resume();
    } catch (const tnn::ResumeMismatch& e) {
      tnn::fail<tnn::ValueError>("--resume: ", e.what());
    }
  }

  // Runs to the end; prints the closing message. Returns the result unless interrupted by a
  // signal, which saves, says so and exits with 128 + the signal.
  tnn::TrainResult run(tnn::Trainer<float>& trainer) {
    Progress bar(o_.steps, trainer.step(), stderr_is_terminal(), o_.log_every);
    progress_ = &bar;
    tnn::TrainResult result;
    {
      tnn::ScopedStopSignals stop_signals;  // restored before the messages below
      signals_ = &stop_signals;
      try {
        result = trainer.run();
      } catch (const tnn::TrainingDiverged& e) {
        signals_ = nullptr;
        progress_ = nullptr;
        tnn::fail<tnn::Error>("training diverged: ", e.bad_steps, " steps with a non-finite loss or gradient (limit ",
                              e.max_bad_steps, ", see --max-bad-steps); the last good checkpoint is '", e.checkpoint,
                              "'");
      }
      signals_ = nullptr;
    }
    bar.finish();
    progress_ = nullptr;
    switch (result.outcome) {
      case tnn::TrainResult::Outcome::Interrupted:
        std::fprintf(stderr, "interrupted (%s): saved step %lld to '%s'; continue with --resume\n",
                     result.signal == SIGINT ? "SIGINT" : "SIGTERM", (long long)result.step, o_.out.c_str());
        std::fflush(stderr);
        std::exit(128 + result.signal);
      case tnn::TrainResult::Outcome::Stopped:
        std::fprintf(stderr, "stopped after step %lld as asked (--stop-after); continue with --resume\n",
                     (long long)result.step);
        break;
      case tnn::TrainResult::Outcome::Finished:
        std::fprintf(stderr, "done: %lld steps in %s; model '%s', training state '%s', log '%s'\n",
                     (long long)result.step, format_duration(bar.seconds()).c_str(), o_.out.c_str(),
                     state_path_.c_str(), log_path_.c_str());
        break;
    }
    return result;
  }

 private:
  const TrainOptions& o_;
  const std::string state_path_, log_path_;
  const std::set<tnn::Index> inject_nan_, inject_nan_grad_;
  std::vector<tnn::OutputLock> locks_;  // held for the whole run
  Progress* progress_ = nullptr;  // set while the run goes; events before that print directly
  Progress resume_printer_;
  tnn::ScopedStopSignals* signals_ = nullptr;
};

// "dim 64, layers 2, heads 1, E 128, rpe 32x1, fixed decay": the model part of the line each
// task prints before its run.
std::string model_summary(const tnn::TnnConfig& cfg, tnn::Index parameters) {
  std::ostringstream s;
  s << parameters << " parameters (dim " << cfg.dim << ", layers " << cfg.layers << ", heads " << cfg.heads << ", E "
    << cfg.inner_dim() << ", rpe " << cfg.rpe_dim << "x" << cfg.rpe_layers << ", "
    << tnn::to_string(cfg.decay) << " decay";
  return s.str();
}

void require_one_process(const char* task) {
  if (communicator().size() > 1)
    tnn::fail<tnn::ValueError>("--task ", task, ": expected one process (data-parallel training is for --task lm), got ",
                               communicator().size(), " under mpirun");
}

void require_clm_objective(const TrainOptions& o) {
  if (o.objective != "clm")
    tnn::fail<tnn::ValueError>("--objective: applies to --task lm only; a classifier's objective is its labels, got '",
                               o.objective, "'");
}

// `tnn train --task classify` (issue 14): a TnnClassifier on label<TAB>text lines, through the
// same tnn::Trainer (validation, CSV log, atomic checkpoints, exact resume, signals, non-finite
// steps) with tnn::ClassifyTask in place of LmTask. Labels are numbered in the order first seen
// in --data and stored in the checkpoint (metadata tnn.labels), with --seq-len (tnn.seq_len).
// Validation: --valid, or else the last --valid-fraction of --data's lines.
void run_train_classify(const TrainOptions& o) {
  TrainSession session(o);
  require_clm_objective(o);
  require_one_process("classify");
  session.check_outputs();

  std::vector<std::string> names;
  if (o.resume) names = tnn::read_label_names(o.out);  // the run's own numbering
  tnn::LabeledTexts train = tnn::read_labeled_texts(o.data, o.seq_len, names, /*allow_new_labels=*/!o.resume);
  tnn::LabeledTexts valid;
  if (!o.valid.empty()) {
    valid = tnn::read_labeled_texts(o.valid, o.seq_len, names, /*allow_new_labels=*/false);
  } else if (o.valid_fraction > 0) {
    const auto held = static_cast<std::size_t>(std::llround(o.valid_fraction * double(train.size())));
    const std::size_t keep = train.texts.size() - std::min(held, train.texts.size() - 1);
    valid.texts.assign(train.texts.begin() + std::ptrdiff_t(keep), train.texts.end());
    valid.labels.assign(train.labels.begin() + std::ptrdiff_t(keep), train.labels.end());
    train.texts.resize(keep);
    train.labels.resize(keep);
  }
  if (names.size() < 2)
    tnn::fail<tnn::ValueError>("--data ", tnn::quote_path(o.data), ": expected at least 2 distinct labels, got ",
                               names.size());

  // A --config without task, num_classes or pooling gets them from the data and --pooling.
  const tnn::Pooling pooling = tnn::parse_enum<tnn::Pooling>(o.pooling, "--pooling");
  tnn::TnnConfig cfg = model_config(o, tnn::kByteVocab, /*causal=*/false,
                                    {{"task", "classify"}, {"num_classes", names.size()}, {"pooling", tnn::to_string(pooling)}});
  if (o.config_file.empty()) {
    cfg.task = tnn::Task::Classify;
    cfg.num_classes = static_cast<tnn::Index>(names.size());
    cfg.pooling = pooling;
  }
  if (cfg.task != tnn::Task::Classify)
    tnn::fail<tnn::ConfigError>("--config: task is '", tnn::to_string(cfg.task), "' but --task classify needs 'classify'");
  if (cfg.num_classes != static_cast<tnn::Index>(names.size()))
    tnn::fail<tnn::ConfigError>("--config: num_classes is ", cfg.num_classes, " but --data has ", names.size(),
                                " labels");
  cfg.num_classes = static_cast<tnn::Index>(names.size());
  cfg.validate();
  if (o.resume) cfg = tnn::read_config(o.out);

  tnn::TnnClassifier<float> model(cfg);
  model.init_weights(o.seed);
  tnn::ClassifyTask<float> task(model, train, valid, o.batch, o.seed, names, o.seq_len);

  tnn::TrainerConfig tc = trainer_config(o, cfg, session.log_path());
  tc.identity["task"] = "classify";
  tc.identity["labels"] = names;
  tnn::Trainer<float> trainer(task, tc, session.hooks(model.named_parameters(), TrainSession::Validation::Accuracy));
  session.resume(trainer);
  trainer.begin();
  std::fprintf(stderr, "model: %s, classifier, %lld classes, %s pooling); data: %lld train / %lld valid examples; %d threads\n",
               model_summary(cfg, model.num_parameters()).c_str(), (long long)cfg.num_classes,
               tnn::to_string(cfg.pooling), (long long)train.size(), (long long)valid.size(), current_threads());
  session.run(trainer);
}

// The config of `tnn train --task image`: --config (its missing keys filled from the data and
// the flags) or the model flags, with task image, the images' height, width and channels,
// --patch-size, the number of classes and --pooling; then checked against the data.
tnn::TnnConfig image_model_config(const TrainOptions& o, const tnn::ImageSet& train, tnn::Index classes) {
  const nlohmann::json from_data = {{"task", "image"},
                                    {"vocab_size", 0},
                                    {"causal", false},
                                    {"image_height", train.height()},
                                    {"image_width", train.width()},
                                    {"image_channels", train.channels()},
                                    {"patch_size", o.patch_size},
                                    {"num_classes", classes},
                                    {"pooling", o.pooling}};
  nlohmann::json j;
  if (!o.config_file.empty()) {
    j = config_file_json(o);
    if (j.is_object())
      for (auto it = from_data.begin(); it != from_data.end(); ++it)
        if (!j.contains(it.key())) j[it.key()] = it.value();
  } else {
    j = flags_config(o, /*vocab=*/1, /*causal=*/false).to_json();
    j.update(from_data);
  }
  tnn::TnnConfig c = tnn::TnnConfig::from_json(j);
  if (c.task != tnn::Task::Image)
    tnn::fail<tnn::ConfigError>("--config: task is '", tnn::to_string(c.task), "' but --task image needs 'image'");
  tnn::check_image_set_fits(train, c, "--data " + tnn::quote_path(o.data));
  if (c.num_classes != classes)
    tnn::fail<tnn::ConfigError>("--config: num_classes is ", c.num_classes, " but --data has ", classes, " classes");
  return c;
}

// `tnn train --task image` (issue 15): a TnnImageClassifier (the 2-D TNN over a grid of
// patches) on an image file (train/image_data.hpp: images U8 or I32 [M, H, W, Ch], labels I32
// [M], optional class names), through tnn::ImageTask and the same Trainer. Class names (the
// file's, or "0".."K-1") are stored in the checkpoint. Validation: --valid, or else the last
// --valid-fraction of --data's images.
void run_train_image(const TrainOptions& o) {
  TrainSession session(o);
  require_clm_objective(o);
  require_one_process("image");
  session.check_outputs();

  tnn::ImageSet train = tnn::read_image_set(o.data);
  std::vector<std::string> names = train.names;
  tnn::TnnConfig cfg;
  if (o.resume) {  // the run's own model and classes, whatever the flags say
    cfg = tnn::read_config(o.out);
    if (cfg.task != tnn::Task::Image)
      tnn::fail<tnn::ValueError>("--resume: ", tnn::quote_path(o.out), " is not an image classifier (task '",
                                 tnn::to_string(cfg.task), "')");
    names = tnn::read_label_names(o.out);
  } else {
    names = tnn::image_class_names(train, "--data " + tnn::quote_path(o.data));  // bounded by the file
  }
  const tnn::Index classes = static_cast<tnn::Index>(names.size());
  tnn::ImageSet valid;
  if (!o.valid.empty()) {
    valid = tnn::read_image_set(o.valid);
  } else if (o.valid_fraction > 0) {
    const auto held = static_cast<tnn::Index>(std::llround(o.valid_fraction * double(train.size())));
    valid = tnn::take_last_images(train, std::min(held, train.size() - 1));
  }

  if (!o.resume) cfg = image_model_config(o, train, classes);
  tnn::check_image_set_fits(train, cfg, "--data " + tnn::quote_path(o.data));
  if (valid.size() > 0) tnn::check_image_set_fits(valid, cfg, "--valid " + tnn::quote_path(o.valid.empty() ? o.data : o.valid));

  tnn::TnnImageClassifier<float> model(cfg);
  model.init_weights(o.seed);
  tnn::ImageTask<float> task(model, train, valid, o.batch, o.seed, names);

  tnn::TrainerConfig tc = trainer_config(o, cfg, session.log_path());
  tc.identity["task"] = "image";
  tc.identity["labels"] = names;
  tnn::Trainer<float> trainer(task, tc, session.hooks(model.named_parameters(), TrainSession::Validation::Accuracy));
  session.resume(trainer);
  trainer.begin();
  std::fprintf(stderr,
               "model: %s, image classifier, %lldx%lldx%lld images, %lldx%lld patches (a %lldx%lld grid), %lld classes, "
               "%s pooling); data: %lld train / %lld valid images; %d threads\n",
               model_summary(cfg, model.num_parameters()).c_str(), (long long)cfg.image_height,
               (long long)cfg.image_width, (long long)cfg.image_channels, (long long)cfg.patch_size,
               (long long)cfg.patch_size, (long long)cfg.grid_h(), (long long)cfg.grid_w(), (long long)cfg.num_classes,
               tnn::to_string(cfg.pooling), (long long)train.size(), (long long)valid.size(), current_threads());
  session.run(trainer);
}

void run_train(const TrainOptions& o) {
  if (o.task == "classify") return run_train_classify(o);
  if (o.task == "image") return run_train_image(o);
  TrainSession session(o);
  // Under mpirun: data-parallel over the processes (tnn/dist/trainer_hooks.hpp); --batch is global.
  tnn::dist::Communicator& comm = communicator();
  if (comm.size() > 1) tnn::dist::check_global_batch(o.batch, comm.size());
  const bool mlm = o.objective == "mlm";
  const tnn::LmObjective objective = mlm ? tnn::LmObjective::Mlm : tnn::LmObjective::Clm;
  const tnn::Index vocab = mlm ? tnn::kMlmVocab : tnn::kByteVocab;

  session.check_outputs();
  tnn::TnnConfig cfg = model_config(o, vocab, !mlm);
  if (o.resume) cfg = tnn::read_config(o.out);  // the run's own model, whatever the flags say
  const TrainData data = load_data(o, objective);
  // The logits [batch, seq_len, vocab] are the largest buffer: their element count must fit.
  if (o.batch > INT64_MAX / o.seq_len / cfg.vocab_size)
    tnn::fail<tnn::ValueError>("--batch, --seq-len: expected batch * seq_len * vocab_size below 2^63, got ", o.batch,
                               " * ", o.seq_len, " * ", cfg.vocab_size);

  tnn::TnnLM<float> model(cfg);
  model.init_weights(o.seed);
  tnn::LmTask<float> task(model, data.split.train, data.valid, o.batch, o.seq_len, objective, o.seed);
  if (comm.size() > 1) {
    task.set_shard(comm.rank(), comm.size());
    // Every rank must run the same job on the same data: one line and no training otherwise.
    const nlohmann::json flags = {{"identity", run_identity(o, cfg)}, {"out", o.out}, {"resume", o.resume},
                                  {"eval_every", o.eval_every}, {"eval_tokens", o.eval_tokens},
                                  {"save_every", o.save_every}, {"log_every", o.log_every},
                                  {"stop_after", o.stop_after}, {"max_bad_steps", o.max_bad_steps},
                                  {"train_bytes", data.split.train.size()}, {"valid_bytes", data.valid.size()},
                                  {"train_hash", tnn::dist::Communicator::hash_bytes(data.split.train.data(),
                                                                                     data.split.train.bytes().size())}};
    comm.require_agreement(flags.dump(), "run settings (config, flags, data)");
  }

  tnn::TrainHooks<float> hooks =
      session.hooks(model.named_parameters(), mlm ? TrainSession::Validation::Mlm : TrainSession::Validation::Lm);
  // One process: changes nothing. TNN_DIST_NO_OVERLAP=1 (benchmarks): gradient sums after backward.
  tnn::dist::DataParallelHooks<float> parallel(comm, model, /*check_every=*/100,
                                               /*overlap=*/std::getenv("TNN_DIST_NO_OVERLAP") == nullptr);
  parallel.install(hooks);
  tnn::Trainer<float> trainer(task, trainer_config(o, cfg, session.log_path()), hooks);
  session.resume(trainer);
  if (comm.size() > 1) tnn::dist::check_parameters_agree<float>(comm, model.named_parameters(), trainer.step());
  trainer.begin();
  std::fprintf(stderr, "model: %s, %s); data: %lld train / %lld valid bytes; %d threads\n",
               model_summary(cfg, model.num_parameters()).c_str(), mlm ? "masked LM" : "causal LM",
               (long long)data.split.train.size(), (long long)data.split.valid.size(), current_threads());
  if (comm.size() > 1)
    std::fprintf(stderr, "data-parallel: %d processes x %d threads, %lld of the %lld rows of every batch each\n",
                 comm.size(), current_threads(), (long long)(o.batch / comm.size()), (long long)o.batch);

  const tnn::TrainResult result = session.run(trainer);
  if (result.outcome == tnn::TrainResult::Outcome::Finished && comm.size() > 1 && parallel.reducer().steps() > 0)
    std::fprintf(stderr, "gradient sums over %d processes: %.2f ms per step not hidden behind backward\n",
                 comm.size(), 1e3 * parallel.reducer().exposed_seconds() / double(parallel.reducer().steps()));
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a TNN language model on a text file (byte-level tokens), a text classifier or an image classifier (--task)");
  cmd->add_option("--data", o->data,
                  "Training file: any file as bytes (--task lm), label<TAB>text lines (classify), a safetensors "
                  "image file (image)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--valid", o->valid, "Validation file of the same kind (default: the last --valid-fraction of --data)");
  cmd->add_option("--valid-fraction", o->valid_fraction, "Fraction of --data held out for validation")
      ->capture_default_str();
  cmd->add_option("--valid-block", o->valid_block,
                  "Hold out every round(1/fraction)-th block of this many bytes (0: the end of the file)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Checkpoint to write (.safetensors)")->required();
  cmd->add_option("--config", o->config_file, "Model config JSON file (docs/model.md §8; overrides the model flags)");
  cmd->add_option("--seq-len", o->seq_len, "Training sequence length")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences per step")->capture_default_str();
  cmd->add_option("--steps", o->steps, "Training steps")->capture_default_str();
  cmd->add_option("--lr", o->lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o->min_lr, "Final learning rate of the schedule")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Linear warm-up steps")->capture_default_str();
  cmd->add_option("--schedule", o->schedule, "Learning-rate schedule after warm-up")
      ->check(CLI::IsMember({"cosine", "invsqrt", "constant"}))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--clip", o->clip, "Clip gradients to this global norm")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of initialization and batch sampling, 0 to 2^64 - 1")
      ->check(seed_check())
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)")->capture_default_str();
  cmd->add_option("--task", o->task,
                  "lm: a language model on a text file; classify: a classifier on label<TAB>text lines "
                  "(text truncated to --seq-len; tnn eval reports accuracy, tnn classify labels lines); image: a "
                  "2-D TNN image classifier on a safetensors image file (images U8 or I32 [M, H, W, Ch], labels I32 [M])")
      ->check(CLI::IsMember({"lm", "classify", "image"}))
      ->capture_default_str();
  cmd->add_option("--patch-size", o->patch_size,
                  "--task image: P x P pixels per token (a divisor of H and W), when --config gives no patch_size")
      ->capture_default_str();
  cmd->add_option("--pooling", o->pooling, "--task classify, image: mean over the (valid) positions, or the first position")
      ->check(CLI::IsMember({"mean", "first"}))
      ->capture_default_str();
  cmd->add_option("--objective", o->objective, "clm: causal LM (next byte); mlm: bidirectional masked LM")
      ->check(CLI::IsMember({"clm", "mlm"}))
      ->capture_default_str();
  cmd->add_flag("--resume", o->resume, "Continue the run saved in --out (bit-identical to an uninterrupted run)");
  cmd->add_flag("--force", o->force, "Replace an existing --out (its model, training state and log) instead of refusing");
  cmd->add_option("--eval-every", o->eval_every, "Validate every this many steps (0: only at the end)")
      ->capture_default_str();
  cmd->add_option("--eval-tokens", o->eval_tokens, "Validation bytes used each time (0: all)")->capture_default_str();
  cmd->add_option("--save-every", o->save_every, "Checkpoint every this many steps (default: --eval-every)");
  cmd->add_option("--log", o->log, "CSV log file (default: OUT.csv)");
  cmd->add_option("--log-every", o->log_every, "Log a line every this many steps")->capture_default_str();
  cmd->add_option("--stop-after", o->stop_after, "Save and stop after this step (continue later with --resume)");
  cmd->add_option("--max-bad-steps", o->max_bad_steps, "Stop after this many non-finite steps")->capture_default_str();
  cmd->add_option("--inject-nan-steps", o->inject_nan_steps,
                  "Testing hook: poison the loss and gradient of these steps (e.g. 3,4) with NaN")
      ->group("");  // hidden from --help
  cmd->add_option("--inject-nan-grad-steps", o->inject_nan_grad_steps,
                  "Testing hook: poison only the gradient of these steps with NaN")
      ->group("");
  auto* g = cmd->add_option_group("model", "Model shape, when no --config is given");
  g->add_option("--dim", o->dim, "Model width D")->capture_default_str();
  g->add_option("--layers", o->layers, "TNN layers")->capture_default_str();
  g->add_option("--heads", o->heads, "Heads")->capture_default_str();
  g->add_option("--expand-ratio", o->expand_ratio, "GTU expansion (E = expand_ratio * D)")->capture_default_str();
  g->add_option("--glu-dim", o->glu_dim, "GLU width (default: dim)");
  g->add_option("--rpe-dim", o->rpe_dim, "RPE width")->capture_default_str();
  g->add_option("--rpe-layers", o->rpe_layers, "RPE hidden layers")->capture_default_str();
  g->add_option("--gamma", o->gamma, "Decay rate lambda")->capture_default_str();
  g->add_option("--decay", o->decay, "fixed: lambda = gamma; learned: per channel; none")
      ->check(CLI::IsMember(tnn::enum_names<tnn::TnoDecay>()))
      ->capture_default_str();
  g->add_option("--norm", o->norm, "Normalization")
      ->check(CLI::IsMember(tnn::enum_names<tnn::NormType>()))
      ->capture_default_str();
  g->add_flag("--tie-embeddings", o->tie, "Share embed.weight with the output head");
  g->add_flag("--postnorm", o->postnorm, "Post-norm layers instead of pre-norm");
  cmd->callback([o, cmd] {
    o->warmup_given = cmd->count("--warmup") > 0;
    // The default warm-up (100 steps) is lowered for a run too short for it (a cosine schedule
    // needs --steps > --warmup) rather than refused; an explicit --warmup that does not fit is
    // an error naming both flags (check_options). Runs where the default fits are unchanged.
    if (!o->warmup_given && o->schedule == "cosine" && o->steps >= 1 && o->warmup >= o->steps) {
      const tnn::Index lowered = o->steps / 10;
      std::fprintf(stderr, "note: --warmup lowered from %lld to %lld (a tenth of --steps %lld); give --warmup to choose\n",
                   (long long)o->warmup, (long long)lowered, (long long)o->steps);
      o->warmup = lowered;
    }
    run_train(*o);
  });
}

}  // namespace tnncli
