// `tnn generate`: samples text from a causal checkpoint with exact incremental
// decoding (the prompt by one full forward, then each new token costs O(context),
// never a re-run of the prefix). The checkpoint's tokenizer encodes the prompt and
// decodes the tokens (bytes for a byte model).
// Only the generated text goes to stdout.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tnn/infer/decoder.hpp>
#include <tnn/infer/sampling.hpp>
#include <tnn/io/tokenizer.hpp>
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
  std::string decoder = "auto";
  tnn::Index samples = 1;
  bool json = false;
};

void run_generate(const GenerateOptions& o) {
  set_threads(o.threads);
  const tnn::TnnConfig cfg = tnn::read_config(o.checkpoint);
  if (cfg.task != tnn::Task::Lm)
    tnn::fail<tnn::ConfigError>("generate: expected a causal language model, got ",
                                cfg.task == tnn::Task::Image ? "an image" : "a text", " classifier (task '",
                                tnn::to_string(cfg.task), "'): '", o.checkpoint, "'");
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

  const tnn::Tokenizer tokenizer = tnn::read_tokenizer(o.checkpoint);
  if (!tokenizer.has_text())
    tnn::fail<tnn::ConfigError>("generate: '", o.checkpoint, "' was trained on token files without a tokenizer (",
                                tokenizer.describe(), "): it has no text to show; train with --tokenizer");
  const std::vector<std::int32_t> prompt_ids = tokenizer.encode(o.prompt);
  if (prompt_ids.empty()) tnn::fail<tnn::ValueError>("--prompt: its tokenizer encodes it as no tokens at all");
  tnn::TnnLM<float> model = tnn::load_lm<float>(o.checkpoint);
  if (o.samples < 1) tnn::fail<tnn::ValueError>("--samples: expected >= 1, got ", o.samples);
  const tnn::DecoderMethod method = tnn::parse_enum<tnn::DecoderMethod>(o.decoder, "--decoder");
  const tnn::Index K = o.samples;
  // Room for the whole text when it is short; a longer run grows the buffers as it goes, so
  // memory follows the text generated so far, never what --tokens asks for up front.
  const tnn::Index capacity = static_cast<tnn::Index>(prompt_ids.size()) + std::min<tnn::Index>(o.tokens, 1 << 16);
  // K samples decode as one batch; sample k draws from its own Rng(seed + k), so
  // `--samples 1 --seed S+k` regenerates sample k alone.
  tnn::IncrementalDecoder<float> dec(model, capacity, K, method);
  std::vector<tnn::TokenSampler> samplers(static_cast<std::size_t>(K), tnn::TokenSampler(sc));
  std::vector<tnn::Rng> rngs;
  for (tnn::Index k = 0; k < K; ++k) rngs.emplace_back(o.seed + static_cast<std::uint64_t>(k));

  // The prompt goes in by one full forward (O(n log n)), shared by every sample; then one
  // exact step per token.
  tnn::Tensor<std::int32_t> prompt({static_cast<tnn::Index>(prompt_ids.size())});
  std::copy(prompt_ids.begin(), prompt_ids.end(), prompt.begin());
  const tnn::Tensor<float>* logits = &dec.prefill(prompt);  // [V] or [K, V]
  const bool stream = K == 1 && !o.json && ::isatty(STDOUT_FILENO) == 1;  // on a terminal, show each token
  if (o.echo && K == 1 && !o.json) std::fwrite(o.prompt.data(), 1, o.prompt.size(), stdout);
  std::vector<std::string> text(static_cast<std::size_t>(K));
  std::vector<tnn::TextStream> decoded(static_cast<std::size_t>(K), tnn::TextStream(tokenizer, prompt_ids));
  // A byte model samples over all of its V logits (ids past 255 become a space, as they always
  // have); a subword model only over its tokenizer's ids.
  const tnn::Index V = tokenizer.is_bytes() ? cfg.vocab_size : tokenizer.vocab_size();
  tnn::Tensor<std::int32_t> next({K});
  for (tnn::Index i = 0; i < o.tokens; ++i) {
    for (tnn::Index k = 0; k < K; ++k) {
      const auto ks = static_cast<std::size_t>(k);
      std::int32_t t = samplers[ks].sample(logits->data() + k * cfg.vocab_size, V, rngs[ks]);
      if (tokenizer.is_bytes() && t > 255) t = ' ';  // never emit a non-byte symbol
      next[k] = t;
      const std::string piece = decoded[ks].push(t);
      text[ks] += piece;
      if (stream && k == 0) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
    }
    // A full disk or a closed pipe: stop at once with one error line, not generate into the void.
    if (std::ferror(stdout))
      tnn::fail<tnn::IoError>("writing the generated text to standard output: ", std::strerror(errno));
    if (i + 1 < o.tokens) logits = &dec.step(next);
  }
  for (tnn::Index k = 0; k < K; ++k) {
    const std::string rest = decoded[static_cast<std::size_t>(k)].finish();
    text[static_cast<std::size_t>(k)] += rest;
    if (stream && k == 0) std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  const std::string head = o.echo ? o.prompt : std::string();
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const std::string& t : text) arr.push_back(head + t);
    // bytes that are not valid UTF-8 are replaced (U+FFFD) rather than refused
    std::printf("%s\n", arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (K == 1) {
    if (!stream) std::fwrite(text[0].data(), 1, text[0].size(), stdout);
    std::fputc('\n', stdout);
  } else {
    for (tnn::Index k = 0; k < K; ++k) {
      if (k > 0) std::printf("----- sample %ld (seed %llu) -----\n", static_cast<long>(k),
                             static_cast<unsigned long long>(o.seed + static_cast<std::uint64_t>(k)));
      const std::string t = head + text[static_cast<std::size_t>(k)];
      std::fwrite(t.data(), 1, t.size(), stdout);
      std::fputc('\n', stdout);
    }
  }
  std::fflush(stdout);
  if (std::ferror(stdout))
    tnn::fail<tnn::IoError>("writing the generated text to standard output: ", std::strerror(errno));
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample text from a causal checkpoint");
  cmd->add_option("--checkpoint", o->checkpoint, "Model checkpoint (.safetensors)")->required();
  cmd->add_option("--prompt", o->prompt, "Text the generation continues")->capture_default_str();
  cmd->add_option("--tokens", o->tokens, "Tokens to generate (bytes for a byte model)")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0: all)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling: the smallest set with this probability")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)");
  cmd->add_flag("--echo", o->echo, "Print the prompt before the generated text");
  cmd->add_option("--decoder", o->decoder,
                  "auto | direct (O(context) per byte) | fft (tiled, O(log^2 context) per byte); the same text")
      ->capture_default_str();
  cmd->add_option("--samples", o->samples,
                  "Continuations drawn in one batch; sample k uses seed + k (printed one after another, "
                  "separated by a '----- sample k -----' line)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the samples as one JSON array of strings");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace tnncli
