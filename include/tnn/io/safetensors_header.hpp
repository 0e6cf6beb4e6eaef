// The safetensors header: dtypes, the tensor table, and the streaming parser that validates
// a header as if every file were hostile (rules in safetensors.hpp). No file I/O here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

// Element types tnn reads and writes. U8 (unsigned bytes, e.g. image pixels) decodes into
// int32_t or int64_t tensors; an integer tensor may be stored as U8 when its values fit in 0..255.
// Other safetensors dtypes (F16, BF16, I8, ...) are recognised and refused with a message saying so.
enum class Dtype { F32, F64, I32, I64, U8 };

inline const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::F32: return "F32";
    case Dtype::F64: return "F64";
    case Dtype::I32: return "I32";
    case Dtype::I64: return "I64";
    case Dtype::U8: return "U8";
  }
  return "?";
}
inline std::size_t dtype_size(Dtype d) { return d == Dtype::U8 ? 1 : (d == Dtype::F32 || d == Dtype::I32) ? 4 : 8; }
inline bool dtype_is_float(Dtype d) { return d == Dtype::F32 || d == Dtype::F64; }

// The dtype a C++ element type is stored as by default.
template <class T>
constexpr Dtype dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
                    std::is_same_v<T, std::int64_t>,
                "safetensors: element type must be float, double, int32_t or int64_t");
  if constexpr (std::is_same_v<T, float>) return Dtype::F32;
  else if constexpr (std::is_same_v<T, double>) return Dtype::F64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::I32;
  else return Dtype::I64;
}

// Largest accepted JSON header, as in the reference implementation.
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// One tensor as the header describes it; begin/end are byte offsets into the data area.
struct TensorInfo {
  Dtype dtype = Dtype::F32;
  Shape shape;
  Index numel = 0;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// A validated header: what read_config and friends need without loading the data.
struct SafetensorsHeader {
  std::string label;  // the path, or the label given to parse_safetensors
  std::map<std::string, std::string> metadata;
  std::map<std::string, TensorInfo> tensors;
  std::uint64_t data_size = 0;  // bytes after the header
};

namespace detail {

// A name or string value as it may appear in a message: quoted, escaped to ASCII (so cutting
// it cannot split a UTF-8 sequence), and cut short, so a hostile 100 MB name cannot make a
// 100 MB message.
inline std::string st_quote(const std::string& s, std::size_t max_chars = 80) {
  std::string q = nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  if (q.size() > max_chars) q = q.substr(0, max_chars) + "...\" (" + std::to_string(s.size()) + " bytes)";
  return q;
}

template <class U>
U load_le(const std::uint8_t* p) {
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(static_cast<U>(p[i]) << (8 * i));
  return v;
}
template <class U>
void store_le(std::uint8_t* p, U v) {
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
template <class To, class From>
To bit_cast(From f) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast: sizes differ");
  To t;
  std::memcpy(&t, &f, sizeof(To));
  return t;
}

// Known safetensors dtypes tnn does not handle: refused by name rather than called unknown.
inline bool st_known_unsupported(const std::string& s) {
  static const char* const names[] = {"F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                                      "F4", "I8", "I16", "U16", "U32", "U64", "BOOL", "C64"};
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

// Streaming header parser (nlohmann's SAX interface): the structure is checked as the events
// arrive and only the result is built, never a DOM of the whole header, so memory stays a
// small multiple of the header even for hostile ones, and a bad header fails at its first bad
// token. Also catches what a DOM would hide: duplicate keys (nlohmann keeps the last one).
class StHeaderParser {
 public:
  using json = nlohmann::json;
  static constexpr std::size_t kMaxRank = 64;

  StHeaderParser(std::uint64_t data_size, const std::string& label, SafetensorsHeader& out)
      : data_size_(data_size), where_("safetensors " + quote_path(label)), out_(out) {}

  bool null() { return scalar("null"); }
  bool boolean(bool b) { return scalar(b ? "boolean true" : "boolean false"); }
  bool number_integer(json::number_integer_t v) {  // the lexer sends only negatives (and -0) here
    if (v >= 0) return integer(static_cast<std::uint64_t>(v), std::to_string(v));
    return scalar("negative integer " + std::to_string(v));
  }
  bool number_unsigned(json::number_unsigned_t v) { return integer(v, std::to_string(v)); }
  bool number_float(json::number_float_t, const std::string& text) { return scalar("non-integer number " + cut(text)); }
  bool string(std::string& s) {
    if (depth_ == 2 && ctx_ == Ctx::Meta) {
      out_.metadata.emplace(key_, std::move(s));
      return true;
    }
    if (depth_ == 2 && ctx_ == Ctx::Entry && field_ == "dtype") {
      dtype_ = std::move(s);
      return true;
    }
    return scalar("string " + st_quote(s, 60));
  }
  bool binary(json::binary_t&) { return scalar("binary data"); }

  bool start_object(std::size_t) {
    if (depth_ == 0) {
      depth_ = 1;
      return true;
    }
    if (depth_ == 1 && top_key_ == "__metadata__") {
      depth_ = 2;
      ctx_ = Ctx::Meta;
      return true;
    }
    if (depth_ == 1) {
      depth_ = 2;
      ctx_ = Ctx::Entry;
      seen_ = 0;
      dtype_.clear();
      shape_.clear();
      offsets_.clear();
      return true;
    }
    return scalar("an object");
  }
  bool key(std::string& k) {
    if (depth_ == 1) {
      if (k == "__metadata__" ? seen_metadata_ : out_.tensors.count(k) != 0)
        fail<FormatError>(where_, ": tensor name ", st_quote(k), " appears twice in the header");
      if (k.empty()) fail<FormatError>(where_, ": tensor \"\": expected a non-empty tensor name");
      seen_metadata_ = seen_metadata_ || k == "__metadata__";
      top_key_ = std::move(k);
    } else if (ctx_ == Ctx::Meta) {
      if (out_.metadata.count(k))
        fail<FormatError>(where_, ": __metadata__ key ", st_quote(k), " appears twice");
      key_ = std::move(k);
    } else {
      int bit = k == "dtype" ? 1 : k == "shape" ? 2 : k == "data_offsets" ? 4 : 0;
      if (bit == 0)
        fail<FormatError>(entry(), ": expected only the keys dtype, shape, data_offsets, got the unknown key ",
                          st_quote(k));
      if (seen_ & bit) fail<FormatError>(entry(), ": key ", st_quote(k), " appears twice");
      seen_ |= bit;
      field_ = std::move(k);
    }
    return true;
  }
  bool end_object() {
    if (depth_ == 2 && ctx_ == Ctx::Entry) finish_entry();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ == 2 && ctx_ == Ctx::Entry && (field_ == "shape" || field_ == "data_offsets")) {
      depth_ = 3;
      ctx_ = field_ == "shape" ? Ctx::Shape : Ctx::Offsets;
      return true;
    }
    return scalar("an array");
  }
  bool end_array() {
    if (ctx_ == Ctx::Offsets && offsets_.size() != 2)
      fail<FormatError>(entry(), ": data_offsets: expected an array [begin, end], got ", offsets_.size(), " element(s)");
    depth_ = 2;
    ctx_ = Ctx::Entry;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    fail<FormatError>(where_, ": header: expected valid JSON, got an error: ", one_line(e.what(), 160));
  }

 private:
  enum class Ctx { Top, Entry, Meta, Shape, Offsets };

  std::string entry() const { return where_ + ": tensor " + st_quote(top_key_); }
  static std::string cut(const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "..." : s; }

  // An integer value: fine inside shape or data_offsets, wrong anywhere else.
  bool integer(std::uint64_t v, const std::string& text) {
    if (depth_ != 3) return scalar("number " + cut(text));
    const bool in_shape = ctx_ == Ctx::Shape;
    const std::string what = (in_shape ? "shape[" : "data_offsets[") +
                             std::to_string(in_shape ? shape_.size() : offsets_.size()) + "]";
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail<FormatError>(entry(), ": ", what, ": expected an integer below 2^63, got ", v);
    if (in_shape) {
      if (shape_.size() == kMaxRank) fail<FormatError>(entry(), ": shape: expected at most ", kMaxRank, " dims, got more");
      shape_.push_back(v);
    } else {
      if (offsets_.size() == 2)
        fail<FormatError>(entry(), ": data_offsets: expected an array [begin, end], got more than 2 elements");
      offsets_.push_back(v);
    }
    return true;
  }

  // A value of the wrong kind where it came: says what was expected there.
  bool scalar(const std::string& got) {
    switch (depth_) {
      case 0: fail<FormatError>(where_, ": header: expected a JSON object, got ", got);
      case 1:
        if (top_key_ == "__metadata__")
          fail<FormatError>(where_, ": __metadata__: expected an object of strings, got ", got);
        fail<FormatError>(entry(), ": expected an object {dtype, shape, data_offsets}, got ", got);
      case 2:
        if (ctx_ == Ctx::Meta)
          fail<FormatError>(where_, ": __metadata__ key ", st_quote(key_), ": expected a string, got ", got);
        if (field_ == "dtype") fail<FormatError>(entry(), ": dtype: expected a string, got ", got);
        if (field_ == "shape") fail<FormatError>(entry(), ": shape: expected an array of integers, got ", got);
        fail<FormatError>(entry(), ": data_offsets: expected an array [begin, end], got ", got);
      default:
        if (ctx_ == Ctx::Shape)
          fail<FormatError>(entry(), ": shape[", shape_.size(), "]: expected an integer >= 0, got ", got);
        fail<FormatError>(entry(), ": data_offsets[", offsets_.size(), "]: expected an integer >= 0, got ", got);
    }
  }

  void finish_entry() {
    const std::string where = entry();
    for (auto [bit, k] : {std::pair<int, const char*>{1, "dtype"}, {2, "shape"}, {4, "data_offsets"}})
      if (!(seen_ & bit)) fail<FormatError>(where, ": expected the key '", k, "', it is missing");
    TensorInfo info;
    if (dtype_ == "F32") info.dtype = Dtype::F32;
    else if (dtype_ == "F64") info.dtype = Dtype::F64;
    else if (dtype_ == "I32") info.dtype = Dtype::I32;
    else if (dtype_ == "I64") info.dtype = Dtype::I64;
    else if (dtype_ == "U8") info.dtype = Dtype::U8;
    else if (st_known_unsupported(dtype_))
      fail<FormatError>(where, ": dtype ", dtype_, " is not supported by tnn (expected F32, F64, I32, I64 or U8)");
    else fail<FormatError>(where, ": dtype: expected F32, F64, I32, I64 or U8, got the unknown dtype ", st_quote(dtype_));

    // Product of the non-zero dims must fit in int64: then no partial product overflows, in any
    // order, even for a zero-size tensor (Tensor's shape_numel multiplies left to right).
    std::uint64_t nonzero_product = 1;
    bool has_zero = false;
    for (std::uint64_t d : shape_) {
      info.shape.push_back(static_cast<Index>(d));
      if (d == 0) {
        has_zero = true;
        continue;
      }
      if (nonzero_product > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / d)
        fail<FormatError>(where, ": shape ", shape_str(info.shape), "...: expected an element count below 2^63, the product overflows");
      nonzero_product *= d;
    }
    const std::uint64_t numel = has_zero ? 0 : nonzero_product;
    const std::uint64_t esize = dtype_size(info.dtype);
    if (numel > std::numeric_limits<std::uint64_t>::max() / esize)
      fail<FormatError>(where, ": shape ", shape_str(info.shape), ": expected a byte size below 2^64, the product overflows");
    const std::uint64_t nbytes = numel * esize;
    info.numel = static_cast<Index>(numel);

    info.begin = offsets_[0];
    info.end = offsets_[1];
    if (info.begin > info.end)
      fail<FormatError>(where, ": data_offsets: expected begin <= end, got [", info.begin, ", ", info.end, "]");
    if (info.end > data_size_)
      fail<FormatError>(where, ": data_offsets: expected end <= ", data_size_,
                        " (the data area; is the file truncated?), got [", info.begin, ", ", info.end, "]");
    if (info.end - info.begin != nbytes)
      fail<FormatError>(where, ": data_offsets [", info.begin, ", ", info.end, "] span ", info.end - info.begin,
                        " bytes, expected ", nbytes, " (", numel, " elements of ", dtype_, ", shape ",
                        shape_str(info.shape), ")");
    out_.tensors.emplace(top_key_, std::move(info));
  }

  std::uint64_t data_size_;
  std::string where_;
  SafetensorsHeader& out_;
  int depth_ = 0;  // open containers: 1 = header object, 2 = entry or metadata, 3 = shape/offsets
  Ctx ctx_ = Ctx::Top;
  std::string top_key_;  // tensor name (or "__metadata__") whose value is being read
  bool seen_metadata_ = false;
  std::string key_;    // current metadata key
  std::string field_;  // current entry key
  int seen_ = 0;       // entry keys seen: 1 dtype, 2 shape, 4 data_offsets
  std::string dtype_;
  std::vector<std::uint64_t> shape_, offsets_;
};

// Parses and validates a header of n bytes followed by data_size bytes of data.
inline SafetensorsHeader st_parse_header(const char* text, std::size_t n, std::uint64_t data_size,
                                         const std::string& label) {
  const std::string where = "safetensors " + quote_path(label);
  SafetensorsHeader out;
  out.label = label;
  out.data_size = data_size;
  // nlohmann's lexer takes a NUL byte for the end of the text and would ignore the rest.
  if (const void* nul = std::memchr(text, 0, n))
    fail<FormatError>(where, ": header: expected valid JSON text, got a NUL byte at offset ",
                      static_cast<const char*>(nul) - text, " of the ", n, "-byte header");
  StHeaderParser parser(data_size, label, out);
  nlohmann::json::sax_parse(text, text + n, &parser, nlohmann::json::input_format_t::json, /*strict=*/true,
                            /*ignore_comments=*/false);

  // The byte ranges must tile [0, data_size): sort by (begin, end) and walk.
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  order.reserve(out.tensors.size());
  for (const auto& [name, info] : out.tensors) order.emplace_back(&name, &info);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.second->begin, a.second->end) < std::make_pair(b.second->begin, b.second->end);
  });
  std::uint64_t cursor = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, info] : order) {
    if (info->begin < cursor)
      fail<FormatError>(where, ": tensor ", st_quote(*name), ": data_offsets [", info->begin, ", ", info->end,
                        "] overlap tensor ", st_quote(*prev), ", which ends at ", cursor,
                        "; expected each tensor to start where the previous one ends");
    if (info->begin > cursor)
      fail<FormatError>(where, ": data bytes [", cursor, ", ", info->begin,
                        ") belong to no tensor; expected tensor ", st_quote(*name), " to start at ", cursor);
    cursor = info->end;
    prev = name;
  }
  if (cursor != data_size)
    fail<FormatError>(where, ": expected the tensors to cover the ", data_size, "-byte data area, got ",
                      data_size - cursor, " trailing bytes after offset ", cursor);
  return out;
}

// True when the 8 length bytes are all printable ASCII or whitespace: a real header length
// (< 2^27) has zero high bytes, so such a prefix means a text file, not a safetensors one.
inline bool prefix_text_like(const std::uint8_t* p) {
  for (int i = 0; i < 8; ++i)
    if (!((p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')) return false;
  return true;
}

// The 8-byte prefix, checked against the bytes really present (file_size).
inline std::uint64_t st_header_length(const std::uint8_t* prefix, std::uint64_t file_size, const std::string& label) {
  const std::string where = "safetensors " + quote_path(label);
  if (file_size < 8)
    fail<FormatError>(where, ": expected at least 8 bytes (the header length), got a ", file_size, "-byte file");
  const std::uint64_t n = load_le<std::uint64_t>(prefix);
  // Text, CSV or any other file read as safetensors usually fails here: say so first.
  const char* not_st = file_size >= 9 && prefix_text_like(prefix) ? "not a safetensors file (it starts like text): " : "";
  if (n > kSafetensorsMaxHeaderBytes)
    fail<FormatError>(where, ": ", not_st, "header length: expected at most ", kSafetensorsMaxHeaderBytes,
                      " bytes, got ", n, *not_st ? "" : " (is this a safetensors file?)");
  if (n > file_size - 8)
    fail<FormatError>(where, ": ", not_st, "header length: expected at most ", file_size - 8,
                      " bytes (the file is truncated or not safetensors), got ", n);
  return n;
}

}  // namespace detail
}  // namespace tnn
