// io/json.hpp's strict policy, and the bounded one-line renderings of user text
// (core/error.hpp quote, quote_path, closest_word; io/json.hpp json_brief).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_helpers.hpp"
#include "tnn/core/error.hpp"
#include "tnn/io/json.hpp"
#include "tnn/model/config.hpp"

namespace {

using tnn::ConfigError;
using tnn::FormatError;
using tnn::testing_helpers::error_of;  // the message of the E f throws ("<no error>" if none)

#define EXPECT_CONTAINS(msg, piece) \
  EXPECT_NE(std::string(msg).find(piece), std::string::npos) << "missing '" << (piece) << "' in: " << (msg)

bool one_line(const std::string& s) { return s.find('\n') == std::string::npos && s.find('\r') == std::string::npos; }

nlohmann::json strict(const std::string& text) { return tnn::parse_json_strict<FormatError>(text, "test.json"); }
std::string strict_error(const std::string& text) { return error_of<FormatError>([&] { strict(text); }); }

}  // namespace

TEST(Json, ValidTextParsesToTheSameValueAsNlohmann) {
  for (const std::string text : {"{}", "[]", "0", "-1.5e3", "\"caf\xc3\xa9\"", "  {\"a\": [1, 2, {\"b\": null}], \"c\": true}\n\t ",
                                 "18446744073709551615", "{\"\": \"\"}"})
    EXPECT_EQ(strict(text), nlohmann::json::parse(text)) << text;
}

TEST(Json, NulByteAnywhereIsRefusedWithItsOffset) {
  // nlohmann alone stops at the NUL and accepts the object before it.
  const std::string after(std::string("{\"a\":1}\0garbage", 15));
  ASSERT_TRUE(nlohmann::json::accept(after));
  const std::string msg = strict_error(after);
  EXPECT_CONTAINS(msg, "test.json");
  EXPECT_CONTAINS(msg, "NUL byte at offset 7");
  EXPECT_CONTAINS(strict_error(std::string("{\"a\":\0 1}", 9)), "NUL byte at offset 5");
}

TEST(Json, TrailingBytesAreRefused) {
  EXPECT_CONTAINS(strict_error("{} {}"), "valid JSON");
  EXPECT_CONTAINS(strict_error("{}x"), "valid JSON");
  EXPECT_CONTAINS(strict_error("1 2"), "valid JSON");
}

TEST(Json, DuplicateKeysAreRefusedInEveryObject) {
  EXPECT_CONTAINS(strict_error("{\"a\":1,\"a\":2}"), "key \"a\" appears twice");
  EXPECT_CONTAINS(strict_error("{\"x\":[{\"b\":1,\"c\":2,\"b\":3}]}"), "key \"b\" appears twice");
  EXPECT_EQ(strict("{\"a\":{\"k\":1},\"b\":{\"k\":2}}").at("b").at("k"), 2);  // same key in sibling objects is fine
}

TEST(Json, NestingIsBoundedAndAHundredThousandLevelsFailFast) {
  const std::string deep_arrays(100000, '[');
  std::string deep_objects;
  for (int i = 0; i < 100000; ++i) deep_objects += "{\"a\":";
  for (const std::string& text : {deep_arrays, deep_objects}) {
    const std::string msg = strict_error(text);
    EXPECT_CONTAINS(msg, "nested at most 64 levels");
    EXPECT_LT(msg.size(), 200u);
  }
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_NO_THROW(strict(ok));
  ok = std::string(65, '[') + std::string(65, ']');
  EXPECT_CONTAINS(strict_error(ok), "nested at most 64");
  EXPECT_NO_THROW((tnn::parse_json_strict<FormatError>(ok, "x", 65)));
}

TEST(Json, NumbersMustBeFinite) {
  EXPECT_CONTAINS(strict_error("1e400"), "valid JSON");
  EXPECT_CONTAINS(strict_error("[-1e400]"), "valid JSON");
  EXPECT_CONTAINS(strict_error("NaN"), "valid JSON");
  EXPECT_DOUBLE_EQ(strict("1e308").get<double>(), 1e308);
}

TEST(Json, ErrorsAreOneBoundedLineWhateverTheInput) {
  const std::string long_string = "\"" + std::string(1000000, 'x');  // unterminated: nlohmann quotes it all
  const std::string newline_key = "{\"a\\nb\":1,\"a\\nb\":2}";  // the key holds a newline
  for (const std::string& text : {long_string, newline_key, std::string("{\"a\":\x01}"), std::string("\xff\xfe")}) {
    const std::string msg = strict_error(text);
    EXPECT_NE(msg, "<no error>");
    EXPECT_TRUE(one_line(msg)) << msg;
    EXPECT_LT(msg.size(), 300u) << msg.substr(0, 400);
  }
  EXPECT_CONTAINS(strict_error(newline_key), "\"a\\nb\"");
}

TEST(Json, TheCallerChoosesTheErrorType) {
  EXPECT_THROW(tnn::parse_json_strict<ConfigError>("{", "c"), ConfigError);
  EXPECT_THROW(tnn::parse_json_strict<ConfigError>(std::string(1000, '['), "c"), ConfigError);
  EXPECT_TRUE(tnn::json_is_strict("{\"a\":[1]}"));
  EXPECT_FALSE(tnn::json_is_strict("{\"a\":1,\"a\":1}"));
  EXPECT_FALSE(tnn::json_is_strict(std::string("{}\0", 3)));
}

TEST(Json, BriefRenderingNeverRecursesAndStaysShort) {
  nlohmann::json deep = nlohmann::json::array();
  nlohmann::json* p = &deep;
  for (int i = 0; i < 1000; ++i) p = &(*p = nlohmann::json::array({nullptr})).at(0);
  EXPECT_EQ(tnn::json_brief(deep), "an array of 1 element(s)");
  EXPECT_EQ(tnn::json_brief(nlohmann::json::object({{"a", 1}, {"b", 2}})), "an object of 2 key(s)");
  EXPECT_EQ(tnn::json_brief(nlohmann::json(7)), "number 7");
  EXPECT_EQ(tnn::json_brief(nlohmann::json(true)), "boolean true");
  const std::string brief = tnn::json_brief(nlohmann::json(std::string(100000, 'y') + "\n"));
  EXPECT_LT(brief.size(), 120u);
  EXPECT_TRUE(one_line(brief));
}

TEST(Quote, EscapesEveryByteOutsidePrintableAsciiAndCutsLongText) {
  EXPECT_EQ(tnn::quote("plain"), "\"plain\"");
  EXPECT_EQ(tnn::quote("a\nb\t\"c\\\x01\xff"), "\"a\\nb\\t\\\"c\\\\\\x01\\xff\"");
  const std::string q = tnn::quote(std::string(1000000, 'z'));
  EXPECT_LT(q.size(), 130u);
  EXPECT_CONTAINS(q, "(1000000 bytes)");
  EXPECT_EQ(tnn::quote_path("dir/a\nb.safetensors"), "'dir/a\\nb.safetensors'");
}

TEST(Quote, ClosestWordSuggestsNearMissesOnly) {
  const std::vector<std::string> flags = {"--steps", "--seq-len", "--batch", "--warmup", "--out"};
  EXPECT_EQ(tnn::closest_word("--step", flags), "--steps");
  EXPECT_EQ(tnn::closest_word("--btach", flags), "--batch");  // a swap is one edit
  EXPECT_EQ(tnn::closest_word("--lr", flags), "");
  EXPECT_EQ(tnn::closest_word("gen", {"train", "eval", "generate", "grad"}), "");  // too far: see the CLI's prefix rule
  EXPECT_EQ(tnn::closest_word("evl", {"train", "eval", "generate", "grad"}), "eval");
  EXPECT_EQ(tnn::closest_word(std::string(100, 'x'), flags), "");
}

TEST(ConfigJson, TnnConfigUsesTheStrictPolicy) {
  const std::string base = "{\"vocab_size\":5,\"dim\":4,\"layers\":1";
  EXPECT_NO_THROW(tnn::TnnConfig::parse(base + "}"));
  EXPECT_CONTAINS(error_of<ConfigError>([&] { tnn::TnnConfig::parse(base + ",\"dim\":8}"); }), "\"dim\" appears twice");
  EXPECT_CONTAINS(error_of<ConfigError>([&] { tnn::TnnConfig::parse(base + "}" + std::string("\0{}", 3)); }), "NUL byte");
  std::string deep = base + ",\"gamma\":";
  for (int i = 0; i < 100000; ++i) deep += '[';
  EXPECT_CONTAINS(error_of<ConfigError>([&] { tnn::TnnConfig::parse(deep); }), "nested at most");
  // A wrong type deep inside a value is described by its size, never dumped.
  std::string nested = base + ",\"gamma\":" + std::string(60, '[') + std::string(60, ']') + "}";
  const std::string msg = error_of<ConfigError>([&] { tnn::TnnConfig::parse(nested); });
  EXPECT_CONTAINS(msg, "'gamma': expected a number, got an array of 1 element(s)");
  const std::string key = error_of<ConfigError>([&] { tnn::TnnConfig::parse(base + ",\"gama\\nx\":1}"); });
  EXPECT_CONTAINS(key, "unknown key \"gama\\nx\"");
  EXPECT_TRUE(one_line(key));
  EXPECT_CONTAINS(error_of<ConfigError>([&] { tnn::TnnConfig::parse(base + ",\"gama\":1}"); }), "did you mean 'gamma'?");
}
