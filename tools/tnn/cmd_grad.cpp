// `tnn grad`: loss, logits and the gradient of every trained parameter for one
// batch, written to a safetensors file, so any external implementation (a
// PyTorch script, tests/pytorch/check_grad.py) can check every backward pass.
#include <cstdint>
#include <string>

#include <tnn/model/models.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/io/file.hpp>
#include <tnn/io/safetensors.hpp>

#include "classify_cli.hpp"
#include "commands.hpp"
#include "image_cli.hpp"
#include "common.hpp"

namespace tnncli {
namespace {

struct GradOptions {
  std::string checkpoint, batch, out, dtype = "f32";
};

template <class T>
void run_grad(const GradOptions& o) {
  tnn::check_output_path(o.out, "--out");  // before the work, not after it
  const tnn::TnnConfig cfg = tnn::read_config(o.checkpoint);
  tnn::TnnLM<T> model(cfg);
  tnn::load_weights(o.checkpoint, model);
  tnn::Batch b = read_batch_file(o.batch, cfg.vocab_size);

  model.zero_grad();
  const T loss = model.forward(b.tokens, b.targets);
  model.backward();

  write_grad_output(o.out, loss, model);
}

}  // namespace

void add_grad_command(CLI::App& app) {
  auto opts = std::make_shared<GradOptions>();
  CLI::App* cmd = app.add_subcommand(
      "grad", "Compute loss, logits and every parameter gradient for one batch (docs/model.md §10)");
  cmd->add_option("--checkpoint", opts->checkpoint, "Model checkpoint (.safetensors)")->required();
  cmd->add_option("--batch", opts->batch, "Batch file with I32 tensors 'tokens' and 'targets' [B, N] (a classifier: 'tokens' [B, N], 'lengths' [B], 'labels' [B]; an image classifier: 'images' F32/F64 [B, H, W, Ch], 'labels' [B])")->required();
  cmd->add_option("--out", opts->out, "Output file: loss, logits, grad.<name>")->required();
  cmd->add_option("--dtype", opts->dtype, "Precision of the computation and of the output")
      ->check(CLI::IsMember({"f32", "f64"}));
  cmd->callback([opts] {
    // Before the work, not after it; an --out naming an input would replace it.
    tnn::check_output_path(opts->out, "--out");
    tnn::check_output_not_input(opts->out, "--out", {{"--checkpoint", opts->checkpoint}, {"--batch", opts->batch}});
    // A classifier (config task "classify"): BATCH holds tokens [B, N], lengths [B], labels [B].
    // An image classifier (task "image"): BATCH holds images F32/F64 [B, H, W, Ch], labels [B].
    const tnn::Task task = checkpoint_task(opts->checkpoint);
    if (task == tnn::Task::Classify) return grad_classifier(opts->checkpoint, opts->batch, opts->out, opts->dtype == "f64");
    if (task == tnn::Task::Image) return grad_image(opts->checkpoint, opts->batch, opts->out, opts->dtype == "f64");
    if (opts->dtype == "f64")
      run_grad<double>(*opts);
    else
      run_grad<float>(*opts);
  });
}

}  // namespace tnncli
