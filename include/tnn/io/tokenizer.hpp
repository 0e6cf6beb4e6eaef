// Text <-> token ids. Kinds: bytes (id = byte value, V = 256, always available), SentencePiece
// (subword pieces from a trained `.model` file; an optional dependency, compiled in when
// TNN_USE_SENTENCEPIECE is defined, as the CMake target does when it finds libsentencepiece),
// and ids: V ids from a tokenizer tnn does not know (a model trained on pre-tokenized files),
// which can neither encode nor decode text. A Tokenizer is a cheap value to copy; encoding and
// decoding are const and may run on several threads at once.
//
// A checkpoint carries its tokenizer (tokenizer_to_json / tokenizer_from_json: the kind, the
// vocabulary size and, for SentencePiece, the model file's bytes in base64), so evaluating or
// sampling needs the checkpoint only. A checkpoint without one is a byte model.
//
// Long texts are encoded in pieces of about kEncodeChunkBytes that end at a line end (or, in a
// longer line, at a character boundary): SentencePiece's memory grows with its input many times
// over, so a whole corpus is never handed to it at once. Pieces never cross those cuts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/io/base64.hpp"
#include "tnn/io/file.hpp"
#include "tnn/io/json.hpp"
#include "tnn/io/safetensors_header.hpp"

#if defined(TNN_USE_SENTENCEPIECE)
#include <sentencepiece_processor.h>
#endif

namespace tnn {

enum class TokenizerKind { Bytes, SentencePiece, Ids };
template <>
struct EnumTable<TokenizerKind> {
  static constexpr EnumRow<TokenizerKind> rows[] = {
      {TokenizerKind::Bytes, "bytes"}, {TokenizerKind::SentencePiece, "sentencepiece"}, {TokenizerKind::Ids, "ids"}};
};

// Whether this build can load SentencePiece models.
#if defined(TNN_USE_SENTENCEPIECE)
inline constexpr bool kHaveSentencePiece = true;
#else
inline constexpr bool kHaveSentencePiece = false;
#endif

// The largest SentencePiece model accepted (a 32k-piece model is under 1 MB). Stored in base64
// (4/3 of it) inside a checkpoint's JSON header, it stays below the header limit of safetensors.
inline constexpr std::uint64_t kMaxTokenizerModelBytes = std::uint64_t(64) << 20;
static_assert(kMaxTokenizerModelBytes / 3 * 4 + (std::uint64_t(1) << 20) < kSafetensorsMaxHeaderBytes,
              "a tokenizer model in base64 must fit a safetensors header beside the tensor table");

// Texts are handed to SentencePiece in pieces of about this many bytes.
inline constexpr std::size_t kEncodeChunkBytes = std::size_t(1) << 16;

namespace detail {
// The end of the chunk of `text` that starts at `begin`: just after the last '\n' within
// kEncodeChunkBytes, else at the last UTF-8 character boundary there; the end of the text if it
// is nearer.
inline std::size_t encode_chunk_end(std::string_view text, std::size_t begin) {
  if (text.size() - begin <= kEncodeChunkBytes) return text.size();
  const std::size_t limit = begin + kEncodeChunkBytes;
  for (std::size_t i = limit; i > begin; --i)
    if (text[i - 1] == '\n') return i;
  std::size_t i = limit;  // a continuation byte 10xxxxxx is never the start of a character
  while (i > begin + 1 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}
}  // namespace detail

class Tokenizer {
 public:
  // The byte tokenizer.
  Tokenizer() = default;
  static Tokenizer bytes() { return Tokenizer(); }

  // A SentencePiece model from its serialized bytes (a `.model` file's content); `where` names
  // its origin in messages. ConfigError when this build has no SentencePiece, FormatError when
  // the bytes are not a model.
  static Tokenizer sentencepiece(std::string model, const std::string& where) {
    if (model.size() > kMaxTokenizerModelBytes)
      fail<FormatError>(where, ": expected a SentencePiece model of at most ", kMaxTokenizerModelBytes, " bytes, got ",
                        model.size());
#if defined(TNN_USE_SENTENCEPIECE)
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    const auto status = sp->LoadFromSerializedProto(model);
    if (!status.ok())
      fail<FormatError>(where, ": expected a SentencePiece model, got bytes it cannot load (",
                        detail::one_line(status.ToString(), 160), ")");
    if (sp->GetPieceSize() < 1) fail<FormatError>(where, ": expected a SentencePiece model with pieces, got none");
    Tokenizer t;
    t.kind_ = TokenizerKind::SentencePiece;
    t.vocab_ = sp->GetPieceSize();
    t.model_ = std::make_shared<const std::string>(std::move(model));
    t.sp_ = std::move(sp);
    return t;
#else
    missing_sentencepiece(where);
#endif
  }
  // V ids of an unknown tokenizer: text can be neither encoded nor decoded.
  static Tokenizer ids(Index vocab) {
    if (vocab < 1 || vocab > (Index(1) << 31)) fail<ValueError>("tokenizer ids: vocabulary size: expected 1 to 2^31, got ", vocab);
    Tokenizer t;
    t.kind_ = TokenizerKind::Ids;
    t.vocab_ = vocab;
    return t;
  }
  // A SentencePiece `.model` file (what spm_train writes).
  static Tokenizer sentencepiece_file(const std::string& path) {
    const std::vector<std::uint8_t> bytes = read_file_bounded(path, kMaxTokenizerModelBytes, "tokenizer model");
    return sentencepiece(std::string(bytes.begin(), bytes.end()), "tokenizer model " + quote_path(path));
  }

  TokenizerKind kind() const { return kind_; }
  bool is_bytes() const { return kind_ == TokenizerKind::Bytes; }
  // V: ids are 0 .. V-1.
  Index vocab_size() const { return vocab_; }
  // The SentencePiece model's serialized bytes ("" for bytes).
  const std::string& model_bytes() const {
    static const std::string none;
    return model_ ? *model_ : none;
  }
  // Whether text can be encoded and decoded (bytes, SentencePiece; not ids).
  bool has_text() const { return kind_ != TokenizerKind::Ids; }
  // "bytes (256 ids)", "sentencepiece (4000 pieces)", "ids (50257, tokenizer unknown)".
  std::string describe() const {
    if (kind_ == TokenizerKind::Bytes) return "bytes (256 ids)";
    if (kind_ == TokenizerKind::SentencePiece) return detail::concat("sentencepiece (", vocab_, " pieces)");
    return detail::concat("ids (", vocab_, ", tokenizer unknown)");
  }
  bool operator==(const Tokenizer& o) const {
    return kind_ == o.kind_ && vocab_ == o.vocab_ && model_bytes() == o.model_bytes();
  }
  bool operator!=(const Tokenizer& o) const { return !(*this == o); }

  // Calls sink(const std::int32_t* ids, Index n) once per encoded chunk of `text`, in order.
  template <class Sink>
  void encode_chunks(std::string_view text, Sink&& sink) const {
    require_text("encode");
    std::vector<std::int32_t> ids;
    for (std::size_t begin = 0; begin < text.size();) {
      const std::size_t end = is_bytes() ? std::min(text.size(), begin + kEncodeChunkBytes)
                                         : detail::encode_chunk_end(text, begin);
      encode_piece(text.substr(begin, end - begin), ids);
      sink(static_cast<const std::int32_t*>(ids.data()), static_cast<Index>(ids.size()));
      begin = end;
    }
  }
  // The ids of `text`, appended to `out`.
  void encode(std::string_view text, std::vector<std::int32_t>& out) const {
    encode_chunks(text, [&](const std::int32_t* ids, Index n) { out.insert(out.end(), ids, ids + n); });
  }
  std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<std::int32_t> out;
    encode(text, out);
    return out;
  }

  // The text of ids[0..n). ValueError for an id outside [0, V).
  std::string decode(const std::int32_t* ids, Index n) const {
    require_text("decode");
    for (Index i = 0; i < n; ++i)
      if (ids[i] < 0 || ids[i] >= vocab_)
        fail<ValueError>("decode: ids[", i, "] = ", ids[i], ": expected a token id in [0, ", vocab_, ") (",
                         describe(), ")");
    if (is_bytes()) {
      std::string s(static_cast<std::size_t>(n), '\0');
      for (Index i = 0; i < n; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>(ids[i]);
      return s;
    }
#if defined(TNN_USE_SENTENCEPIECE)
    std::string s;
    const auto status = sp_->Decode(std::vector<int>(ids, ids + n), &s);
    if (!status.ok()) fail<ValueError>("decode: SentencePiece refused the ids: ", detail::one_line(status.ToString(), 160));
    return s;
#else
    return {};  // unreachable: a SentencePiece tokenizer cannot be made without it
#endif
  }
  std::string decode(const std::vector<std::int32_t>& ids) const {
    return decode(ids.data(), static_cast<Index>(ids.size()));
  }

 private:
  [[noreturn]] static void missing_sentencepiece(const std::string& where) {
    fail<ConfigError>(where, ": a SentencePiece tokenizer needs tnn built with SentencePiece; install "
                      "libsentencepiece-dev (Debian) and reconfigure with -DTNN_USE_SENTENCEPIECE=ON");
  }
  void require_text(const char* what) const {
    if (!has_text())
      fail<ConfigError>(what, ": the tokenizer is unknown (", describe(), "): the model was trained on token ids, "
                        "so it reads token files, not text (train with --tokenizer to carry one)");
  }
  // One chunk's ids into `ids` (replacing its content).
  void encode_piece(std::string_view text, std::vector<std::int32_t>& ids) const {
    ids.clear();
    if (is_bytes()) {
      for (const char c : text) ids.push_back(static_cast<std::int32_t>(static_cast<unsigned char>(c)));
      return;
    }
#if defined(TNN_USE_SENTENCEPIECE)
    std::vector<int> got;
    const auto status = sp_->Encode(text, &got);
    if (!status.ok()) fail<ValueError>("encode: SentencePiece refused the text: ", detail::one_line(status.ToString(), 160));
    ids.assign(got.begin(), got.end());
#endif
  }

  TokenizerKind kind_ = TokenizerKind::Bytes;
  Index vocab_ = 256;
  std::shared_ptr<const std::string> model_;  // the serialized SentencePiece model
#if defined(TNN_USE_SENTENCEPIECE)
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
#endif
};

// A tokenizer as JSON, the form a checkpoint stores: {"kind": "sentencepiece", "vocab_size": V,
// "model": "<the model file in base64>"}; {"kind": "bytes" or "ids", "vocab_size": V} otherwise.
inline std::string tokenizer_to_json(const Tokenizer& t) {
  nlohmann::json j = {{"kind", to_string(t.kind())}, {"vocab_size", t.vocab_size()}};
  if (t.kind() == TokenizerKind::SentencePiece) j["model"] = base64_encode(t.model_bytes());
  return j.dump();
}

// The tokenizer tokenizer_to_json wrote; every field is checked (FormatError naming `where`),
// and the stored vocabulary size must be the model's.
inline Tokenizer tokenizer_from_json(std::string_view text, const std::string& where) {
  const nlohmann::json j = parse_json_strict<FormatError>(text, where);
  if (!j.is_object()) fail<FormatError>(where, ": expected a JSON object, got ", json_brief(j));
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "kind" && it.key() != "vocab_size" && it.key() != "model")
      fail<FormatError>(where, ": unknown key ", quote(it.key(), 40), " (expected kind, vocab_size, model)");
  if (!j.contains("kind") || !j.at("kind").is_string())
    fail<FormatError>(where, ": expected a string 'kind' (one of ", enum_choices<TokenizerKind>(), ")");
  const TokenizerKind kind = parse_enum<TokenizerKind, FormatError>(j.at("kind").get<std::string>(), where + ": kind");
  if (!j.contains("vocab_size") || !j.at("vocab_size").is_number_integer())
    fail<FormatError>(where, ": expected an integer 'vocab_size'");
  const auto vocab = j.at("vocab_size").get<std::int64_t>();
  Tokenizer t;
  if (kind != TokenizerKind::SentencePiece) {
    if (j.contains("model")) fail<FormatError>(where, ": a tokenizer of kind '", to_string(kind), "' has no 'model'");
    if (kind == TokenizerKind::Ids) {
      if (vocab < 1 || vocab > (std::int64_t(1) << 31))
        fail<FormatError>(where, ": vocab_size: expected 1 to 2^31, got ", vocab);
      t = Tokenizer::ids(vocab);
    }
  } else {
    if (!j.contains("model") || !j.at("model").is_string())
      fail<FormatError>(where, ": expected the SentencePiece model as a base64 string 'model'");
    t = Tokenizer::sentencepiece(base64_decode(j.at("model").get_ref<const std::string&>(), where + ": model"),
                                 where + ": model");
  }
  if (vocab != t.vocab_size())
    fail<FormatError>(where, ": vocab_size ", vocab, " is not the tokenizer's: ", t.describe());
  return t;
}

// Decodes a growing id sequence for display as it grows: push(id) returns the text that id adds.
// SentencePiece decodes a sequence, not an id at a time (a piece's leading space may depend on
// its place; a character split over byte pieces is whole only with its last byte), so each push
// decodes all the ids after the context and returns what extends the text already returned,
// holding back a trailing incomplete character. O(length) per push, like the decoder's step.
class TextStream {
 public:
  // `context`: ids already shown (the prompt); their text is not returned again.
  explicit TextStream(const Tokenizer& t, std::vector<std::int32_t> context = {})
      : tok_(t), ids_(std::move(context)), shown_(t.is_bytes() ? std::string() : t.decode(ids_)) {}

  std::string push(std::int32_t id) {
    if (tok_.is_bytes()) return tok_.decode(&id, 1);
    ids_.push_back(id);
    return take(/*final=*/false);
  }
  // Whatever is left to show (a held-back replacement character).
  std::string finish() { return tok_.is_bytes() ? std::string() : take(/*final=*/true); }

 private:
  std::string take(bool final) {
    const std::string text = tok_.decode(ids_);
    if (text.size() < shown_.size() || text.compare(0, shown_.size(), shown_) != 0) return {};
    std::size_t end = text.size();
    // U+FFFD at the end: the bytes of a character still arriving (or a real one, shown at the end).
    static const std::string kReplacement = "\xEF\xBF\xBD";
    if (!final && end >= shown_.size() + 3 && text.compare(end - 3, 3, kReplacement) == 0) end -= 3;
    std::string out = text.substr(shown_.size(), end - shown_.size());
    shown_.append(out);
    return out;
  }
  Tokenizer tok_;
  std::vector<std::int32_t> ids_;  // context + pushed ids
  std::string shown_;              // the decoded context + everything returned
};

}  // namespace tnn
