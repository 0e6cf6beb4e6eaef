// Program glue shared by the `tnn` commands: threads, the terminal, lists of numbers, durations,
// plot paths and the `tnn grad` output. Everything a C++ user could want (training, evaluation,
// loading) is in the library.
#pragma once

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include <tnn/core/error.hpp>
#include <tnn/core/rng.hpp>
#include <tnn/core/gemm.hpp>  // set_num_threads
#include <tnn/core/tensor.hpp>
#include <tnn/io/safetensors.hpp>
#include <tnn/train/data.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tnncli {

// The check of every --seed option: the text tnn::parse_seed takes (0 to 2^64 - 1), checked
// before CLI11 converts it (which would clamp a value beyond 64 bits or wrap "-1" around).
inline CLI::Validator seed_check() {
  return CLI::Validator([](std::string& s) { return tnn::seed_problem(s); }, "SEED", "seed");
}

inline void set_threads(int threads) {
  // The upper bound keeps a typo (--threads 100000) from asking the OS for a thread per unit.
  constexpr int kMaxThreads = 1024;
  if (threads < 0 || threads > kMaxThreads)
    tnn::fail<tnn::ValueError>("--threads: expected 1 to ", kMaxThreads, " (or 0 for all cores), got ", threads);
  // OpenMP threads, and a single-threaded BLAS under tnn's own split of the products.
  tnn::set_num_threads(threads);
}

inline int current_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// "1 thread", "2 threads".
inline std::string count_of(long long n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// The size of a regular file; 0 for anything else (a pipe has no size until it is read).
inline std::uint64_t regular_file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
}

inline bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

// Columns of the terminal on stderr (COLUMNS when the terminal does not say; 80 otherwise).
inline int terminal_columns() {
  struct winsize w {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n > 0) return n;
  }
  return 80;
}

// The train/validation split of a text file: with block > 0, every round(1/fraction)-th block
// of `block` bytes is held out (tnn::split_blocks); with block == 0, the last `fraction` of the
// file (tnn::split_tail).
inline tnn::DataSplit held_out_split(const tnn::ByteCorpus& all, double fraction, tnn::Index block) {
  if (block < 0) tnn::fail<tnn::ValueError>("--valid-block: expected >= 0 bytes, got ", block);
  return block > 0 ? tnn::split_blocks(all, fraction, block) : tnn::split_tail(all, fraction);
}
// The same over token files (--tokens): blocks of `block` tokens.
inline tnn::TokenSplit held_out_split(const tnn::TokenCorpus& all, double fraction, tnn::Index block) {
  if (block < 0) tnn::fail<tnn::ValueError>("--valid-block: expected >= 0 tokens, got ", block);
  return block > 0 ? tnn::split_blocks(all, fraction, block) : tnn::split_tail(all, fraction);
}

// The tokenizer --tokenizer names (a SentencePiece .model file), or bytes when none is given.
inline tnn::Tokenizer tokenizer_flag(const std::string& path) {
  return path.empty() ? tnn::Tokenizer::bytes() : tnn::Tokenizer::sentencepiece_file(path);
}

// Token files (--tokens FILE[,FILE...] --token-dtype D) of a tokenizer's vocabulary.
inline tnn::TokenCorpus token_files(const std::vector<std::string>& paths, const std::string& dtype,
                                    const tnn::Tokenizer& tokenizer) {
  if (dtype.empty())
    tnn::fail<tnn::ValueError>("--tokens: expected --token-dtype (", tnn::enum_choices<tnn::TokenDtype>(" or "),
                               ": the integer type of the files' ids)");
  return tnn::TokenCorpus::map_files(paths, tnn::parse_enum<tnn::TokenDtype, tnn::ValueError>(dtype, "--token-dtype"),
                                     tokenizer.vocab_size());
}

// "; sentencepiece (4000 pieces), 3.98 bytes per token" for a subword corpus, "" for bytes.
inline std::string tokenizer_note(const tnn::Tokenizer& t, const tnn::TokenCorpus& c) {
  if (t.is_bytes()) return "";
  std::ostringstream s;
  s << "; tokenizer " << t.describe();
  if (std::isfinite(c.bytes_per_token())) s << ", " << std::fixed << std::setprecision(2) << c.bytes_per_token() << " bytes per token";
  return s.str();
}

// "512,1024,4096" -> {512, 1024, 4096}: a comma-separated list of positive integers given
// to `flag` (an empty string gives an empty list).
inline std::vector<tnn::Index> parse_positive_list(const std::string& s, const char* flag) {
  std::vector<tnn::Index> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || !(item[0] >= '0' && item[0] <= '9') || used != item.size() || v < 1)
      tnn::fail<tnn::ValueError>(flag, ": expected a comma-separated list of positive integers, got ", tnn::quote(s),
                                 " (the entry ", tnn::quote(item, 40), ")");
    out.push_back(v);
  }
  return out;
}

// The first `max_bytes` of a corpus (all of it when max_bytes <= 0 or larger).
inline tnn::ByteCorpus corpus_prefix(const tnn::ByteCorpus& c, tnn::Index max_bytes) {
  const tnn::Index n = max_bytes > 0 ? std::min(max_bytes, c.size()) : c.size();
  return tnn::ByteCorpus(std::vector<std::uint8_t>(c.data(), c.data() + n), c.source());
}
// The first `max_tokens` of a token corpus (all of it when max_tokens <= 0 or larger), a view.
inline tnn::TokenCorpus corpus_prefix(const tnn::TokenCorpus& c, tnn::Index max_tokens) {
  return c.slice(0, max_tokens > 0 ? std::min(max_tokens, c.size()) : c.size(), c.source());
}

inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

// Plots are written as SVG only: a path ending otherwise (x.png) is refused rather than given
// SVG under another name. Checked before any work, like every output path.
inline void check_svg_path(const std::string& path, const char* flag) {
  std::string ext = path.size() >= 4 ? path.substr(path.size() - 4) : std::string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext != ".svg")
    tnn::fail<tnn::ValueError>(flag, ": expected a file name ending in .svg (plots are written as SVG), got ",
                               tnn::quote_path(path));
  tnn::check_output_path(path, flag);
}

// `tnn grad` in the precision --dtype names: `run(tag)` with a double (f64) or a float tag.
template <class F>
void run_in_dtype(const std::string& dtype, F&& run) {
  if (dtype == "f64")
    run(double{});
  else
    run(float{});
}

// `tnn grad`'s --inputs file `path`, holding every tensor of `names`: a FormatError naming the
// missing one and what the model's inputs are (`inputs`) otherwise.
inline tnn::SafetensorsFile read_grad_inputs(const std::string& path, std::initializer_list<const char*> names,
                                             const char* inputs) {
  tnn::SafetensorsFile f = tnn::read_safetensors(path);
  for (const char* name : names)
    if (!f.has(name))
      tnn::fail<tnn::FormatError>("--inputs ", tnn::quote_path(path), ": expected a tensor named '", name, "' (", inputs,
                                  "), it is missing");
  return f;
}

// The `tnn grad` output file (docs/model.md §10) of one step of `model` on `inputs`
// (model.forward(inputs...) with its loss, then model.backward()): `loss` (F64, shape []), the
// model's `logits`, and `grad.<name>` for every trained parameter.
template <class Model, class... Inputs>
void write_grad_output(const std::string& out, Model& model, const Inputs&... inputs) {
  model.zero_grad();
  const auto loss = model.forward(inputs...);
  model.backward();
  using T = std::remove_const_t<decltype(loss)>;
  tnn::SafetensorsWriter w;
  tnn::Tensor<double> loss_t(tnn::Shape{});
  loss_t[0] = static_cast<double>(loss);
  w.add("loss", loss_t, tnn::Dtype::F64);
  w.add_view("logits", model.logits());
  model.visit([&](const std::string& name, tnn::Param<T>& p) {
    if (p.trainable) w.add_view("grad." + name, p.grad);
  });
  w.write(out);
}

}  // namespace tnncli
