// The training loop `tnn train` runs, for any C++ caller: AdamW steps under a learning-rate
// schedule with gradient clipping, steps whose loss or gradient is not finite skipped (up to a
// limit), a CSV log, periodic validation, atomic checkpoints, exact resume, and a stop request
// (SIGINT/SIGTERM through ScopedStopSignals, or any predicate) honoured at the end of a step. The
// library never prints: progress goes to TrainHooks::on_event.
//
// Two pieces are pluggable:
//   TrainTask<T>  the model/batch/loss step (LmTask below: TnnLM on token batches); another task
//                 (a classifier) implements the same four functions.
//   TrainHooks<T> extension points for a data-parallel driver (gradient reduction between
//                 backward and clipping, validation sums reduced over processes, files written by
//                 one process only, a shared stop decision) and for tests (faults injected after
//                 backward). No hook needs MPI here; dist/ supplies them.
//
// Files for TrainerConfig::out = "CKPT.safetensors":
//   CKPT.safetensors        the model (TrainTask::save_model): what eval and generate read
//   CKPT.optim.safetensors  the whole training state: parameters ("param.<name>"), AdamW moments
//                           ("adamw.<name>"), the step, and JSON {identity, adamw_step, bad_steps,
//                           steps, schedule} (train/state.hpp);
//                           resume reads only this file, so a crash between the two writes (each
//                           atomic) never pairs weights and moments of different steps. Nothing in
//                           it depends on the number of processes.
//   the CSV log             (TrainerConfig::log_path) lines kept in memory and written at each save,
//                           before the training state: created at the first save (atomically), so a
//                           run that fails before saving leaves no log behind; on resume the lines
//                           past the saved step (a run killed between its log and its state) are
//                           dropped, so the log reads as if the run had never stopped.
// While it runs, the trainer holds an OutputLock (io/stream.hpp) on `out` and on the log: a second
// run on the same files is refused, and a killed run's lock dies with it. A fresh
// run whose first save fails removes the files that save created.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <map>
#include <functional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/infer/evaluate.hpp"
#include "tnn/io/file.hpp"
#include "tnn/io/stream.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/data.hpp"
#include "tnn/train/optimizer.hpp"
#include "tnn/train/schedule.hpp"
#include "tnn/train/state.hpp"

namespace tnn {

// What one forward/backward computed on this process.
struct StepStats {
  double loss = 0;     // mean over the scored targets of the batch (NaN/inf: a bad step)
  Index targets = 0;   // scored targets (a data-parallel reduction weights by their global sum)
  Index tokens = 0;    // input tokens processed (for tokens/s)
};

// The model/batch/loss step the trainer drives.
template <class T>
class TrainTask {
 public:
  virtual ~TrainTask() = default;
  // The parameters, in a fixed order: the optimizer updates them, the training state stores them
  // as "param.<name>". Pointers must stay valid for the trainer's lifetime.
  virtual NamedParams<T> parameters() = 0;
  // Zeroes the gradients, then forward and backward on the batch of training step `step` (>= 0):
  // a pure function of the step, so a resumed run sees the same batches.
  virtual StepStats forward_backward(std::int64_t step) = 0;
  // Validation sums over part `part` of `parts` of the validation set (parts = processes); an
  // empty EvalSums when there is no validation set.
  virtual bool has_validation() const { return false; }
  virtual EvalSums validate(Index part, Index parts) {
    (void)part;
    (void)parts;
    return {};
  }
  // Writes the model file of a checkpoint (atomically) after `step` steps.
  virtual void save_model(const std::string& path, std::int64_t step) = 0;
  // The precision of the model's large products (TrainerConfig::precision); a task whose model
  // has only fp32 products refuses bf16.
  virtual void set_precision(Precision p) {
    if (p != Precision::F32) fail<ValueError>("precision: this task trains in fp32 only, got ", to_string(p));
  }
};

struct TrainerConfig {
  // Total steps of the run. A resumed run continues to it, whatever the saved run's length was:
  // it may extend a finished run or shorten an interrupted one (not below the steps done). When
  // the schedule's total_steps differs from the saved run's, the schedule is re-stretched at the
  // current update (LrSchedule::stretched_to); with the same total, the resumed run is
  // bit-identical to an uninterrupted one.
  std::int64_t steps = 1000;
  LrSchedule schedule;           // indexed by the optimizer's update count
  AdamWConfig adamw;
  double clip = 1.0;             // global gradient-norm clip
  std::int64_t log_every = 10;   // CSV line every this many steps (and the last)
  std::int64_t eval_every = 200; // validation every this many steps (0: only at the end)
  std::int64_t save_every = -1;  // checkpoint every this many steps (-1: eval_every; 0: only at the end)
  std::int64_t max_bad_steps = 20;  // more non-finite steps than this: TrainingDiverged
  std::int64_t stop_after = 0;   // > 0: save and return Stopped after this step
  // bf16: the model's large products round their operands to bf16 (fp32 sums, fp32 master
  // weights, gradients and AdamW state; checkpoints stay fp32). Part of the run's identity, so a
  // resume continues in the precision it started in.
  Precision precision = Precision::F32;
  std::string out;               // model checkpoint path ("" : no files at all)
  std::string log_path;          // CSV log ("" : none)
  // The settings a resumed run must share with the run it continues for the result to be
  // bit-identical (model config, seed, batch, schedule, ...): stored, and compared on resume.
  // Leave the length out (steps, total_steps): it is what a resumed run may change.
  nlohmann::json identity = nlohmann::json::object();

  void validate() const {
    auto at_least = [](std::int64_t v, std::int64_t lo, const char* name) {
      if (v < lo) fail<ValueError>("trainer ", name, ": expected >= ", lo, ", got ", v);
    };
    at_least(steps, 1, "steps");
    at_least(log_every, 1, "log_every");
    at_least(eval_every, 0, "eval_every");
    at_least(save_every, -1, "save_every");
    at_least(max_bad_steps, 0, "max_bad_steps");
    at_least(stop_after, 0, "stop_after");
    if (!(clip > 0)) fail<ValueError>("trainer clip: expected > 0, got ", clip);
    schedule.validate();
    adamw.validate();
  }
  std::int64_t save_period() const { return save_every >= 0 ? save_every : eval_every; }
};

// Thrown when more than max_bad_steps steps had a non-finite loss or gradient.
struct TrainingDiverged : Error {
  TrainingDiverged(const std::string& msg, std::int64_t bad, std::int64_t limit, std::string ckpt)
      : Error(msg), bad_steps(bad), max_bad_steps(limit), checkpoint(std::move(ckpt)) {}
  std::int64_t bad_steps, max_bad_steps;
  std::string checkpoint;
};
// Thrown by Trainer::resume when the saved identity differs from TrainerConfig::identity.
struct ResumeMismatch : ValueError {
  using ValueError::ValueError;
};

// What the trainer reports (TrainHooks::on_event); the caller decides what to print.
struct TrainEvent {
  enum class Kind {
    Resumed,     // step: where the run continues; previous_steps: the saved run's length; lr: the next update's
    Step,        // a step finished: loss, grad_norm, lr, tokens_per_s
    BadStep,     // the step's loss (bad_loss) or gradient was not finite; update skipped
    Validation,  // eval holds the validation result after `step` steps
    Saved,       // checkpoint written after `step` steps
  };
  Kind kind = Kind::Step;
  std::int64_t step = 0;  // steps done (1-based count of the step just finished)
  double loss = 0, grad_norm = 0, lr = 0, tokens_per_s = 0;
  bool bad_loss = false;
  std::int64_t bad_steps = 0;
  std::int64_t previous_steps = 0;
  EvalResult eval;
};

// Extension points; every one is optional.
template <class T>
struct TrainHooks {
  // Progress, validation results, warnings: everything a program prints.
  std::function<void(const TrainEvent&)> on_event;
  // Right after backward, before anything looks at the gradients (tests inject faults here).
  std::function<void(std::int64_t step, StepStats&)> after_backward;
  // Between backward and clipping: e.g. sum the gradients and the loss over processes, weighted
  // by the global target count, so every process continues with the same gradient.
  std::function<void(StepStats&)> reduce_gradients;
  // Validation: which part this process computes, and how the parts' sums combine.
  Index validation_part = 0, validation_parts = 1;
  std::function<void(EvalSums&)> reduce_validation;
  // Whether this process writes the checkpoint and the CSV log (data-parallel: rank 0 only).
  bool writes_files = true;
  // Polled after every step: nonzero asks to save and stop (the value, e.g. a signal number, is
  // returned in TrainResult::signal). Data-parallel drivers make every process agree on it.
  std::function<int()> stop_requested;
  // After each step's bookkeeping (e.g. a periodic parameter checksum across processes).
  std::function<void(std::int64_t step)> after_step;
};

struct TrainResult {
  enum class Outcome { Finished, Stopped, Interrupted };
  Outcome outcome = Outcome::Finished;
  std::int64_t step = 0;      // steps done
  int signal = 0;             // Interrupted: what stop_requested returned
  double seconds = 0;         // wall time of this run() call
};

template <class T>
class Trainer {
 public:
  // The task must outlive the trainer. The optimizer is built here over task.parameters().
  Trainer(TrainTask<T>& task, TrainerConfig cfg, TrainHooks<T> hooks = {})
      : task_(task), cfg_(std::move(cfg)), hooks_(std::move(hooks)), params_(task.parameters()),
        opt_(params_, cfg_.adamw) {
    cfg_.validate();
    task_.set_precision(cfg_.precision);
    if (cfg_.precision != Precision::F32) cfg_.identity["precision"] = to_string(cfg_.precision);
    if (hooks_.validation_parts < 1 || hooks_.validation_part < 0 || hooks_.validation_part >= hooks_.validation_parts)
      fail<ValueError>("trainer validation part: expected 0 <= part < parts, got part ", hooks_.validation_part,
                       " of ", hooks_.validation_parts);
  }

  const TrainerConfig& config() const { return cfg_; }
  std::int64_t step() const { return step_; }
  std::int64_t bad_steps() const { return bad_steps_; }
  AdamW<T>& optimizer() { return opt_; }
  std::string state_path() const { return optimizer_state_path(cfg_.out); }

  // Continues the run saved at config().out: loads the training state (all-or-nothing), checks
  // the identity (ResumeMismatch), sets the step. Call before run().
  void resume() {
    if (cfg_.out.empty()) fail<ValueError>("trainer resume: expected a checkpoint path (config out), got none");
    lock_outputs();
    const OptimizerStateInfo info = load_optimizer_state(state_path(), [&](auto&& f) { visit_state(f); });
    // Strict JSON, every key's type checked, differences named key by key (train/state.hpp).
    const std::string where = "training state " + quote_path(state_path()) + ": metadata 'tnn.optim.extra'";
    TrainingStateJson extra = parse_training_state(info.extra_json, where);
    // Files from before runs could be extended hold the length in the identity (its "steps"):
    // an identity without it (a program that lets --steps change) compares the rest.
    if (!cfg_.identity.contains("steps") && extra.identity.contains("steps")) {
      if (extra.steps == 0 && extra.identity["steps"].is_number_integer())
        extra.steps = extra.schedule_total = extra.identity["steps"].get<std::int64_t>();
      extra.identity.erase("steps");
    }
    if (extra.identity != cfg_.identity)
      throw ResumeMismatch(detail::concat("the settings differ from the run being resumed (",
                                          json_differences(extra.identity, cfg_.identity), ")"));
    if (cfg_.steps < info.step)
      throw ResumeMismatch(detail::concat("steps: expected at least the ", info.step,
                                          " steps the saved run has done, got ", cfg_.steps));
    // The saved run's schedule, then the same curve re-stretched if this run's length differs.
    LrSchedule saved = cfg_.schedule;
    if (extra.schedule_total > 0) saved.total_steps = extra.schedule_total;
    saved.restart_step = extra.restart_step;
    saved.restart_lr = extra.restart_lr;
    try {
      saved.validate();
    } catch (const ConfigError& e) {
      fail<FormatError>(where, ": ", e.what());
    }
    step_ = info.step;
    opt_.set_step_count(extra.adamw_step);
    bad_steps_ = extra.bad_steps;
    cfg_.schedule = saved.stretched_to(cfg_.schedule.total_steps, opt_.step_count());
    resumed_ = true;
    emit(TrainEvent::Kind::Resumed, [&](TrainEvent& e) {
      e.previous_steps = extra.steps > 0 ? extra.steps : cfg_.steps;
      e.lr = cfg_.schedule.lr(opt_.step_count());
    });
  }

  // Trains from step() to config().steps; returns early for stop_after (Stopped) or a stop
  // request (Interrupted), in both cases after saving. TrainingDiverged past max_bad_steps.
  TrainResult run() {
    const auto start = std::chrono::steady_clock::now();
    begin();
    TrainResult r;
    while (step_ < cfg_.steps) {
      train_step();
      if (due(cfg_.log_every) || step_ == cfg_.steps) log_step();
      if (task_.has_validation() && (due(cfg_.eval_every) || step_ == cfg_.steps)) validate();
      const bool stop_now = cfg_.stop_after > 0 && step_ == cfg_.stop_after && step_ < cfg_.steps;
      const int sig = hooks_.stop_requested ? hooks_.stop_requested() : 0;
      // save_period 0: only at the end (or when stopping).
      if (due(cfg_.save_period()) || step_ == cfg_.steps || sig != 0 || stop_now) save();
      if (hooks_.after_step) hooks_.after_step(step_);
      if (sig != 0 || stop_now) {
        r.outcome = sig != 0 ? TrainResult::Outcome::Interrupted : TrainResult::Outcome::Stopped;
        r.signal = sig;
        break;
      }
    }
    r.step = step_;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
  }

  // One step: forward/backward, hooks, clip, and the update unless the loss or the gradient is
  // not finite. Advances step(). The pieces of run(), public for custom loops and tests.
  void train_step() {
    const auto t0 = std::chrono::steady_clock::now();
    StepStats st = task_.forward_backward(step_);
    if (hooks_.after_backward) hooks_.after_backward(step_, st);
    if (hooks_.reduce_gradients) hooks_.reduce_gradients(st);
    const double norm = clip_grad_norm(params_, cfg_.clip);
    const double lr = cfg_.schedule.lr(opt_.step_count());
    if (!std::isfinite(st.loss) || !std::isfinite(norm)) {
      ++bad_steps_;
      emit(TrainEvent::Kind::BadStep, [&](TrainEvent& e) {
        e.step = step_ + 1;
        e.bad_loss = !std::isfinite(st.loss);
      });
      if (bad_steps_ > cfg_.max_bad_steps)
        throw TrainingDiverged(detail::concat("training diverged: ", bad_steps_,
                                              " steps with a non-finite loss or gradient (limit ", cfg_.max_bad_steps,
                                              "); the last good checkpoint is '", cfg_.out, "'"),
                               bad_steps_, cfg_.max_bad_steps, cfg_.out);
    } else {
      opt_.step(lr);
    }
    ++step_;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tps = double(st.tokens) / dt;
    tokens_per_s_ = tokens_per_s_ == 0 ? tps : 0.9 * tokens_per_s_ + 0.1 * tps;
    last_ = {st.loss, norm, lr};
    emit(TrainEvent::Kind::Step, [&](TrainEvent& e) {
      e.loss = st.loss;
      e.grad_norm = norm;
      e.lr = lr;
      e.tokens_per_s = tokens_per_s_;
    });
  }

  // Validation now (this process's part, reduced by the hook); reported and logged.
  EvalResult validate() {
    EvalSums s = task_.validate(hooks_.validation_part, hooks_.validation_parts);
    if (hooks_.reduce_validation) hooks_.reduce_validation(s);
    const EvalResult r = EvalResult::from(s);
    emit(TrainEvent::Kind::Validation, [&](TrainEvent& e) { e.eval = r; });
    if (logging()) log_pending_ += detail::concat(step_, ",valid,", r.loss, ",,,,", r.bpb(), ",", r.accuracy, "\n");
    return r;
  }

  // The log's new lines, then the training state (it alone is what resume reads), then the
  // model file. A fresh run whose first save fails removes what that save created.
  void save() {
    if (cfg_.out.empty() || !hooks_.writes_files) return;
    begin();
    try {
      write_log();
      nlohmann::json schedule = {{"total_steps", cfg_.schedule.total_steps}};
      if (cfg_.schedule.restart_step >= 0) {
        schedule["restart_step"] = cfg_.schedule.restart_step;
        schedule["restart_lr"] = cfg_.schedule.restart_lr;  // 17 significant digits: read back exactly
      }
      const nlohmann::json extra = {{"identity", cfg_.identity}, {"adamw_step", opt_.step_count()},
                                    {"bad_steps", bad_steps_}, {"steps", cfg_.steps}, {"schedule", schedule}};
      save_optimizer_state(state_path(), step_, [&](auto&& f) { visit_state(f); }, extra.dump());
      task_.save_model(cfg_.out, step_);
    } catch (...) {
      if (!saved_ && !resumed_)
        for (const auto& [path, existed] : existed_)
          if (!existed) ::unlink(path.c_str());
      throw;
    }
    saved_ = true;
    emit(TrainEvent::Kind::Saved, [](TrainEvent&) {});
  }

  // Locks the outputs and prepares the CSV log (after resume(): its lines up to the saved step);
  // run() calls it, a caller may call it earlier to see a locked or unwritable output before
  // anything else happens. The log has one row per logged step (kind "train": loss, grad_norm,
  // lr, tokens_per_s) and per validation (kind "valid": loss, bpb, accuracy), under the header
  // kLogHeader; its rows reach the disk at each save.
  static constexpr const char* kLogHeader = "step,kind,loss,grad_norm,lr,tokens_per_s,bpb,accuracy";
  void begin() {
    if (begun_) return;
    if (!cfg_.out.empty() && hooks_.writes_files) {
      lock_outputs();
      check_output_path(cfg_.out, "trainer out");
      check_output_path(state_path(), "trainer out (its training state)");
      for (const std::string& p : {cfg_.out, state_path(), cfg_.log_path})
        if (!p.empty()) existed_.emplace_back(p, ::access(p.c_str(), F_OK) == 0);
    }
    if (logging()) {
      check_output_path(cfg_.log_path, "training log");
      if (resumed_) {
        truncate_log_to_step();
      } else {
        log_pending_ = std::string(kLogHeader) + "\n";
        log_on_disk_ = false;
      }
    }
    begun_ = true;
  }

 private:
  struct Last {
    double loss = 0, grad_norm = 0, lr = 0;
  };

  bool due(std::int64_t every) const { return every > 0 && step_ % every == 0; }

  template <class F>
  void visit_state(F&& f) {
    for (const auto& [name, p] : params_) f("param." + name, p->value);
    opt_.visit_state([&](const std::string& name, auto& t) { f("adamw." + name, t); });
  }

  bool logging() const { return !cfg_.log_path.empty() && hooks_.writes_files && !cfg_.out.empty(); }

  void log_step() {
    if (logging())
      log_pending_ += detail::concat(step_, ",train,", last_.loss, ",", last_.grad_norm, ",", last_.lr, ",", tokens_per_s_, ",,\n");
  }

  // The log's pending lines to disk: the first write creates the file atomically, later ones
  // append and fsync. Every write is checked (IoError naming the log).
  void write_log() {
    if (!logging() || (log_on_disk_ && log_pending_.empty())) return;
    const std::string what = "training log " + quote_path(cfg_.log_path);
    if (!log_on_disk_) {
      detail::write_file_atomically(cfg_.log_path, [&](auto& sink) {
        sink(reinterpret_cast<const std::uint8_t*>(log_pending_.data()), log_pending_.size());
      });
      log_on_disk_ = true;
    } else {
      OutputStream log = OutputStream::append_to(cfg_.log_path, what);
      log.write(log_pending_);
      log.close();
    }
    log_pending_.clear();
  }

  // Resume: the log keeps its header and the lines of steps up to the saved one (lines written
  // past it came from steps the run is about to take again), rewritten atomically.
  void truncate_log_to_step() {
    struct stat st {};
    if (::stat(cfg_.log_path.c_str(), &st) != 0) {  // no log yet: start one at the next save
      log_pending_ = std::string(kLogHeader) + "\n";
      log_on_disk_ = false;
      return;
    }
    const std::vector<std::uint8_t> bytes = read_file_bounded(cfg_.log_path, std::uint64_t(1) << 32, "training log");
    std::string kept;
    std::size_t pos = 0;
    for (bool first = true; pos < bytes.size(); first = false) {
      std::size_t end = pos;
      while (end < bytes.size() && bytes[end] != '\n') ++end;
      if (end == bytes.size()) break;  // a last line cut short by a crash
      const std::string line(bytes.begin() + static_cast<std::ptrdiff_t>(pos), bytes.begin() + static_cast<std::ptrdiff_t>(end));
      pos = end + 1;
      std::int64_t step = 0;
      std::size_t k = 0;
      for (; k < line.size() && k < 18 && line[k] >= '0' && line[k] <= '9'; ++k) step = step * 10 + (line[k] - '0');
      const bool numbered = k > 0 && k < line.size() && line[k] == ',';
      if ((first && !numbered) || (numbered && step <= step_)) kept += line + "\n";
    }
    if (kept.empty()) kept = std::string(kLogHeader) + "\n";
    detail::write_file_atomically(cfg_.log_path, [&](auto& sink) {
      sink(reinterpret_cast<const std::uint8_t*>(kept.data()), kept.size());
    });
    log_on_disk_ = true;
    log_pending_.clear();
  }

  // The OutputLocks on `out` and on the log (which another run may name as its --log).
  void lock_outputs() {
    if (cfg_.out.empty() || !hooks_.writes_files || out_lock_.held()) return;
    out_lock_ = OutputLock::acquire(cfg_.out, "trainer out");
    if (!cfg_.log_path.empty()) log_lock_ = OutputLock::acquire(cfg_.log_path, "training log");
  }

  template <class Fill>
  void emit(TrainEvent::Kind kind, Fill&& fill) {
    if (!hooks_.on_event) return;
    TrainEvent e;
    e.kind = kind;
    e.step = step_;
    e.bad_steps = bad_steps_;
    fill(e);
    hooks_.on_event(e);
  }

  TrainTask<T>& task_;
  TrainerConfig cfg_;
  TrainHooks<T> hooks_;
  NamedParams<T> params_;
  AdamW<T> opt_;
  std::int64_t step_ = 0, bad_steps_ = 0;
  bool resumed_ = false, begun_ = false, saved_ = false;
  double tokens_per_s_ = 0;
  Last last_;
  OutputLock out_lock_, log_lock_;
  std::string log_pending_;    // log lines not yet on disk
  bool log_on_disk_ = false;   // the log file exists (created by this run or kept on resume)
  std::vector<std::pair<std::string, bool>> existed_;  // out, state, log: did each exist at begin()?
};

// The step of any model of model/sequence_model.hpp on batches a subclass samples: zero the
// gradients, forward with the batch's targets in training mode (dropout masks a pure function of
// (seed, step, global row)), backward. A subclass gives sample(step, batch) (a pure function of
// the step, so a resumed run sees the same batches), and may give validate() and checkpoint
// metadata. set_shard(r, R) makes this process compute rows [r B / R, (r+1) B / R)
// of the same global batch, its loss normalized by the global batch's count (a data-parallel
// driver then sums gradients over processes in its hook).
template <class Model>
class SupervisedTask : public TrainTask<typename Model::Scalar> {
 public:
  using T = typename Model::Scalar;
  struct Batch {
    typename Model::Data data;      // [B, ...] the model's input
    typename Model::Target target;  // [B, ...] what the head's loss compares with
    Tensor<std::int32_t> lengths;   // [B] each row's valid length, or empty: every position valid
    Index tokens = 0;               // input positions (for tokens/s)
    const Tensor<std::int32_t>* lengths_or_null() const { return lengths.size() > 0 ? &lengths : nullptr; }
  };

  // `seed`: the run's seed, from which the dropout masks of every step are drawn.
  explicit SupervisedTask(Model& model, std::uint64_t seed = 0) : model_(model), seed_(seed) {}

  Model& model() { return model_; }

  // Rows of the global batch, when the task knows it before sampling (0: checked per batch).
  virtual Index batch_size() const { return 0; }

  void set_shard(Index rank, Index ranks) {
    if (ranks < 1 || rank < 0 || rank >= ranks)
      fail<ValueError>("task shard: expected 0 <= rank < ranks, got rank ", rank, " of ", ranks);
    if (const Index B = batch_size(); B > 0 && B % ranks != 0)  // else shard() checks each batch
      fail<ValueError>("batch: expected a multiple of the number of processes (", ranks, "), got ", B);
    rank_ = rank;
    ranks_ = ranks;
  }

  NamedParams<T> parameters() override { return model_.named_parameters(); }

  StepStats forward_backward(std::int64_t step) override {
    sample(step, global_);
    const Batch& b = ranks_ == 1 ? global_ : shard();
    model_.zero_grad();
    // Training mode for this step only: evaluation (validation, saving) again afterwards, also
    // when the step throws.
    struct TrainingMode {
      Model& m;
      ~TrainingMode() { m.set_evaluation(); }
    } mode{model_};
    const Index first_row = ranks_ == 1 ? 0 : rank_ * (Model::InputType::batch(global_.data) / ranks_);
    model_.set_training(seed_, step, first_row);
    StepStats st;
    // Sharded, the loss and its gradient are this process's share of the global batch's mean
    // (normalized by the global count): summed over processes (dist/trainer_hooks.hpp, from inside
    // backward) they give the global mean's, as one process would compute it.
    if (ranks_ == 1) {
      st.loss = static_cast<double>(model_.forward(b.data, b.target, b.lengths_or_null()));
    } else {
      const Index global_count = Model::HeadType::count(global_.target, global_.lengths_or_null());
      st.loss = static_cast<double>(
          model_.forward(b.data, b.target, std::max<Index>(1, global_count), b.lengths_or_null()));
    }
    model_.backward();
    st.targets = Model::HeadType::count(b.target, b.lengths_or_null());
    st.tokens = b.tokens;
    return st;
  }

  void set_precision(Precision p) override { model_.set_precision(p); }

  // Extra metadata of every model file this task saves (e.g. how the training data was split).
  void set_metadata(const std::string& key, const std::string& value) { extra_metadata_[key] = value; }

  void save_model(const std::string& path, std::int64_t step) override {
    std::map<std::string, std::string> meta = metadata();
    for (const auto& [k, v] : extra_metadata_) meta[k] = v;
    meta["tnn.step"] = std::to_string(step);
    tnn::save_model(path, model_, Dtype::F32, meta);
  }

 protected:
  // The global batch of training step `step` (>= 0).
  virtual void sample(std::int64_t step, Batch& out) = 0;
  // Extra metadata of every saved model file (class names, ...).
  virtual std::map<std::string, std::string> metadata() const { return {}; }

 private:
  // Rows [r B / R, (r+1) B / R) of every tensor of the global batch.
  const Batch& shard() {
    const Index B = Model::InputType::batch(global_.data);
    if (B % ranks_ != 0)
      fail<ValueError>("batch: expected a multiple of the number of processes (", ranks_, "), got ", B);
    const Index rows = B / ranks_, first = rank_ * rows;
    take_rows(global_.data, first, rows, local_.data);
    take_rows(global_.target, first, rows, local_.target);
    if (global_.lengths.size() > 0) take_rows(global_.lengths, first, rows, local_.lengths);
    local_.tokens = global_.tokens / ranks_;
    return local_;
  }
  template <class U>
  static void take_rows(const Tensor<U>& all, Index first, Index rows, Tensor<U>& out) {
    Shape s = all.shape();
    const Index per = all.size() / s[0];
    s[0] = rows;
    out.resize(s);
    std::copy(all.data() + first * per, all.data() + (first + rows) * per, out.data());
  }

  Model& model_;
  std::uint64_t seed_;
  Index rank_ = 0, ranks_ = 1;
  Batch global_, local_;
  std::map<std::string, std::string> extra_metadata_;
};

// The language model's step: TnnLM on token batches (BatchSampler: a pure function of seed and
// step), validation over EvalWindows of the validation corpus. The model and corpora must
// outlive the task. The corpora's ids must be ids of the model (and, for MLM, so must the mask
// id after them); the tokenizer that made them is stored in every saved model file.
template <class T>
class LmTask : public SupervisedTask<TnnLM<T>> {
 public:
  LmTask(TnnLM<T>& model, const TokenCorpus& train, const TokenCorpus& valid, Index batch, Index seq_len,
         LmObjective objective, std::uint64_t seed, Tokenizer tokenizer = Tokenizer::bytes())
      : SupervisedTask<TnnLM<T>>(model, seed), sampler_(train, batch, seq_len, objective, seed), valid_(&valid),
        batch_(batch), seq_len_(seq_len), objective_(objective), tokenizer_(std::move(tokenizer)) {
    const Index need = std::max(train.vocab_size(), tokenizer_.vocab_size()) + (objective == LmObjective::Mlm ? 1 : 0);
    if (model.config().vocab_size < need)
      fail<ConfigError>("language model: vocab_size ", model.config().vocab_size, " is too small for the data: its ",
                        train.vocab_size(), " ids", objective == LmObjective::Mlm ? " and the mask id" : "",
                        " need at least ", need);
    if (!valid.empty() && valid.vocab_size() != train.vocab_size())
      fail<ValueError>("language model: expected validation data of the training data's vocabulary (",
                       train.vocab_size(), " ids), got ", valid.vocab_size());
  }
  LmTask(TnnLM<T>&, TokenCorpus&&, const TokenCorpus&, Index, Index, LmObjective, std::uint64_t,
         Tokenizer = Tokenizer::bytes()) = delete;
  LmTask(TnnLM<T>&, const TokenCorpus&, TokenCorpus&&, Index, Index, LmObjective, std::uint64_t,
         Tokenizer = Tokenizer::bytes()) = delete;

  Index batch_size() const override { return batch_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  bool has_validation() const override { return !valid_->empty(); }
  EvalSums validate(Index part, Index parts) override {
    if (valid_->empty()) return {};
    return eval_sums(this->model(), EvalWindows(*valid_, batch_, seq_len_, objective_, kEvalMaskSeed), part, parts);
  }

 protected:
  using typename SupervisedTask<TnnLM<T>>::Batch;
  void sample(std::int64_t step, Batch& out) override {
    sampler_.sample(step, lm_batch_);
    out.data = lm_batch_.tokens;
    out.target = lm_batch_.targets;
    out.tokens = lm_batch_.tokens.size();
  }
  std::map<std::string, std::string> metadata() const override { return tokenizer_metadata(tokenizer_); }

 private:
  BatchSampler sampler_;
  const TokenCorpus* valid_;
  Index batch_, seq_len_;
  LmObjective objective_;
  Tokenizer tokenizer_;
  tnn::Batch lm_batch_;  // [B, N] tokens and targets
};

// SIGINT and SIGTERM, while this object lives, only record the signal: the trainer polls it
// (hooks.stop_requested = [&] { return signals.received(); }) and saves at the end of the step.
// A second signal ends the process at once (the checkpoint on disk is whole either way: saves
// are atomic). The previous handlers come back on destruction. One instance at a time.
class ScopedStopSignals {
 public:
  ScopedStopSignals() {
    flag().store(0);
    prev_int_ = std::signal(SIGINT, &ScopedStopSignals::handler);
    prev_term_ = std::signal(SIGTERM, &ScopedStopSignals::handler);
  }
  ~ScopedStopSignals() {
    std::signal(SIGINT, prev_int_);
    std::signal(SIGTERM, prev_term_);
  }
  ScopedStopSignals(const ScopedStopSignals&) = delete;
  ScopedStopSignals& operator=(const ScopedStopSignals&) = delete;

  int received() const { return flag().load(); }

 private:
  static std::atomic<int>& flag() {
    static std::atomic<int> f{0};
    return f;
  }
  static void handler(int sig) {
    if (flag().exchange(sig) != 0) {
      std::signal(sig, SIG_DFL);
      std::raise(sig);
    }
  }
  using Handler = void (*)(int);
  Handler prev_int_ = SIG_DFL, prev_term_ = SIG_DFL;
};

}  // namespace tnn
