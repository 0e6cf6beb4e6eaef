// `tnn generate`: samples text from a causal checkpoint with exact incremental
// decoding (the prompt by one full forward, then each new byte costs O(context),
// never a re-run of the prefix).
// Only the generated text goes to stdout.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include <tnn/infer/decoder.hpp>
#include <tnn/infer/sampling.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/core/rng.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace tnncli {
namespace {

struct GenerateOptions {
  std::string checkpoint, prompt = "\n";
  tnn::Index tokens = 256;
  double temperature = 0.8, top_p = 1.0;
  tnn::Index top_k = 0;
  std::uint64_t seed = 1;
  int threads = 0;
  bool echo = false;
};

void run_generate(const GenerateOptions& o) {
  set_threads(o.threads);
  const tnn::TnnConfig cfg = tnn::read_config(o.checkpoint);
  if (!cfg.causal)
    tnn::fail<tnn::ConfigError>("generate: expected a causal checkpoint, got a bidirectional (masked LM) one: '",
                                o.checkpoint, "'");
  if (o.tokens < 0) tnn::fail<tnn::ValueError>("--tokens: expected >= 0, got ", o.tokens);
  if (o.prompt.empty()) tnn::fail<tnn::ValueError>("--prompt: expected at least one byte, got an empty prompt");
  tnn::SamplingConfig sc;
  sc.temperature = o.temperature;
  sc.top_k = o.top_k;
  sc.top_p = o.top_p;
  sc.validate();

  tnn::TnnLM<float> model = tnn::load_lm<float>(o.checkpoint);
  // Room for the whole text when it is short; a longer run grows the buffers as it goes, so
  // memory follows the text generated so far, never what --tokens asks for up front.
  const tnn::Index capacity = static_cast<tnn::Index>(o.prompt.size()) + std::min<tnn::Index>(o.tokens, 1 << 16);
  tnn::IncrementalDecoder<float> dec(model, capacity);
  tnn::TokenSampler sampler(sc);
  tnn::Rng rng(o.seed);

  if (o.echo) std::fwrite(o.prompt.data(), 1, o.prompt.size(), stdout);
  // The prompt goes in by one full forward (O(n log n)); then one exact step per byte.
  tnn::Tensor<std::int32_t> prompt({static_cast<tnn::Index>(o.prompt.size())});
  std::transform(o.prompt.begin(), o.prompt.end(), prompt.begin(),
                 [](char ch) { return static_cast<std::int32_t>(static_cast<unsigned char>(ch)); });
  const tnn::Tensor<float>* logits = &dec.prefill(prompt);
  const bool stream = ::isatty(STDOUT_FILENO) == 1;  // on a terminal, show each byte as it comes
  for (tnn::Index i = 0; i < o.tokens; ++i) {
    std::int32_t next = sampler.sample(logits->data(), cfg.vocab_size, rng);
    if (next > 255) next = ' ';  // never emit a non-byte symbol
    std::fputc(next, stdout);
    if (stream) std::fflush(stdout);
    if (i + 1 < o.tokens) logits = &dec.step(next);
  }
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample text from a causal checkpoint");
  cmd->add_option("--checkpoint", o->checkpoint, "Model checkpoint (.safetensors)")->required();
  cmd->add_option("--prompt", o->prompt, "Text the generation continues")->capture_default_str();
  cmd->add_option("--tokens", o->tokens, "Bytes to generate")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Sample among the k most likely bytes (0: all)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling: the smallest set with this probability")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)");
  cmd->add_flag("--echo", o->echo, "Print the prompt before the generated text");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace tnncli
