// The safetensors file format (8-byte little-endian header length N, N bytes of JSON header,
// then raw little-endian row-major tensor data), read as if every file were hostile and
// written deterministically and atomically. Checkpoints (checkpoint.hpp), `tnn grad` batches
// and golden files all go through here.
//
// Reader guarantees: every malformed input is a FormatError naming the file (label), the
// tensor, what was expected and what came. Memory is bounded by the file size: the file itself
// plus the parsed header (streamed, no JSON DOM: at most ~10x the header for hostile headers of
// tiny metadata pairs, ~3x for tensor entries), and nothing is allocated from a size the header
// claims before it is checked against the bytes really present.
// Rules, as in the reference implementation: header length <= 100 MB; the header is a JSON
// object without duplicate keys; each entry is an object with exactly the keys dtype, shape,
// data_offsets; shapes have at most 64 dims, integers >= 0 whose product fits in int64; the
// byte ranges of all tensors tile the data area exactly (no overlap, no hole, no trailing
// bytes); "__metadata__" maps strings to strings; tensor names are non-empty.
//
// Writer guarantees: tensors in byte order of their names, fixed compact JSON (ASCII-escaped,
// metadata last, padded with spaces so the data starts 8-byte aligned; the same bytes as
// tests/pytorch/safetensors_io.py writes when given metadata in sorted key order), so
// save-load-save is byte-identical; the file is written to a temporary in the same directory,
// fsynced and renamed over the target, so a crash or an exception midway never destroys the
// previous file. POSIX only.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

// Element types tnn reads and writes. Other safetensors dtypes (F16, BF16, I8, ...) are
// recognised and refused with a message saying so.
enum class Dtype { F32, F64, I32, I64 };

inline const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::F32: return "F32";
    case Dtype::F64: return "F64";
    case Dtype::I32: return "I32";
    case Dtype::I64: return "I64";
  }
  return "?";
}
inline std::size_t dtype_size(Dtype d) { return (d == Dtype::F32 || d == Dtype::I32) ? 4 : 8; }
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
                                      "F4", "I8", "I16", "U8", "U16", "U32", "U64", "BOOL", "C64"};
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
      : data_size_(data_size), where_("safetensors '" + label + "'"), out_(out) {}

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
    fail<FormatError>(where_, ": header: expected valid JSON, got an error: ", e.what());
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
    else if (st_known_unsupported(dtype_))
      fail<FormatError>(where, ": dtype ", dtype_, " is not supported by tnn (expected F32, F64, I32 or I64)");
    else fail<FormatError>(where, ": dtype: expected F32, F64, I32 or I64, got the unknown dtype ", st_quote(dtype_));

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
  const std::string where = "safetensors '" + label + "'";
  SafetensorsHeader out;
  out.label = label;
  out.data_size = data_size;
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

// The 8-byte prefix, checked against the bytes really present (file_size).
inline std::uint64_t st_header_length(const std::uint8_t* prefix, std::uint64_t file_size, const std::string& label) {
  const std::string where = "safetensors '" + label + "'";
  if (file_size < 8)
    fail<FormatError>(where, ": expected at least 8 bytes (the header length), got a ", file_size, "-byte file");
  const std::uint64_t n = load_le<std::uint64_t>(prefix);
  if (n > kSafetensorsMaxHeaderBytes)
    fail<FormatError>(where, ": header length: expected at most ", kSafetensorsMaxHeaderBytes, " bytes, got ", n);
  if (n > file_size - 8)
    fail<FormatError>(where, ": header length: expected at most ", file_size - 8,
                      " bytes (the file is truncated or not safetensors), got ", n);
  return n;
}

// RAII file descriptor.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

inline std::string errno_str(int e) { return std::strerror(e); }

inline void read_exact(int fd, std::uint8_t* out, std::size_t n, const std::string& path) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail<IoError>("reading '", path, "': ", errno_str(errno));
    }
    if (r == 0)
      fail<FormatError>("safetensors '", path, "': expected ", n, " bytes, the file ended after ", got,
                        " (did it shrink while being read?)");
    got += static_cast<std::size_t>(r);
  }
}

inline int open_regular_file(const std::string& path, std::uint64_t* size) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer, forever; it changes
  // nothing for the regular files that pass the check below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail<IoError>("opening '", path, "' for reading: ", errno_str(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail<IoError>("stat '", path, "': ", errno_str(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail<IoError>("reading '", path, "': expected a regular file, got something else (directory, pipe, device)");
  }
  *size = static_cast<std::uint64_t>(st.st_size);
  return fd;
}

inline void write_all(int fd, const std::uint8_t* p, std::size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail<IoError>("writing '", path, "': ", errno_str(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

inline std::atomic<std::uint64_t>& st_tmp_counter() {
  static std::atomic<std::uint64_t> c{0};
  return c;
}

// Writes the bytes produce(sink) emits to a temporary next to `path`, fsyncs it, renames it over
// `path` and fsyncs the directory. Whatever goes wrong (an exception from produce included), the
// temporary is removed and `path` keeps its previous content.
template <class Produce>
void write_file_atomically(const std::string& path, Produce&& produce) {
  // Unique per process and call; O_EXCL never follows or reuses a file left by someone else.
  std::string tmp;
  Fd f(-1);
  for (int attempt = 0; attempt < 100 && f.fd < 0; ++attempt) {
    tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++st_tmp_counter());
    f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f.fd < 0 && errno != EEXIST) break;
  }
  if (f.fd < 0) fail<IoError>("creating '", tmp, "' (temporary for '", path, "'): ", errno_str(errno));
  struct Remover {
    const std::string& p;
    bool armed = true;
    ~Remover() {
      if (armed) ::unlink(p.c_str());
    }
  } remover{tmp};
  std::vector<std::uint8_t> buf;
  buf.reserve(1 << 20);
  auto flush = [&] {
    write_all(f.fd, buf.data(), buf.size(), tmp);
    buf.clear();
  };
  auto sink = [&](const std::uint8_t* p, std::size_t n) {
    if (buf.size() + n > buf.capacity()) flush();
    if (n >= buf.capacity()) write_all(f.fd, p, n, tmp);
    else buf.insert(buf.end(), p, p + n);
  };
  produce(sink);
  flush();
  if (::fsync(f.fd) != 0) fail<IoError>("fsync '", tmp, "': ", errno_str(errno));
  const int fd = f.fd;
  f.fd = -1;
  if (::close(fd) != 0) fail<IoError>("closing '", tmp, "': ", errno_str(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    fail<IoError>("renaming '", tmp, "' to '", path, "': ", errno_str(errno));
  remover.armed = false;
  // Make the rename itself durable. Some file systems cannot fsync a directory (EINVAL); the
  // data is in place either way, so only real I/O errors are reported.
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd >= 0 && ::fsync(d.fd) != 0 && errno != EINVAL && errno != EROFS)
    fail<IoError>("fsync directory '", dir, "' after writing '", path, "': ", errno_str(errno));
}

}  // namespace detail

class SafetensorsFile;
SafetensorsFile parse_safetensors(const std::uint8_t* data, std::size_t size, const std::string& label);
SafetensorsFile read_safetensors(const std::string& path);

// A parsed, validated file with its data in memory.
class SafetensorsFile {
 public:
  const SafetensorsHeader& header() const { return h_; }
  const std::string& label() const { return h_.label; }
  const std::map<std::string, std::string>& metadata() const { return h_.metadata; }
  bool has_metadata(const std::string& key) const { return h_.metadata.count(key) != 0; }
  // FormatError naming the file and the key if absent.
  const std::string& metadata_at(const std::string& key) const {
    auto it = h_.metadata.find(key);
    if (it == h_.metadata.end())
      fail<FormatError>("safetensors '", h_.label, "': expected the metadata key ", detail::st_quote(key),
                        ", it is missing");
    return it->second;
  }

  std::size_t size() const { return h_.tensors.size(); }  // number of tensors
  std::vector<std::string> names() const {                 // sorted by bytes
    std::vector<std::string> out;
    out.reserve(h_.tensors.size());
    for (const auto& kv : h_.tensors) out.push_back(kv.first);
    return out;
  }
  bool has(const std::string& name) const { return h_.tensors.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const {
    auto it = h_.tensors.find(name);
    if (it == h_.tensors.end())
      fail<FormatError>("safetensors '", h_.label, "': expected a tensor named ", detail::st_quote(name),
                        ", the file has none (it has ", h_.tensors.size(), " tensors)");
    return it->second;
  }
  Dtype dtype(const std::string& name) const { return info(name).dtype; }
  const Shape& shape(const std::string& name) const { return info(name).shape; }

  // Decodes tensor `name` into `out` (resized; no allocation if it held that many elements
  // before). F32 and F64 convert into float or double (F64 values beyond float's range are a
  // ValueError); I32 and I64 only into int32_t or int64_t (I64 outside int32 range: ValueError).
  template <class T>
  void get_into(const std::string& name, Tensor<T>& out) const {
    constexpr bool want_float = std::is_floating_point_v<T>;
    (void)dtype_of<T>();
    const TensorInfo& ti = info(name);
    const std::string where = "safetensors '" + h_.label + "': tensor " + detail::st_quote(name);
    if (dtype_is_float(ti.dtype) != want_float)
      fail<FormatError>(where, ": expected ", want_float ? "a floating-point dtype (F32 or F64)" : "an integer dtype (I32 or I64)",
                        ", got ", dtype_name(ti.dtype));
    out.resize(ti.shape);
    const std::uint8_t* src = bytes_.data() + data_offset_ + ti.begin;
    T* dst = out.data();
    const Index n = ti.numel;
    if constexpr (want_float) {
      if (ti.dtype == Dtype::F32) {
        for (Index i = 0; i < n; ++i)
          dst[i] = static_cast<T>(detail::bit_cast<float>(detail::load_le<std::uint32_t>(src + 4 * i)));
      } else {
        for (Index i = 0; i < n; ++i) {
          const double v = detail::bit_cast<double>(detail::load_le<std::uint64_t>(src + 8 * i));
          if (std::is_same_v<T, float> && std::isfinite(v) && std::fabs(v) > double(FLT_MAX))
            fail<ValueError>(where, ": element ", i, " = ", v, " does not fit in float (F64 file read as float)");
          dst[i] = static_cast<T>(v);
        }
      }
    } else {
      if (ti.dtype == Dtype::I32) {
        for (Index i = 0; i < n; ++i)
          dst[i] = static_cast<T>(static_cast<std::int32_t>(detail::load_le<std::uint32_t>(src + 4 * i)));
      } else {
        for (Index i = 0; i < n; ++i) {
          const auto v = static_cast<std::int64_t>(detail::load_le<std::uint64_t>(src + 8 * i));
          if (std::is_same_v<T, std::int32_t> &&
              (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max()))
            fail<ValueError>(where, ": element ", i, " = ", v, " does not fit in int32 (I64 file read as int32)");
          dst[i] = static_cast<T>(v);
        }
      }
    }
  }
  template <class T>
  Tensor<T> get(const std::string& name) const {
    Tensor<T> out;
    get_into(name, out);
    return out;
  }

 private:
  SafetensorsFile(SafetensorsHeader h, std::vector<std::uint8_t> bytes, std::size_t data_offset)
      : h_(std::move(h)), bytes_(std::move(bytes)), data_offset_(data_offset) {}
  friend SafetensorsFile parse_safetensors(const std::uint8_t*, std::size_t, const std::string&);
  friend SafetensorsFile read_safetensors(const std::string&);

  SafetensorsHeader h_;
  std::vector<std::uint8_t> bytes_;  // the data area starts at data_offset_
  std::size_t data_offset_ = 0;
};

// Parses a whole file image already in memory; `label` names it in messages.
inline SafetensorsFile parse_safetensors(const std::uint8_t* data, std::size_t size, const std::string& label) {
  if (data == nullptr && size != 0) fail<ValueError>("parse_safetensors: expected data for ", size, " bytes, got null");
  const std::uint64_t n = detail::st_header_length(data, size, label);
  SafetensorsHeader h = detail::st_parse_header(reinterpret_cast<const char*>(data + 8), static_cast<std::size_t>(n),
                                                size - 8 - n, label);
  std::vector<std::uint8_t> bytes(data + 8 + n, data + size);
  return SafetensorsFile(std::move(h), std::move(bytes), 0);
}

// Reads and validates `path` (read once; memory = the file size). IoError if it cannot be read.
inline SafetensorsFile read_safetensors(const std::string& path) {
  std::uint64_t size = 0;
  detail::Fd f(detail::open_regular_file(path, &size));
  if (size > std::numeric_limits<std::size_t>::max()) fail<IoError>("reading '", path, "': too large");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  detail::read_exact(f.fd, bytes.data(), bytes.size(), path);
  const std::uint64_t n = detail::st_header_length(bytes.data(), size, path);
  SafetensorsHeader h = detail::st_parse_header(reinterpret_cast<const char*>(bytes.data() + 8),
                                                static_cast<std::size_t>(n), size - 8 - n, path);
  return SafetensorsFile(std::move(h), std::move(bytes), static_cast<std::size_t>(8 + n));
}

// Reads and validates only the header of `path` (names, dtypes, shapes, metadata), checked
// against the real file size, without reading the data.
inline SafetensorsHeader read_safetensors_header(const std::string& path) {
  std::uint64_t size = 0;
  detail::Fd f(detail::open_regular_file(path, &size));
  std::uint8_t prefix[8] = {};
  if (size >= 8) detail::read_exact(f.fd, prefix, 8, path);
  const std::uint64_t n = detail::st_header_length(prefix, size, path);
  std::vector<std::uint8_t> text(static_cast<std::size_t>(n));
  detail::read_exact(f.fd, text.data(), text.size(), path);
  return detail::st_parse_header(reinterpret_cast<const char*>(text.data()), text.size(), size - 8 - n, path);
}

namespace detail {
// A tensor the writer owns, or one it only points to. (Kept out of the class: clang 14 fails to
// instantiate members of a private nested template used from the generic lambdas below.)
template <class T>
struct StSource {
  Tensor<T> owned;
  const Tensor<T>* view = nullptr;
  const Tensor<T>& get() const { return view ? *view : owned; }
};
using StAnySource =
    std::variant<StSource<float>, StSource<double>, StSource<std::int32_t>, StSource<std::int64_t>>;
// f(const Tensor<T>&) on whichever tensor `src` holds.
template <class F>
void with_tensor(const StAnySource& src, F&& f) {
  if (const auto* a = std::get_if<StSource<float>>(&src)) f(a->get());
  else if (const auto* b = std::get_if<StSource<double>>(&src)) f(b->get());
  else if (const auto* c = std::get_if<StSource<std::int32_t>>(&src)) f(c->get());
  else if (const auto* d = std::get_if<StSource<std::int64_t>>(&src)) f(d->get());
}
}  // namespace detail

// Collects named tensors and metadata, then writes them in one go. add() keeps a copy (pass an
// rvalue to move instead); add_view() keeps a reference, and the tensor must outlive write().
// Conversion to the stored dtype happens while writing: a double beyond float's range stored as
// F32, or an int64 beyond int32 stored as I32, is a ValueError then (the target file untouched).
class SafetensorsWriter {
 public:
  template <class T>
  void add(const std::string& name, Tensor<T> tensor, Dtype dtype = dtype_of<T>()) {
    Src<T> s;
    s.owned = std::move(tensor);
    insert(name, dtype, std::move(s));
  }
  template <class T>
  void add_view(const std::string& name, const Tensor<T>& tensor, Dtype dtype = dtype_of<T>()) {
    Src<T> s;
    s.view = &tensor;
    insert(name, dtype, std::move(s));
  }
  void set_metadata(const std::string& key, const std::string& value) {
    json_string(key, "metadata key");
    json_string(value, ("metadata value of " + detail::st_quote(key)).c_str());
    metadata_[key] = value;
  }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  std::size_t size() const { return entries_.size(); }

  // The file image in memory (for tests, fuzzing, small files).
  std::vector<std::uint8_t> serialize() const {
    std::vector<std::uint8_t> out;
    emit([&](const std::uint8_t* p, std::size_t n) { out.insert(out.end(), p, p + n); }, "<memory>");
    return out;
  }
  // Atomic: see detail::write_file_atomically.
  void write(const std::string& path) const {
    detail::write_file_atomically(path, [&](auto& sink) { emit(sink, path); });
  }

 private:
  template <class T>
  using Src = detail::StSource<T>;
  using AnySrc = detail::StAnySource;
  struct Entry {
    Dtype dtype;
    AnySrc src;
  };

  static std::string json_string(const std::string& s, const char* what) {
    try {
      return nlohmann::json(s).dump(-1, ' ', /*ensure_ascii=*/true);
    } catch (const nlohmann::json::exception&) {
      fail<ValueError>("safetensors writer: ", what, " ", detail::st_quote(s), ": expected valid UTF-8");
    }
  }

  template <class T>
  void insert(const std::string& name, Dtype dtype, Src<T> s) {
    if (name.empty()) fail<ValueError>("safetensors writer: tensor name: expected a non-empty string, got \"\"");
    if (name == "__metadata__") fail<ValueError>("safetensors writer: tensor name: \"__metadata__\" is reserved");
    json_string(name, "tensor name");
    if (entries_.count(name)) fail<ValueError>("safetensors writer: tensor ", detail::st_quote(name), " added twice");
    if (dtype_is_float(dtype) != std::is_floating_point_v<T>)
      fail<ValueError>("safetensors writer: tensor ", detail::st_quote(name), ": a ",
                       std::is_floating_point_v<T> ? "floating-point" : "integer", " tensor cannot be stored as ",
                       dtype_name(dtype));
    entries_.emplace(name, Entry{dtype, AnySrc(std::move(s))});
  }

  template <class Sink>
  void emit(Sink&& sink, const std::string& target) const {
    // Header text: offsets follow from the sizes, in name order.
    std::string h = "{";
    std::uint64_t offset = 0;
    for (const auto& [name, e] : entries_) {
      Shape shape;
      Index numel = 0;
      detail::with_tensor(e.src, [&](const auto& t) {
        shape = t.shape();
        numel = t.size();
      });
      const std::uint64_t nbytes = static_cast<std::uint64_t>(numel) * dtype_size(e.dtype);
      if (h.size() > 1) h += ',';
      h += json_string(name, "tensor name");
      h += ":{\"dtype\":\"";
      h += dtype_name(e.dtype);
      h += "\",\"shape\":[";
      for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) h += ',';
        h += std::to_string(shape[i]);
      }
      h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
      offset += nbytes;
    }
    if (!metadata_.empty()) {
      if (h.size() > 1) h += ',';
      h += "\"__metadata__\":{";
      bool first = true;
      for (const auto& [k, v] : metadata_) {
        if (!first) h += ',';
        first = false;
        h += json_string(k, "metadata key") + ":" + json_string(v, "metadata value");
      }
      h += '}';
    }
    h += '}';
    h.append((8 - h.size() % 8) % 8, ' ');  // the data area starts 8-byte aligned
    std::uint8_t len[8];
    detail::store_le<std::uint64_t>(len, h.size());
    sink(len, 8);
    sink(reinterpret_cast<const std::uint8_t*>(h.data()), h.size());

    std::vector<std::uint8_t> chunk;
    for (const auto& kv : entries_) {  // (C++17 lambdas cannot capture structured bindings)
      const Entry& e = kv.second;
      detail::with_tensor(e.src, [&](const auto& t) { encode(t, e.dtype, kv.first, target, chunk, sink); });
    }
  }

  template <class T, class Sink>
  static void encode(const Tensor<T>& t, Dtype dtype, const std::string& name, const std::string& target,
                     std::vector<std::uint8_t>& chunk, Sink& sink) {
    constexpr Index kChunk = 1 << 14;
    const std::size_t es = dtype_size(dtype);
    const Index n = t.size();
    for (Index i0 = 0; i0 < n; i0 += kChunk) {
      const Index i1 = std::min(n, i0 + kChunk);
      chunk.resize(static_cast<std::size_t>(i1 - i0) * es);
      std::uint8_t* p = chunk.data();
      for (Index i = i0; i < i1; ++i, p += es) {
        const T v = t[i];
        if constexpr (std::is_floating_point_v<T>) {
          if (dtype == Dtype::F32) {
            if (std::isfinite(v) && std::fabs(static_cast<double>(v)) > double(FLT_MAX))
              fail<ValueError>("safetensors writer '", target, "': tensor ", detail::st_quote(name), ": element ", i,
                               " = ", v, " does not fit in F32");
            detail::store_le<std::uint32_t>(p, detail::bit_cast<std::uint32_t>(static_cast<float>(v)));
          } else {
            detail::store_le<std::uint64_t>(p, detail::bit_cast<std::uint64_t>(static_cast<double>(v)));
          }
        } else {
          if (dtype == Dtype::I32) {
            if constexpr (std::is_same_v<T, std::int64_t>) {
              if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
                fail<ValueError>("safetensors writer '", target, "': tensor ", detail::st_quote(name), ": element ",
                                 i, " = ", v, " does not fit in I32");
            }
            detail::store_le<std::uint32_t>(p, static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
          } else {
            detail::store_le<std::uint64_t>(p, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)));
          }
        }
      }
      sink(chunk.data(), chunk.size());
    }
  }

  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tnn
