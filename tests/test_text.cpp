// core/text.hpp (UTF-8 decoding, the checks on printed names, repair) and io/xml.hpp (text in
// an SVG): every byte string gives well-formed output, and what is refused says why.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "tnn/core/text.hpp"
#include "tnn/io/xml.hpp"

using namespace tnn;

TEST(Utf8, DecodesWellFormedSequencesAndMeasuresMaximalSubparts) {
  char32_t cp = 0;
  std::size_t bad = 0;
  EXPECT_EQ(utf8_decode("a", 0, &cp), 1u);
  EXPECT_EQ(cp, U'a');
  EXPECT_EQ(utf8_decode("\xC3\xA9", 0, &cp), 2u);
  EXPECT_EQ(cp, U'\u00e9');
  EXPECT_EQ(utf8_decode("\xE2\x82\xAC", 0, &cp), 3u);
  EXPECT_EQ(cp, U'\u20ac');
  EXPECT_EQ(utf8_decode("\xF0\x9F\x98\x80", 0, &cp), 4u);
  EXPECT_EQ(cp, U'\U0001F600');
  // Ill-formed: the lengths of Unicode's maximal subparts (Table 3-8).
  EXPECT_EQ(utf8_decode("\x80", 0, &cp, &bad), 0u);
  EXPECT_EQ(bad, 1u);
  EXPECT_EQ(utf8_decode("\xC0\xAF", 0, &cp, &bad), 0u);  // overlong
  EXPECT_EQ(bad, 1u);
  EXPECT_EQ(utf8_decode("\xE0\x80\x80", 0, &cp, &bad), 0u);  // overlong
  EXPECT_EQ(bad, 1u);
  EXPECT_EQ(utf8_decode("\xED\xA0\x80", 0, &cp, &bad), 0u);  // a surrogate
  EXPECT_EQ(bad, 1u);
  EXPECT_EQ(utf8_decode("\xF4\x90\x80\x80", 0, &cp, &bad), 0u);  // above U+10FFFF
  EXPECT_EQ(bad, 1u);
  EXPECT_EQ(utf8_decode("\xE2\x82" "A", 0, &cp, &bad), 0u);  // cut short
  EXPECT_EQ(bad, 2u);
  EXPECT_EQ(utf8_decode("\xF0\x9F\x98", 0, &cp, &bad), 0u);  // cut by the end
  EXPECT_EQ(bad, 3u);
}

TEST(Utf8, TextProblemNamesTheFirstBadByteOrControl) {
  const std::pair<std::string, std::string> cases[] = {  // (text, its problem)
      {"caf\xC3\xA9 \xE2\x82\xAC", ""},
      {"ab\xFF", "invalid UTF-8 at byte 2 (0xFF)"},
      {"two\nlines", "control character U+000A at byte 3"},
      {"tab\there", "control character U+0009 at byte 3"},
      {"c1 \xC2\x85", "control character U+0085 at byte 3"},
      {"ls \xE2\x80\xA8", "control character U+2028 at byte 3"},
      {std::string("nul\0", 4), "control character U+0000 at byte 3"},
      {"del\x7f", "control character U+007F at byte 3"},
  };
  for (const auto& [text, problem] : cases) EXPECT_EQ(text_problem(text), problem);
}

TEST(Utf8, RepairReplacesEachMaximalSubpartOnce) {
  EXPECT_EQ(utf8_repaired("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(utf8_repaired("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8_repaired("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(utf8_repaired("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(utf8_repaired("a\nb", " "), "a b");
  for (int b = 0; b < 256; ++b) {  // whatever one byte is, the result is well-formed
    const std::string s(1, static_cast<char>(b));
    EXPECT_EQ(text_problem(utf8_repaired(s + "x", "?")), "") << b;
  }
}

TEST(ClassName, RefusedWhenItCannotBePrintedAsOneLine) {
  EXPECT_NO_THROW(check_class_name("positive \xC3\xA9", "t"));
  EXPECT_THROW(check_class_name("", "t"), ValueError);
  EXPECT_THROW(check_class_name("a\nb", "t"), ValueError);
  EXPECT_THROW(check_class_name("\xFF\xFE", "t"), ValueError);
  try {
    check_class_name<FormatError>("bad\x01name", "labels");
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("labels: expected a class name of printable UTF-8"), std::string::npos) << m;
    EXPECT_NE(m.find("U+0001 at byte 3"), std::string::npos) << m;
    EXPECT_EQ(m.find('\x01'), std::string::npos) << m;
  }
}

namespace {
// Well-formed XML 1.0 character data: valid UTF-8, no character XML forbids, no bare markup.
bool well_formed_xml_text(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const std::size_t n = utf8_decode(s, i, &cp);
    if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0xfffe || cp == 0xffff) return false;
    i += n;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<' || s[i] == '>' || s[i] == '"' || s[i] == '\'') return false;
    if (s[i] == '&') {
      const std::size_t semi = s.find(';', i);
      const std::string ent = semi == std::string::npos ? "" : s.substr(i, semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;") return false;
    }
  }
  return true;
}
}  // namespace

TEST(XmlText, EveryByteStringBecomesWellFormedCharacterData) {
  EXPECT_EQ(xml_text("a < b & \"c\" > 'd'"), "a &lt; b &amp; &quot;c&quot; &gt; &apos;d&apos;");
  EXPECT_EQ(xml_text("title\nsecond"), "title second");
  EXPECT_EQ(xml_text("bell\x07"), "bell\xEF\xBF\xBD");
  EXPECT_EQ(xml_text("bad\xC3"), "bad\xEF\xBF\xBD");
  EXPECT_EQ(xml_text("caf\xC3\xA9"), "caf\xC3\xA9");
  for (int a = 0; a < 256; ++a)
    for (int b : {0x00, 0x0a, 0x26, 0x3c, 0x80, 0xa9, 0xbf, 0xc3, 0xe2, 0xff}) {
      const std::string s = {static_cast<char>(a), static_cast<char>(b), 'x'};
      EXPECT_TRUE(well_formed_xml_text(xml_text(s))) << a << " " << b;
    }
}
