// Class names, wherever they come from (a TSV's labels, an image file's or a checkpoint's
// "tnn.labels" metadata): each one line of printable UTF-8 of at most kMaxClassNameBytes, and
// no name twice, so `tnn classify` prints exactly one line per input and --json keeps every
// class. Checked where names are read, so a bad name is refused before any work, never at the
// first save.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/text.hpp"
#include "tnn/io/json.hpp"

namespace tnn {

// A classifier's class names in a checkpoint or an image file: a JSON array of strings, class k's
// name at index k (written by `tnn train --task classify/image`, read by `tnn classify`).
inline constexpr const char* kLabelsMetadataKey = "tnn.labels";
inline constexpr std::size_t kMaxClassNameBytes = 1024;
// The most classes a model takes (TnnConfig::kMaxWidth, num_classes' limit).
inline constexpr std::int64_t kMaxClasses = std::int64_t(1) << 24;

// One name: check_class_name (printable UTF-8, not empty) and at most kMaxClassNameBytes.
template <class E = FormatError>
void check_one_class_name(std::string_view name, const std::string& where) {
  if (name.size() > kMaxClassNameBytes)
    fail<E>(where, ": expected a class name of at most ", kMaxClassNameBytes, " bytes, got ", quote(name, 40));
  check_class_name<E>(name, where);
}

// Every name checked, and no name twice; E naming `where` and the class otherwise.
template <class E = FormatError>
void check_class_names(const std::vector<std::string>& names, const std::string& where) {
  std::unordered_map<std::string_view, std::size_t> seen;
  seen.reserve(names.size());
  for (std::size_t k = 0; k < names.size(); ++k) {
    check_one_class_name<E>(names[k], detail::concat(where, ": class ", k));
    const auto [it, fresh] = seen.emplace(names[k], k);
    if (!fresh)
      fail<E>(where, ": expected distinct class names, got ", quote(names[k], 60), " for classes ", it->second, " and ",
              k);
  }
}

// The "tnn.labels" metadata value: a JSON array of class names (strict JSON, io/json.hpp),
// each checked by check_class_names. FormatError naming `where` otherwise.
inline std::vector<std::string> parse_class_names(const std::string& text, const std::string& where) {
  const nlohmann::json j = parse_json_strict<FormatError>(text, where);
  if (!j.is_array()) fail<FormatError>(where, ": expected a JSON array of class names, got ", json_brief(j));
  std::vector<std::string> names;
  names.reserve(j.size());
  for (std::size_t k = 0; k < j.size(); ++k) {
    if (!j[k].is_string())
      fail<FormatError>(where, ": expected a JSON array of class names, got ", json_brief(j[k]), " at index ", k);
    names.push_back(j[k].get<std::string>());
  }
  check_class_names<FormatError>(names, where);
  return names;
}

// The names as the "tnn.labels" metadata value; the names are checked first (ValueError), so the
// JSON writer never meets invalid UTF-8.
inline std::string class_names_json(const std::vector<std::string>& names, const std::string& where) {
  check_class_names<ValueError>(names, where);
  return nlohmann::json(names).dump();
}

}  // namespace tnn
