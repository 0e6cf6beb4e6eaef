// The `tnn` commands: their flags, which task each flag applies to, and the dispatch to the task
// files (tasks.hpp) by --task or by the checkpoint's task. `tnn plot` and `tnn help` live here too.
#include "commands.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <tnn/core/gemm.hpp>      // Precision's names
#include <tnn/infer/decoder.hpp>  // DecoderMethod's names
#include <tnn/io/file.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/train/corpus.hpp>  // TokenDtype
#include <tnn/train/schedule.hpp>

#include "common.hpp"
#include "flags.hpp"
#include "options.hpp"
#include "plot.hpp"
#include "session.hpp"
#include "tasks.hpp"

namespace tnncli {

const TaskCli& task_cli(tnn::Task task) {
  static const TaskCli table[] = {
      {tnn::Task::Lm, "a language model", train_lm, eval_lm, grad_lm, nullptr},
      {tnn::Task::Classify, "a text classifier", train_classify, eval_classify, grad_classify, classify_text},
      {tnn::Task::Image, "an image classifier", train_image, eval_image, grad_image, classify_images},
      {tnn::Task::Regress, "a regressor", train_regress, eval_regress, grad_regress, nullptr},
  };
  static_assert(sizeof table / sizeof table[0] == sizeof tnn::EnumTable<tnn::Task>::rows / sizeof tnn::EnumTable<tnn::Task>::rows[0],
                "one row per task");
  for (const TaskCli& t : table)
    if (t.task == task) return t;
  tnn::fail<tnn::ValueError>("task ", static_cast<int>(task), ": unknown");
}

tnn::Task checkpoint_task(const std::string& path) { return tnn::read_config(path).task; }

namespace {

// The flags on the command line, by their long names ("--warmup").
std::set<std::string> given_flags(const CLI::App& cmd) {
  std::set<std::string> out;
  for (const CLI::Option* opt : cmd.get_options())
    if (opt->count() > 0)
      for (const std::string& n : opt->get_lnames()) out.insert("--" + n);
  return out;
}

std::string checkpoint_what(const std::string& path, tnn::Task task) {
  return "checkpoint " + tnn::quote_path(path) + " (task " + tnn::to_string(task) + ")";
}

const char* const kThreads = "OpenMP threads (0: OMP_NUM_THREADS or all cores)";

// --- train ----------------------------------------------------------------------------------

int run_train(TrainOptions& o, const TaskFlags& flags, const CLI::App& cmd) {
  o.given = given_flags(cmd);
  flags.check_renamed();
  if (o.resume) adopt_saved_settings(o);
  const tnn::Task task = tnn::parse_enum<tnn::Task, tnn::ValueError>(o.task, "--task");
  flags.check(task, "--task " + o.task);
  if (task != tnn::Task::Lm && o.data.empty()) tnn::fail<tnn::ValueError>("--task ", o.task, ": expected --data FILE");
  // The default warm-up is lowered for a run too short for it (a cosine schedule needs --steps >
  // --warmup) rather than refused; an explicit --warmup that does not fit is an error naming
  // both flags. A resumed run keeps its own.
  if (!o.was_given("--warmup") && !o.resume && o.schedule == "cosine" && o.steps >= 1 && o.warmup >= o.steps) {
    const tnn::Index lowered = o.steps / 10;
    std::fprintf(stderr, "note: --warmup lowered from %lld to %lld (a tenth of --steps %lld); give --warmup to choose\n",
                 (long long)o.warmup, (long long)lowered, (long long)o.steps);
    o.warmup = lowered;
  }
  return task_cli(task).train(o);
}

Command add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto flags = std::make_shared<TaskFlags>();
  o->model = std::make_shared<ModelFlags>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a model: a language model on any file of bytes (the default; or subword ids, --tokenizer; or "
              "token files, --tokens), a text or image classifier");
  cmd->add_option("--task", o->task,
                  "lm: a language model on any file as bytes; classify: a classifier on label<TAB>text lines (text "
                  "truncated to --seq-len); image: a 2-D TNN image classifier on a safetensors image file (images U8 "
                  "or I32 [M, H, W, Ch], labels I32 [M]); regress: a regressor on a safetensors file (inputs [M, N, F], "
                  "targets [M, N, Fo], F32)")
      ->check(enum_validator<tnn::Task>())
      ->capture_default_str();
  cmd->add_option("--data", o->data, "Training file (see --task; lm: as bytes, or as --tokenizer ids)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--valid", o->valid, "Validation file of the same kind (default: part of --data, --valid-fraction)");
  cmd->add_option("--valid-fraction", o->valid_fraction,
                  "Fraction of --data held out for validation: its end (lm), or its last lines or images; recorded in "
                  "the checkpoint, so `tnn eval` on --data scores only that part")
      ->capture_default_str();
  cmd->add_option("-o,--out", o->out, "Checkpoint to write (.safetensors)")->required();
  cmd->add_option("--config", o->config_file,
                  "Model config JSON file (docs/model.md §8); a model flag given too overrides its key, with a note");
  cmd->add_option("--batch", o->batch, "Sequences (or images) per step")->capture_default_str();
  cmd->add_option("--steps", o->steps,
                  "Training steps. With --resume: the new total (default: the saved run's); a cosine schedule is "
                  "re-stretched at the current step to reach --min-lr at the new last step (a finished run, already "
                  "at --min-lr, stays there)")
      ->capture_default_str();
  cmd->add_option("--lr", o->lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o->min_lr, "Final learning rate of the schedule")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Linear warm-up steps")->capture_default_str();
  cmd->add_option("--schedule", o->schedule, "Learning-rate schedule after warm-up")
      ->check(enum_validator<tnn::ScheduleKind>())
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--clip", o->clip, "Clip gradients to this global norm")->capture_default_str();
  cmd->add_option("-s,--seed", o->seed, "Seed of initialization and batch sampling, 0 to 2^64 - 1")
      ->check(seed_check())
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, kThreads)->capture_default_str();
  cmd->add_option("--precision", o->precision,
                  "Precision of the large products: fp32, or bf16 (operands rounded to bf16, fp32 sums, weights and "
                  "optimizer state; fastest on CPUs with AVX512_BF16)")
      ->check(enum_validator<tnn::Precision>())
      ->capture_default_str();
  cmd->add_flag("--recompute", o->recompute,
                "Keep only each layer's input in the forward pass and recompute the layer in backward: activation "
                "memory of about one layer, the same gradients, one more forward pass per step");
  cmd->add_flag("--resume",
                o->resume, "Continue the run saved in --out, with its settings for every flag not given (bit-identical "
                           "to an uninterrupted run unless --steps changes its length)");
  cmd->add_flag("--force", o->force, "Replace an existing --out (its model, training state and log) instead of refusing");
  cmd->add_option("--eval-every", o->eval_every, "Validate every this many steps (0: only at the end)")
      ->capture_default_str();
  cmd->add_option("--save-every", o->save_every, "Checkpoint every this many steps (default: --eval-every)");
  cmd->add_option("--log", o->log, "CSV log file (default: OUT.csv; `tnn plot` draws it)");
  cmd->add_option("--log-every", o->log_every, "Log a line every this many steps")->capture_default_str();
  cmd->add_option("--stop-after", o->stop_after, "Save and stop after this step (continue later with --resume)");
  cmd->add_option("--max-bad-steps", o->max_bad_steps, "Stop after this many non-finite steps")->capture_default_str();
  const std::vector<tnn::Task> text = {tnn::Task::Lm, tnn::Task::Classify};
  flags->only(cmd->add_option("--seq-len", o->seq_len,
                              "Training sequence length (lm); the length texts are truncated to (classify)")
                  ->capture_default_str(),
              text);
  flags->only(cmd->add_option("--objective", o->objective, "clm: causal LM (next token); mlm: bidirectional masked LM")
                  ->check(CLI::IsMember({"clm", "mlm"}))
                  ->capture_default_str(),
              {tnn::Task::Lm});
  flags->only(cmd->add_option("--valid-block", o->valid_block,
                              "Hold out every round(1/fraction)-th block of this many bytes (0: the end of the file; "
                              "-1: blocks of 65536 bytes when the file holds round(1/fraction) of them, else its end)")
                  ->capture_default_str(),
              {tnn::Task::Lm});
  flags->only(cmd->add_option("--eval-tokens", o->eval_tokens,
                              "Validation tokens (bytes for a byte model) used each time (0: all)")
                  ->capture_default_str(),
              {tnn::Task::Lm});
  flags->only(cmd->add_option("--tokenizer", o->tokenizer,
                              "A SentencePiece model (spm_train's .model): train on its subword ids instead of bytes; "
                              "the checkpoint carries it (--resume: the saved run's)")
                  ->check(CLI::ExistingFile),
              {tnn::Task::Lm});
  flags->only(cmd->add_option("--tokens", o->tokens,
                              "Train on token files instead of --data: raw little-endian ids (--token-dtype), "
                              "memory-mapped, read one after the other")
                  ->delimiter(','),
              {tnn::Task::Lm});
  flags->only(cmd->add_option("--valid-tokens", o->valid_tokens,
                              "Validation token files (default: the held-out --valid-fraction of --tokens)")
                  ->delimiter(','),
              {tnn::Task::Lm});
  flags->only(cmd->add_option("--token-dtype", o->token_dtype, "The ids' type in --tokens files")
                  ->check(enum_validator<tnn::TokenDtype>()),
              {tnn::Task::Lm});
  flags->only(cmd->add_option("--vocab", o->vocab,
                              "Vocabulary size of --tokens files without --tokenizer (ids 0..V-1)"),
              {tnn::Task::Lm});
  cmd->add_option("--inject-nan-steps", o->inject_nan_steps,
                  "Testing hook: poison the loss and gradient of these steps (e.g. 3,4) with NaN")
      ->group("");  // hidden from --help
  cmd->add_option("--inject-nan-grad-steps", o->inject_nan_grad_steps,
                  "Testing hook: poison only the gradient of these steps with NaN")
      ->group("");
  cmd->add_option("--pause-at-step", o->pause_at_step,
                  "Testing hook: after this step, wait (at most 60 s) for SIGINT or SIGTERM")
      ->group("");
  o->model->add_to(*cmd, *flags);
  flags->renamed(cmd->add_option("--norm", "the norm type"), "--norm-type");
  flags->renamed(cmd->add_flag("--postnorm", "post-norm layers"), "--no-prenorm");
  flags->renamed(cmd->add_option("--patch", "the patch size"), "--patch-size");
  return {cmd, [o, flags, cmd] { return run_train(*o, *flags, *cmd); }};
}

// --- eval -----------------------------------------------------------------------------------

Command add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto flags = std::make_shared<TaskFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Score a checkpoint on a file: loss, perplexity and bits per byte (a language model), accuracy and loss "
              "(a classifier). On the checkpoint's own training file, only the part training held out");
  cmd->add_option("-m,--checkpoint", o->checkpoints,
                  "Model checkpoint (.safetensors); language models: give it several times to compare them (one "
                  "table each, one line each in --plot)")
      ->required();
  cmd->add_option("--data", o->data,
                  "File to score: text (a language model, encoded by each checkpoint's own tokenizer), "
                  "label<TAB>text lines (a text classifier), an image file (an image classifier)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--all",
                o->all, "On the checkpoint's training file, score all of it, not only the part training held out");
  cmd->add_flag("--json", o->json, "Print one JSON object ({lengths, loss, ppl, bpb, ...} or {accuracy, loss, ...})");
  cmd->add_option("--batch", o->batch, "Windows (or examples) per forward pass")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, kThreads);
  const std::vector<tnn::Task> lm = {tnn::Task::Lm};
  auto* len = flags->only(cmd->add_option("--seq-len", o->seq_len,
                                          "Sequence length (default: the one the model was trained at, else 512); a "
                                          "text classifier: truncate texts to it"),
                          {tnn::Task::Lm, tnn::Task::Classify});
  flags->only(cmd->add_option("--lengths", o->lengths, "Comma-separated lengths, e.g. 512,1024,2048,4096,8192,14336")
                  ->excludes(len),
              lm);
  flags->only(cmd->add_option("--plot", o->plot,
                              "Write an SVG plot (FILE.svg) of log-perplexity against length, one line per checkpoint"),
              lm);
  flags->only(cmd->add_option("--label", o->labels, "Legend label of each --checkpoint, in order (default: the file name)"),
              lm);
  flags->only(cmd->add_option("--title", o->title, "Title of the --plot figure"), lm);
  flags->only(cmd->add_option("--tokens", o->tokens,
                              "Token files to score instead of --data (ids of the checkpoint's tokenizer; bits per "
                              "byte unknown)")
                  ->delimiter(','),
              lm);
  flags->only(cmd->add_option("--token-dtype", o->token_dtype, "The ids' type in --tokens files")
                  ->check(enum_validator<tnn::TokenDtype>()),
              lm);
  flags->only(cmd->add_option("--max-bytes", o->max_bytes, "Score only the first this many bytes (0: all)")
                  ->capture_default_str(),
              lm);
  flags->only(cmd->add_option("--valid-fraction", o->valid_fraction,
                              "Score only this held-out part of the file, as `tnn train` splits it (for a checkpoint "
                              "that does not record its split)"),
              lm);
  flags->only(cmd->add_option("--valid-block", o->valid_block, "Block size of that split (0: the end of the file)")
                  ->capture_default_str(),
              lm);
  return {cmd, [o, flags, cmd] {
            o->given = given_flags(*cmd);
            set_threads(o->threads);
            const tnn::Task task = checkpoint_task(o->checkpoints.front());
            for (const std::string& path : o->checkpoints)
              if (o->checkpoints.size() > 1 && checkpoint_task(path) != tnn::Task::Lm)
                tnn::fail<tnn::ValueError>("--checkpoint ", tnn::quote_path(path), ": ", task_cli(checkpoint_task(path)).what,
                                           " is evaluated alone; expected one --checkpoint");
            flags->check(task, checkpoint_what(o->checkpoints.front(), task));
            if (o->data.empty() == o->tokens.empty())
              tnn::fail<tnn::ValueError>("eval: expected either --data FILE or --tokens FILE[,FILE...] (a language "
                                         "model), ", o->data.empty() ? "got neither" : "got both");
            task_cli(task).eval(*o);
            return 0;
          }};
}

// --- generate -------------------------------------------------------------------------------

Command add_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample text from a causal language model");
  cmd->add_option("-m,--checkpoint", o->checkpoint, "Model checkpoint (.safetensors)")->required();
  auto* prompt = cmd->add_option("-p,--prompt", o->prompt,
                                 "Text the generation continues (default: none, a text from the start of a line)");
  cmd->add_option("--prompt-file", o->prompt_file, "Read the prompt from this file ('-': standard input)")
      ->excludes(prompt);
  cmd->add_option("-n,--tokens", o->tokens, "Tokens to generate (bytes for a byte model)")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0: all)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling: the smallest set with this probability")
      ->capture_default_str();
  cmd->add_option("-s,--seed", o->seed, "Sampling seed, 0 to 2^64 - 1")->check(seed_check())->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, kThreads);
  cmd->add_flag("--echo", o->echo, "Print the prompt before the generated text");
  cmd->add_option("--decoder", o->decoder,
                  "auto | direct (O(context) per byte) | fft (tiled, O(log^2 context) per byte); the same text")
      ->check(enum_validator<tnn::DecoderMethod>())
      ->capture_default_str();
  cmd->add_option("--samples", o->samples,
                  "Continuations drawn in one batch; sample k uses seed + k, printed under a '----- sample k (seed "
                  "S+k) -----' line")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the samples as one JSON array of strings");
  return {cmd, [o] {
            generate(*o);
            return 0;
          }};
}

// --- classify -------------------------------------------------------------------------------

Command add_classify(CLI::App& app) {
  auto o = std::make_shared<ClassifyOptions>();
  auto flags = std::make_shared<TaskFlags>();
  CLI::App* cmd = app.add_subcommand(
      "classify", "Label each line of stdin with a text classifier, or each image of --images with an image classifier");
  cmd->add_option("-m,--checkpoint", o->checkpoint, "Classifier checkpoint (.safetensors)")->required();
  cmd->add_flag("--json", o->json,
                "One JSON object per line (or image): {\"label\": ..., \"probabilities\": {name: p, ...}}");
  cmd->add_option("--batch", o->batch, "Lines (or images) per forward pass")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, kThreads);
  flags->only(cmd->add_option("--images", o->images,
                              "The safetensors image file to label (images U8 or I32 [M, H, W, Ch]; labels not needed)")
                  ->check(CLI::ExistingFile),
              {tnn::Task::Image});
  flags->only(cmd->add_option("--seq-len", o->seq_len,
                              "Truncate each line to this many bytes (0: the training --seq-len stored in the checkpoint)")
                  ->capture_default_str(),
              {tnn::Task::Classify});
  return {cmd, [o, flags] {
            if (o->batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o->batch);
            if (o->seq_len < 0)
              tnn::fail<tnn::ValueError>("--seq-len: expected >= 0 (0: whole lines), got ", o->seq_len);
            set_threads(o->threads);
            const tnn::Task task = checkpoint_task(o->checkpoint);
            flags->check(task, checkpoint_what(o->checkpoint, task));
            const TaskCli& t = task_cli(task);
            if (!t.classify)
              tnn::fail<tnn::ValueError>("classify: expected a classifier checkpoint (task classify or image), got ",
                                         t.what, " (task ", tnn::to_string(task), "): ", tnn::quote_path(o->checkpoint));
            t.classify(*o);
            return 0;
          }};
}

// --- grad -----------------------------------------------------------------------------------

Command add_grad(CLI::App& app) {
  auto o = std::make_shared<GradOptions>();
  auto flags = std::make_shared<TaskFlags>();
  CLI::App* cmd = app.add_subcommand(
      "grad", "Loss, logits and every parameter gradient for one batch of inputs (docs/model.md §10)");
  cmd->add_option("-m,--checkpoint", o->checkpoint, "Model checkpoint (.safetensors)")->required();
  cmd->add_option("--inputs", o->inputs,
                  "Safetensors file of the batch: I32 'tokens', 'targets' [B, N] (a language model); 'tokens' [B, N], "
                  "'lengths' [B], 'labels' [B] (a text classifier); 'images' F32/F64 [B, H, W, Ch], 'labels' [B] (an "
                  "image classifier); 'inputs' [B, N, F], 'targets' [B, N, Fo] F32/F64 (a regressor)");
  cmd->add_option("-o,--out", o->out, "Output file: loss, logits, grad.<name>")->required();
  cmd->add_option("--dtype", o->dtype, "Precision of the computation and of the output")
      ->check(CLI::IsMember({"f32", "f64"}))
      ->capture_default_str();
  flags->renamed(cmd->add_option("--batch", "the batch file"), "--inputs");
  return {cmd, [o, flags] {
            flags->check_renamed();
            if (o->inputs.empty()) tnn::fail<tnn::ValueError>("--inputs: expected the batch file, got none");
            // Before the work, not after it; an --out naming an input would replace it.
            tnn::check_output_path(o->out, "--out");
            tnn::check_output_not_input(o->out, "--out", {{"--checkpoint", o->checkpoint}, {"--inputs", o->inputs}});
            task_cli(checkpoint_task(o->checkpoint)).grad(*o);
            return 0;
          }};
}

// --- plot -----------------------------------------------------------------------------------

// A training log (CKPT.csv): training loss and validation loss against the step. Rows are
// "step,kind,loss,..." (kind train or valid); a log begun before rows had a kind (header
// step,loss,...,val_loss,val_bpb, a validation row holding only val_loss) is read too, also when
// a resumed run appended rows of the newer kind to it. Non-finite losses (skipped steps) are
// left out.
void plot_log(const PlotOptions& o) {
  check_svg_path(o.out, "--out");
  PlotSeries train{"training loss", {}, {}, false}, valid{"validation loss", {}, {}, true};
  std::vector<PlotSeries> out;
  for (const std::string& path : o.logs) {
    const std::vector<std::uint8_t> bytes = tnn::read_file_bounded(path, std::uint64_t(1) << 30, "log");
    std::istringstream in(std::string(bytes.begin(), bytes.end()));
    std::string line;
    auto split = [](const std::string& s) {
      std::vector<std::string> cols;
      std::stringstream ss(s);
      std::string c;
      while (std::getline(ss, c, ',')) cols.push_back(c);
      if (!s.empty() && s.back() == ',') cols.emplace_back();
      return cols;
    };
    if (!std::getline(in, line)) tnn::fail<tnn::FormatError>("log ", tnn::quote_path(path), ": empty, expected a CSV header");
    const std::vector<std::string> header = split(line);
    auto col = [&](const char* name) -> int {
      for (std::size_t i = 0; i < header.size(); ++i)
        if (header[i] == name) return int(i);
      return -1;
    };
    const int c_step = col("step"), c_kind = col("kind"), c_loss = col("loss"), c_val = col("val_loss");
    if (c_step != 0 || c_loss < 0 || (c_kind != 1 && c_val < 0))
      tnn::fail<tnn::FormatError>("log ", tnn::quote_path(path),
                                  ": expected a tnn training log (columns step, kind, loss), got the header ",
                                  tnn::quote(line, 80));
    PlotSeries t = train, v = valid;
    if (o.logs.size() > 1) t.label += " (" + path + ")", v.label += " (" + path + ")";
    tnn::Index row = 1;
    while (std::getline(in, line)) {
      ++row;
      if (line.empty()) continue;
      const std::vector<std::string> cols = split(line);
      auto num = [&](int c) {
        if (c < 0 || c >= int(cols.size()) || cols[std::size_t(c)].empty()) return std::nan("");
        try {
          return std::stod(cols[std::size_t(c)]);
        } catch (const std::exception&) {
          tnn::fail<tnn::FormatError>("log ", tnn::quote_path(path), " line ", row, ": expected a number, got ",
                                      tnn::quote(cols[std::size_t(c)], 40));
        }
      };
      double step, loss;
      bool is_valid;
      if (cols.size() >= 3 && (cols[1] == "train" || cols[1] == "valid")) {  // step,kind,loss,...
        step = num(0);
        is_valid = cols[1] == "valid";
        loss = num(2);
      } else {  // the older layout: a validation row has only val_loss
        step = num(c_step);
        is_valid = std::isfinite(num(c_val));
        loss = is_valid ? num(c_val) : num(c_loss);
      }
      if (!std::isfinite(step) || !std::isfinite(loss)) continue;
      PlotSeries& s = is_valid ? v : t;
      s.x.push_back(step);
      s.y.push_back(loss);
    }
    if (!t.x.empty()) out.push_back(t);
    if (!v.x.empty()) out.push_back(v);
  }
  if (out.empty()) tnn::fail<tnn::FormatError>("--out: nothing to plot: the log has no rows with a finite loss");
  PlotAxes axes;
  axes.x_log2 = false;
  axes.x_label = "step";
  axes.y_label = "loss (nats per token or example)";
  write_plot(o.out, out, o.title.empty() ? "Training: loss against step" : o.title, axes, "--out");
}

Command add_plot(CLI::App& app) {
  auto o = std::make_shared<PlotOptions>();
  CLI::App* cmd = app.add_subcommand("plot", "Draw a training log (CKPT.csv): training and validation loss against step");
  cmd->add_option("log", o->logs, "Training log(s) written by `tnn train` (OUT.csv)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--out", o->out, "The plot to write (FILE.svg)")->required();
  cmd->add_option("--title", o->title, "Title of the figure");
  return {cmd, [o] {
            plot_log(*o);
            return 0;
          }};
}

// --- help -----------------------------------------------------------------------------------

Command add_help(CLI::App& app) {
  auto name = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("help", "Print the commands, or one command's flags (tnn help train)");
  cmd->add_option("command", *name, "A command");
  return {cmd, [name, &app] {
            // (app.help() would show the help of the command parsed, this one.)
            if (name->empty()) {
              std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
              return 0;
            }
            std::vector<std::string> names;
            for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
              if (sub->get_name() == *name) {
                std::cout << sub->help(app.get_name());
                return 0;
              }
              names.push_back(sub->get_name());
            }
            std::string list;
            for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
            tnn::fail<tnn::ValueError>("help: expected one of ", list, ", got ", tnn::quote(*name, 40));
          }};
}

}  // namespace

std::vector<Command> add_commands(CLI::App& app) {
  return {add_train(app), add_eval(app), add_generate(app), add_classify(app), add_grad(app), add_plot(app),
          add_help(app)};
}

}  // namespace tnncli
