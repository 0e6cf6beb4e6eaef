// The one strict-JSON policy for every JSON text tnn reads (the model config in a checkpoint's
// "tnn.config", --config files, the training state, the optimizer's extra JSON), and a bounded
// one-line rendering of JSON values for messages. (The safetensors header has its own
// streaming parser, safetensors_header.hpp, under the same rules.)
//
// Strict means: the whole text is one JSON value with nothing but whitespace after it; no NUL
// byte anywhere (nlohmann's lexer would stop at one and ignore the rest); containers nested at
// most kJsonMaxDepth deep (so no later recursion -- dump(), comparison, destruction -- can
// exhaust the stack); no key twice in any object (a DOM would keep the last one silently);
// numbers finite (1e400 is refused, not read as infinity). Every violation is an exception of
// the caller's type naming `where`, with a message of bounded length on one line.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"

namespace tnn {

inline constexpr std::size_t kJsonMaxDepth = 64;

// A JSON value as it may appear in a message, without recursing into it: scalars as JSON text
// (strings through quote()), containers by their size only.
inline std::string json_brief(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::string: return "string " + quote(v.get_ref<const std::string&>(), 60);
    case nlohmann::json::value_t::object: return "an object of " + std::to_string(v.size()) + " key(s)";
    case nlohmann::json::value_t::array: return "an array of " + std::to_string(v.size()) + " element(s)";
    case nlohmann::json::value_t::binary: return "binary data";
    case nlohmann::json::value_t::discarded: return "nothing";
    default: return std::string(v.type_name()) + " " + v.dump();  // null, boolean, number: short
  }
}

namespace detail {

// nlohmann's SAX events built into a DOM, refusing what the policy forbids as it arrives (so a
// 1e5-deep text fails at level 65 without building anything deeper).
template <class E>
class StrictJsonBuilder {
 public:
  using json = nlohmann::json;
  StrictJsonBuilder(json& root, const std::string& where, std::size_t max_depth)
      : root_(root), where_(where), max_depth_(max_depth) {}

  bool null() { return put(nullptr); }
  bool boolean(bool b) { return put(b); }
  bool number_integer(json::number_integer_t v) { return put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return put(v); }
  bool number_float(json::number_float_t v, const std::string& text) {
    if (!std::isfinite(v)) fail<E>(where_, ": expected a finite number, got ", quote(text, 40));
    return put(v);
  }
  bool string(std::string& s) { return put(std::move(s)); }
  bool binary(json::binary_t&) { fail<E>(where_, ": expected JSON text, got binary data"); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool key(std::string& k) {
    json& obj = *stack_.back();
    if (obj.contains(k))
      fail<E>(where_, ": key ", quote(k, 60), " appears twice in one object; expected each key once");
    key_ = std::move(k);
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) {
    // e.what() quotes the last token read, which may be megabytes long: cut to one short line.
    fail<E>(where_, ": expected valid JSON, got an error at byte ", pos, ": ", detail::one_line(e.what(), 160));
  }

 private:
  json* place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }
  bool put(json v) {
    place(std::move(v));
    return true;
  }
  bool open(json v) {
    if (stack_.size() >= max_depth_)
      fail<E>(where_, ": expected JSON nested at most ", max_depth_, " levels deep, got deeper");
    // Pointers stay valid: a container is only appended to while it is the innermost open one.
    stack_.push_back(place(std::move(v)));
    return true;
  }

  json& root_;
  const std::string& where_;
  std::size_t max_depth_;
  std::vector<json*> stack_;
  std::string key_;
};

}  // namespace detail

// Parses `text` under the strict policy above; E (ConfigError, FormatError, ...) names what
// the caller is reading, `where` prefixes every message ("config", "checkpoint 'm': tnn.config").
template <class E = FormatError>
nlohmann::json parse_json_strict(std::string_view text, const std::string& where,
                                 std::size_t max_depth = kJsonMaxDepth) {
  if (const void* nul = std::memchr(text.data(), 0, text.size()))
    fail<E>(where, ": expected valid JSON text, got a NUL byte at offset ",
            static_cast<const char*>(nul) - text.data(), " (of ", text.size(), ")");
  nlohmann::json root;
  detail::StrictJsonBuilder<E> builder(root, where, max_depth);
  nlohmann::json::sax_parse(text.begin(), text.end(), &builder, nlohmann::json::input_format_t::json,
                            /*strict=*/true, /*ignore_comments=*/false);
  return root;
}

// The strict policy as a yes/no (for texts a caller only stores, like the optimizer's extra JSON).
inline bool json_is_strict(std::string_view text, std::size_t max_depth = kJsonMaxDepth) {
  try {
    parse_json_strict<FormatError>(text, "", max_depth);
    return true;
  } catch (const FormatError&) {
    return false;
  }
}

}  // namespace tnn
