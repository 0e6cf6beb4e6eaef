// Byte-level training data: any file is a sequence of tokens 0..255. Holds the
// train/validation split, draws random training batches that depend only on
// (seed, step), so a resumed run sees the same batches, and cuts a file into
// sequential evaluation windows. CLM batches feed the causal model (targets =
// next byte), MLM batches the bidirectional one (BERT-style masking, mask id 256).
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/io/file.hpp"
#include "tnn/io/safetensors_reader.hpp"
#include "tnn/infer/evaluate.hpp"

namespace tnn {

constexpr Index kByteVocab = 256;          // V of a causal byte model
constexpr std::int32_t kMaskToken = 256;   // the MLM mask symbol
constexpr Index kMlmVocab = 257;           // V of a bidirectional byte model: bytes + mask

enum class LmObjective {
  Clm,  // causal LM: tokens = N bytes, targets = the N bytes after each
  Mlm,  // masked LM: tokens = N bytes with some masked, targets = the originals there, -1 elsewhere
};

// The most a data file may hold (1 TiB): far beyond any corpus that fits in memory, and a
// bound on what a pipe that never ends (yes | tnn train --data /dev/stdin) can make us read.
inline constexpr std::uint64_t kMaxDataBytes = std::uint64_t(1) << 40;

// A data file as bytes (io/file.hpp's read_file_bounded: regular files and pipes; devices such
// as /dev/zero, directories and sockets are IoErrors). With max_bytes > 0 only the first
// max_bytes are read (eval --max-bytes), not the whole file. An empty file is a FormatError.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::uint64_t max_bytes = 0) {
  std::vector<std::uint8_t> bytes =
      max_bytes > 0 ? read_file_bounded(path, max_bytes, "data file", /*prefix_only=*/true)
                    : read_file_bounded(path, kMaxDataBytes, "data file");
  if (bytes.empty())
    fail<FormatError>("data file ", quote_path(path), ": expected at least 1 byte, got an empty file (0 bytes)");
  return bytes;
}

// A byte sequence and where it came from (a path, or "path [validation]"), for error messages.
class ByteCorpus {
 public:
  ByteCorpus() = default;
  ByteCorpus(std::vector<std::uint8_t> bytes, std::string source)
      : bytes_(std::move(bytes)), source_(std::move(source)) {}
  // The file, or with max_bytes > 0 only its first max_bytes (the rest is never read).
  static ByteCorpus from_file(const std::string& path, std::uint64_t max_bytes = 0) {
    return ByteCorpus(read_file_bytes(path, max_bytes), path);
  }

  Index size() const { return static_cast<Index>(bytes_.size()); }
  bool empty() const { return bytes_.empty(); }
  const std::uint8_t* data() const { return bytes_.data(); }
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  const std::string& source() const { return source_; }

  // FormatError unless the corpus holds at least `needed` bytes; `what` says what needs them.
  void require(Index needed, const std::string& what) const {
    if (size() < needed)
      fail<FormatError>("data '", source_, "': ", what, " needs at least ", needed, " bytes, got ", size(), " bytes");
  }

 private:
  std::vector<std::uint8_t> bytes_;
  std::string source_;
};

struct DataSplit {
  ByteCorpus train;
  ByteCorpus valid;
};

// Fixed split: the last floor(valid_fraction * size) bytes are validation, the rest training
// (a split at the end keeps both sides contiguous text). valid_fraction in [0, 1); 0 gives an
// empty validation set. Training must keep at least one byte.
inline DataSplit split_tail(const ByteCorpus& all, double valid_fraction) {
  if (!(valid_fraction >= 0.0 && valid_fraction < 1.0))
    fail<ValueError>("validation fraction: expected 0 <= fraction < 1, got ", valid_fraction);
  const Index n = all.size();
  const auto n_valid = static_cast<Index>(std::floor(valid_fraction * static_cast<double>(n)));
  const Index n_train = n - n_valid;
  if (n_train < 1)
    fail<FormatError>("data '", all.source(), "': a validation fraction of ", valid_fraction, " of ", n,
                      " bytes leaves no training bytes");
  const auto* b = all.data();
  return DataSplit{ByteCorpus(std::vector<std::uint8_t>(b, b + n_train), all.source() + " [train]"),
                   ByteCorpus(std::vector<std::uint8_t>(b + n_train, b + n), all.source() + " [validation]")};
}
// Held-out blocks spread over the whole text: the corpus is cut into blocks of
// `block` bytes and every round(1 / valid_fraction)-th block (the last of each
// group) goes to validation, so validation text comes from every part of the
// corpus rather than only its end (whose style may differ, e.g. the last book of
// a collection). Each side is the concatenation of its blocks, in order.
inline DataSplit split_blocks(const ByteCorpus& all, double valid_fraction, Index block) {
  if (!(valid_fraction > 0.0 && valid_fraction <= 0.5))
    fail<ValueError>("validation fraction for a block split: expected 0 < fraction <= 0.5, got ", valid_fraction);
  if (block < 1) fail<ValueError>("validation block size: expected >= 1 byte, got ", block);
  // 1 / fraction is checked before it is rounded to an integer (a tiny fraction would overflow).
  const double inverse = 1.0 / valid_fraction;
  if (!(inverse < 9.0e18))
    fail<ValueError>("validation fraction for a block split: expected 1 / fraction below 2^63, got ", valid_fraction);
  const auto period = static_cast<Index>(std::llround(inverse));
  std::vector<std::uint8_t> train, valid;
  const auto* b = all.data();
  for (Index start = 0, i = 0; start < all.size(); ++i) {
    const Index end = block >= all.size() - start ? all.size() : start + block;  // start + block may overflow
    auto& side = (i % period == period - 1) ? valid : train;
    side.insert(side.end(), b + start, b + end);
    start = end;
  }
  if (train.empty())
    fail<FormatError>("data '", all.source(), "': a block split leaves no training bytes (", all.size(), " bytes)");
  if (valid.empty())
    fail<FormatError>("data '", all.source(), "': expected at least ", period, " blocks of ", block,
                      " bytes for a validation fraction of ", valid_fraction, ", got ", all.size(), " bytes");
  return DataSplit{ByteCorpus(std::move(train), all.source() + " [train]"),
                   ByteCorpus(std::move(valid), all.source() + " [validation]")};
}

inline DataSplit load_split(const std::string& path, double valid_fraction) {
  return split_tail(ByteCorpus::from_file(path), valid_fraction);
}
inline DataSplit load_split(const std::string& train_path, const std::string& valid_path) {
  return DataSplit{ByteCorpus::from_file(train_path), ByteCorpus::from_file(valid_path)};
}

// BERT-style masking probabilities. Each position is selected independently with select_prob;
// a selected position becomes mask_token with mask_prob, a uniform random byte with random_prob
// (possibly the same byte), and stays unchanged otherwise.
struct MaskConfig {
  double select_prob = 0.15;
  double mask_prob = 0.8;
  double random_prob = 0.1;
  std::int32_t mask_token = kMaskToken;

  void validate() const {
    if (!(select_prob > 0 && select_prob <= 1))
      fail<ConfigError>("mlm select_prob: expected 0 < p <= 1, got ", select_prob);
    if (!(mask_prob >= 0 && random_prob >= 0 && mask_prob + random_prob <= 1))
      fail<ConfigError>("mlm mask_prob, random_prob: expected both >= 0 with sum <= 1, got ", mask_prob, " and ",
                        random_prob);
    if (mask_token < 0) fail<ConfigError>("mlm mask_token: expected >= 0, got ", mask_token);
  }
};

struct Batch {
  Tensor<std::int32_t> tokens;   // [B, N]
  Tensor<std::int32_t> targets;  // [B, N], -1 = not scored
};

// A batch stored as safetensors (the `tnn grad` input; tests/pytorch writes them): tensors
// "tokens" and "targets", both I32 of one shape [B >= 1, N >= 1], token ids in [0, vocab),
// targets -1 (not scored) or in [0, vocab). Everything a hostile file could get wrong is a
// FormatError or ValueError naming `where` and the element; memory: the two tensors.
inline Batch batch_from_safetensors(const SafetensorsFile& f, Index vocab, const std::string& where) {
  if (vocab < 1) fail<ValueError>(where, ": vocabulary size: expected >= 1, got ", vocab);
  for (const char* name : {"tokens", "targets"}) {
    if (!f.has(name)) fail<FormatError>(where, ": expected a tensor named '", name, "', it is missing");
    if (f.dtype(name) != Dtype::I32)
      fail<FormatError>(where, ": tensor '", name, "': expected dtype I32, got ", dtype_name(f.dtype(name)));
    const Shape& s = f.shape(name);
    if (s.size() != 2 || s[0] < 1 || s[1] < 1)
      fail<FormatError>(where, ": tensor '", name, "': expected shape [B >= 1, N >= 1], got ", shape_str(s));
  }
  if (f.shape("tokens") != f.shape("targets"))
    fail<FormatError>(where, ": expected 'targets' shaped like 'tokens' ", shape_str(f.shape("tokens")), ", got ",
                      shape_str(f.shape("targets")));
  Batch b;
  f.get_into("tokens", b.tokens);
  f.get_into("targets", b.targets);
  const Index N = b.tokens.dim(1);
  for (Index i = 0; i < b.tokens.size(); ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= vocab)
      fail<ValueError>(where, ": tokens[", i / N, ", ", i % N, "] = ", b.tokens[i], ": expected a token id in [0, ",
                       vocab, ")");
    if (b.targets[i] < -1 || b.targets[i] >= vocab)
      fail<ValueError>(where, ": targets[", i / N, ", ", i % N, "] = ", b.targets[i],
                       ": expected -1 (ignored) or a token id in [0, ", vocab, ")");
  }
  return b;
}
inline Batch read_batch_file(const std::string& path, Index vocab) {
  return batch_from_safetensors(read_safetensors(path), vocab, "batch " + quote_path(path));
}

namespace detail {
// Seed of an independent stream for (seed, index); `purpose` separates training batches from
// evaluation masks drawn with the same user seed.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index) {
  return mix64(mix64(seed + 0x9E3779B97F4A7C15ull * (purpose + 1)) ^ (index + 0xD1B54A32D192ED03ull));
}
constexpr std::uint64_t kTrainStream = 1;
constexpr std::uint64_t kEvalStream = 2;

// Bytes one window reads: N + 1 for CLM (the targets run one past the tokens), checked so a
// huge N cannot wrap around.
inline Index window_bytes(LmObjective obj, Index seq_len) {
  if (obj == LmObjective::Clm && seq_len > std::numeric_limits<Index>::max() - 1)
    fail<ValueError>("sequence length: expected at most 2^63 - 2 for CLM (a window reads N + 1 bytes), got ", seq_len);
  return obj == LmObjective::Clm ? seq_len + 1 : seq_len;
}
inline const char* objective_name(LmObjective obj) { return obj == LmObjective::Clm ? "CLM" : "MLM"; }

inline void check_batch_dims(Index batch, Index seq_len) {
  if (batch < 1) fail<ValueError>("batch size: expected >= 1, got ", batch);
  if (seq_len < 1) fail<ValueError>("sequence length: expected >= 1, got ", seq_len);
  if (batch > std::numeric_limits<Index>::max() / seq_len)
    fail<ShapeError>("batch size ", batch, " x sequence length ", seq_len, ": expected a product below 2^63");
}
inline void require_window(const ByteCorpus& data, LmObjective obj, Index seq_len) {
  data.require(window_bytes(obj, seq_len),
               detail::concat("a ", objective_name(obj), " window of ", seq_len, " tokens"));
}

// CLM window at src: tokens src[0..N), targets src[1..N]; positions before first_scored get -1.
inline void clm_window(const std::uint8_t* src, Index n, Index first_scored, std::int32_t* tokens,
                       std::int32_t* targets) {
  for (Index i = 0; i < n; ++i) {
    tokens[i] = src[i];
    targets[i] = i < first_scored ? -1 : std::int32_t(src[i + 1]);
  }
}

// MLM window at src: positions before first_scored are context only (original byte, target -1).
inline void mlm_window(const std::uint8_t* src, Index n, Index first_scored, const MaskConfig& mc, Rng& rng,
                       std::int32_t* tokens, std::int32_t* targets) {
  for (Index i = 0; i < n; ++i) {
    const std::int32_t orig = src[i];
    tokens[i] = orig;
    targets[i] = -1;
    if (i < first_scored || rng.uniform() >= mc.select_prob) continue;
    targets[i] = orig;
    const double r = rng.uniform();
    if (r < mc.mask_prob)
      tokens[i] = mc.mask_token;
    else if (r < mc.mask_prob + mc.random_prob)
      tokens[i] = static_cast<std::int32_t>(rng.below(256));
  }
}
}  // namespace detail

// B windows at uniformly random offsets (with replacement), drawn from rng.
inline void sample_clm_batch(const ByteCorpus& data, Index batch, Index seq_len, Rng& rng, Batch& out) {
  detail::check_batch_dims(batch, seq_len);
  detail::require_window(data, LmObjective::Clm, seq_len);
  out.tokens.resize({batch, seq_len});
  out.targets.resize({batch, seq_len});
  const auto offsets = static_cast<std::uint64_t>(data.size() - seq_len);  // starts 0 .. size-N-1
  for (Index b = 0; b < batch; ++b) {
    const auto off = static_cast<Index>(rng.below(offsets));
    detail::clm_window(data.data() + off, seq_len, 0, out.tokens.data() + b * seq_len,
                       out.targets.data() + b * seq_len);
  }
}
inline void sample_mlm_batch(const ByteCorpus& data, Index batch, Index seq_len, const MaskConfig& mask, Rng& rng,
                             Batch& out) {
  detail::check_batch_dims(batch, seq_len);
  mask.validate();
  detail::require_window(data, LmObjective::Mlm, seq_len);
  out.tokens.resize({batch, seq_len});
  out.targets.resize({batch, seq_len});
  const auto offsets = static_cast<std::uint64_t>(data.size() - seq_len + 1);  // starts 0 .. size-N
  for (Index b = 0; b < batch; ++b) {
    const auto off = static_cast<Index>(rng.below(offsets));
    detail::mlm_window(data.data() + off, seq_len, 0, mask, rng, out.tokens.data() + b * seq_len,
                       out.targets.data() + b * seq_len);
  }
}

// Training batches as a pure function of (seed, step): resuming at step s needs only s. The
// corpus is referenced, not copied: it must outlive the sampler.
class BatchSampler {
 public:
  BatchSampler(const ByteCorpus& data, Index batch, Index seq_len, LmObjective objective, std::uint64_t seed,
               MaskConfig mask = {})
      : data_(&data), batch_(batch), seq_len_(seq_len), objective_(objective), seed_(seed), mask_(mask) {
    detail::check_batch_dims(batch, seq_len);
    if (objective == LmObjective::Mlm) mask_.validate();
    detail::require_window(data, objective, seq_len);
  }
  // A temporary corpus would dangle.
  BatchSampler(ByteCorpus&&, Index, Index, LmObjective, std::uint64_t, MaskConfig = {}) = delete;

  Index batch_size() const { return batch_; }
  Index seq_len() const { return seq_len_; }
  LmObjective objective() const { return objective_; }
  std::uint64_t seed() const { return seed_; }

  // The batch of training step `step` (>= 0); out is resized to [B, N] (no allocation after the
  // first call).
  void sample(std::int64_t step, Batch& out) const {
    if (step < 0) fail<ValueError>("batch sampler step: expected >= 0, got ", step);
    Rng rng(detail::stream_seed(seed_, detail::kTrainStream, static_cast<std::uint64_t>(step)));
    sample(rng, out);
  }
  // Alternative for callers that keep one stream (serialize it with rng.state()).
  void sample(Rng& rng, Batch& out) const {
    if (objective_ == LmObjective::Clm)
      sample_clm_batch(*data_, batch_, seq_len_, rng, out);
    else
      sample_mlm_batch(*data_, batch_, seq_len_, mask_, rng, out);
  }

 private:
  const ByteCorpus* data_;
  Index batch_, seq_len_;
  LmObjective objective_;
  std::uint64_t seed_;
  MaskConfig mask_;
};

// Sequential evaluation: non-overlapping windows of N tokens covering the corpus, each byte scored
// exactly once. CLM scores bytes 1..size-1 (window w: tokens [wN, wN+N), targets the byte after
// each); MLM scores a masked selection of bytes 0..size-1. When N does not divide the scored
// range, the last window is aligned to the end of the corpus and scores only the bytes the
// previous windows did not (the rest of it is context with target -1), so no padding is needed.
// MLM masks depend on (mask_seed, window index) only, so totals do not depend on the batch size.
// Batches hold `batch` windows, the last one possibly fewer. The corpus must outlive this object.
class EvalWindows {
 public:
  EvalWindows(const ByteCorpus& data, Index batch, Index seq_len, LmObjective objective,
              std::uint64_t mask_seed = 0, MaskConfig mask = {})
      : data_(&data), batch_(batch), seq_len_(seq_len), objective_(objective), mask_seed_(mask_seed), mask_(mask) {
    detail::check_batch_dims(batch, seq_len);
    if (objective == LmObjective::Mlm) mask_.validate();
    detail::require_window(data, objective, seq_len);
    scored_ = objective == LmObjective::Clm ? data.size() - 1 : data.size();
    full_ = scored_ / seq_len;
    windows_ = full_ + (scored_ % seq_len != 0 ? 1 : 0);
  }
  EvalWindows(ByteCorpus&&, Index, Index, LmObjective, std::uint64_t = 0, MaskConfig = {}) = delete;
  using batch_type = Batch;  // a window source for infer/evaluate.hpp

  Index num_windows() const { return windows_; }
  Index num_batches() const { return windows_ / batch_ + (windows_ % batch_ != 0 ? 1 : 0); }  // no overflow for a huge batch
  Index batch_size() const { return batch_; }
  Index seq_len() const { return seq_len_; }
  // Positions a full pass predicts (CLM: every byte but the first; MLM: the candidates, of which
  // about select_prob are masked and scored; count_targets() gives the exact number per batch).
  Index num_positions() const { return scored_; }

  // Batch i in [0, num_batches()): tokens/targets [b, N], b = batch_size() except maybe the last.
  void batch(Index i, Batch& out) const {
    if (i < 0 || i >= num_batches())
      fail<ValueError>("evaluation batch index: expected 0 <= i < ", num_batches(), ", got ", i);
    const Index w0 = i * batch_;
    const Index rows = std::min(batch_, windows_ - w0);
    out.tokens.resize({rows, seq_len_});
    out.targets.resize({rows, seq_len_});
    for (Index r = 0; r < rows; ++r)
      window(w0 + r, out.tokens.data() + r * seq_len_, out.targets.data() + r * seq_len_);
  }

  // Window w in [0, num_windows()) into tokens[N], targets[N].
  void window(Index w, std::int32_t* tokens, std::int32_t* targets) const {
    if (w < 0 || w >= windows_) fail<ValueError>("evaluation window index: expected 0 <= w < ", windows_, ", got ", w);
    Index start = w * seq_len_, first_scored = 0;
    if (w == full_) {  // the end-aligned tail window
      start = scored_ - seq_len_;
      first_scored = full_ * seq_len_ - start;
    }
    if (objective_ == LmObjective::Clm) {
      detail::clm_window(data_->data() + start, seq_len_, first_scored, tokens, targets);
    } else {
      Rng rng(detail::stream_seed(mask_seed_, detail::kEvalStream, static_cast<std::uint64_t>(w)));
      detail::mlm_window(data_->data() + start, seq_len_, first_scored, mask_, rng, tokens, targets);
    }
  }

 private:
  const ByteCorpus* data_;
  Index batch_, seq_len_;
  LmObjective objective_;
  std::uint64_t mask_seed_;
  MaskConfig mask_;
  Index scored_ = 0, full_ = 0, windows_ = 0;
};

// The MLM mask seed of every evaluation (`tnn eval`, the trainer's validation), so their
// numbers agree.
constexpr std::uint64_t kEvalMaskSeed = 12345;

// Mean loss (and accuracy) of `model` over every scored position of `corpus` cut into windows
// of seq_len (EvalWindows), `batch` windows per forward pass.
template <class Model>
EvalResult evaluate_corpus(Model& model, const ByteCorpus& corpus, Index seq_len, Index batch, LmObjective objective,
                           std::uint64_t mask_seed = kEvalMaskSeed) {
  return evaluate(model, EvalWindows(corpus, batch, seq_len, objective, mask_seed));
}

}  // namespace tnn
