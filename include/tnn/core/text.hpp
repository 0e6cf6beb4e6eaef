// Text that users give and the program prints back (class names, titles, legend labels):
// UTF-8 decoding, the checks a name must pass to be printed one per line, and the repair of
// arbitrary bytes into valid UTF-8. A name that prints as two lines, or that a JSON or XML
// writer refuses, is refused where it is read, not when the first output is written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tnn/core/error.hpp"

namespace tnn {

// The code point of the well-formed UTF-8 sequence at s[i] and its length (1-4), or length 0
// when s[i] starts no well-formed sequence: a stray continuation byte, a lead byte whose
// sequence is cut short or broken, an overlong form, a surrogate (U+D800..U+DFFF) or a value
// above U+10FFFF (RFC 3629). *bad is then the length of the maximal ill-formed subpart
// (Unicode's "substitution of maximal subparts": one U+FFFD per subpart), at least 1.
inline std::size_t utf8_decode(std::string_view s, std::size_t i, char32_t* cp, std::size_t* bad = nullptr) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  std::size_t len = 0;
  char32_t v = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, v = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, v = c & 0x0f;
    if (c == 0xe0) lo = 0xa0;  // no overlong forms
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, v = c & 0x07;
    if (c == 0xf0) lo = 0x90;  // no overlong forms
    if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  }
  std::size_t k = 1;
  if (len != 0) {
    for (; k < len && i + k < s.size(); ++k) {
      const unsigned char b = at(i + k);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) break;
      v = (v << 6) | (b & 0x3f);
    }
    if (k == len) {
      *cp = v;
      return len;
    }
  }
  if (bad) *bad = k;  // the lead byte and the continuation bytes that fitted
  return 0;
}

// True for the code points no printed name may hold: C0 controls (tab and newline included),
// DEL, C1 controls, the line and paragraph separators, and the noncharacters U+FFFE, U+FFFF.
inline bool is_control_code_point(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfffe || cp == 0xffff;
}

// "" when `s` is well-formed UTF-8 without control characters (is_control_code_point);
// otherwise what is wrong and at which byte, e.g. "invalid UTF-8 at byte 3 (0xff)" or
// "control character U+000A at byte 5".
inline std::string text_problem(std::string_view s) {
  static const char* const hex = "0123456789ABCDEF";
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const std::size_t n = utf8_decode(s, i, &cp);
    if (n == 0) {
      const auto b = static_cast<unsigned char>(s[i]);
      return detail::concat("invalid UTF-8 at byte ", i, " (0x", hex[b >> 4], hex[b & 15], ")");
    }
    if (is_control_code_point(cp)) {
      std::string u = "U+";
      for (int shift = cp > 0xffff ? 20 : 12; shift >= 0; shift -= 4) u += hex[(cp >> shift) & 15];
      return detail::concat("control character ", u, " at byte ", i);
    }
    i += n;
  }
  return "";
}

// `s` rewritten code point by code point: every ill-formed subpart as U+FFFD, every well-formed
// code point `cp` as write(out, cp, bytes) appends it (`bytes`: its UTF-8 in `s`).
template <class Write>
std::string utf8_rewritten(std::string_view s, Write&& write) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    std::size_t bad = 1;
    const std::size_t n = utf8_decode(s, i, &cp, &bad);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      i += bad;
    } else {
      write(out, cp, s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// `s` with every ill-formed subpart replaced by U+FFFD, and every control code point too when
// `controls` is given (each replaced by `controls`, e.g. " "); well-formed text is unchanged.
inline std::string utf8_repaired(std::string_view s, const char* controls = nullptr) {
  return utf8_rewritten(s, [&](std::string& out, char32_t cp, std::string_view bytes) {
    if (controls && is_control_code_point(cp))
      out += controls;
    else
      out += bytes;
  });
}

// A class name as it is read (a TSV label, a name in a file's or checkpoint's metadata): one
// line of printable UTF-8, not empty. E (FormatError for files) otherwise, naming `where`.
template <class E = ValueError>
void check_class_name(std::string_view name, const std::string& where) {
  if (name.empty()) fail<E>(where, ": expected a class name of at least one character, got an empty one");
  const std::string problem = text_problem(name);
  if (!problem.empty())
    fail<E>(where, ": expected a class name of printable UTF-8 text (it is printed one per line), got ", quote(name, 60),
            " with ", problem);
}

}  // namespace tnn
