// The evaluation loop (infer/evaluate.hpp) against a direct computation, its parts adding up,
// the length table; and tnn::load_lm, the one-call loader the evaluation commands use.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "temp_files.hpp"
#include "tnn/infer/evaluate.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/data.hpp"

using tnn::Index;

namespace {

tnn::ByteCorpus text(Index size) {
  tnn::Rng rng(11);
  std::vector<std::uint8_t> b(static_cast<std::size_t>(size));
  for (auto& c : b) c = static_cast<std::uint8_t>('a' + rng.below(5));
  return tnn::ByteCorpus(std::move(b), "text");
}

template <class T>
tnn::TnnLM<T> model(bool causal = true) {
  tnn::TnnConfig c;
  c.vocab_size = causal ? tnn::kByteVocab : tnn::kMlmVocab;
  c.causal = causal;
  c.dim = 8;
  c.layers = 1;
  c.expand_ratio = 2;
  c.rpe_dim = 4;
  tnn::TnnLM<T> m(c);
  m.init_weights(2);
  return m;
}

// The slow, obvious twin: each window alone, its cross-entropy and argmax counted by hand.
tnn::EvalResult direct(tnn::TnnLM<double>& m, const tnn::EvalWindows& w) {
  const Index N = w.seq_len(), V = m.config().vocab_size;
  tnn::Tensor<std::int32_t> tok({1, N}), tgt({1, N});
  double sum = 0;
  Index n = 0, correct = 0;
  for (Index i = 0; i < w.num_windows(); ++i) {
    w.window(i, tok.data(), tgt.data());
    const tnn::Tensor<double>& logits = m.forward(tok);
    for (Index p = 0; p < N; ++p) {
      if (tgt[p] < 0) continue;
      const double* z = logits.data() + p * V;
      double mx = z[0];
      Index arg = 0;
      for (Index v = 1; v < V; ++v)
        if (z[v] > mx) mx = z[v], arg = v;
      double se = 0;
      for (Index v = 0; v < V; ++v) se += std::exp(z[v] - mx);
      sum += std::log(se) + mx - z[tgt[p]];
      ++n;
      if (arg == tgt[p]) ++correct;
    }
  }
  tnn::EvalResult r;
  r.tokens = n;
  r.loss = sum / double(n);
  r.accuracy = double(correct) / double(n);
  return r;
}

}  // namespace

TEST(Evaluate, MatchesWindowByWindowCrossEntropyAtEveryBatchSize) {
  const tnn::ByteCorpus data = text(300);
  auto m = model<double>();
  const tnn::EvalResult want = direct(m, tnn::EvalWindows(data, 1, 32, tnn::LmObjective::Clm));
  EXPECT_EQ(want.tokens, 299);
  for (Index batch : {1, 3, 10}) {
    const tnn::EvalResult got = tnn::evaluate(m, tnn::EvalWindows(data, batch, 32, tnn::LmObjective::Clm));
    EXPECT_EQ(got.tokens, want.tokens) << batch;
    EXPECT_NEAR(got.loss, want.loss, 1e-12) << batch;
    EXPECT_DOUBLE_EQ(got.accuracy, want.accuracy) << batch;
  }
  EXPECT_NEAR(want.bpb(), want.loss / std::log(2.0), 1e-15);
  EXPECT_NEAR(want.ppl(), std::exp(want.loss), 1e-12);
}

// Bits per byte are the total nats over the text's bytes: for bytes exactly loss / ln 2 (as
// before tokenizers), for a tokenized text the same sum spread over bytes_per_token x the tokens.
TEST(Evaluate, BitsPerByteCountTheTextsBytesNotItsTokens) {
  const tnn::ByteCorpus data = text(300);
  auto m = model<double>();
  const tnn::EvalResult bytes = tnn::evaluate(m, tnn::EvalWindows(data, 3, 32, tnn::LmObjective::Clm));
  EXPECT_EQ(bytes.bytes, 299.0);
  EXPECT_EQ(bytes.bpb(), bytes.loss / std::log(2.0));  // bit for bit
  // The same ids as a corpus of "subword" tokens standing for 3.5 bytes each.
  std::vector<std::uint32_t> ids(data.bytes().begin(), data.bytes().end());
  const tnn::TokenCorpus tokens(ids, 256, "tokens", 3.5);
  const tnn::EvalSums s = tnn::eval_sums(m, tnn::EvalWindows(tokens, 3, 32, tnn::LmObjective::Clm));
  const tnn::EvalResult r = tnn::EvalResult::from(s);
  EXPECT_DOUBLE_EQ(r.loss, bytes.loss);  // per token: unchanged
  EXPECT_DOUBLE_EQ(s.bytes, 299 * 3.5);
  EXPECT_NEAR(r.bpb(), s.loss_sum / (299 * 3.5) / std::log(2.0), 1e-12);
  EXPECT_NEAR(r.bpb(), bytes.bpb() / 3.5, 1e-12);
  // Unknown bytes (token files): no bits per byte rather than a wrong one.
  const tnn::TokenCorpus unknown(ids, 256, "token file");
  EXPECT_TRUE(std::isnan(tnn::evaluate(m, tnn::EvalWindows(unknown, 3, 32, tnn::LmObjective::Clm)).bpb()));
  // Sums without bytes (classifiers) count a token as a byte.
  tnn::EvalSums no_text = s;
  no_text.bytes = 0;
  EXPECT_EQ(tnn::EvalResult::from(no_text).bpb(), r.loss / std::log(2.0));
}

TEST(Evaluate, MaskedModelScoresOnlyMaskedPositions) {
  const tnn::ByteCorpus data = text(200);
  auto m = model<double>(/*causal=*/false);
  const tnn::EvalWindows w(data, 2, 24, tnn::LmObjective::Mlm, tnn::kEvalMaskSeed);
  const tnn::EvalResult want = direct(m, w);
  const tnn::EvalResult got = tnn::evaluate_corpus(m, data, 24, 2, tnn::LmObjective::Mlm);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_GT(got.tokens, 0);
  EXPECT_LT(got.tokens, 200);
  EXPECT_NEAR(got.loss, want.loss, 1e-12);
  EXPECT_DOUBLE_EQ(got.accuracy, want.accuracy);
}

TEST(Evaluate, StridedPartsAddUpToTheWhole) {
  const tnn::ByteCorpus data = text(500);
  auto m = model<double>();
  const tnn::EvalWindows w(data, 2, 20, tnn::LmObjective::Clm);
  const tnn::EvalSums whole = tnn::eval_sums(m, w);
  for (Index parts : {2, 3, 20}) {
    tnn::EvalSums sum;
    for (Index r = 0; r < parts; ++r) sum += tnn::eval_sums(m, w, r, parts);
    EXPECT_EQ(sum.tokens, whole.tokens) << parts;
    EXPECT_EQ(sum.correct, whole.correct) << parts;
    EXPECT_NEAR(sum.loss_sum, whole.loss_sum, 1e-9) << parts;
  }
  EXPECT_THROW(tnn::eval_sums(m, w, 0, 0), tnn::ValueError);
  EXPECT_EQ(tnn::EvalResult::from(tnn::EvalSums{}).loss, 0.0);  // nothing scored: zeros, not NaN
}

TEST(Evaluate, LengthTableHasOneRowPerLengthInOrder) {
  const tnn::ByteCorpus data = text(400);
  auto m = model<double>();
  std::vector<Index> seen;
  const std::vector<Index> lengths = {64, 16, 128};
  const auto rows = tnn::evaluate_lengths(
      m, lengths, [&](Index n) { return tnn::EvalWindows(data, 2, n, tnn::LmObjective::Clm); },
      [&](const tnn::LengthResult& r) { seen.push_back(r.length); });
  EXPECT_EQ(seen, lengths);
  ASSERT_EQ(rows.size(), 3u);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const tnn::EvalResult one = tnn::evaluate_corpus(m, data, lengths[i], 2, tnn::LmObjective::Clm);
    EXPECT_EQ(rows[i].length, lengths[i]);
    EXPECT_EQ(rows[i].result.tokens, 399);
    EXPECT_DOUBLE_EQ(rows[i].result.loss, one.loss);
  }
  // Different lengths see different contexts, so the numbers differ.
  EXPECT_NE(rows[0].result.loss, rows[1].result.loss);
  EXPECT_THROW(tnn::evaluate_lengths(m, {}, [&](Index n) { return tnn::EvalWindows(data, 2, n, tnn::LmObjective::Clm); }),
               tnn::ValueError);
}

TEST(LoadLm, GivesTheSavedModelInEitherPrecision) {
  tnn_test::TempDir dir("tnn_evaluate_");
  const std::string path = dir.file("m.safetensors");
  auto m = model<float>();
  tnn::save_model(path, m);
  tnn::TnnLM<float> f = tnn::load_lm<float>(path);
  tnn::TnnLM<double> d = tnn::load_lm<double>(path);
  EXPECT_EQ(f.config().to_json(), m.config().to_json());
  tnn::Tensor<std::int32_t> tok({1, 12});
  for (Index i = 0; i < 12; ++i) tok[i] = std::int32_t(97 + i % 5);
  const tnn::Tensor<float> want = m.forward(tok);
  const tnn::Tensor<float>& got = f.forward(tok);
  const tnn::Tensor<double>& got_d = d.forward(tok);
  for (Index i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i], want[i]);
    EXPECT_NEAR(got_d[i], want[i], 1e-4);
  }
  EXPECT_THROW(tnn::load_lm<float>(dir.file("missing.safetensors")), tnn::Error);
}
