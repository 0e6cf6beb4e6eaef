// `tnn train`: trains a TNN language model on a byte-level text file, with
// periodic validation, a CSV log, atomic checkpoints and exact resume.
//
// Files written for --out CKPT.safetensors:
//   CKPT.safetensors        the model (spec section 9): what eval and generate read
//   CKPT.optim.safetensors  the whole training state: model weights ("param.<name>"),
//                           AdamW moments, step, and the run's settings; --resume reads
//                           only this file, so a crash between the two writes (each one
//                           atomic) can never pair weights and moments of different steps.
//   CKPT.csv                one line per logged step and per validation
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>
#include <tnn/model/lm.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/train/data.hpp>
#include <tnn/train/optimizer.hpp>
#include <tnn/train/schedule.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace tnncli {
namespace {

std::atomic<int> g_signal{0};
// The first SIGINT or SIGTERM asks for a save at the end of the current step; a second one
// ends the process at once (the checkpoint on disk is whole either way: saves are atomic).
extern "C" void on_stop_signal(int sig) {
  if (g_signal.exchange(sig) != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

struct TrainOptions {
  std::string data, valid, out, config_file, objective = "clm", schedule = "cosine", log;
  double valid_fraction = 0.05;
  tnn::Index valid_block = 0;
  tnn::Index seq_len = 512, batch = 8, steps = 1000, warmup = 100;
  double lr = 2e-3, min_lr = 1e-4, weight_decay = 0.01, clip = 1.0;
  std::uint64_t seed = 1;
  int threads = 0;
  bool resume = false;
  tnn::Index eval_every = 200, eval_tokens = 65536, log_every = 10, save_every = 0, max_bad_steps = 20, stop_after = 0;
  std::string inject_nan_steps, inject_nan_grad_steps;  // testing hooks: see parse_inject_steps
  // model flags (used when no --config file is given)
  tnn::Index dim = 256, layers = 4, heads = 1, glu_dim = -1, rpe_dim = 32, rpe_layers = 1;
  double expand_ratio = 2, gamma = 0.99;
  std::string decay = "fixed", norm = "simplermsnorm";
  bool tie = false, postnorm = false;
};

tnn::TnnConfig model_config(const TrainOptions& o, tnn::Index vocab, bool causal) {
  if (!o.config_file.empty()) {
    std::ifstream in(o.config_file);
    if (!in) tnn::fail<tnn::IoError>("--config: cannot open '", o.config_file, "'");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      tnn::fail<tnn::ConfigError>("--config '", o.config_file, "': expected valid JSON, got a parse error: ", e.what());
    }
    if (j.is_object()) {
      if (!j.contains("vocab_size")) j["vocab_size"] = vocab;
      if (!j.contains("causal")) j["causal"] = causal;
    }
    tnn::TnnConfig c = tnn::TnnConfig::from_json(j);
    if (c.causal != causal)
      tnn::fail<tnn::ConfigError>("--config: 'causal' is ", c.causal, " but --objective ", o.objective, " needs ", causal);
    if (c.vocab_size < vocab)
      tnn::fail<tnn::ConfigError>("--config: vocab_size: expected >= ", vocab, " for --objective ", o.objective,
                                  ", got ", c.vocab_size);
    return c;
  }
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
  c.use_decay = o.decay == "fixed";
  c.use_multi_decay = o.decay == "multi";
  c.norm_type = tnn::parse_norm(o.norm, "--norm");
  c.tie_embeddings = o.tie;
  c.prenorm = !o.postnorm;
  c.causal = causal;
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

class Progress {
 public:
  Progress(tnn::Index total, tnn::Index first, bool tty, tnn::Index every)
      : total_(total), first_(first), tty_(tty), every_(every), start_(clock::now()) {}
  void update(tnn::Index step, double loss, double tokens_per_s, double lr) {
    const double elapsed = seconds();
    const double eta = step + 1 > first_ ? elapsed / double(step + 1 - first_) * double(total_ - step - 1) : 0.0;
    if (tty_) {
      const int width = 24;
      const int filled = int(double(width) * double(step + 1) / double(total_));
      std::string bar(std::size_t(filled), '#');
      bar.resize(std::size_t(width), '.');
      std::fprintf(stderr, "\r[%s] step %lld/%lld  loss %.4f  %.0f tok/s  lr %.2e  ETA %s   ", bar.c_str(),
                   (long long)(step + 1), (long long)total_, loss, tokens_per_s, lr, format_duration(eta).c_str());
      std::fflush(stderr);
      dirty_ = true;
    } else if ((step + 1) % every_ == 0 || step + 1 == total_) {
      std::fprintf(stderr, "step %lld/%lld loss %.4f tok/s %.0f lr %.3e elapsed %s eta %s\n", (long long)(step + 1),
                   (long long)total_, loss, tokens_per_s, lr, format_duration(elapsed).c_str(),
                   format_duration(eta).c_str());
    }
  }
  // A full line (validation, warnings) without breaking the bar.
  void line(const std::string& s) {
    if (dirty_) std::fputc('\n', stderr);
    dirty_ = false;
    std::fprintf(stderr, "%s\n", s.c_str());
  }
  void finish() {
    if (dirty_) std::fputc('\n', stderr);
    dirty_ = false;
  }
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  tnn::Index total_, first_;
  bool tty_;
  tnn::Index every_;
  clock::time_point start_;
  bool dirty_ = false;
};

// --inject-nan-steps and --inject-nan-grad-steps, testing hooks (tests/cli/train_faults.sh):
// after the backward pass of each listed step (1-based, as the progress lines count), the loss
// and one gradient entry (or only the gradient entry) are set to NaN, as a numerical blow-up
// would leave them, so the fault handling runs for real.
std::set<tnn::Index> parse_inject_steps(const std::string& s, const char* flag) {
  const std::vector<tnn::Index> steps = parse_positive_list(s, flag);
  return std::set<tnn::Index>(steps.begin(), steps.end());
}

void check_options(const TrainOptions& o) {
  auto at_least = [](tnn::Index v, tnn::Index lo, const char* flag) {
    if (v < lo) tnn::fail<tnn::ValueError>(flag, ": expected >= ", lo, ", got ", v);
  };
  at_least(o.seq_len, 1, "--seq-len");
  at_least(o.batch, 1, "--batch");
  at_least(o.steps, 1, "--steps");
  at_least(o.warmup, 0, "--warmup");
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

void run_train(const TrainOptions& o) {
  check_options(o);
  const std::set<tnn::Index> inject_nan = parse_inject_steps(o.inject_nan_steps, "--inject-nan-steps");
  const std::set<tnn::Index> inject_nan_grad = parse_inject_steps(o.inject_nan_grad_steps, "--inject-nan-grad-steps");
  set_threads(o.threads);
  const bool mlm = o.objective == "mlm";
  const tnn::LmObjective objective = mlm ? tnn::LmObjective::Mlm : tnn::LmObjective::Clm;
  const tnn::Index vocab = mlm ? tnn::kMlmVocab : tnn::kByteVocab;
  const std::string state_path = tnn::optimizer_state_path(o.out);
  const std::string log_path = o.log.empty() ? o.out + ".csv" : o.log;

  tnn::TnnConfig cfg = model_config(o, vocab, !mlm);
  if (o.resume) cfg = tnn::read_config(o.out);  // the run's own model, whatever the flags say

  tnn::DataSplit split = o.valid.empty() ? held_out_split(tnn::ByteCorpus::from_file(o.data), o.valid_fraction, o.valid_block)
                                         : tnn::load_split(o.data, o.valid);
  const tnn::ByteCorpus valid = corpus_prefix(split.valid, o.eval_tokens);
  // Checked now rather than at the first validation, which may come after hours of training.
  const bool validate = !valid.empty();  // --valid-fraction 0: no validation at all
  if (validate) {
    try {
      const tnn::EvalWindows windows(valid, o.batch, o.seq_len, objective);
      (void)windows;
    } catch (const tnn::FormatError& e) {
      tnn::fail<tnn::FormatError>(e.what(), " (for validation: a larger --valid-fraction or --eval-tokens, or "
                                  "--valid-fraction 0 for none)");
    }
  }
  // The logits [batch, seq_len, vocab] are the largest buffer: their element count must fit.
  if (o.batch > INT64_MAX / o.seq_len / cfg.vocab_size)
    tnn::fail<tnn::ValueError>("--batch, --seq-len: expected batch * seq_len * vocab_size below 2^63, got ", o.batch,
                               " * ", o.seq_len, " * ", cfg.vocab_size);

  tnn::TnnLM<float> model(cfg);
  model.init_weights(o.seed);
  auto params = model.named_parameters();
  tnn::AdamWConfig acfg;
  acfg.weight_decay = o.weight_decay;
  tnn::AdamW<float> opt(params, acfg);
  tnn::LrSchedule sched;
  sched.kind = tnn::parse_schedule_kind(o.schedule);
  sched.peak_lr = o.lr;
  sched.min_lr = std::min(o.min_lr, o.lr);
  sched.warmup_steps = o.warmup;
  sched.total_steps = o.steps;
  sched.validate();

  const nlohmann::json identity = run_identity(o, cfg);
  tnn::Index step = 0, bad_steps = 0;
  if (o.resume) {
    const tnn::OptimizerStateInfo info = tnn::load_optimizer_state(state_path, [&](auto&& f) {
      model.visit([&](const std::string& name, tnn::Param<float>& p) { f("param." + name, p.value); });
      opt.visit_state([&](const std::string& name, tnn::Tensor<float>& t) { f("adamw." + name, t); });
    });
    const nlohmann::json extra = nlohmann::json::parse(info.extra_json);
    if (!extra.contains("identity") || extra["identity"] != identity)
      tnn::fail<tnn::ValueError>("--resume: the settings differ from the run being resumed; expected ",
                                 extra.value("identity", nlohmann::json()).dump(), ", got ", identity.dump());
    step = info.step;
    opt.set_step_count(extra.at("adamw_step").get<std::int64_t>());
    bad_steps = extra.value("bad_steps", tnn::Index(0));
    std::fprintf(stderr, "resuming '%s' at step %lld of %lld\n", state_path.c_str(), (long long)step,
                 (long long)o.steps);
  }

  auto save = [&](tnn::Index at_step) {
    nlohmann::json extra = {{"identity", identity}, {"adamw_step", opt.step_count()}, {"bad_steps", bad_steps}};
    // The training state first: it alone is what --resume reads.
    tnn::save_optimizer_state(
        state_path, at_step,
        [&](auto&& f) {
          model.visit([&](const std::string& name, tnn::Param<float>& p) { f("param." + name, p.value); });
          opt.visit_state([&](const std::string& name, const tnn::Tensor<float>& t) { f("adamw." + name, t); });
        },
        extra.dump());
    tnn::save_model(o.out, model, tnn::Dtype::F32, {{"tnn.step", std::to_string(at_step)}});
  };

  std::ofstream log(log_path, o.resume ? std::ios::app : std::ios::trunc);
  if (!log) tnn::fail<tnn::IoError>("--log: cannot open '", log_path, "' for writing");
  if (!o.resume) log << "step,loss,grad_norm,lr,tokens_per_s,val_loss,val_bpb\n";

  std::fprintf(stderr,
               "model: %lld parameters (dim %lld, layers %lld, heads %lld, E %lld, rpe %lldx%lld, %s, %s); "
               "data: %lld train / %lld valid bytes; %d threads\n",
               (long long)model.num_parameters(), (long long)cfg.dim, (long long)cfg.layers, (long long)cfg.heads,
               (long long)cfg.inner_dim(), (long long)cfg.rpe_dim, (long long)cfg.rpe_layers,
               cfg.use_decay ? "fixed decay" : (cfg.use_multi_decay ? "multi decay" : "no decay"),
               mlm ? "masked LM" : "causal LM", (long long)split.train.size(), (long long)split.valid.size(),
               current_threads());

  tnn::BatchSampler sampler(split.train, o.batch, o.seq_len, objective, o.seed);
  tnn::Batch batch;
  Progress progress(o.steps, step, stderr_is_terminal(), o.log_every);
  const tnn::Index save_every = o.save_every > 0 ? o.save_every : o.eval_every;
  g_signal.store(0);
  auto previous_int = std::signal(SIGINT, on_stop_signal);
  auto previous_term = std::signal(SIGTERM, on_stop_signal);
  auto restore_signals = [&] {
    std::signal(SIGINT, previous_int);
    std::signal(SIGTERM, previous_term);
  };
  double tokens_per_s = 0;
  while (step < o.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    sampler.sample(step, batch);
    model.zero_grad();
    float loss = model.forward(batch.tokens, batch.targets);
    model.backward();
    if (inject_nan.count(step + 1) || inject_nan_grad.count(step + 1)) {
      params.front().second->grad[0] = std::numeric_limits<float>::quiet_NaN();
      if (inject_nan.count(step + 1)) loss = std::numeric_limits<float>::quiet_NaN();
    }
    const double norm = tnn::clip_grad_norm(params, o.clip);
    const double lr = sched.lr(opt.step_count());
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      ++bad_steps;
      progress.line("step " + std::to_string(step + 1) + ": non-finite " + (std::isfinite(loss) ? "gradient" : "loss") +
                    ", update skipped (" + std::to_string(bad_steps) + " of at most " + std::to_string(o.max_bad_steps) + ")");
      if (bad_steps > o.max_bad_steps)
        tnn::fail<tnn::Error>("training diverged: ", bad_steps, " steps with a non-finite loss or gradient (limit ",
                              o.max_bad_steps, ", see --max-bad-steps); the last good checkpoint is '", o.out, "'");
    } else {
      opt.step(lr);
    }
    ++step;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tps = double(batch.tokens.size()) / dt;
    tokens_per_s = tokens_per_s == 0 ? tps : 0.9 * tokens_per_s + 0.1 * tps;
    progress.update(step - 1, loss, tokens_per_s, lr);
    if (step % o.log_every == 0 || step == o.steps)
      log << step << "," << loss << "," << norm << "," << lr << "," << tokens_per_s << ",,\n";
    const bool eval_now = validate && ((o.eval_every > 0 && step % o.eval_every == 0) || step == o.steps);
    if (eval_now) {
      const EvalResult r = evaluate(model, valid, o.seq_len, o.batch, objective);
      std::ostringstream s;
      s.precision(4);
      s << std::fixed << "step " << step << ": validation loss " << r.loss << " nats, " << r.bpb() << " bits/byte, ppl "
        << r.ppl();
      if (mlm) s << ", masked-token accuracy " << r.accuracy;
      s << " (" << r.tokens << " tokens)";
      progress.line(s.str());
      log << step << ",,,,," << r.loss << "," << r.bpb() << "\n";
    }
    const bool stop_now = o.stop_after > 0 && step == o.stop_after && step < o.steps;
    // save_every 0 (--eval-every 0 and no --save-every): only at the end (once a SIGFPE here).
    if ((save_every > 0 && step % save_every == 0) || step == o.steps || g_signal.load() != 0 || stop_now) {
      save(step);
      log.flush();
    }
    if (const int sig = g_signal.load(); sig != 0) {
      progress.finish();
      restore_signals();
      std::fprintf(stderr, "interrupted (%s): saved step %lld to '%s'; continue with --resume\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)step, o.out.c_str());
      std::fflush(stderr);
      std::exit(128 + sig);
    }
    if (stop_now) {
      progress.finish();
      std::fprintf(stderr, "stopped after step %lld as asked (--stop-after); continue with --resume\n", (long long)step);
      break;
    }
  }
  restore_signals();
  progress.finish();
  if (step < o.steps) return;
  std::fprintf(stderr, "done: %lld steps in %s; model '%s', training state '%s', log '%s'\n", (long long)step,
               format_duration(progress.seconds()).c_str(), o.out.c_str(), state_path.c_str(), log_path.c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a TNN language model on a text file (byte-level tokens)");
  cmd->add_option("--data", o->data, "Training text file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--valid", o->valid, "Validation text file (default: the last --valid-fraction of --data)");
  cmd->add_option("--valid-fraction", o->valid_fraction, "Fraction of --data held out for validation")
      ->capture_default_str();
  cmd->add_option("--valid-block", o->valid_block,
                  "Hold out every round(1/fraction)-th block of this many bytes (0: the end of the file)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Checkpoint to write (.safetensors)")->required();
  cmd->add_option("--config", o->config_file, "Model config JSON file (spec section 8; overrides the model flags)");
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
  cmd->add_option("--seed", o->seed, "Seed of initialization and batch sampling")->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)")->capture_default_str();
  cmd->add_option("--objective", o->objective, "clm: causal LM (next byte); mlm: bidirectional masked LM")
      ->check(CLI::IsMember({"clm", "mlm"}))
      ->capture_default_str();
  cmd->add_flag("--resume", o->resume, "Continue the run saved in --out (bit-identical to an uninterrupted run)");
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
  g->add_option("--decay", o->decay, "fixed: lambda = gamma; multi: learned per channel; none")
      ->check(CLI::IsMember({"fixed", "multi", "none"}))
      ->capture_default_str();
  g->add_option("--norm", o->norm, "Normalization")
      ->check(CLI::IsMember({"simplermsnorm", "rmsnorm", "layernorm"}))
      ->capture_default_str();
  g->add_flag("--tie-embeddings", o->tie, "Share embed.weight with the output head");
  g->add_flag("--postnorm", o->postnorm, "Post-norm layers instead of pre-norm");
  cmd->callback([o] { run_train(*o); });
}

}  // namespace tnncli
