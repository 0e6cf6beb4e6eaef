// Token corpora: the sequence of token ids a language model trains and is evaluated on.
//   TokenCorpus  ids in [0, V), read through runs of stored integers (1, 2 or 4 bytes each):
//                ids in memory, memory-mapped token files (several files read as one
//                sequence), or slices and concatenations of those, all views sharing storage.
//   ByteCorpus   a file's bytes as ids 0..255 (V = 256), held in memory.
// Token files are raw little-endian uint16 or uint32 ids without a header (what nanoGPT-style
// pipelines and `tnn tokenize` write). Each corpus also knows how many bytes of text a token
// stands for (1 for bytes; text bytes / tokens for a tokenized text; unknown for token files),
// so evaluation reports bits per byte comparable across vocabularies.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/io/file.hpp"
#include "tnn/io/mapped_file.hpp"
#include "tnn/io/safetensors_header.hpp"
#include "tnn/io/tokenizer.hpp"

namespace tnn {

// The integer type of a token file's ids.
enum class TokenDtype { U16, U32 };
template <>
struct EnumTable<TokenDtype> {
  static constexpr EnumRow<TokenDtype> rows[] = {{TokenDtype::U16, "uint16"}, {TokenDtype::U32, "uint32"}};
};
inline int token_dtype_bytes(TokenDtype d) { return d == TokenDtype::U16 ? 2 : 4; }

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

class TokenCorpus {
 public:
  TokenCorpus() = default;
  // ids held in memory, each in [0, vocab) (ValueError naming the first that is not);
  // bytes_per_token: the text bytes each token stands for on average (NaN: unknown).
  TokenCorpus(std::vector<std::uint32_t> ids, Index vocab, std::string source,
              double bytes_per_token = std::numeric_limits<double>::quiet_NaN())
      : source_(std::move(source)), vocab_(vocab), bytes_per_token_(bytes_per_token) {
    check_vocab(vocab_, source_);
    auto store = std::make_shared<const std::vector<std::uint32_t>>(std::move(ids));
    for (std::size_t i = 0; i < store->size(); ++i)
      if ((*store)[i] >= static_cast<std::uint64_t>(vocab_))
        fail<ValueError>("data '", source_, "': token ", i, " is ", (*store)[i], ": expected an id in [0, ", vocab_, ")");
    add_run(reinterpret_cast<const std::uint8_t*>(store->data()), static_cast<Index>(store->size()), 4, store);
  }

  // Token files read as one sequence, in the order given, memory-mapped (only the pages in use
  // stay resident). Every file must hold a whole number of ids, and every id must be below
  // `vocab` (each is checked once here, one pass over the data); otherwise a FormatError or
  // ValueError names the file and the offending position.
  static TokenCorpus map_files(const std::vector<std::string>& paths, TokenDtype dtype, Index vocab) {
    if (paths.empty()) fail<ValueError>("token files: expected at least one file, got none");
    std::string source = paths.front();
    if (paths.size() > 1) source += detail::concat(" (+", paths.size() - 1, paths.size() == 2 ? " file)" : " files)");
    TokenCorpus out;
    out.source_ = source;
    out.vocab_ = vocab;
    check_vocab(vocab, source);
    const int width = token_dtype_bytes(dtype);
    for (const std::string& path : paths) {
      auto map = std::make_shared<const MappedFile>(path, "token file");
      const std::string where = "token file " + quote_path(path);
      if (map->size() % static_cast<std::size_t>(width) != 0)
        fail<FormatError>(where, ": expected a multiple of ", width, " bytes (", to_string(dtype), " ids), got ",
                          map->size(), " bytes");
      const auto n = static_cast<Index>(map->size() / static_cast<std::size_t>(width));
      const std::uint8_t* p = map->data();
      for (Index i = 0; i < n; ++i) {
        const std::uint64_t id = width == 2 ? detail::load_le<std::uint16_t>(p + 2 * i) : detail::load_le<std::uint32_t>(p + 4 * i);
        if (id >= static_cast<std::uint64_t>(vocab))
          fail<ValueError>(where, ": token ", i, " (byte offset ", i * width, ") is ", id, ": expected an id in [0, ",
                           vocab, ") (the vocabulary size given)");
      }
      out.add_run(p, n, width, map);
    }
    return out;
  }

  Index size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // V: every id is in [0, V).
  Index vocab_size() const { return vocab_; }
  // Text bytes per token: 1 for bytes, NaN when unknown (token files).
  double bytes_per_token() const { return bytes_per_token_; }
  const std::string& source() const { return source_; }
  // What a position is called in messages: "bytes" for byte corpora, else "tokens".
  const char* unit() const { return unit_; }

  std::int32_t operator[](Index i) const {
    std::int32_t v;
    read(i, 1, &v);
    return v;
  }
  // ids [begin, begin + n) into out[n].
  void read(Index begin, Index n, std::int32_t* out) const {
    if (begin < 0 || n < 0 || begin > size_ - n)
      fail<ValueError>("data '", source_, "': read of [", begin, ", ", begin, " + ", n, "): expected a range within [0, ",
                       size_, ")");
    if (n == 0) return;
    // The run holding `begin`: the last whose first position is <= begin.
    auto it = std::upper_bound(runs_.begin(), runs_.end(), begin, [](Index b, const Run& r) { return b < r.begin; });
    std::size_t k = static_cast<std::size_t>(it - runs_.begin()) - 1;
    while (n > 0) {
      const Run& r = runs_[k];
      const Index off = begin - r.begin, take = std::min(n, r.size - off);
      copy_ids(r, off, take, out);
      out += take;
      begin += take;
      n -= take;
      ++k;
    }
  }

  // Positions [begin, end) as a corpus of their own, sharing the storage.
  TokenCorpus slice(Index begin, Index end, std::string source) const {
    if (begin < 0 || end < begin || end > size_)
      fail<ValueError>("data '", source_, "': slice [", begin, ", ", end, "): expected 0 <= begin <= end <= ", size_);
    TokenCorpus out = empty_like(std::move(source));
    for (const Run& r : runs_) {
      const Index lo = std::max(begin, r.begin), hi = std::min(end, r.begin + r.size);
      if (lo < hi) out.add_run(r.data + (lo - r.begin) * r.width, hi - lo, r.width, nullptr);
    }
    out.owners_ = owners_;
    return out;
  }
  // The corpora one after the other (same vocabulary; bytes per token weighted by size).
  static TokenCorpus concat(const std::vector<TokenCorpus>& parts, std::string source) {
    if (parts.empty()) return TokenCorpus();
    TokenCorpus out = parts.front().empty_like(std::move(source));
    double bytes = 0;
    for (const TokenCorpus& p : parts) {
      if (p.vocab_ != out.vocab_)
        fail<ValueError>("data '", out.source_, "': expected parts of one vocabulary (", out.vocab_, "), got ", p.vocab_,
                         " in '", p.source_, "'");
      for (const Run& r : p.runs_) out.add_run(r.data, r.size, r.width, nullptr);
      out.owners_.insert(out.owners_.end(), p.owners_.begin(), p.owners_.end());
      bytes += p.bytes_per_token_ * static_cast<double>(p.size_);
    }
    out.bytes_per_token_ = out.size_ > 0 ? bytes / static_cast<double>(out.size_) : parts.front().bytes_per_token_;
    return out;
  }

  // FormatError unless the corpus holds at least `needed` positions; `what` says what needs them.
  void require(Index needed, const std::string& what) const {
    if (size_ < needed)
      fail<FormatError>("data '", source_, "': ", what, " needs at least ", needed, " ", unit_, ", got ", size_, " ",
                        unit_);
  }

  // f(const std::uint8_t* data, Index n, int width) for each stored run, in order: the stored
  // integers (little-endian, `width` bytes each), e.g. to checksum the corpus.
  template <class F>
  void for_each_run(F&& f) const {
    for (const Run& r : runs_) f(r.data, r.size, r.width);
  }

 protected:
  // A stretch of `size` ids stored at `data`, `width` bytes each (little-endian), that are the
  // corpus's positions [begin, begin + size).
  struct Run {
    const std::uint8_t* data;
    Index begin;
    Index size;
    int width;
  };

  static void check_vocab(Index vocab, const std::string& source) {
    if (vocab < 1 || vocab > (Index(1) << 31))
      fail<ValueError>("data '", source, "': vocabulary size: expected 1 to 2^31, got ", vocab);
  }
  // Same vocabulary, unit and bytes per token, no positions.
  TokenCorpus empty_like(std::string source) const {
    TokenCorpus out;
    out.source_ = std::move(source);
    out.vocab_ = vocab_;
    out.bytes_per_token_ = bytes_per_token_;
    out.unit_ = unit_;
    return out;
  }
  void add_run(const std::uint8_t* data, Index n, int width, std::shared_ptr<const void> owner) {
    if (owner) owners_.push_back(std::move(owner));
    if (n == 0) return;
    runs_.push_back(Run{data, size_, n, width});
    size_ += n;
  }
  static void copy_ids(const Run& r, Index off, Index n, std::int32_t* out) {
    const std::uint8_t* p = r.data + off * r.width;
    if (r.width == 1) {
      for (Index i = 0; i < n; ++i) out[i] = p[i];
    } else if (r.width == 2) {
      for (Index i = 0; i < n; ++i) out[i] = detail::load_le<std::uint16_t>(p + 2 * i);
    } else {
      for (Index i = 0; i < n; ++i) out[i] = static_cast<std::int32_t>(detail::load_le<std::uint32_t>(p + 4 * i));
    }
  }

  std::vector<Run> runs_;                          // in order, covering [0, size_)
  std::vector<std::shared_ptr<const void>> owners_;  // keep the storage of the runs alive
  Index size_ = 0;
  std::string source_;
  Index vocab_ = 256;
  double bytes_per_token_ = std::numeric_limits<double>::quiet_NaN();
  const char* unit_ = "tokens";

};

// A byte sequence and where it came from (a path, or "path [validation]"), for error messages.
// Ids are the bytes (V = 256), one byte of text each.
class ByteCorpus : public TokenCorpus {
 public:
  ByteCorpus() : ByteCorpus(std::vector<std::uint8_t>(), std::string()) {}
  ByteCorpus(std::vector<std::uint8_t> bytes, std::string source) {
    source_ = std::move(source);
    vocab_ = 256;
    bytes_per_token_ = 1.0;
    unit_ = "bytes";
    bytes_ = std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes));
    add_run(bytes_->data(), static_cast<Index>(bytes_->size()), 1, bytes_);
  }
  // The file, or with max_bytes > 0 only its first max_bytes (the rest is never read).
  static ByteCorpus from_file(const std::string& path, std::uint64_t max_bytes = 0) {
    return ByteCorpus(read_file_bytes(path, max_bytes), path);
  }

  const std::uint8_t* data() const { return bytes_->data(); }
  const std::vector<std::uint8_t>& bytes() const { return *bytes_; }

 private:
  std::shared_ptr<const std::vector<std::uint8_t>> bytes_;
};

// The ids of `text` under `tokenizer`, encoded chunk by chunk (io/tokenizer.hpp), with
// bytes_per_token = text bytes / tokens. The byte tokenizer gives the bytes themselves.
inline TokenCorpus tokenize_corpus(const ByteCorpus& text, const Tokenizer& tokenizer) {
  if (tokenizer.is_bytes()) return text;
  std::vector<std::uint32_t> ids;
  const std::string_view view(reinterpret_cast<const char*>(text.data()), text.bytes().size());
  tokenizer.encode_chunks(view, [&](const std::int32_t* p, Index n) { ids.insert(ids.end(), p, p + n); });
  const double bpt = ids.empty() ? 1.0 : static_cast<double>(text.size()) / static_cast<double>(ids.size());
  return TokenCorpus(std::move(ids), tokenizer.vocab_size(), text.source(), bpt);
}

}  // namespace tnn
