// The classification side of the `tnn` program (issue 14), in cmd_classify.cpp: the
// `tnn classify` command, and what `tnn eval` and `tnn grad` do when the checkpoint is a
// classifier (config task "classify"). `tnn train --task classify` lives in cmd_train.cpp.
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <tnn/model/config.hpp>

namespace tnncli {

void add_classify_command(CLI::App& app);

// The task of the checkpoint's config (lm, classify, image), read from its header and checked
// against its tensors (tnn::read_config).
tnn::Task checkpoint_task(const std::string& path);
// True when the checkpoint's config has task "classify".
bool is_classifier_checkpoint(const std::string& path);

// `tnn eval` on a classifier: accuracy and mean loss over the lines of a label<TAB>text file
// (texts truncated to seq_len; seq_len <= 0: no truncation). JSON: {"accuracy", "loss",
// "examples", "correct"}.
void eval_classifier(const std::string& checkpoint, const std::string& data, long long seq_len, long long batch,
                     bool json);

// `tnn grad` on a classifier: BATCH holds tokens I32 [B, N], lengths I32 [B], labels I32 [B];
// OUT gets loss (F64 []), logits [B, K] and grad.<name> for every trained parameter.
void grad_classifier(const std::string& checkpoint, const std::string& batch, const std::string& out, bool f64);

}  // namespace tnncli
