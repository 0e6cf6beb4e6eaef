// Text placed in an XML (SVG) document: whatever the bytes (a --title or --label from the
// command line, a file name), the result is well-formed XML 1.0 character data that reads as
// the same text where it can.
#pragma once

#include <string>
#include <string_view>

#include "tnn/core/text.hpp"

namespace tnn {

// `s` as XML character data, usable in element content and in quoted attribute values:
// & < > " ' as entities; tab, newline and carriage return as spaces (one line of text);
// ill-formed UTF-8 and the characters XML 1.0 forbids or discourages (other C0 controls, DEL,
// C1 controls, U+FFFE, U+FFFF) as U+FFFD. Character references cannot carry those controls
// either (&#1; is not well-formed in XML 1.0), so replacing them is the only faithful choice.
inline std::string xml_text(std::string_view s) {
  return utf8_rewritten(s, [](std::string& out, char32_t cp, std::string_view bytes) {
    switch (cp) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\t':
      case '\n':
      case '\r': out += ' '; break;
      default:
        if (is_control_code_point(cp) && cp != 0x2028 && cp != 0x2029)
          out += "\xEF\xBF\xBD";
        else
          out += bytes;
    }
  });
}

}  // namespace tnn
