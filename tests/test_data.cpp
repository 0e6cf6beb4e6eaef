#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_helpers.hpp"
#include "tnn/train/data.hpp"
#include "tnn/model/loss.hpp"

using tnn::Batch;
using tnn::BatchSampler;
using tnn::ByteCorpus;
using tnn::EvalWindows;
using tnn::Index;
using tnn::LmObjective;

using tnn::testing_helpers::throws;

namespace {

// data[i] = i % period: a byte tells its position modulo period, so tests can check offsets.
ByteCorpus pattern(Index size, int period, const std::string& name = "pattern") {
  std::vector<std::uint8_t> b(static_cast<std::size_t>(size));
  for (Index i = 0; i < size; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i % period);
  return ByteCorpus(std::move(b), name);
}

std::string temp_file(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "tnn_test_data_" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

bool same(const Batch& a, const Batch& b) {
  return a.tokens.shape() == b.tokens.shape() && std::equal(a.tokens.begin(), a.tokens.end(), b.tokens.begin()) &&
         std::equal(a.targets.begin(), a.targets.end(), b.targets.begin());
}


}  // namespace

TEST(Data, ClmTargetsAreTheNextBytes) {
  const auto corpus = pattern(5000, 251);
  BatchSampler s(corpus, 8, 64, LmObjective::Clm, 42);
  Batch b;
  for (int step = 0; step < 20; ++step) {
    s.sample(step, b);
    ASSERT_EQ(b.tokens.shape(), (tnn::Shape{8, 64}));
    ASSERT_EQ(b.targets.shape(), (tnn::Shape{8, 64}));
    for (Index r = 0; r < 8; ++r) {
      const std::int32_t* tok = b.tokens.data() + r * 64;
      const std::int32_t* tgt = b.targets.data() + r * 64;
      for (Index i = 0; i < 64; ++i) {
        EXPECT_EQ(tgt[i], (tok[i] + 1) % 251);
        if (i + 1 < 64) {
          EXPECT_EQ(tgt[i], tok[i + 1]);
        }
      }
    }
  }
}

TEST(Data, ClmOffsetsCoverEveryStartAndNoMore) {
  const auto corpus = pattern(13, 256);  // N = 10: starts 0, 1, 2 (each needs 11 bytes)
  BatchSampler s(corpus, 16, 10, LmObjective::Clm, 1);
  std::set<std::int32_t> starts;
  Batch b;
  for (int step = 0; step < 20; ++step) {
    s.sample(step, b);
    for (Index r = 0; r < 16; ++r) starts.insert(b.tokens[r * 10]);
  }
  EXPECT_EQ(starts, (std::set<std::int32_t>{0, 1, 2}));
}

TEST(Data, BatchesAreAPureFunctionOfSeedAndStep) {
  const auto corpus = pattern(10000, 251);
  for (auto obj : {LmObjective::Clm, LmObjective::Mlm}) {
    BatchSampler s1(corpus, 4, 32, obj, 123), s2(corpus, 4, 32, obj, 123), other(corpus, 4, 32, obj, 124);
    Batch a, b, c;
    s1.sample(5, a);
    s1.sample(6, c);  // sampling other steps in between changes nothing
    s2.sample(5, b);
    EXPECT_TRUE(same(a, b));
    EXPECT_FALSE(same(a, c));
    other.sample(5, c);
    EXPECT_FALSE(same(a, c));
    // The stream form: same Rng state, same batch.
    tnn::Rng r1(9), r2(9);
    s1.sample(r1, a);
    s2.sample(r2, b);
    EXPECT_TRUE(same(a, b));
    EXPECT_EQ(r1.state(), r2.state());
  }
}

TEST(Data, MlmMaskingProportions) {
  // Over ~100k positions: 15% selected; of those 80% mask, 10% random byte, 10% unchanged.
  const auto corpus = pattern(20000, 251);
  BatchSampler s(corpus, 8, 64, LmObjective::Mlm, 7);
  Batch b;
  long positions = 0, selected = 0, masked = 0, replaced = 0, kept = 0;
  std::set<std::int32_t> random_values;
  for (int step = 0; step < 200; ++step) {
    s.sample(step, b);
    for (Index r = 0; r < 8; ++r) {
      const std::int32_t* tok = b.tokens.data() + r * 64;
      const std::int32_t* tgt = b.targets.data() + r * 64;
      // The position modulo 251 of the window start, from any unselected position.
      Index i0 = 0;
      while (i0 < 64 && tgt[i0] != -1) ++i0;
      ASSERT_LT(i0, 64);
      const std::int32_t base = ((tok[i0] - static_cast<std::int32_t>(i0)) % 251 + 251) % 251;
      for (Index i = 0; i < 64; ++i) {
        const std::int32_t orig = (base + static_cast<std::int32_t>(i)) % 251;
        ++positions;
        if (tgt[i] == -1) {
          EXPECT_EQ(tok[i], orig);  // not selected: untouched
          continue;
        }
        ++selected;
        EXPECT_EQ(tgt[i], orig);  // the target is the original byte
        if (tok[i] == tnn::kMaskToken) {
          ++masked;
        } else if (tok[i] == orig) {
          ++kept;
        } else {
          ++replaced;
          EXPECT_GE(tok[i], 0);
          EXPECT_LT(tok[i], 256);
          random_values.insert(tok[i]);
        }
      }
    }
  }
  const double sel = double(selected) / double(positions);
  EXPECT_NEAR(sel, 0.15, 0.006);  // ~5 standard deviations
  EXPECT_NEAR(double(masked) / double(selected), 0.8, 0.016);
  // A random byte equals the original 1 time in 256, which then counts as kept.
  EXPECT_NEAR(double(replaced) / double(selected), 0.1 * 255.0 / 256.0, 0.012);
  EXPECT_NEAR(double(kept) / double(selected), 0.1 + 0.1 / 256.0, 0.012);
  EXPECT_GT(random_values.size(), 240u);  // replacements are spread over all bytes
}

TEST(Data, MlmVocabularyIsBytesPlusMask) {
  EXPECT_EQ(tnn::kByteVocab, 256);
  EXPECT_EQ(tnn::kMaskToken, 256);
  EXPECT_EQ(tnn::kMlmVocab, 257);
}

TEST(Data, ClmEvaluationScoresEveryByteOnce) {
  // data[i] = i, so a target's value is the position of the byte it scores.
  for (Index size : {103, 101, 11}) {
    const auto corpus = pattern(size, 256);
    EvalWindows ev(corpus, 4, 10, LmObjective::Clm);
    EXPECT_EQ(ev.num_windows(), (size - 1 + 9) / 10);
    EXPECT_EQ(ev.num_positions(), size - 1);
    std::map<std::int32_t, int> scored;
    Batch b;
    Index windows = 0, total = 0;
    for (Index i = 0; i < ev.num_batches(); ++i) {
      ev.batch(i, b);
      EXPECT_EQ(b.tokens.dim(1), 10);
      windows += b.tokens.dim(0);
      total += tnn::count_targets(b.targets);
      for (Index k = 0; k < b.tokens.size(); ++k) {
        if (k % 10) {
          EXPECT_EQ(b.tokens[k], b.tokens[k - 1] + 1);  // contiguous windows
        }
        if (b.targets[k] == -1) continue;
        EXPECT_EQ(b.targets[k], b.tokens[k] + 1);
        ++scored[b.targets[k]];
      }
    }
    EXPECT_EQ(windows, ev.num_windows());
    EXPECT_EQ(total, size - 1);
    ASSERT_EQ(static_cast<Index>(scored.size()), size - 1) << size;
    EXPECT_EQ(scored.begin()->first, 1);
    EXPECT_EQ(scored.rbegin()->first, size - 1);
    for (auto [pos, n] : scored) EXPECT_EQ(n, 1) << "byte " << pos;
  }
}

TEST(Data, ClmEvaluationTailWindowIsEndAligned) {
  const auto corpus = pattern(103, 256);  // 102 predictions, N = 10: 10 full windows + a tail
  EvalWindows ev(corpus, 4, 10, LmObjective::Clm);
  ASSERT_EQ(ev.num_windows(), 11);
  ASSERT_EQ(ev.num_batches(), 3);
  Batch b;
  ev.batch(2, b);
  ASSERT_EQ(b.tokens.shape(), (tnn::Shape{3, 10}));  // the last batch holds the 3 windows left
  const std::int32_t* tok = b.tokens.data() + 2 * 10;
  const std::int32_t* tgt = b.targets.data() + 2 * 10;
  EXPECT_EQ(tok[0], 92);  // tokens 92..101, predicting 93..102; 93..100 were scored already
  for (int i = 0; i < 8; ++i) EXPECT_EQ(tgt[i], -1);
  EXPECT_EQ(tgt[8], 101);
  EXPECT_EQ(tgt[9], 102);
}

TEST(Data, MlmEvaluationIsDeterministicAndScoresPositionsAtMostOnce) {
  const auto corpus = pattern(250, 256);
  EvalWindows ev4(corpus, 4, 16, LmObjective::Mlm, 5), ev1(corpus, 1, 16, LmObjective::Mlm, 5),
      other(corpus, 4, 16, LmObjective::Mlm, 6);
  ASSERT_EQ(ev4.num_windows(), 16);  // 15 full + the end-aligned tail
  std::map<std::int32_t, int> scored;
  std::vector<std::int32_t> all4, all_other;
  Batch b;
  for (Index i = 0; i < ev4.num_batches(); ++i) {
    ev4.batch(i, b);
    all4.insert(all4.end(), b.tokens.begin(), b.tokens.end());
    other.batch(i, b);
    all_other.insert(all_other.end(), b.tokens.begin(), b.tokens.end());
  }
  std::vector<std::int32_t> t(16), g(16);
  for (Index w = 0; w < ev1.num_windows(); ++w) {
    ev1.batch(w, b);
    const Index start = w < 15 ? w * 16 : 250 - 16;
    for (Index i = 0; i < 16; ++i) {
      if (b.targets[i] == -1) {
        EXPECT_EQ(b.tokens[i], start + i);
      } else {
        EXPECT_EQ(b.targets[i], start + i);
        ++scored[b.targets[i]];
      }
    }
  }
  for (auto [pos, n] : scored) EXPECT_EQ(n, 1) << "byte " << pos;
  EXPECT_GT(scored.size(), 10u);  // about 15% of 250
  EXPECT_LT(scored.size(), 80u);
  // The same windows whatever the batch size; another seed masks differently.
  for (Index i = 0; i < ev4.num_batches(); ++i) {
    ev4.batch(i, b);
    for (Index r = 0; r < b.tokens.dim(0); ++r) {
      ev1.window(i * 4 + r, t.data(), g.data());
      EXPECT_TRUE(std::equal(t.begin(), t.end(), b.tokens.data() + r * 16));
      EXPECT_TRUE(std::equal(g.begin(), g.end(), b.targets.data() + r * 16));
    }
  }
  EXPECT_NE(all4, all_other);
}

TEST(Data, TailSplitAndFiles) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>(i % 256));
  const std::string path = temp_file("split.bin", text);
  const auto split = tnn::load_split(path, 0.1);
  ASSERT_EQ(split.train.size(), 900);
  ASSERT_EQ(split.valid.size(), 100);
  EXPECT_EQ(split.train.data()[899], 899 % 256);
  EXPECT_EQ(split.valid.data()[0], 900 % 256);
  EXPECT_NE(split.valid.source().find(path), std::string::npos);
  const auto none = tnn::split_tail(ByteCorpus::from_file(path), 0.0);
  EXPECT_EQ(none.train.size(), 1000);
  EXPECT_TRUE(none.valid.empty());

  const std::string vpath = temp_file("valid.bin", "hello");
  const auto two = tnn::load_split(path, vpath);
  EXPECT_EQ(two.train.size(), 1000);
  EXPECT_EQ(two.valid.size(), 5);
  EXPECT_EQ(two.valid.source(), vpath);
  std::remove(path.c_str());
  std::remove(vpath.c_str());
}

TEST(Data, ErrorsNameThePathAndTheSizes) {
  const std::string missing = ::testing::TempDir() + "tnn_test_data_does_not_exist.bin";
  EXPECT_THROW(ByteCorpus::from_file(missing), tnn::IoError);
  EXPECT_TRUE(throws<tnn::Error>([&] { ByteCorpus::from_file(missing); }, {missing}));

  const std::string empty = temp_file("empty.bin", "");
  EXPECT_THROW(ByteCorpus::from_file(empty), tnn::FormatError);
  EXPECT_TRUE(throws<tnn::Error>([&] { ByteCorpus::from_file(empty); }, {empty, "0 bytes"}));

  const std::string shortf = temp_file("short.bin", "0123456789");  // 10 bytes
  const auto corpus = ByteCorpus::from_file(shortf);
  EXPECT_THROW(BatchSampler(corpus, 2, 10, LmObjective::Clm, 0), tnn::FormatError);  // needs 11
  EXPECT_TRUE(throws<tnn::Error>([&] { BatchSampler(corpus, 2, 10, LmObjective::Clm, 0); }, {shortf, "11", "10 bytes"}));
  EXPECT_TRUE(throws<tnn::Error>([&] { EvalWindows(corpus, 2, 11, LmObjective::Mlm); }, {shortf, "11", "10 bytes"}));
  EXPECT_NO_THROW(BatchSampler(corpus, 2, 10, LmObjective::Mlm, 0));  // MLM needs only N bytes
  EXPECT_NO_THROW(EvalWindows(corpus, 2, 9, LmObjective::Clm));

  EXPECT_THROW(BatchSampler(corpus, 0, 4, LmObjective::Clm, 0), tnn::ValueError);
  EXPECT_THROW(BatchSampler(corpus, 2, 0, LmObjective::Clm, 0), tnn::ValueError);
  EXPECT_THROW(tnn::split_tail(corpus, 1.0), tnn::ValueError);
  EXPECT_THROW(tnn::split_tail(corpus, -0.1), tnn::ValueError);
  tnn::MaskConfig bad;
  bad.mask_prob = 0.95;
  EXPECT_THROW(BatchSampler(corpus, 2, 4, LmObjective::Mlm, 0, bad), tnn::ConfigError);
  EvalWindows ev(corpus, 2, 4, LmObjective::Clm);
  Batch b;
  EXPECT_THROW(ev.batch(ev.num_batches(), b), tnn::ValueError);
  BatchSampler s(corpus, 2, 4, LmObjective::Clm, 0);
  EXPECT_THROW(s.sample(-1, b), tnn::ValueError);
  std::remove(empty.c_str());
  std::remove(shortf.c_str());
}

TEST(Data, BlockSplitTakesEveryKthBlockForValidation) {
  std::vector<std::uint8_t> bytes(1000);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i / 10);  // block id
  const tnn::ByteCorpus corpus(bytes, "blocks");
  const auto split = tnn::split_blocks(corpus, 0.25, 10);  // period 4: blocks 3, 7, 11, ...
  ASSERT_EQ(split.valid.size(), 250);
  ASSERT_EQ(split.train.size(), 750);
  for (tnn::Index i = 0; i < split.valid.size(); ++i) EXPECT_EQ(split.valid.data()[i] % 4, 3) << i;
  for (tnn::Index i = 0; i < split.train.size(); ++i) EXPECT_NE(split.train.data()[i] % 4, 3) << i;
  EXPECT_THROW(tnn::split_blocks(corpus, 0.0, 10), tnn::ValueError);
  EXPECT_THROW(tnn::split_blocks(corpus, 0.25, 0), tnn::ValueError);
  EXPECT_THROW(tnn::split_blocks(corpus, 0.25, 400), tnn::FormatError);  // fewer than 4 blocks
}
