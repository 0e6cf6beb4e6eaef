// What each task does for each `tnn` command, one file per task:
//   task_lm.cpp        lm        train (also under mpirun), eval (lengths, plot), generate, grad
//   task_classify.cpp  classify  train, eval (accuracy), classify (stdin lines), grad
//   task_image.cpp     image     train, eval (accuracy), classify (--images), grad
//   task_regress.cpp   regress   train, eval (mean squared error), grad
// The commands (commands.cpp) parse the flags, refuse those of other tasks, and call the
// checkpoint's task (or --task's) through the table task_cli().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <tnn/infer/evaluate.hpp>  // EvalResult
#include <tnn/model/config.hpp>

#include "options.hpp"

namespace tnncli {

struct TaskCli {
  tnn::Task task;
  const char* what;                             // "a language model", for messages
  int (*train)(TrainOptions& o);                // returns the exit code (128 + a signal)
  void (*eval)(const EvalOptions& o);
  void (*grad)(const GradOptions& o);
  void (*classify)(const ClassifyOptions& o);   // null: the task labels nothing
};

const TaskCli& task_cli(tnn::Task task);

// The task of a checkpoint's config (read from its header and checked against its tensors).
tnn::Task checkpoint_task(const std::string& path);

// What an eval of examples (lines, images, sequences) scores: on the checkpoint's own training
// file (its data record), the last `examples` training held out, or all of them with --all; on
// any other file, all. `scored` is "held-out", "training" (all of a file the model was trained
// on) or "all" (another file); `line` says which to a reader ("" for another file).
struct EvalScope {
  std::size_t examples;
  std::string scored, line;
};
EvalScope eval_scope(const std::string& checkpoint, const std::vector<std::uint8_t>& bytes, std::size_t n,
                     const EvalOptions& o);
// "accuracy 0.9 (9 of 10<unit>), loss 0.3 nats" after the scope's line, or one JSON object.
void print_accuracy(const tnn::EvalResult& r, const char* unit, const EvalScope& scope, bool json);

int train_lm(TrainOptions& o);
void eval_lm(const EvalOptions& o);
void grad_lm(const GradOptions& o);
void generate(const GenerateOptions& o);

int train_classify(TrainOptions& o);
void eval_classify(const EvalOptions& o);
void grad_classify(const GradOptions& o);
void classify_text(const ClassifyOptions& o);

int train_image(TrainOptions& o);
void eval_image(const EvalOptions& o);
void grad_image(const GradOptions& o);
void classify_images(const ClassifyOptions& o);

int train_regress(TrainOptions& o);
void eval_regress(const EvalOptions& o);
void grad_regress(const GradOptions& o);

}  // namespace tnncli
