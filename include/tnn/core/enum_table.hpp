// One table per option: an enum's values and their names are written once, in a
// specialization of EnumTable beside the enum, and everything else is derived from it —
// to_string, parsing with an "expected one of ..." message, the list of accepted names for
// the program's flags, the docs and the tests' "every value" loops.
//   enum class Pooling { Mean, First };
//   template <> struct EnumTable<Pooling> {
//     static constexpr const char* kind = "pooling";
//     static constexpr EnumRow<Pooling> rows[] = {{Pooling::Mean, "mean"}, {Pooling::First, "first"}};
//   };
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "tnn/core/error.hpp"

namespace tnn {

template <class E>
struct EnumRow {
  E value;
  const char* name;
};

template <class E>
struct EnumTable;  // specialized beside each enum

namespace detail {
template <class E>
constexpr std::size_t enum_count() {
  return sizeof(EnumTable<E>::rows) / sizeof(EnumTable<E>::rows[0]);
}
// The rows list the enumerators in declaration order, 0, 1, 2, ...: a value's row is at its index.
template <class E>
constexpr bool enum_rows_in_order() {
  for (std::size_t i = 0; i < enum_count<E>(); ++i)
    if (static_cast<std::size_t>(EnumTable<E>::rows[i].value) != i) return false;
  return true;
}
inline bool enum_name_equal(const char* a, const std::string& b) { return b == a; }
}  // namespace detail

// Every value of E, in table order.
template <class E>
std::vector<E> enum_values() {
  static_assert(detail::enum_rows_in_order<E>(), "EnumTable rows must list the enumerators in declaration order");
  std::vector<E> out;
  for (const auto& r : EnumTable<E>::rows) out.push_back(r.value);
  return out;
}

// Every name of E, in table order (the program's accepted values, the docs' list).
template <class E>
std::vector<std::string> enum_names() {
  std::vector<std::string> out;
  for (const auto& r : EnumTable<E>::rows) out.emplace_back(r.name);
  return out;
}

// "a, b, c" (or with another separator).
template <class E>
std::string enum_choices(const char* sep = ", ") {
  std::string s;
  for (const auto& r : EnumTable<E>::rows) s += (s.empty() ? "" : sep) + std::string(r.name);
  return s;
}

template <class E, class = std::enable_if_t<std::is_enum<E>::value && (sizeof(EnumTable<E>) > 0)>>
const char* to_string(E e) {
  static_assert(detail::enum_rows_in_order<E>(), "EnumTable rows must list the enumerators in declaration order");
  const auto i = static_cast<std::size_t>(e);
  return i < detail::enum_count<E>() ? EnumTable<E>::rows[i].name : "?";
}

// True and sets `out` when `s` is one of E's names.
template <class E>
bool try_parse_enum(const std::string& s, E& out) {
  for (const auto& r : EnumTable<E>::rows)
    if (detail::enum_name_equal(r.name, s)) {
      out = r.value;
      return true;
    }
  return false;
}

// E's value named `s`, or an Err "<what>: expected one of a, b, c, got 's'". `what` names the
// place the name came from: "config key 'norm_type'", "--norm-type", ...
template <class E, class Err = ConfigError>
E parse_enum(const std::string& s, const std::string& what) {
  E e{};
  if (!try_parse_enum(s, e)) fail<Err>(what, ": expected one of ", enum_choices<E>(), ", got ", quote(s, 60));
  return e;
}

}  // namespace tnn
