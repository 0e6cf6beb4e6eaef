// Base64 (RFC 4648, the standard alphabet, '=' padding): binary blobs inside text, e.g. a
// tokenizer's model inside a checkpoint's string metadata. Decoding reads hostile input: any
// character outside the alphabet, a length that is not a multiple of 4, padding anywhere but
// at the end, or non-zero bits after the last full byte is a FormatError naming `what`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tnn/core/error.hpp"

namespace tnn {

inline std::string base64_encode(std::string_view bytes) {
  static const char* const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    const std::uint32_t v = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0u);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

inline std::string base64_decode(std::string_view text, const std::string& what) {
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4 != 0)
    fail<FormatError>(what, ": expected base64 (a multiple of 4 characters), got ", text.size(), " characters");
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      const bool padding = last && k >= 4 - pad;
      const int d = padding ? 0 : value(c);
      if (d < 0)
        fail<FormatError>(what, ": expected base64, got the character ", quote(std::string_view(&text[i + k], 1)),
                          " at offset ", i + k);
      v = v << 6 | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>(v >> 16);
    if (!(last && pad == 2)) out += static_cast<char>((v >> 8) & 0xFF);
    if (!(last && pad >= 1)) out += static_cast<char>(v & 0xFF);
    // The bits a padded group leaves over must be zero: one text, one encoding.
    if (last && ((pad == 1 && (v & 0xFF) != 0) || (pad == 2 && (v & 0xFFFF) != 0)))
      fail<FormatError>(what, ": expected base64 with zero bits before the padding, got non-zero ones");
  }
  return out;
}

}  // namespace tnn
