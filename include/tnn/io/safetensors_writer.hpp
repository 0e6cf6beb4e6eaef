// Writing safetensors files: SafetensorsWriter collects named tensors and metadata and writes
// them deterministically (see safetensors.hpp) and atomically (io/file.hpp).
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
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
#include "tnn/io/file.hpp"
#include "tnn/io/safetensors_header.hpp"

namespace tnn {

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
// F32, an int64 beyond int32 stored as I32, or an integer outside 0..255 stored as U8, is a
// ValueError then (the target file untouched).
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
              fail<ValueError>("safetensors writer ", quote_path(target), ": tensor ", detail::st_quote(name), ": element ", i,
                               " = ", v, " does not fit in F32");
            detail::store_le<std::uint32_t>(p, detail::bit_cast<std::uint32_t>(static_cast<float>(v)));
          } else {
            detail::store_le<std::uint64_t>(p, detail::bit_cast<std::uint64_t>(static_cast<double>(v)));
          }
        } else {
          if (dtype == Dtype::U8) {
            if (v < 0 || v > 255)
              fail<ValueError>("safetensors writer ", quote_path(target), ": tensor ", detail::st_quote(name), ": element ",
                               i, " = ", v, " does not fit in U8 (0..255)");
            *p = static_cast<std::uint8_t>(v);
          } else if (dtype == Dtype::I32) {
            if constexpr (std::is_same_v<T, std::int64_t>) {
              if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
                fail<ValueError>("safetensors writer ", quote_path(target), ": tensor ", detail::st_quote(name), ": element ",
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
