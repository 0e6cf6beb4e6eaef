// train/corpus.hpp and the token path of train/data.hpp: corpora in memory, memory-mapped token
// files (uint16/uint32, several per corpus) and hostile ones, views (slices, splits), the same
// batches and windows from every storage of the same ids, the byte path pinned to the batches it
// gave before tokenizers, and texts tokenized with bytes per token kept for bits per byte.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "temp_files.hpp"
#include "test_helpers.hpp"
#include "tiny_sentencepiece.hpp"
#include "tnn/train/data.hpp"

namespace {

using tnn::Batch;
using tnn::ByteCorpus;
using tnn::Index;
using tnn::LmObjective;
using tnn::TokenCorpus;
using tnn::TokenDtype;
using tnn::testing_helpers::throws;

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  tnn::Rng rng(seed);
  std::vector<std::uint8_t> b(n);
  for (auto& c : b) c = static_cast<std::uint8_t>(rng.below(256));
  return b;
}

// ids as a little-endian token file of `dtype`.
void write_token_file(const std::string& path, const std::vector<std::uint32_t>& ids, TokenDtype dtype) {
  const int w = tnn::token_dtype_bytes(dtype);
  tnn_test::Bytes b(ids.size() * static_cast<std::size_t>(w));
  for (std::size_t i = 0; i < ids.size(); ++i)
    for (int k = 0; k < w; ++k) b[i * static_cast<std::size_t>(w) + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(ids[i] >> (8 * k));
  tnn_test::write_bytes(path, b);
}

std::vector<std::int32_t> all_ids(const TokenCorpus& c) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(c.size()));
  c.read(0, c.size(), out.data());
  return out;
}

std::uint64_t fnv(std::uint64_t h, const tnn::Tensor<std::int32_t>& t) {
  for (Index i = 0; i < t.size(); ++i)
    for (int k = 0; k < 4; ++k) h = (h ^ ((static_cast<std::uint32_t>(t[i]) >> (8 * k)) & 255)) * 0x100000001b3ull;
  return h;
}

// Every training batch of steps 0..4 and every evaluation batch, hashed.
std::uint64_t batches_hash(const TokenCorpus& data, LmObjective obj) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  Batch out;
  const tnn::BatchSampler s(data, 4, 64, obj, 77);
  for (int step = 0; step < 5; ++step) {
    s.sample(step, out);
    h = fnv(fnv(h, out.tokens), out.targets);
  }
  const tnn::EvalWindows w(data, 3, 100, obj, tnn::kEvalMaskSeed);
  for (Index i = 0; i < w.num_batches(); ++i) {
    w.batch(i, out);
    h = fnv(fnv(h, out.tokens), out.targets);
  }
  return h;
}

TEST(Corpus, BytePathGivesTheBatchesItGaveBeforeTokenCorpora) {
  // Hashes of the batches of the byte-only implementation this one replaced, on the same data.
  const std::vector<std::uint8_t> b = random_bytes(5000, 3);
  const ByteCorpus data(b, "pin");
  EXPECT_EQ(batches_hash(data, LmObjective::Clm), 0xe66055327de9b57cull);
  EXPECT_EQ(batches_hash(data, LmObjective::Mlm), 0x1e6e9541a9c9ced6ull);
}

TEST(Corpus, EveryStorageOfTheSameIdsGivesTheSameBatches) {
  tnn_test::TempDir dir("tnn_corpus_");
  const std::vector<std::uint8_t> b = random_bytes(5000, 3);
  const ByteCorpus bytes(b, "bytes");
  const std::vector<std::uint32_t> ids(b.begin(), b.end());
  const TokenCorpus memory(ids, 256, "memory", 1.0);
  // Three files of two widths' worth: uint16 split 1000 / 2500 / 1500.
  std::vector<std::string> paths;
  for (auto [begin, end] : {std::pair<int, int>{0, 1000}, {1000, 3500}, {3500, 5000}}) {
    paths.push_back(dir.file("part" + std::to_string(begin) + ".u16"));
    write_token_file(paths.back(), std::vector<std::uint32_t>(ids.begin() + begin, ids.begin() + end), TokenDtype::U16);
  }
  const TokenCorpus mapped16 = TokenCorpus::map_files(paths, TokenDtype::U16, 256);
  write_token_file(dir.file("all.u32"), ids, TokenDtype::U32);
  const TokenCorpus mapped32 = TokenCorpus::map_files({dir.file("all.u32")}, TokenDtype::U32, 256);
  EXPECT_EQ(mapped16.size(), 5000);
  EXPECT_EQ(mapped16.source(), paths[0] + " (+2 files)");
  EXPECT_TRUE(std::isnan(mapped16.bytes_per_token()));
  EXPECT_EQ(all_ids(mapped16), all_ids(bytes));
  for (LmObjective obj : {LmObjective::Clm, LmObjective::Mlm}) {
    const std::uint64_t want = batches_hash(bytes, obj);
    EXPECT_EQ(batches_hash(memory, obj), want);
    EXPECT_EQ(batches_hash(mapped16, obj), want);
    EXPECT_EQ(batches_hash(mapped32, obj), want);
  }
  // A read that crosses both file boundaries.
  std::vector<std::int32_t> got(3000);
  mapped16.read(500, 3000, got.data());
  for (Index i = 0; i < 3000; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], b[static_cast<std::size_t>(500 + i)]) << i;
  EXPECT_TRUE(throws<tnn::ValueError>([&] { mapped16.read(4999, 2, got.data()); }, {"within [0, 5000)"}));
}

TEST(Corpus, TokenFilesThatAreNotTokenFilesAreOneLineErrors) {
  tnn_test::TempDir dir("tnn_corpus_");
  const std::string odd = dir.file("odd.u16"), big = dir.file("big.u32"), empty = dir.file("empty.u16");
  tnn_test::write_bytes(odd, tnn_test::Bytes(1001, 1));
  write_token_file(big, {1, 2, 3, 70000, 5}, TokenDtype::U32);
  tnn_test::write_bytes(empty, {});
  EXPECT_TRUE(throws<tnn::FormatError>([&] { TokenCorpus::map_files({odd}, TokenDtype::U16, 300); },
                                       {odd, "multiple of 2 bytes", "uint16", "1001 bytes"}));
  EXPECT_TRUE(throws<tnn::ValueError>([&] { TokenCorpus::map_files({big}, TokenDtype::U32, 50257); },
                                      {big, "token 3", "byte offset 12", "70000", "[0, 50257)"}));
  EXPECT_NO_THROW(TokenCorpus::map_files({big}, TokenDtype::U32, 70001));
  EXPECT_TRUE(throws<tnn::FormatError>([&] { TokenCorpus::map_files({empty}, TokenDtype::U16, 300); }, {empty, "empty"}));
  EXPECT_TRUE(throws<tnn::IoError>([&] { TokenCorpus::map_files({dir.file("")}, TokenDtype::U16, 300); }, {"regular file"}));
  EXPECT_TRUE(throws<tnn::IoError>([&] { TokenCorpus::map_files({dir.file("missing")}, TokenDtype::U16, 300); }, {"missing"}));
  EXPECT_TRUE(throws<tnn::ValueError>([&] { TokenCorpus::map_files({}, TokenDtype::U16, 300); }, {"at least one"}));
  EXPECT_TRUE(throws<tnn::ValueError>([&] { TokenCorpus::map_files({big}, TokenDtype::U32, 0); }, {"vocabulary size"}));
  // The second of two files is the bad one: the message names it, not the first.
  write_token_file(dir.file("good.u16"), {1, 2}, TokenDtype::U16);
  EXPECT_TRUE(throws<tnn::FormatError>([&] { TokenCorpus::map_files({dir.file("good.u16"), odd}, TokenDtype::U16, 9); }, {odd}));
  EXPECT_TRUE(throws<tnn::ValueError>([] { TokenCorpus({1, 9}, 9, "mem"); }, {"mem", "token 1 is 9", "[0, 9)"}));
  EXPECT_EQ(tnn::parse_enum<TokenDtype>("uint32", "--token-dtype"), TokenDtype::U32);
  EXPECT_TRUE(throws<tnn::ConfigError>([] { tnn::parse_enum<TokenDtype>("u16", "--token-dtype"); }, {"uint16, uint32"}));
}

TEST(Corpus, SplitsOfTokenCorporaAreViewsWithTheBytesSplitsValues) {
  const std::vector<std::uint8_t> b = random_bytes(1000, 5);
  const ByteCorpus bytes(b, "text");
  const TokenCorpus tokens(std::vector<std::uint32_t>(b.begin(), b.end()), 256, "text", 1.0);
  const tnn::DataSplit bs = tnn::split_blocks(bytes, 0.25, 10);
  const tnn::TokenSplit ts = tnn::split_blocks(tokens, 0.25, 10);
  EXPECT_EQ(all_ids(ts.train), all_ids(bs.train));
  EXPECT_EQ(all_ids(ts.valid), all_ids(bs.valid));
  EXPECT_EQ(ts.valid.source(), "text [validation]");
  EXPECT_EQ(ts.valid.bytes_per_token(), 1.0);
  const tnn::TokenSplit tail = tnn::split_tail(tokens, 0.1);
  EXPECT_EQ(all_ids(tail.valid), all_ids(tnn::split_tail(bytes, 0.1).valid));
  // Token corpora say "tokens" where byte corpora say "bytes".
  const TokenCorpus few({1, 2, 3}, 4, "few");
  EXPECT_TRUE(throws<tnn::FormatError>([&] { tnn::BatchSampler(few, 1, 3, LmObjective::Clm, 0); }, {"few", "4 tokens", "got 3 tokens"}));
  EXPECT_TRUE(throws<tnn::FormatError>([&] { tnn::split_blocks(few, 0.5, 3); }, {"2 blocks of 3 tokens", "got 3 tokens"}));
  // Concatenation weighs bytes per token by size; it needs one vocabulary.
  const TokenCorpus a({1, 2}, 9, "a", 2.0), c({3, 4, 5, 6}, 9, "c", 5.0);
  const TokenCorpus ac = TokenCorpus::concat({a, c}, "ac");
  EXPECT_EQ(all_ids(ac), (std::vector<std::int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_DOUBLE_EQ(ac.bytes_per_token(), (2 * 2.0 + 4 * 5.0) / 6);
  EXPECT_THROW(TokenCorpus::concat({a, TokenCorpus({1}, 10, "v10")}, "x"), tnn::ValueError);
}

TEST(Corpus, MaskIdIsTheOneAfterTheVocabulary) {
  std::vector<std::uint32_t> ids(400);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::uint32_t>(i * 7 % 1000);
  const TokenCorpus data(ids, 1000, "v1000");
  const tnn::BatchSampler s(data, 4, 50, LmObjective::Mlm, 3);
  Batch out;
  Index masked = 0;
  for (int step = 0; step < 5; ++step) {
    s.sample(step, out);
    for (Index i = 0; i < out.tokens.size(); ++i) {
      ASSERT_LE(out.tokens[i], 1000);
      masked += out.tokens[i] == 1000;
    }
  }
  EXPECT_GT(masked, 0);
  tnn::MaskConfig inside;
  inside.mask_token = 999;  // an id the data uses
  EXPECT_TRUE(throws<tnn::ConfigError>([&] { tnn::BatchSampler(data, 4, 50, LmObjective::Mlm, 3, inside); },
                                       {"mask_token", "1000", "got 999"}));
}

TEST(Corpus, TokenizingTextKeepsBytesPerToken) {
  const std::string text = "the light and the water\nand God said\n";
  const ByteCorpus bytes(std::vector<std::uint8_t>(text.begin(), text.end()), "t.txt");
  const TokenCorpus same = tnn::tokenize_corpus(bytes, tnn::Tokenizer());
  EXPECT_EQ(all_ids(same), all_ids(bytes));
  EXPECT_EQ(same.bytes_per_token(), 1.0);
  EXPECT_STREQ(same.unit(), "bytes");
#if defined(TNN_USE_SENTENCEPIECE)
  const tnn::Tokenizer sp = tnn::Tokenizer::sentencepiece(tnn_test::train_tiny_sentencepiece(tnn_test::tiny_text()), "tiny");
  const TokenCorpus tokens = tnn::tokenize_corpus(bytes, sp);
  EXPECT_LT(tokens.size(), bytes.size());
  EXPECT_EQ(tokens.vocab_size(), sp.vocab_size());
  EXPECT_DOUBLE_EQ(tokens.bytes_per_token(), double(text.size()) / double(tokens.size()));
  EXPECT_EQ(sp.decode(all_ids(tokens)), text);
  EXPECT_EQ(tokens.source(), "t.txt");
#endif
}

}  // namespace
