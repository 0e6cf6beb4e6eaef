// `tnn grad`: loss, logits and the gradient of every trained parameter for one
// batch, written to a safetensors file, so any external implementation (a
// PyTorch script, tests/pytorch/check_grad.py) can check every backward pass.
#include <cstdint>
#include <string>

#include <tnn/model/lm.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/io/safetensors.hpp>

#include "classify_cli.hpp"
#include "commands.hpp"
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

  tnn::SafetensorsWriter w;
  tnn::Tensor<double> loss_t(tnn::Shape{});
  loss_t[0] = static_cast<double>(loss);
  w.add("loss", loss_t, tnn::Dtype::F64);
  w.add_view("logits", model.logits());
  model.visit([&](const std::string& name, tnn::Param<T>& p) {
    if (p.trainable) w.add_view("grad." + name, p.grad);
  });
  w.write(o.out);
}

}  // namespace

void add_grad_command(CLI::App& app) {
  auto opts = std::make_shared<GradOptions>();
  CLI::App* cmd = app.add_subcommand(
      "grad", "Compute loss, logits and every parameter gradient for one batch (docs/model.md §10)");
  cmd->add_option("--checkpoint", opts->checkpoint, "Model checkpoint (.safetensors)")->required();
  cmd->add_option("--batch", opts->batch, "Batch file with I32 tensors 'tokens' and 'targets' [B, N] (a classifier: 'tokens' [B, N], 'lengths' [B], 'labels' [B])")->required();
  cmd->add_option("--out", opts->out, "Output file: loss, logits, grad.<name>")->required();
  cmd->add_option("--dtype", opts->dtype, "Precision of the computation and of the output")
      ->check(CLI::IsMember({"f32", "f64"}));
  cmd->callback([opts] {
    // A classifier (config task "classify"): BATCH holds tokens [B, N], lengths [B], labels [B].
    if (is_classifier_checkpoint(opts->checkpoint))
      return grad_classifier(opts->checkpoint, opts->batch, opts->out, opts->dtype == "f64");
    if (opts->dtype == "f64")
      run_grad<double>(*opts);
    else
      run_grad<float>(*opts);
  });
}

}  // namespace tnncli
