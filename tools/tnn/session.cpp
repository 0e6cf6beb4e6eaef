// The run loop every task's `tnn train` shares (session.hpp).
#include "session.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>
#include <type_traits>

#include <tnn/io/file.hpp>
#include <tnn/io/json.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/train/state.hpp>

#include "common.hpp"
#include "flags.hpp"
#include "processes.hpp"
#include "tasks.hpp"

namespace tnncli {
namespace {

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
  at_least(o.pause_at_step, 0, "--pause-at-step");
  at_least(o.valid_block, -1, "--valid-block");
  if (!(o.valid_fraction >= 0 && o.valid_fraction < 1))
    tnn::fail<tnn::ValueError>("--valid-fraction: expected a value in [0, 1), got ", o.valid_fraction);
  if (!(o.clip > 0)) tnn::fail<tnn::ValueError>("--clip: expected > 0, got ", o.clip);
  if (!(o.weight_decay >= 0)) tnn::fail<tnn::ValueError>("--weight-decay: expected >= 0, got ", o.weight_decay);
}

// --inject-nan-steps and --inject-nan-grad-steps: after the backward pass of each listed step
// (1-based, as the progress lines count), the loss and one gradient entry (or only the gradient
// entry) are set to NaN, as a numerical blow-up would leave them, so the fault handling runs for real.
std::set<tnn::Index> parse_inject_steps(const std::string& s, const char* flag) {
  const std::vector<tnn::Index> steps = parse_positive_list(s, flag);
  return std::set<tnn::Index>(steps.begin(), steps.end());
}

}  // namespace

namespace {
// The JSON of the training state beside --out (its header only), if there is one.
std::optional<tnn::TrainingStateJson> saved_state(const std::string& out) {
  const std::string state = tnn::optimizer_state_path(out);
  if (::access(state.c_str(), F_OK) != 0) return std::nullopt;  // the trainer's resume names the missing file
  const tnn::SafetensorsHeader h = tnn::read_safetensors_header(state);
  auto it = h.metadata.find(tnn::kExtraMetadataKey);
  if (it == h.metadata.end()) return std::nullopt;
  return tnn::parse_training_state(
      it->second, "training state " + tnn::quote_path(state) + ": metadata '" + tnn::kExtraMetadataKey + "'");
}
}  // namespace

void adopt_saved_settings(TrainOptions& o) {
  const std::optional<tnn::TrainingStateJson> state = saved_state(o.out);
  if (!state) return;
  const tnn::TrainingStateJson& saved = *state;
  const nlohmann::json& id = saved.identity;
  // A value of the wrong type is left alone: the identity check then names the difference.
  auto adopt = [&](const char* key, const char* flag, auto& member) {
    using V = std::decay_t<decltype(member)>;
    auto v = id.find(key);
    if (o.was_given(flag) || v == id.end()) return;
    if constexpr (std::is_same<V, std::string>::value) {
      if (v->is_string()) member = v->template get<std::string>();
    } else if constexpr (std::is_floating_point<V>::value) {
      if (v->is_number()) member = v->template get<V>();
    } else {
      if (v->is_number_integer()) member = v->template get<V>();
    }
  };
  TrainOptions::visit_settings(o, adopt);
  adopt("task", "--task", o.task);
  adopt("precision", "--precision", o.precision);  // in the identity only when not fp32
  // The length: the saved run's, unless --steps extends or shortens it.
  const std::int64_t steps = saved.steps > 0 ? saved.steps
                             : id.contains("steps") && id["steps"].is_number_integer() ? id["steps"].get<std::int64_t>()
                                                                                       : 0;
  if (!o.was_given("--steps") && steps > 0) o.steps = steps;
}

TrainSession::TrainSession(const TrainOptions& o)
    : o_((check_options(o), o)),
      state_path_(tnn::optimizer_state_path(o.out)),
      log_path_(o.log.empty() ? o.out + ".csv" : o.log),
      inject_nan_(parse_inject_steps(o.inject_nan_steps, "--inject-nan-steps")),
      inject_nan_grad_(parse_inject_steps(o.inject_nan_grad_steps, "--inject-nan-grad-steps")),
      resume_printer_(o.steps, 0, false, o.log_every) {
  set_threads(o.threads);
}

void TrainSession::check_outputs() {
  const char* log_flag = o_.log.empty() ? "--out (its log)" : "--log";
  tnn::check_output_path(o_.out, "--out");
  tnn::check_output_path(state_path_, "--out (its training state)");
  tnn::check_output_path(log_path_, log_flag);
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"--data", o_.data}, {"--valid", o_.valid}, {"--config", o_.config_file}};
  tnn::check_output_not_input(o_.out, "--out", inputs);
  tnn::check_output_not_input(state_path_, "--out (its training state)", inputs);
  tnn::check_output_not_input(log_path_, log_flag, inputs);
  // The log is locked too: another run may name it as its --log.
  if (launcher_rank() == 0) {
    locks_.push_back(tnn::OutputLock::acquire(o_.out, "--out"));
    locks_.push_back(tnn::OutputLock::acquire(log_path_, log_flag));
  }
  if (o_.resume || o_.force) return;
  for (const std::string& p : {o_.out, state_path_, log_path_})
    if (::access(p.c_str(), F_OK) == 0)
      tnn::fail<tnn::IoError>("--out ", tnn::quote_path(o_.out), ": ", tnn::quote_path(p),
                              " already exists; give --resume to continue that run or --force to replace it "
                              "(nothing was changed)");
}

void TrainSession::check_resumed_task(tnn::Task task) const {
  if (!o_.resume) return;
  const tnn::Task saved = tnn::read_config(o_.out).task;
  if (saved != task)
    tnn::fail<tnn::ValueError>("--resume: ", tnn::quote_path(o_.out), " is not ", task_cli(task).what, " (task '",
                               tnn::to_string(saved), "')");
}

void TrainSession::check_one_process(tnn::Task task) {
  if (communicator().size() > 1)
    tnn::fail<tnn::ValueError>("--task ", tnn::to_string(task),
                               ": expected one process (data-parallel training is for --task lm), got ",
                               communicator().size(), " under mpirun");
  check_outputs();
  check_resumed_task(task);
}

tnn::TnnConfig TrainSession::model_config(const nlohmann::json& data_keys) {
  nlohmann::json j = nlohmann::json::object();
  std::string source;
  if (o_.resume) {
    j = tnn::read_config(o_.out).to_json();  // the run's own model; flags that differ are refused on resume
  } else if (!o_.config_file.empty()) {
    // At most 1 MB, a regular file or a pipe (not /dev/zero), strict JSON (io/json.hpp).
    const std::vector<std::uint8_t> bytes = tnn::read_file_bounded(o_.config_file, 1 << 20, "--config");
    source = "--config " + tnn::quote_path(o_.config_file);
    j = tnn::parse_json_strict<tnn::ConfigError>(std::string(bytes.begin(), bytes.end()), source);
  }
  const nlohmann::json saved = o_.resume ? j : nlohmann::json();
  if (j.is_object()) {  // anything else is refused by from_json, naming what it got
    // A file naming another task gets none of this task's data keys: the task is what is wrong.
    if (j.contains("task") && j["task"].is_string() && data_keys.contains("task") && j["task"] != data_keys["task"])
      tnn::fail<tnn::ConfigError>(source, ": task is '", j["task"].get<std::string>(), "' but --task ",
                                  data_keys["task"].get<std::string>(), " needs '", data_keys["task"].get<std::string>(),
                                  "'");
    o_.model->apply(j, source);
    for (auto it = data_keys.begin(); it != data_keys.end(); ++it)
      if (!j.contains(it.key())) j[it.key()] = it.value();
  }
  const tnn::TnnConfig cfg = tnn::TnnConfig::from_json(j);
  // Found here, before a model of another shape meets the saved tensors.
  if (o_.resume && cfg.to_json() != saved)
    tnn::fail<tnn::ValueError>("--resume: the model flags differ from the saved model (",
                               tnn::json_differences(saved, cfg.to_json()), ")");
  // A run saved by an older program spelled some keys of its identity's config otherwise
  // (use_decay for decay): the same model, so its spelling is kept and the run resumes.
  if (o_.resume)
    if (const auto state = saved_state(o_.out); state && state->identity.contains("config")) {
      try {
        if (tnn::TnnConfig::from_json(state->identity["config"]).to_json() == cfg.to_json())
          identity_config_ = state->identity["config"];
      } catch (const tnn::Error&) {  // not a config: the identity check names the difference
      }
    }
  return cfg;
}

nlohmann::json TrainSession::identity(const tnn::TnnConfig& cfg, const nlohmann::json& extra) const {
  nlohmann::json j = {{"config", identity_config_.is_null() ? cfg.to_json() : identity_config_}};
  TrainOptions::visit_settings(o_, [&](const char* key, const char*, const auto& member) { j[key] = member; });
  j.update(extra);
  return j;
}

tnn::TrainerConfig TrainSession::trainer_config(const tnn::TnnConfig& cfg, const nlohmann::json& extra_identity) const {
  tnn::TrainerConfig t;
  t.steps = o_.steps;
  t.schedule.kind = tnn::parse_schedule_kind(o_.schedule);
  t.schedule.peak_lr = o_.lr;
  t.schedule.min_lr = std::min(o_.min_lr, o_.lr);
  t.schedule.warmup_steps = o_.warmup;
  t.schedule.total_steps = o_.steps;
  t.adamw.weight_decay = o_.weight_decay;
  t.clip = o_.clip;
  t.log_every = o_.log_every;
  t.eval_every = o_.eval_every;
  t.save_every = o_.save_every > 0 ? o_.save_every : o_.eval_every;
  t.max_bad_steps = o_.max_bad_steps;
  t.stop_after = o_.stop_after;
  t.out = o_.out;
  t.log_path = log_path_;
  t.precision = tnn::parse_enum<tnn::Precision>(o_.precision, "--precision");
  t.identity = identity(cfg, extra_identity);
  return t;
}

DataRecord TrainSession::data_record(const std::vector<std::uint8_t>& bytes, const std::string& held_out) const {
  DataRecord r;
  r.file = o_.data;
  r.bytes = bytes.size();
  r.hash = DataRecord::hash_of(bytes);
  r.held_out = held_out;
  r.fraction = held_out == "none" ? 0 : o_.valid_fraction;
  r.block = held_out == "blocks" ? o_.valid_block : 0;
  return r;
}

tnn::TrainHooks<float> TrainSession::hooks(tnn::NamedParams<float> params, Validation kind) {
  tnn::TrainHooks<float> h;
  h.on_event = [this, kind](const tnn::TrainEvent& e) {
    if (e.kind == tnn::TrainEvent::Kind::Step) last_step_ = e.step;
    report(e, kind);
  };
  h.after_backward = [this, params = std::move(params)](std::int64_t step, tnn::StepStats& st) {
    if (inject_nan_.count(step + 1) || inject_nan_grad_.count(step + 1)) {
      params.front().second->grad[0] = std::numeric_limits<float>::quiet_NaN();
      if (inject_nan_.count(step + 1)) st.loss = std::numeric_limits<float>::quiet_NaN();
    }
  };
  h.stop_requested = [this] {
    if (o_.pause_at_step > 0 && last_step_ == o_.pause_at_step) return wait_for_signal();
    return signals_ ? signals_->received() : 0;
  };
  return h;
}

int TrainSession::wait_for_signal() const {
  for (int i = 0; i < 6000; ++i) {
    if (signals_ && signals_->received()) return signals_->received();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  tnn::fail<tnn::Error>("--pause-at-step ", o_.pause_at_step, ": no SIGINT or SIGTERM arrived within 60 s");
}

void TrainSession::report(const tnn::TrainEvent& e, Validation kind) {
  using Kind = tnn::TrainEvent::Kind;
  Progress& p = progress_ ? *progress_ : resume_printer_;
  std::ostringstream s;
  s.precision(4);
  s << std::fixed;
  switch (e.kind) {
    case Kind::Resumed: {
      s << "resuming '" << state_path_ << "' at step " << e.step << " of " << o_.steps;
      if (e.previous_steps != o_.steps) {
        s << " (the run had " << e.previous_steps << " steps";
        if (o_.schedule == "cosine") {
          char buf[160];
          std::snprintf(buf, sizeof buf, "; the cosine schedule goes on from lr %.2e to --min-lr %.2e at step %lld",
                        e.lr, std::min(o_.min_lr, o_.lr), static_cast<long long>(o_.steps));
          s << buf;
        }
        s << ")";
      }
      p.line(s.str());
      break;
    }
    case Kind::Step:
      p.update(e.step - 1, e.loss, e.tokens_per_s, e.lr);
      break;
    case Kind::BadStep:
      p.line("step " + std::to_string(e.step) + ": non-finite " + (e.bad_loss ? "loss" : "gradient") +
             ", update skipped (" + std::to_string(e.bad_steps) + " of at most " + std::to_string(o_.max_bad_steps) +
             ")");
      break;
    case Kind::Validation: {
      const tnn::EvalResult& r = e.eval;
      if (kind == Validation::Mse) {
        s.precision(6);
        s << std::defaultfloat << "step " << e.step << ": validation mean squared error " << r.loss << " ("
          << count_of(r.tokens, "value") << ")";
      } else if (kind == Validation::Accuracy) {
        s << "step " << e.step << ": validation accuracy " << r.accuracy << ", loss " << r.loss << " nats ("
          << count_of(r.tokens, "example") << ")";
      } else {
        s << "step " << e.step << ": validation loss " << r.loss << " nats, ";
        if (std::isnan(r.bpb()))
          s << "bits/byte unknown (token files)";
        else
          s << r.bpb() << " bits/byte";
        s << ", ppl " << r.ppl();
        if (kind == Validation::Mlm) s << ", masked-token accuracy " << r.accuracy;
        s << " (" << count_of(r.tokens, "token") << ")";
      }
      p.line(s.str());
      break;
    }
    case Kind::Saved:
      break;
  }
}

void TrainSession::resume(tnn::Trainer<float>& trainer) const {
  if (!o_.resume) return;
  try {
    trainer.resume();
  } catch (const tnn::ResumeMismatch& e) {
    tnn::fail<tnn::ValueError>("--resume: ", e.what());
  }
}

tnn::TrainResult TrainSession::run(tnn::Trainer<float>& trainer) {
  Progress bar(o_.steps, trainer.step(), stderr_is_terminal(), o_.log_every);
  struct Detach {  // the bar and the handlers live only as long as this call
    TrainSession* s;
    ~Detach() { s->progress_ = nullptr, s->signals_ = nullptr; }
  } detach{this};
  progress_ = &bar;
  tnn::TrainResult result;
  {
    tnn::ScopedStopSignals stop_signals;  // restored before the messages below
    signals_ = &stop_signals;
    try {
      result = trainer.run();
    } catch (const tnn::TrainingDiverged& e) {
      bar.finish();
      tnn::fail<tnn::Error>("training diverged: ", e.bad_steps, " steps with a non-finite loss or gradient (limit ",
                            e.max_bad_steps, ", see --max-bad-steps); the last good checkpoint is '", e.checkpoint,
                            "'");
    }
    signals_ = nullptr;
  }
  bar.finish();
  switch (result.outcome) {
    case tnn::TrainResult::Outcome::Interrupted:
      std::fprintf(stderr, "interrupted (%s): saved step %lld to '%s'; continue with --resume\n",
                   result.signal == SIGINT ? "SIGINT" : "SIGTERM", (long long)result.step, o_.out.c_str());
      break;
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
  std::fflush(stderr);
  return result;
}

std::string model_summary(const tnn::TnnConfig& cfg, tnn::Index parameters) {
  std::ostringstream s;
  s << parameters << " parameters (dim " << cfg.dim << ", layers " << cfg.layers << ", heads " << cfg.heads;
  if (cfg.token_mixer == tnn::TokenMixerKind::Attention)
    s << ", attention";
  else
    s << ", E " << cfg.inner_dim() << ", rpe " << cfg.rpe_dim << "x" << cfg.rpe_layers << ", "
      << tnn::to_string(cfg.decay) << " decay";
  if (cfg.positions != tnn::PositionScheme::None) s << ", " << tnn::to_string(cfg.positions) << " positions";
  return s.str();
}

}  // namespace tnncli
