// Reading safetensors files: SafetensorsFile (a validated file with its data in memory),
// parse_safetensors (an image in memory), read_safetensors and read_safetensors_header.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/io/file.hpp"
#include "tnn/io/safetensors_header.hpp"

namespace tnn {

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
      fail<FormatError>("safetensors ", quote_path(h_.label), ": expected the metadata key ", detail::st_quote(key),
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
      fail<FormatError>("safetensors ", quote_path(h_.label), ": expected a tensor named ", detail::st_quote(name),
                        ", the file has none (it has ", h_.tensors.size(), " tensors)");
    return it->second;
  }
  Dtype dtype(const std::string& name) const { return info(name).dtype; }
  const Shape& shape(const std::string& name) const { return info(name).shape; }

  // Decodes tensor `name` into `out` (resized; no allocation if it held that many elements
  // before). F32 and F64 convert into float or double (F64 values beyond float's range are a
  // ValueError); I32, I64 and U8 only into int32_t or int64_t (I64 outside int32 range: ValueError).
  template <class T>
  void get_into(const std::string& name, Tensor<T>& out) const {
    constexpr bool want_float = std::is_floating_point_v<T>;
    (void)dtype_of<T>();
    const TensorInfo& ti = info(name);
    const std::string where = "safetensors " + quote_path(h_.label) + ": tensor " + detail::st_quote(name);
    if (dtype_is_float(ti.dtype) != want_float)
      fail<FormatError>(where, ": expected ", want_float ? "a floating-point dtype (F32 or F64)" : "an integer dtype (I32, I64 or U8)",
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
      if (ti.dtype == Dtype::U8) {
        for (Index i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
      } else if (ti.dtype == Dtype::I32) {
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
  if (size > std::numeric_limits<std::size_t>::max()) fail<IoError>("reading ", quote_path(path), ": too large");
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

}  // namespace tnn
