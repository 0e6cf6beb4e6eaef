// `tnn generate`: samples text from a causal checkpoint with exact incremental
// decoding (the prompt by one full forward, then each new byte costs O(context),
// never a re-run of the prefix).
// Only the generated text goes to stdout, written as it is generated.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include <tnn/core/text.hpp>
#include <tnn/infer/decoder.hpp>
#include <tnn/io/stream.hpp>
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
  std::string seed = "1";  // tnn::parse_seed
  int threads = 0;
  bool echo = false;
  std::string decoder = "auto";
  tnn::Index samples = 1;
  bool json = false;
};

// A JSON string's content written as bytes arrive: '"', '\\' and control characters escaped
// (\n, \t, \u0001, ...), well-formed UTF-8 passed through, each ill-formed subpart as U+FFFD
// (a sequence cut by the end of a chunk waits for its next byte).
class JsonStringWriter {
 public:
  explicit JsonStringWriter(tnn::OutputStream& out) : out_(out) {}
  void add(const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      pend_ += p[i];
      drain(false);
    }
  }
  void finish() { drain(true); }

 private:
  void drain(bool at_end) {
    while (!pend_.empty()) {
      char32_t cp = 0;
      std::size_t bad = 1;
      const std::size_t n = tnn::utf8_decode(pend_, 0, &cp, &bad);
      if (n == 0) {
        const auto lead = static_cast<unsigned char>(pend_[0]);
        if (!at_end && bad == pend_.size() && lead >= 0xc2 && lead <= 0xf4) return;  // wait for the rest
        out_.write("\xEF\xBF\xBD");
        pend_.erase(0, bad);
        continue;
      }
      if (cp == '"') out_.write("\\\"");
      else if (cp == '\\') out_.write("\\\\");
      else if (cp == '\n') out_.write("\\n");
      else if (cp == '\t') out_.write("\\t");
      else if (cp == '\r') out_.write("\\r");
      else if (cp == '\b') out_.write("\\b");
      else if (cp == '\f') out_.write("\\f");
      else if (cp < 0x20) {
        char u[8];
        std::snprintf(u, sizeof u, "\\u%04x", static_cast<unsigned>(cp));
        out_.write(u);
      } else {
        out_.write(std::string_view(pend_.data(), n));
      }
      pend_.erase(0, n);
    }
  }
  tnn::OutputStream& out_;
  std::string pend_;  // bytes of a UTF-8 sequence not complete yet (at most 3)
};

// A sample printed after the first: kept in an unlinked temporary file (in $TMPDIR, else /tmp)
// while it is generated, so memory does not grow with --tokens; every write is checked.
class SpillFile {
 public:
  explicit SpillFile(tnn::Index k) : what_("the temporary file of sample " + std::to_string(k)) {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/tnn-generate-XXXXXX";
    fd_ = ::mkstemp(tmpl.data());
    if (fd_ < 0) tnn::fail<tnn::IoError>("creating ", what_, " in ", tnn::quote_path(tmpl), ": ", std::strerror(errno));
    ::unlink(tmpl.c_str());  // gone from the directory now; the space is freed when we close it
  }
  ~SpillFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  void put(char c) {
    buf_ += c;
    if (buf_.size() >= (1 << 16)) flush();
  }
  // Everything written, in order, to `emit(const char*, n)`.
  template <class Emit>
  void replay(Emit&& emit) {
    flush();
    char chunk[1 << 16];
    for (off_t at = 0;;) {
      const ssize_t r = ::pread(fd_, chunk, sizeof chunk, at);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) tnn::fail<tnn::IoError>("reading ", what_, ": ", std::strerror(errno));
      if (r == 0) break;
      emit(chunk, static_cast<std::size_t>(r));
      at += r;
    }
  }

 private:
  void flush() {
    for (std::size_t done = 0; done < buf_.size();) {
      const ssize_t w = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) tnn::fail<tnn::IoError>("writing ", what_, ": ", std::strerror(errno));
      done += static_cast<std::size_t>(w);
    }
    buf_.clear();
  }
  std::string what_;
  int fd_ = -1;
  std::string buf_;
};

void run_generate(const GenerateOptions& o) {
  set_threads(o.threads);
  const tnn::TnnConfig cfg = tnn::read_config(o.checkpoint);
  if (cfg.task != tnn::Task::Lm)
    tnn::fail<tnn::ConfigError>("generate: expected a causal language model, got ",
                                cfg.task == tnn::Task::Image ? "an image" : "a text", " classifier (task '",
                                tnn::to_string(cfg.task), "'): ", tnn::quote_path(o.checkpoint));
  if (!cfg.causal)
    tnn::fail<tnn::ConfigError>("generate: expected a causal checkpoint, got a bidirectional (masked LM) one: ",
                                tnn::quote_path(o.checkpoint));
  if (o.tokens < 0) tnn::fail<tnn::ValueError>("--tokens: expected >= 0, got ", o.tokens);
  if (o.prompt.empty()) tnn::fail<tnn::ValueError>("--prompt: expected at least one byte, got an empty prompt");
  tnn::SamplingConfig sc;
  sc.temperature = o.temperature;
  sc.top_k = o.top_k;
  sc.top_p = o.top_p;
  sc.validate();
  const std::uint64_t seed = tnn::parse_seed(o.seed);

  tnn::TnnLM<float> model = tnn::load_lm<float>(o.checkpoint);
  if (o.samples < 1) tnn::fail<tnn::ValueError>("--samples: expected >= 1, got ", o.samples);
  constexpr tnn::Index kMaxSamples = 1 << 16;
  if (o.samples > kMaxSamples) tnn::fail<tnn::ValueError>("--samples: expected at most ", kMaxSamples, ", got ", o.samples);
  const tnn::DecoderMethod method = tnn::parse_enum<tnn::DecoderMethod>(o.decoder, "--decoder");
  const tnn::Index K = o.samples;
  // Room for the whole text when it is short; a longer run grows the buffers as it goes, so
  // memory follows the text generated so far, never what --tokens asks for up front.
  const tnn::Index capacity = static_cast<tnn::Index>(o.prompt.size()) + std::min<tnn::Index>(o.tokens, 1 << 16);
  // K samples decode as one batch; sample k draws from its own Rng(seed + k), so
  // `--samples 1 --seed S+k` regenerates sample k alone.
  tnn::IncrementalDecoder<float> dec(model, capacity, K, method);
  std::vector<tnn::TokenSampler> samplers(static_cast<std::size_t>(K), tnn::TokenSampler(sc));
  std::vector<tnn::Rng> rngs;
  for (tnn::Index k = 0; k < K; ++k) rngs.emplace_back(seed + static_cast<std::uint64_t>(k));

  // The prompt goes in by one full forward (O(n log n)), shared by every sample; then one
  // exact step per byte.
  tnn::Tensor<std::int32_t> prompt({static_cast<tnn::Index>(o.prompt.size())});
  std::transform(o.prompt.begin(), o.prompt.end(), prompt.begin(),
                 [](char ch) { return static_cast<std::int32_t>(static_cast<unsigned char>(ch)); });
  const tnn::Tensor<float>* logits = &dec.prefill(prompt);  // [V] or [K, V]

  // The text is written as it is generated (sample 0 straight to stdout, flushed at every byte
  // on a terminal and at least every 50 ms otherwise; later samples into temporary files until
  // their turn), so memory stays flat whatever --tokens says, and a closed pipe or a full disk
  // (`tnn generate | head -c 100`) stops the generation at the next flush with one error line.
  std::fflush(stdout);
  tnn::OutputStream out = tnn::OutputStream::standard_output("standard output", ::isatty(STDOUT_FILENO) == 1 ? 0 : 0.05);
  JsonStringWriter json0(out);
  const std::string head = o.echo ? o.prompt : std::string();
  auto emit0 = [&](const char* p, std::size_t n) {
    if (o.json)
      json0.add(p, n);
    else
      out.write(std::string_view(p, n));
  };
  if (o.json) out.write("[\"");
  emit0(head.data(), head.size());
  std::vector<std::unique_ptr<SpillFile>> rest;
  for (tnn::Index k = 1; k < K; ++k) rest.push_back(std::make_unique<SpillFile>(k));
  tnn::Tensor<std::int32_t> next({K});
  for (tnn::Index i = 0; i < o.tokens; ++i) {
    for (tnn::Index k = 0; k < K; ++k) {
      const auto ks = static_cast<std::size_t>(k);
      std::int32_t t = samplers[ks].sample(logits->data() + k * cfg.vocab_size, cfg.vocab_size, rngs[ks]);
      if (t > 255) t = ' ';  // never emit a non-byte symbol
      next[k] = t;
      const char c = static_cast<char>(t);
      if (k == 0)
        emit0(&c, 1);
      else
        rest[ks - 1]->put(c);
    }
    if (i + 1 < o.tokens) logits = &dec.step(next);
  }
  if (o.json) {
    json0.finish();
    out.write("\"");
    for (tnn::Index k = 1; k < K; ++k) {
      out.write(",\"");
      JsonStringWriter js(out);
      js.add(head.data(), head.size());
      rest[static_cast<std::size_t>(k - 1)]->replay([&](const char* p, std::size_t n) { js.add(p, n); });
      js.finish();
      out.write("\"");
    }
    out.write("]\n");
  } else {
    out.put('\n');
    for (tnn::Index k = 1; k < K; ++k) {
      out.write("----- sample " + std::to_string(k) + " (seed " + std::to_string(seed + static_cast<std::uint64_t>(k)) +
                ") -----\n");
      out.write(head);
      rest[static_cast<std::size_t>(k - 1)]->replay([&](const char* p, std::size_t n) { out.write(std::string_view(p, n)); });
      out.put('\n');
    }
  }
  out.close();
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
  cmd->add_option("--seed", o->seed, "Sampling seed, 0 to 2^64 - 1")->check(seed_check())->capture_default_str();
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
