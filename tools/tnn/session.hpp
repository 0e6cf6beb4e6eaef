// The run loop every task's `tnn train` shares, once the task has a model and a tnn::TrainTask:
// the checks made before any work, the model's config (saved run, --config, model flags, data),
// the trainer's settings and identity, the hooks (progress and validation lines, --inject-nan-*,
// --pause-at-step, the stop signal), --resume, and the run under the status line with
// SIGINT/SIGTERM handling and its closing message. A task's train, in order:
//   TrainSession s(o);  s.check_outputs();  ... data, s.model_config(data keys), model, task ...
//   Trainer t(task, s.trainer_config(cfg), s.hooks(params, kind));  s.resume(t);  t.begin();
//   <the model/data line>;  return s.exit_code(s.run(t));
// Nothing here ends the process: an interrupted run returns 128 + the signal up to main.
// Files, for --out CKPT.safetensors (written by tnn::Trainer, include/tnn/train/trainer.hpp):
//   CKPT.safetensors        the model: what eval, generate, classify and grad read
//   CKPT.optim.safetensors  the whole training state; --resume reads only this file
//   CKPT.safetensors.csv    one row per logged step (kind train) and per validation (kind valid)
#pragma once

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/io/stream.hpp>
#include <tnn/model/config.hpp>
#include <tnn/train/trainer.hpp>

#include "data_record.hpp"
#include "options.hpp"
#include "progress.hpp"

namespace tnncli {

// With --resume, the settings of the saved run (its identity) for every flag not given, so a run
// continues as it was started without repeating its flags; flags given must agree with it (the
// trainer's identity check). Reads only the training state's header.
void adopt_saved_settings(TrainOptions& o);

class TrainSession {
 public:
  enum class Validation { Lm, Mlm, Accuracy, Mse };  // what a validation line reports

  explicit TrainSession(const TrainOptions& o);
  TrainSession(const TrainSession&) = delete;
  TrainSession& operator=(const TrainSession&) = delete;

  const TrainOptions& options() const { return o_; }
  const std::string& state_path() const { return state_path_; }
  const std::string& log_path() const { return log_path_; }
  // Every output path, before any work; an existing run is never replaced silently, an output
  // naming an input (--out naming --data) is refused, and the run locks --out and its log for
  // its whole life (a second run on the same files is refused with one line; the lock dies with
  // its process, kill -9 included). Under mpirun rank 0 alone writes files and holds the locks.
  void check_outputs();
  // With --resume: the saved model is of `task` (a one-line error naming what it is otherwise).
  void check_resumed_task(tnn::Task task) const;
  // The checks of a task that trains in one process (every task but lm), before any work: one
  // process under mpirun, then check_outputs() and check_resumed_task(task).
  void check_one_process(tnn::Task task);

  // The model of this run: the saved run's config (--resume), or --config's keys, or none; then
  // every model flag given (one notice line for each key it overrides in --config); then
  // `data_keys`, the keys the data decides, where the config leaves them out. The task checks
  // that a --config file's own data keys agree with the data.
  tnn::TnnConfig model_config(const nlohmann::json& data_keys);

  // The settings a resumed run must share (TrainOptions::visit_settings, the config, `extra`).
  nlohmann::json identity(const tnn::TnnConfig& cfg, const nlohmann::json& extra = nlohmann::json::object()) const;
  tnn::TrainerConfig trainer_config(const tnn::TnnConfig& cfg,
                                    const nlohmann::json& extra_identity = nlohmann::json::object()) const;

  // What the run's flags set on its model beyond the config (--recompute).
  template <class Model>
  void prepare(Model& model) const {
    model.backbone.set_recompute(o_.recompute);
  }

  // The training file as the checkpoint records it (data_record.hpp): size, hash, held-out rule.
  DataRecord data_record(const std::vector<std::uint8_t>& bytes, const std::string& held_out) const;

  // The hooks every task installs; `params` are the model's (the NaN injection poisons the first).
  tnn::TrainHooks<float> hooks(tnn::NamedParams<float> params, Validation kind);
  void resume(tnn::Trainer<float>& trainer) const;

  // Runs to the end (or --stop-after, or a signal: saved either way) and prints the closing message.
  tnn::TrainResult run(tnn::Trainer<float>& trainer);

  // The rest of a one-process task's run once its model and `task` are built: `record` stored in
  // the checkpoint, the trainer (identity: the config and `extra_identity`), --resume, the begin,
  // `summary()` (the model/data line), the run; returns the exit code.
  template <class Model, class Task, class Summary>
  int train(Model& model, Task& task, const tnn::TnnConfig& cfg, const DataRecord& record,
            const nlohmann::json& extra_identity, Validation kind, Summary&& summary) {
    task.set_metadata(kDataMetadataKey, record.to_json());
    tnn::Trainer<float> trainer(task, trainer_config(cfg, extra_identity), hooks(model.named_parameters(), kind));
    resume(trainer);
    trainer.begin();
    summary();
    return exit_code(run(trainer));
  }
  // The program's exit code for a result: 128 + the signal when interrupted, else 0.
  static int exit_code(const tnn::TrainResult& r) {
    return r.outcome == tnn::TrainResult::Outcome::Interrupted ? 128 + r.signal : 0;
  }

 private:
  void report(const tnn::TrainEvent& e, Validation kind);
  int wait_for_signal() const;

  const TrainOptions& o_;
  const std::string state_path_, log_path_;
  const std::set<tnn::Index> inject_nan_, inject_nan_grad_;
  std::vector<tnn::OutputLock> locks_;  // on --out and the log, held for the whole run
  Progress* progress_ = nullptr;  // set while the run goes; events before that print directly
  Progress resume_printer_;
  tnn::ScopedStopSignals* signals_ = nullptr;
  tnn::Index last_step_ = 0;  // the last finished step (1-based), for --pause-at-step
  nlohmann::json identity_config_;  // a resumed run's config as its identity spells it
};

// "1234 parameters (dim 64, layers 2, heads 1, E 128, rpe 32x1, fixed decay": the model part of
// the line each task prints before its run.
std::string model_summary(const tnn::TnnConfig& cfg, tnn::Index parameters);

}  // namespace tnncli
