// `tnn eval`: loss, perplexity and bits per byte of one or several checkpoints on a text file,
// at one sequence length or at several (--lengths: the length-extrapolation table, with an SVG
// plot of log-perplexity against length, one line per checkpoint). The loop is the library's
// (tnn::evaluate_lengths over tnn::EvalWindows); this file parses flags and prints.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/infer/evaluate.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/data.hpp>

#include "classify_cli.hpp"
#include "image_cli.hpp"
#include <tnn/dist/evaluate.hpp>

#include "commands.hpp"
#include "processes.hpp"
#include "common.hpp"
#include "plot.hpp"

namespace tnncli {
namespace {

struct EvalOptions {
  std::vector<std::string> checkpoints, labels;
  std::string data, lengths, plot, title;
  tnn::Index seq_len = 512, batch = 1, max_bytes = 0;
  double valid_fraction = 0;
  tnn::Index valid_block = 0;
  int threads = 0;
  bool json = false;
  bool lengths_given = false;  // --lengths on the command line, even as '' (refused, not ignored)
  bool seq_len_given = false;  // a classifier truncates to --seq-len only when given (else its training length)
};

std::vector<tnn::Index> parse_lengths(const std::string& s) {
  const std::vector<tnn::Index> out = parse_positive_list(s, "--lengths");
  if (out.empty()) tnn::fail<tnn::ValueError>("--lengths: expected at least one length, got ", tnn::quote(s));
  return out;
}

// "runs/kjv.safetensors" -> "kjv": the default legend label of a checkpoint.
std::string default_label(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const std::string ext = ".safetensors";
  if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0)
    name.resize(name.size() - ext.size());
  return name;
}

void run_eval(const EvalOptions& o) {
  if (o.seq_len < 1) tnn::fail<tnn::ValueError>("--seq-len: expected >= 1, got ", o.seq_len);
  if (o.batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o.batch);
  if (o.max_bytes < 0) tnn::fail<tnn::ValueError>("--max-bytes: expected >= 0 (0: all), got ", o.max_bytes);
  if (!(o.valid_fraction >= 0 && o.valid_fraction < 1))
    tnn::fail<tnn::ValueError>("--valid-fraction: expected a value in [0, 1), got ", o.valid_fraction);
  if (!o.labels.empty() && o.labels.size() != o.checkpoints.size())
    tnn::fail<tnn::ValueError>("--label: expected one per --checkpoint (", o.checkpoints.size(), "), got ",
                               o.labels.size());
  set_threads(o.threads);
  // A classifier (config task "classify" or "image"): accuracy and loss on a label<TAB>text file
  // or an image file.
  const tnn::Task first_task = checkpoint_task(o.checkpoints[0]);
  if (o.checkpoints.size() == 1 && first_task != tnn::Task::Lm) {
    const bool image = first_task == tnn::Task::Image;
    if (o.lengths_given || !o.plot.empty() || o.valid_fraction > 0 || o.max_bytes > 0 || (image && o.seq_len_given))
      tnn::fail<tnn::ValueError>("eval of ", image ? "an image classifier" : "a classifier",
                                 ": --lengths, --plot, --valid-fraction, --max-bytes", image ? ", --seq-len" : "",
                                 " apply to language models only; expected --data FILE of ",
                                 image ? "images (a safetensors image file)" : "label<TAB>text lines");
    if (image) return eval_image(o.checkpoints[0], o.data, o.batch, o.json);
    return eval_classifier(o.checkpoints[0], o.data, o.seq_len_given ? o.seq_len : 0, o.batch, o.json);
  }
  for (const std::string& path : o.checkpoints)
    if (checkpoint_task(path) != tnn::Task::Lm)
      tnn::fail<tnn::ValueError>("--checkpoint '", path, "': a classifier is evaluated alone, expected one --checkpoint");
  const std::vector<tnn::Index> lengths =
      o.lengths_given ? parse_lengths(o.lengths) : std::vector<tnn::Index>{o.seq_len};
  if (!o.plot.empty()) {  // before the work, not after it; a plot naming an input would replace it
    tnn::check_output_path(o.plot, "--plot");
    std::vector<std::pair<std::string, std::string>> inputs = {{"--data", o.data}};
    for (const std::string& c : o.checkpoints) inputs.emplace_back("--checkpoint", c);
    tnn::check_output_not_input(o.plot, "--plot", inputs);
  }

  for (const std::string& path : o.checkpoints) (void)tnn::read_config(path);  // a bad file fails before the data is read
  // Without a held-out split only the first --max-bytes are read, not the whole file.
  tnn::ByteCorpus corpus = tnn::ByteCorpus::from_file(
      o.data, o.valid_fraction > 0 ? 0 : static_cast<std::uint64_t>(std::max<tnn::Index>(o.max_bytes, 0)));
  if (o.valid_fraction > 0) corpus = held_out_split(corpus, o.valid_fraction, o.valid_block).valid;
  corpus = corpus_prefix(corpus, o.max_bytes);

  const bool several = o.checkpoints.size() > 1;
  std::vector<PlotSeries> series;
  for (std::size_t k = 0; k < o.checkpoints.size(); ++k) {
    const std::string& path = o.checkpoints[k];
    tnn::TnnLM<float> model = tnn::load_lm<float>(path);
    const bool mlm = !model.config().causal;
    const tnn::LmObjective objective = mlm ? tnn::LmObjective::Mlm : tnn::LmObjective::Clm;
    if (!o.json) {
      if (several) std::printf("%s== %s\n", k ? "\n" : "", path.c_str());
      std::printf("%10s %12s %12s %10s %10s%s\n", "length", "loss(nats)", "ppl", "bpb", "tokens",
                  mlm ? "   accuracy" : "");
    }
    // Under mpirun the windows are split over the processes (tnn/dist/evaluate.hpp); rank 0 prints.
    const std::vector<tnn::LengthResult> rows = tnn::dist::evaluate_lengths(
        communicator(), model, lengths,
        [&](tnn::Index n) { return tnn::EvalWindows(corpus, o.batch, n, objective, tnn::kEvalMaskSeed); },
        [&](const tnn::LengthResult& row) {
          if (o.json) return;
          const tnn::EvalResult& r = row.result;
          std::printf("%10lld %12.4f %12.4f %10.4f %10lld", (long long)row.length, r.loss, r.ppl(), r.bpb(),
                      (long long)r.tokens);
          if (mlm) std::printf("   %.4f", r.accuracy);
          std::printf("\n");
          std::fflush(stdout);
        });
    if (o.json) {
      nlohmann::json j;
      if (several) j["checkpoint"] = path;
      j["lengths"] = lengths;
      for (const auto& row : rows) {
        j["loss"].push_back(row.result.loss);
        j["ppl"].push_back(row.result.ppl());
        j["bpb"].push_back(row.result.bpb());
        j["tokens"].push_back(row.result.tokens);
        if (mlm) j["accuracy"].push_back(row.result.accuracy);
      }
      std::cout << j.dump() << "\n";
    }
    PlotSeries ser;
    ser.label = o.labels.empty() ? default_label(path) : o.labels[k];
    for (const auto& row : rows) {
      ser.lengths.push_back(row.length);
      ser.loss.push_back(row.result.loss);
    }
    series.push_back(std::move(ser));
  }
  if (!o.plot.empty() && communicator().is_root()) {
    write_plot(o.plot, series, o.title.empty() ? "Length extrapolation: log-perplexity by evaluation length" : o.title);
    if (!o.json) std::printf("plot written to %s\n", o.plot.c_str());
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, perplexity and bits per byte of a checkpoint on a text file");
  cmd->add_option("--checkpoint", o->checkpoints,
                  "Model checkpoint (.safetensors); give it several times to compare models (one table each, "
                  "one line each in --plot)")
      ->required();
  cmd->add_option("--data", o->data, "Text file to evaluate on (a classifier: label<TAB>text lines, an image classifier: an image file; prints accuracy and loss)")->required()->check(CLI::ExistingFile);
  auto* len = cmd->add_option("--seq-len", o->seq_len, "Sequence length")->capture_default_str();
  cmd->add_option("--lengths", o->lengths, "Comma-separated lengths, e.g. 512,1024,2048,4096,8192,14336")
      ->excludes(len);
  cmd->add_option("--plot", o->plot, "Write an SVG plot of log-perplexity against length (one line per checkpoint)");
  cmd->add_option("--label", o->labels, "Legend label of each --checkpoint, in order (default: the file name)");
  cmd->add_option("--title", o->title, "Title of the --plot figure");
  cmd->add_flag("--json", o->json, "Print one JSON object {lengths, loss, ppl, bpb, ...}");
  cmd->add_option("--batch", o->batch, "Windows per forward pass")->capture_default_str();
  cmd->add_option("--max-bytes", o->max_bytes, "Evaluate only the first this many bytes (0: all)")
      ->capture_default_str();
  cmd->add_option("--valid-fraction", o->valid_fraction,
                  "Evaluate only the held-out part of the file, as `tnn train` splits it (e.g. 0.05)");
  cmd->add_option("--valid-block", o->valid_block, "Block size of that split (0: the end of the file)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)");
  cmd->callback([o, cmd] {
    o->lengths_given = cmd->count("--lengths") > 0;
    o->seq_len_given = cmd->count("--seq-len") > 0;
    run_eval(*o);
  });
}

}  // namespace tnncli
