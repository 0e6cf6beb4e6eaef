// `tnn eval`: loss, perplexity and bits per byte of a checkpoint on a text file,
// at one sequence length or at several (--lengths: the length-extrapolation
// table, with an SVG plot of log-perplexity against length).
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/model/lm.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/train/data.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace tnncli {
namespace {

struct EvalOptions {
  std::string checkpoint, data, lengths, plot;
  tnn::Index seq_len = 512, batch = 1, max_bytes = 0;
  double valid_fraction = 0;
  tnn::Index valid_block = 0;
  int threads = 0;
  bool json = false;
};

std::vector<tnn::Index> parse_lengths(const std::string& s) {
  const std::vector<tnn::Index> out = parse_positive_list(s, "--lengths");
  if (out.empty()) tnn::fail<tnn::ValueError>("--lengths: expected at least one length, got '", s, "'");
  return out;
}

// A small self-contained SVG line chart: log-perplexity against sequence length
// (log2 axis), one point per evaluated length.
void write_plot(const std::string& path, const std::vector<tnn::Index>& lengths, const std::vector<double>& loss,
                const std::string& title) {
  const double W = 640, H = 400, left = 70, right = 20, top = 40, bottom = 60;
  double lo = loss[0], hi = loss[0];
  for (double v : loss) lo = std::min(lo, v), hi = std::max(hi, v);
  const double pad = std::max(0.05, 0.15 * (hi - lo));
  lo = std::max(0.0, lo - pad);
  hi += pad;
  const double x0 = std::log2(double(lengths.front())), x1 = std::log2(double(lengths.back()));
  auto X = [&](double len) {
    return x1 > x0 ? left + (std::log2(len) - x0) / (x1 - x0) * (W - left - right) : (left + W - right) / 2;
  };
  auto Y = [&](double v) { return top + (hi - v) / (hi - lo) * (H - top - bottom); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << title << "</text>\n";
  s << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\""
    << H - bottom << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4;
    s << "<text x=\"" << left - 6 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">" << std::fixed
      << std::setprecision(3) << v << "</text>\n<line x1=\"" << left << "\" y1=\"" << Y(v) << "\" x2=\"" << W - right
      << "\" y2=\"" << Y(v) << "\" stroke=\"#ddd\"/>\n";
  }
  for (tnn::Index len : lengths)
    s << "<text x=\"" << X(double(len)) << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">" << len
      << "</text>\n";
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 15
    << "\" text-anchor=\"middle\">sequence length (tokens, log scale)</text>\n";
  s << "<text x=\"18\" y=\"" << (top + H - bottom) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 18 "
    << (top + H - bottom) / 2 << ")\">log perplexity (nats/byte)</text>\n<polyline fill=\"none\" stroke=\"#1f77b4\" "
    << "stroke-width=\"2\" points=\"";
  for (std::size_t i = 0; i < lengths.size(); ++i) s << X(double(lengths[i])) << "," << Y(loss[i]) << " ";
  s << "\"/>\n";
  for (std::size_t i = 0; i < lengths.size(); ++i)
    s << "<circle cx=\"" << X(double(lengths[i])) << "\" cy=\"" << Y(loss[i]) << "\" r=\"4\" fill=\"#1f77b4\"/>\n";
  s << "</svg>\n";
  std::ofstream f(path);
  if (!f) tnn::fail<tnn::IoError>("--plot: cannot open '", path, "' for writing");
  f << s.str();
  if (!f) tnn::fail<tnn::IoError>("--plot: writing '", path, "' failed");
}

void run_eval(const EvalOptions& o) {
  if (o.seq_len < 1) tnn::fail<tnn::ValueError>("--seq-len: expected >= 1, got ", o.seq_len);
  if (o.batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o.batch);
  if (o.max_bytes < 0) tnn::fail<tnn::ValueError>("--max-bytes: expected >= 0 (0: all), got ", o.max_bytes);
  if (!(o.valid_fraction >= 0 && o.valid_fraction < 1))
    tnn::fail<tnn::ValueError>("--valid-fraction: expected a value in [0, 1), got ", o.valid_fraction);
  set_threads(o.threads);
  const tnn::TnnConfig cfg = tnn::read_config(o.checkpoint);
  tnn::TnnLM<float> model(cfg);
  tnn::load_weights(o.checkpoint, model);
  const bool mlm = !cfg.causal;
  const tnn::LmObjective objective = mlm ? tnn::LmObjective::Mlm : tnn::LmObjective::Clm;

  tnn::ByteCorpus corpus = tnn::ByteCorpus::from_file(o.data);
  if (o.valid_fraction > 0) corpus = held_out_split(corpus, o.valid_fraction, o.valid_block).valid;
  corpus = corpus_prefix(corpus, o.max_bytes);

  const std::vector<tnn::Index> lengths = o.lengths.empty() ? std::vector<tnn::Index>{o.seq_len} : parse_lengths(o.lengths);
  std::vector<EvalResult> results;
  if (!o.json)
    std::printf("%10s %12s %12s %10s %10s%s\n", "length", "loss(nats)", "ppl", "bpb", "tokens", mlm ? "   accuracy" : "");
  for (tnn::Index len : lengths) {
    results.push_back(evaluate(model, corpus, len, o.batch, objective));
    const EvalResult& r = results.back();
    if (!o.json) {
      std::printf("%10lld %12.4f %12.4f %10.4f %10lld", (long long)len, r.loss, r.ppl(), r.bpb(), (long long)r.tokens);
      if (mlm) std::printf("   %.4f", r.accuracy);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  if (o.json) {
    nlohmann::json j;
    j["lengths"] = lengths;
    for (const auto& r : results) {
      j["loss"].push_back(r.loss);
      j["ppl"].push_back(r.ppl());
      j["bpb"].push_back(r.bpb());
      j["tokens"].push_back(r.tokens);
      if (mlm) j["accuracy"].push_back(r.accuracy);
    }
    std::cout << j.dump() << "\n";
  }
  if (!o.plot.empty()) {
    std::vector<double> loss;
    for (const auto& r : results) loss.push_back(r.loss);
    write_plot(o.plot, lengths, loss, "TNN length extrapolation: " + o.checkpoint);
    if (!o.json) std::printf("plot written to %s\n", o.plot.c_str());
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, perplexity and bits per byte of a checkpoint on a text file");
  cmd->add_option("--checkpoint", o->checkpoint, "Model checkpoint (.safetensors)")->required();
  cmd->add_option("--data", o->data, "Text file to evaluate on")->required()->check(CLI::ExistingFile);
  auto* len = cmd->add_option("--seq-len", o->seq_len, "Sequence length")->capture_default_str();
  cmd->add_option("--lengths", o->lengths, "Comma-separated lengths, e.g. 512,1024,2048,4096,8192,14336")
      ->excludes(len);
  cmd->add_option("--plot", o->plot, "Write an SVG plot of log-perplexity against length");
  cmd->add_flag("--json", o->json, "Print one JSON object {lengths, loss, ppl, bpb, ...}");
  cmd->add_option("--batch", o->batch, "Windows per forward pass")->capture_default_str();
  cmd->add_option("--max-bytes", o->max_bytes, "Evaluate only the first this many bytes (0: all)")
      ->capture_default_str();
  cmd->add_option("--valid-fraction", o->valid_fraction,
                  "Evaluate only the held-out part of the file, as `tnn train` splits it (e.g. 0.05)");
  cmd->add_option("--valid-block", o->valid_block, "Block size of that split (0: the end of the file)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)");
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace tnncli
