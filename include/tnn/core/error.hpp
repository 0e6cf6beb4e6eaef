// Error types: everything a caller can get wrong is reported by throwing one of
// these, with a message naming the argument, what was expected and what came.
#pragma once

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tnn {

// Root of the hierarchy; catch this to handle every library error.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A tensor or argument has the wrong shape or size.
struct ShapeError : Error {
  using Error::Error;
};
// A model/training configuration is invalid (unknown key, wrong type, bad value).
struct ConfigError : Error {
  using Error::Error;
};
// A file (checkpoint, batch, data) is malformed or does not match what is expected.
struct FormatError : Error {
  using Error::Error;
};
// A value is out of range: token id outside the vocabulary, NaN in weights, ...
struct ValueError : Error {
  using Error::Error;
};
// The operating system refused a file operation.
struct IoError : Error {
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

namespace detail {
// `s` escaped to printable ASCII (\n, \t, \r, \", \\, \xHH) and cut after about max_chars
// output characters; *cut tells whether anything was left off.
inline std::string escape_cut(std::string_view s, std::size_t max_chars, bool* cut, bool quotes = true) {
  static const char* const hex = "0123456789abcdef";
  std::string q;
  std::size_t i = 0;
  for (; i < s.size() && q.size() < max_chars; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (quotes && (c == '"' || c == '\\')) {
      q += '\\';
      q += static_cast<char>(c);
    } else if (c == '\n') {
      q += "\\n";
    } else if (c == '\t') {
      q += "\\t";
    } else if (c == '\r') {
      q += "\\r";
    } else if (c < 0x20 || c >= 0x7f) {
      q += "\\x";
      q += hex[c >> 4];
      q += hex[c & 15];
    } else {
      q += static_cast<char>(c);
    }
  }
  *cut = i < s.size();
  return q;
}
// Library or OS text (an exception's what()) made one bounded line: control bytes and
// non-ASCII escaped, quotes and backslashes kept as they are (the text is not re-quoted).
inline std::string one_line(std::string_view s, std::size_t max_chars = 200) {
  bool cut = false;
  std::string q = escape_cut(s, max_chars, &cut, /*quotes=*/false);
  return cut ? q + "..." : q;
}
}  // namespace detail

// User text (a key, a path, a list entry, a value) as it may appear in a message: in double
// quotes, every byte outside printable ASCII escaped (\n, \t, \xHH), so a message stays one
// line and cutting it cannot split a UTF-8 sequence, and at most ~max_chars long (then
// `"... (N bytes)`), so a 100 MB hostile value cannot make a 100 MB message.
inline std::string quote(std::string_view s, std::size_t max_chars = 100) {
  bool cut = false;
  std::string q = "\"" + detail::escape_cut(s, max_chars, &cut) + "\"";
  if (cut) q += "... (" + std::to_string(s.size()) + " bytes)";
  return q;
}

// A file path in a message: in single quotes, escaped and cut like quote(), so a newline in
// a path cannot split the one-line message.
inline std::string quote_path(std::string_view path) { return "'" + detail::one_line(path, 200) + "'"; }

// The candidate closest to `word` by edit distance (insertions, deletions, substitutions,
// swaps of neighbours), if it is at most max(1, |word| / 3) edits away; "" otherwise. For
// "did you mean --steps?" on a mistyped flag, command or config key.
inline std::string closest_word(std::string_view word, const std::vector<std::string>& candidates) {
  if (word.empty() || word.size() > 64) return "";
  const std::size_t limit = std::max<std::size_t>(1, word.size() / 3);
  std::string best;
  std::size_t best_d = limit + 1;
  for (const std::string& c : candidates) {
    if (c.size() > word.size() + limit || word.size() > c.size() + limit) continue;
    const std::size_t n = word.size(), m = c.size();
    std::vector<std::size_t> d((n + 1) * (m + 1));
    auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return d[i * (m + 1) + j]; };
    for (std::size_t i = 0; i <= n; ++i) at(i, 0) = i;
    for (std::size_t j = 0; j <= m; ++j) at(0, j) = j;
    for (std::size_t i = 1; i <= n; ++i)
      for (std::size_t j = 1; j <= m; ++j) {
        std::size_t v = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (word[i - 1] != c[j - 1])});
        if (i > 1 && j > 1 && word[i - 1] == c[j - 2] && word[i - 2] == c[j - 1]) v = std::min(v, at(i - 2, j - 2) + 1);
        at(i, j) = v;
      }
    if (at(n, m) < best_d) {
      best_d = at(n, m);
      best = c;
    }
  }
  return best;
}

// Throws E with the pieces concatenated: tnn::fail<ShapeError>("x: expected ", n, " rows, got ", m).
template <class E = Error, class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw E(detail::concat(args...));
}

}  // namespace tnn
