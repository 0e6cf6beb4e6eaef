// io/tokenizer.hpp and io/base64.hpp: the byte tokenizer, SentencePiece round trips with a model
// trained here, chunked encoding, the JSON a checkpoint stores, streaming decode, and the errors.
// Built twice: with SentencePiece (when found) and without it (test_tokenizer_nospm), where
// asking for SentencePiece is a one-line error naming what to install.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "test_helpers.hpp"
#include "tiny_sentencepiece.hpp"
#include "tnn/io/base64.hpp"
#include "tnn/io/tokenizer.hpp"

namespace {

using tnn::Tokenizer;
using tnn::TokenizerKind;
using tnn::testing_helpers::throws;

TEST(Base64, RoundTripsEveryLengthAndByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  for (std::size_t n = 0; n <= 7; ++n) {
    const std::string s = all.substr(250 - n, n);
    const std::string e = tnn::base64_encode(s);
    EXPECT_EQ(e.size() % 4, 0u);
    EXPECT_EQ(tnn::base64_decode(e, "t"), s) << n;
  }
  EXPECT_EQ(tnn::base64_decode(tnn::base64_encode(all), "t"), all);
  EXPECT_EQ(tnn::base64_encode("Man"), "TWFu");  // RFC 4648's examples
  EXPECT_EQ(tnn::base64_encode("Ma"), "TWE=");
  EXPECT_EQ(tnn::base64_encode("M"), "TQ==");
}

TEST(Base64, RefusesWhatIsNotBase64) {
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::base64_decode("TWF", "blob"); }, {"blob", "multiple of 4", "3"}));
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::base64_decode("TW!u", "blob"); }, {"blob", "\"!\"", "offset 2"}));
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::base64_decode("T=Fu", "blob"); }, {"\"=\""}));  // padding inside
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::base64_decode("TR==", "blob"); }, {"zero bits"}));  // "M" is TQ==
}

TEST(Tokenizer, BytesAreTheirOwnIds) {
  const Tokenizer t;
  EXPECT_EQ(t.kind(), TokenizerKind::Bytes);
  EXPECT_EQ(t.vocab_size(), 256);
  std::string text = "a\n\xff";
  text += '\0';
  const std::vector<std::int32_t> ids = t.encode(text);
  EXPECT_EQ(ids, (std::vector<std::int32_t>{'a', '\n', 255, 0}));
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_TRUE(throws<tnn::ValueError>([&] { t.decode(std::vector<std::int32_t>{65, 256}); }, {"ids[1] = 256", "[0, 256)"}));
  EXPECT_TRUE(t.model_bytes().empty());
  EXPECT_EQ(Tokenizer::bytes(), t);
}

TEST(Tokenizer, IdsOfAnUnknownTokenizerHaveNoText) {
  const Tokenizer t = Tokenizer::ids(50257);
  EXPECT_EQ(t.vocab_size(), 50257);
  EXPECT_FALSE(t.has_text());
  EXPECT_TRUE(throws<tnn::ConfigError>([&] { t.encode("x"); }, {"encode", "token files"}));
  EXPECT_TRUE(throws<tnn::ConfigError>([&] { t.decode(std::vector<std::int32_t>{1}); }, {"decode"}));
  const Tokenizer back = tnn::tokenizer_from_json(tnn::tokenizer_to_json(t), "ck");
  EXPECT_EQ(back, t);
  EXPECT_NE(back, Tokenizer::ids(50256));
  EXPECT_THROW(Tokenizer::ids(0), tnn::ValueError);
}

TEST(Tokenizer, ChunksEndAtLineEndsOrCharacterBoundaries) {
  using tnn::kEncodeChunkBytes;
  std::string text(3 * kEncodeChunkBytes, 'a');
  text[kEncodeChunkBytes - 10] = '\n';
  EXPECT_EQ(tnn::detail::encode_chunk_end(text, 0), kEncodeChunkBytes - 9);
  // No newline: the cut falls before the character that crosses the limit (a 3-byte one here).
  std::string wide(2 * kEncodeChunkBytes, 'b');
  for (std::size_t i = kEncodeChunkBytes - 1; i < kEncodeChunkBytes + 2; ++i) wide[i] = "\xE2\x82\xAC"[i - (kEncodeChunkBytes - 1)];
  EXPECT_EQ(tnn::detail::encode_chunk_end(wide, 0), kEncodeChunkBytes - 1);
  EXPECT_EQ(tnn::detail::encode_chunk_end(wide, kEncodeChunkBytes), wide.size());  // the rest fits
  // Bytes: chunking changes nothing.
  std::vector<std::int32_t> chunks;
  Tokenizer().encode_chunks(text, [&](const std::int32_t* p, tnn::Index n) {
    EXPECT_LE(n, static_cast<tnn::Index>(kEncodeChunkBytes));
    chunks.insert(chunks.end(), p, p + n);
  });
  EXPECT_EQ(Tokenizer().decode(chunks), text);
}

TEST(Tokenizer, JsonRefusesWhatACheckpointCannotHold) {
  EXPECT_EQ(tnn::tokenizer_from_json(tnn::tokenizer_to_json(Tokenizer()), "ck"), Tokenizer());
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::tokenizer_from_json("[]", "ck"); }, {"ck", "JSON object"}));
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::tokenizer_from_json(R"({"kind":"bpe","vocab_size":3})", "ck"); },
                                       {"kind", "expected one of bytes, sentencepiece, ids", "bpe"}));
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::tokenizer_from_json(R"({"kind":"bytes","vocab_size":300})", "ck"); },
                                       {"vocab_size 300"}));
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::tokenizer_from_json(R"({"kind":"bytes","vocab_size":256,"x":1})", "ck"); },
                                       {"unknown key"}));
  EXPECT_TRUE(throws<tnn::FormatError>([] { tnn::tokenizer_from_json(R"({"kind":"sentencepiece","vocab_size":4})", "ck"); },
                                       {"base64 string 'model'"}));
}

#if defined(TNN_USE_SENTENCEPIECE)

// One model for the whole file: training it is the slow part.
const std::string& tiny_model() {
  static const std::string m = tnn_test::train_tiny_sentencepiece(tnn_test::tiny_text());
  return m;
}

TEST(SentencePiece, RoundTripsTextWithFewerIdsThanBytes) {
  const Tokenizer t = Tokenizer::sentencepiece(tiny_model(), "tiny");
  EXPECT_EQ(t.kind(), TokenizerKind::SentencePiece);
  EXPECT_GT(t.vocab_size(), 256);  // byte fallback pieces + learned ones
  EXPECT_EQ(t.model_bytes(), tiny_model());
  const std::string text = tnn_test::tiny_text(40) + "unseen: \xC3\xA9t\xC3\xA9 ~\n\n  two spaces\n";
  const std::vector<std::int32_t> ids = t.encode(text);
  EXPECT_LT(ids.size(), text.size() / 2);  // pieces longer than bytes were learned
  for (std::int32_t id : ids) EXPECT_TRUE(id >= 0 && id < t.vocab_size());
  EXPECT_EQ(t.decode(ids), text);  // lossless: identity normalization and byte fallback
  EXPECT_TRUE(throws<tnn::ValueError>([&] { t.decode(std::vector<std::int32_t>{static_cast<std::int32_t>(t.vocab_size())}); },
                                      {"expected a token id in [0, "}));
}

TEST(SentencePiece, LongTextsAreEncodedChunkByChunk) {
  const Tokenizer t = Tokenizer::sentencepiece(tiny_model(), "tiny");
  std::string text;
  while (text.size() < 3 * tnn::kEncodeChunkBytes) text += tnn_test::tiny_text();
  // Chunk by chunk equals encoding each line-aligned chunk alone, and decodes back to the text.
  std::vector<std::int32_t> want;
  for (std::size_t b = 0; b < text.size();) {
    const std::size_t e = tnn::detail::encode_chunk_end(text, b);
    ASSERT_EQ(text[e - 1], '\n');
    t.encode(std::string_view(text).substr(b, e - b), want);
    b = e;
  }
  int chunks = 0;
  std::vector<std::int32_t> got;
  t.encode_chunks(text, [&](const std::int32_t* p, tnn::Index n) {
    ++chunks;
    got.insert(got.end(), p, p + n);
  });
  EXPECT_GE(chunks, 3);
  EXPECT_EQ(got, want);
  EXPECT_EQ(t.decode(got), text);
}

TEST(SentencePiece, TravelsAsJsonAndComesBackEqual) {
  const Tokenizer t = Tokenizer::sentencepiece(tiny_model(), "tiny");
  const std::string j = tnn::tokenizer_to_json(t);
  const Tokenizer back = tnn::tokenizer_from_json(j, "ck");
  EXPECT_EQ(back, t);
  EXPECT_EQ(back.encode("the light and the water\n"), t.encode("the light and the water\n"));
  // A model that is not one, and a vocabulary size that is not the model's.
  nlohmann::json bad = nlohmann::json::parse(j);
  bad["model"] = tnn::base64_encode("not a model");
  EXPECT_TRUE(throws<tnn::FormatError>([&] { tnn::tokenizer_from_json(bad.dump(), "ck"); }, {"ck", "SentencePiece model"}));
  bad = nlohmann::json::parse(j);
  bad["vocab_size"] = t.vocab_size() + 1;
  EXPECT_TRUE(throws<tnn::FormatError>([&] { tnn::tokenizer_from_json(bad.dump(), "ck"); }, {"is not the tokenizer's"}));
  EXPECT_TRUE(throws<tnn::IoError>([] { Tokenizer::sentencepiece_file("/nonexistent/m.model"); }, {"/nonexistent/m.model"}));
}

TEST(SentencePiece, TextStreamShowsWhatEachIdAdds) {
  const Tokenizer t = Tokenizer::sentencepiece(tiny_model(), "tiny");
  const std::string prompt = "the light";
  const std::string rest = " and the \xC3\xA9water, 12\n";  // a 2-byte character arrives as two byte pieces
  const std::vector<std::int32_t> p = t.encode(prompt), all = t.encode(prompt + rest);
  ASSERT_EQ(std::vector<std::int32_t>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(p.size())), p);
  tnn::TextStream stream(t, p);
  std::string shown;
  for (std::size_t i = p.size(); i < all.size(); ++i) {
    const std::string piece = stream.push(all[i]);
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "a half character was shown";
    shown += piece;
  }
  shown += stream.finish();
  EXPECT_EQ(shown, rest);
}

#else

TEST(SentencePiece, WithoutItIsOneLineNamingWhatToInstall) {
  EXPECT_FALSE(tnn::kHaveSentencePiece);
  const std::string msg = tnn::testing_helpers::error_of<tnn::ConfigError>([] { Tokenizer::sentencepiece("x", "tokenizer model 'm.model'"); });
  EXPECT_NE(msg.find("libsentencepiece-dev"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.model"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // A checkpoint's SentencePiece tokenizer: the same message.
  const std::string j = R"({"kind":"sentencepiece","vocab_size":4,"model":")" + tnn::base64_encode("x") + "\"}";
  EXPECT_TRUE(throws<tnn::ConfigError>([&] { tnn::tokenizer_from_json(j, "ck"); }, {"libsentencepiece-dev"}));
}

#endif

}  // namespace
