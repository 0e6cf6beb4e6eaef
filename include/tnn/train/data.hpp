// Language-model training data over a token corpus (train/corpus.hpp: bytes, a tokenized text,
// or memory-mapped token files): the train/validation split, random training batches that
// depend only on (seed, step), so a resumed run sees the same batches, and sequential
// evaluation windows. CLM batches feed the causal model (targets = the next token), MLM batches
// the bidirectional one (BERT-style masking; the mask id is the one after the vocabulary, 256
// for bytes).
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
#include "tnn/train/corpus.hpp"

namespace tnn {

constexpr Index kByteVocab = 256;          // V of a causal byte model
constexpr std::int32_t kMaskToken = 256;   // the MLM mask symbol
constexpr Index kMlmVocab = 257;           // V of a bidirectional byte model: bytes + mask

enum class LmObjective {
  Clm,  // causal LM: tokens = N ids, targets = the N ids after each
  Mlm,  // masked LM: tokens = N ids with some masked, targets = the originals there, -1 elsewhere
};

// A train/validation split. Byte corpora are split into copies (DataSplit), other corpora into
// views of the same storage (TokenSplit).
template <class Corpus>
struct SplitOf {
  Corpus train;
  Corpus valid;
};
using DataSplit = SplitOf<ByteCorpus>;
using TokenSplit = SplitOf<TokenCorpus>;

namespace detail {
// [begin, end) ranges of positions of each side of a split.
struct SplitRanges {
  std::vector<std::pair<Index, Index>> train, valid;
};
inline SplitRanges tail_ranges(const TokenCorpus& all, double valid_fraction) {
  if (!(valid_fraction >= 0.0 && valid_fraction < 1.0))
    fail<ValueError>("validation fraction: expected 0 <= fraction < 1, got ", valid_fraction);
  const Index n = all.size();
  const auto n_valid = static_cast<Index>(std::floor(valid_fraction * static_cast<double>(n)));
  const Index n_train = n - n_valid;
  if (n_train < 1)
    fail<FormatError>("data '", all.source(), "': a validation fraction of ", valid_fraction, " of ", n, " ",
                      all.unit(), " leaves no training ", all.unit());
  return SplitRanges{{{0, n_train}}, {{n_train, n}}};
}
inline SplitRanges block_ranges(const TokenCorpus& all, double valid_fraction, Index block) {
  if (!(valid_fraction > 0.0 && valid_fraction <= 0.5))
    fail<ValueError>("validation fraction for a block split: expected 0 < fraction <= 0.5, got ", valid_fraction);
  if (block < 1) fail<ValueError>("validation block size: expected >= 1 ", all.unit() == std::string("bytes") ? "byte" : "token", ", got ", block);
  // 1 / fraction is checked before it is rounded to an integer (a tiny fraction would overflow).
  const double inverse = 1.0 / valid_fraction;
  if (!(inverse < 9.0e18))
    fail<ValueError>("validation fraction for a block split: expected 1 / fraction below 2^63, got ", valid_fraction);
  const auto period = static_cast<Index>(std::llround(inverse));
  SplitRanges r;
  for (Index start = 0, i = 0; start < all.size(); ++i) {
    const Index end = block >= all.size() - start ? all.size() : start + block;  // start + block may overflow
    (i % period == period - 1 ? r.valid : r.train).emplace_back(start, end);
    start = end;
  }
  if (r.train.empty())
    fail<FormatError>("data '", all.source(), "': a block split leaves no training ", all.unit(), " (", all.size(), " ",
                      all.unit(), ")");
  if (r.valid.empty())
    fail<FormatError>("data '", all.source(), "': expected at least ", period, " blocks of ", block, " ", all.unit(),
                      " for a validation fraction of ", valid_fraction, ", got ", all.size(), " ", all.unit());
  return r;
}
inline ByteCorpus gather(const ByteCorpus& all, const std::vector<std::pair<Index, Index>>& ranges,
                         const std::string& source) {
  std::vector<std::uint8_t> out;
  for (const auto& [b, e] : ranges) out.insert(out.end(), all.data() + b, all.data() + e);
  return ByteCorpus(std::move(out), source);
}
inline TokenCorpus gather(const TokenCorpus& all, const std::vector<std::pair<Index, Index>>& ranges,
                          const std::string& source) {
  if (ranges.size() == 1) return all.slice(ranges[0].first, ranges[0].second, source);
  std::vector<TokenCorpus> parts;
  parts.reserve(ranges.size());
  for (const auto& [b, e] : ranges) parts.push_back(all.slice(b, e, source));
  return TokenCorpus::concat(parts, source);
}
template <class Corpus>
SplitOf<Corpus> split_by(const Corpus& all, const SplitRanges& r) {
  return SplitOf<Corpus>{gather(all, r.train, all.source() + " [train]"),
                         gather(all, r.valid, all.source() + " [validation]")};
}
}  // namespace detail

// Fixed split: the last floor(valid_fraction * size) positions are validation, the rest training
// (a split at the end keeps both sides contiguous text). valid_fraction in [0, 1); 0 gives an
// empty validation set. Training must keep at least one position.
inline DataSplit split_tail(const ByteCorpus& all, double valid_fraction) {
  return detail::split_by(all, detail::tail_ranges(all, valid_fraction));
}
inline TokenSplit split_tail(const TokenCorpus& all, double valid_fraction) {
  return detail::split_by(all, detail::tail_ranges(all, valid_fraction));
}
// Held-out blocks spread over the whole text: the corpus is cut into blocks of
// `block` positions and every round(1 / valid_fraction)-th block (the last of each
// group) goes to validation, so validation text comes from every part of the
// corpus rather than only its end (whose style may differ, e.g. the last book of
// a collection). Each side is the concatenation of its blocks, in order.
inline DataSplit split_blocks(const ByteCorpus& all, double valid_fraction, Index block) {
  return detail::split_by(all, detail::block_ranges(all, valid_fraction, block));
}
inline TokenSplit split_blocks(const TokenCorpus& all, double valid_fraction, Index block) {
  return detail::split_by(all, detail::block_ranges(all, valid_fraction, block));
}

inline DataSplit load_split(const std::string& path, double valid_fraction) {
  return split_tail(ByteCorpus::from_file(path), valid_fraction);
}
inline DataSplit load_split(const std::string& train_path, const std::string& valid_path) {
  return DataSplit{ByteCorpus::from_file(train_path), ByteCorpus::from_file(valid_path)};
}

// BERT-style masking probabilities. Each position is selected independently with select_prob;
// a selected position becomes the mask id with mask_prob, a uniform random id of the corpus's
// vocabulary with random_prob (possibly the same id), and stays unchanged otherwise.
struct MaskConfig {
  double select_prob = 0.15;
  double mask_prob = 0.8;
  double random_prob = 0.1;
  // The mask id; -1: the id after the corpus's vocabulary (kMaskToken = 256 for bytes).
  std::int32_t mask_token = -1;

  void validate() const {
    if (!(select_prob > 0 && select_prob <= 1))
      fail<ConfigError>("mlm select_prob: expected 0 < p <= 1, got ", select_prob);
    if (!(mask_prob >= 0 && random_prob >= 0 && mask_prob + random_prob <= 1))
      fail<ConfigError>("mlm mask_prob, random_prob: expected both >= 0 with sum <= 1, got ", mask_prob, " and ",
                        random_prob);
    if (mask_token < -1) fail<ConfigError>("mlm mask_token: expected >= 0 (or -1: after the vocabulary), got ", mask_token);
  }
  // This config for `data`: validated, the mask id resolved and outside the corpus's ids.
  MaskConfig for_corpus(const TokenCorpus& data) const {
    validate();
    MaskConfig m = *this;
    if (m.mask_token < 0) m.mask_token = static_cast<std::int32_t>(data.vocab_size());
    if (m.mask_token < data.vocab_size())
      fail<ConfigError>("mlm mask_token: expected an id the data does not use (>= its vocabulary size ",
                        data.vocab_size(), "), got ", m.mask_token);
    return m;
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

// Positions one window reads: N + 1 for CLM (the targets run one past the tokens), checked so
// a huge N cannot wrap around.
inline Index window_bytes(LmObjective obj, Index seq_len) {
  if (obj == LmObjective::Clm && seq_len > std::numeric_limits<Index>::max() - 1)
    fail<ValueError>("sequence length: expected at most 2^63 - 2 for CLM (a window reads N + 1 tokens), got ", seq_len);
  return obj == LmObjective::Clm ? seq_len + 1 : seq_len;
}
inline const char* objective_name(LmObjective obj) { return obj == LmObjective::Clm ? "CLM" : "MLM"; }

inline void check_batch_dims(Index batch, Index seq_len) {
  if (batch < 1) fail<ValueError>("batch size: expected >= 1, got ", batch);
  if (seq_len < 1) fail<ValueError>("sequence length: expected >= 1, got ", seq_len);
  if (batch > std::numeric_limits<Index>::max() / seq_len)
    fail<ShapeError>("batch size ", batch, " x sequence length ", seq_len, ": expected a product below 2^63");
}
inline void require_window(const TokenCorpus& data, LmObjective obj, Index seq_len) {
  data.require(window_bytes(obj, seq_len),
               detail::concat("a ", objective_name(obj), " window of ", seq_len, " tokens"));
}

// CLM window at position `start`: tokens data[start, start+n), targets data[start+1, start+n];
// positions before first_scored get -1.
inline void clm_window(const TokenCorpus& data, Index start, Index n, Index first_scored, std::int32_t* tokens,
                       std::int32_t* targets) {
  data.read(start, n, tokens);
  for (Index i = 0; i + 1 < n; ++i) targets[i] = i < first_scored ? -1 : tokens[i + 1];
  targets[n - 1] = n - 1 < first_scored ? -1 : data[start + n];
}

// MLM window at position `start`: positions before first_scored are context only (original
// id, target -1). mc is resolved (MaskConfig::for_corpus).
inline void mlm_window(const TokenCorpus& data, Index start, Index n, Index first_scored, const MaskConfig& mc,
                       Rng& rng, std::int32_t* tokens, std::int32_t* targets) {
  data.read(start, n, tokens);
  const auto vocab = static_cast<std::uint64_t>(data.vocab_size());
  for (Index i = 0; i < n; ++i) {
    const std::int32_t orig = tokens[i];
    targets[i] = -1;
    if (i < first_scored || rng.uniform() >= mc.select_prob) continue;
    targets[i] = orig;
    const double r = rng.uniform();
    if (r < mc.mask_prob)
      tokens[i] = mc.mask_token;
    else if (r < mc.mask_prob + mc.random_prob)
      tokens[i] = static_cast<std::int32_t>(rng.below(vocab));
  }
}
}  // namespace detail

// B windows at uniformly random offsets (with replacement), drawn from rng.
inline void sample_clm_batch(const TokenCorpus& data, Index batch, Index seq_len, Rng& rng, Batch& out) {
  detail::check_batch_dims(batch, seq_len);
  detail::require_window(data, LmObjective::Clm, seq_len);
  out.tokens.resize({batch, seq_len});
  out.targets.resize({batch, seq_len});
  const auto offsets = static_cast<std::uint64_t>(data.size() - seq_len);  // starts 0 .. size-N-1
  for (Index b = 0; b < batch; ++b) {
    const auto off = static_cast<Index>(rng.below(offsets));
    detail::clm_window(data, off, seq_len, 0, out.tokens.data() + b * seq_len, out.targets.data() + b * seq_len);
  }
}
inline void sample_mlm_batch(const TokenCorpus& data, Index batch, Index seq_len, const MaskConfig& mask, Rng& rng,
                             Batch& out) {
  detail::check_batch_dims(batch, seq_len);
  const MaskConfig mc = mask.for_corpus(data);
  detail::require_window(data, LmObjective::Mlm, seq_len);
  out.tokens.resize({batch, seq_len});
  out.targets.resize({batch, seq_len});
  const auto offsets = static_cast<std::uint64_t>(data.size() - seq_len + 1);  // starts 0 .. size-N
  for (Index b = 0; b < batch; ++b) {
    const auto off = static_cast<Index>(rng.below(offsets));
    detail::mlm_window(data, off, seq_len, 0, mc, rng, out.tokens.data() + b * seq_len,
                       out.targets.data() + b * seq_len);
  }
}

// Training batches as a pure function of (seed, step): resuming at step s needs only s. The
// corpus is referenced, not copied: it must outlive the sampler.
class BatchSampler {
 public:
  BatchSampler(const TokenCorpus& data, Index batch, Index seq_len, LmObjective objective, std::uint64_t seed,
               MaskConfig mask = {})
      : data_(&data), batch_(batch), seq_len_(seq_len), objective_(objective), seed_(seed), mask_(mask) {
    detail::check_batch_dims(batch, seq_len);
    if (objective == LmObjective::Mlm) mask_ = mask.for_corpus(data);
    detail::require_window(data, objective, seq_len);
  }
  // A temporary corpus would dangle.
  BatchSampler(TokenCorpus&&, Index, Index, LmObjective, std::uint64_t, MaskConfig = {}) = delete;

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
  const TokenCorpus* data_;
  Index batch_, seq_len_;
  LmObjective objective_;
  std::uint64_t seed_;
  MaskConfig mask_;
};

// Sequential evaluation: non-overlapping windows of N tokens covering the corpus, each token
// scored exactly once. CLM scores tokens 1..size-1 (window w: tokens [wN, wN+N), targets the
// token after each); MLM scores a masked selection of tokens 0..size-1. When N does not divide
// the scored range, the last window is aligned to the end of the corpus and scores only the
// tokens the previous windows did not (the rest of it is context with target -1), so no padding
// is needed. MLM masks depend on (mask_seed, window index) only, so totals do not depend on the
// batch size. Batches hold `batch` windows, the last one possibly fewer. The corpus must outlive
// this object.
class EvalWindows {
 public:
  EvalWindows(const TokenCorpus& data, Index batch, Index seq_len, LmObjective objective,
              std::uint64_t mask_seed = 0, MaskConfig mask = {})
      : data_(&data), batch_(batch), seq_len_(seq_len), objective_(objective), mask_seed_(mask_seed), mask_(mask) {
    detail::check_batch_dims(batch, seq_len);
    if (objective == LmObjective::Mlm) mask_ = mask.for_corpus(data);
    detail::require_window(data, objective, seq_len);
    scored_ = objective == LmObjective::Clm ? data.size() - 1 : data.size();
    full_ = scored_ / seq_len;
    windows_ = full_ + (scored_ % seq_len != 0 ? 1 : 0);
  }
  EvalWindows(TokenCorpus&&, Index, Index, LmObjective, std::uint64_t = 0, MaskConfig = {}) = delete;
  using batch_type = Batch;  // a window source for infer/evaluate.hpp

  Index num_windows() const { return windows_; }
  Index num_batches() const { return windows_ / batch_ + (windows_ % batch_ != 0 ? 1 : 0); }  // no overflow for a huge batch
  Index batch_size() const { return batch_; }
  Index seq_len() const { return seq_len_; }
  // Positions a full pass predicts (CLM: every token but the first; MLM: the candidates, of which
  // about select_prob are masked and scored; count_targets() gives the exact number per batch).
  Index num_positions() const { return scored_; }
  // Text bytes per token of the corpus (infer/evaluate.hpp turns nats per token into bits per
  // byte with it): 1 for bytes, NaN when unknown.
  double bytes_per_token() const { return data_->bytes_per_token(); }

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
      detail::clm_window(*data_, start, seq_len_, first_scored, tokens, targets);
    } else {
      Rng rng(detail::stream_seed(mask_seed_, detail::kEvalStream, static_cast<std::uint64_t>(w)));
      detail::mlm_window(*data_, start, seq_len_, first_scored, mask_, rng, tokens, targets);
    }
  }

 private:
  const TokenCorpus* data_;
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
EvalResult evaluate_corpus(Model& model, const TokenCorpus& corpus, Index seq_len, Index batch, LmObjective objective,
                           std::uint64_t mask_seed = kEvalMaskSeed) {
  return evaluate(model, EvalWindows(corpus, batch, seq_len, objective, mask_seed));
}

}  // namespace tnn
