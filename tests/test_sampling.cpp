#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "tnn/infer/sampling.hpp"

using tnn::Index;
using tnn::SamplingConfig;
using tnn::TokenSampler;

namespace {

SamplingConfig cfg(double temperature, Index top_k = 0, double top_p = 1.0) {
  SamplingConfig c;
  c.temperature = temperature;
  c.top_k = top_k;
  c.top_p = top_p;
  return c;
}

std::vector<double> softmax(const std::vector<double>& logits, double temperature) {
  double mx = -std::numeric_limits<double>::infinity();
  for (double l : logits) mx = std::max(mx, l);
  std::vector<double> p(logits.size());
  double sum = 0;
  for (std::size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp((logits[i] - mx) / temperature);
  for (double& x : p) x /= sum;
  return p;
}

// Draws n tokens and checks every frequency against want within 5 standard deviations.
template <class T>
void expect_frequencies(const std::vector<T>& logits, const SamplingConfig& c, const std::vector<double>& want,
                        std::uint64_t seed, int n = 200000) {
  TokenSampler s(c);
  tnn::Rng rng(seed);
  std::vector<long> count(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(s.sample(logits.data(), Index(logits.size()), rng))];
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double f = double(count[i]) / n;
    const double sd = std::sqrt(want[i] * (1 - want[i]) / n);
    if (want[i] == 0)
      EXPECT_EQ(count[i], 0) << "token " << i;
    else
      EXPECT_NEAR(f, want[i], 5 * sd + 1e-12) << "token " << i;
  }
}

}  // namespace

TEST(Sampling, GreedyIsArgmaxAndDrawsNothing) {
  const std::vector<float> logits{0.1f, 2.5f, -1.0f, 2.4f, 0.0f};
  TokenSampler s(cfg(0.0));
  tnn::Rng rng(5);
  const auto before = rng.state();
  EXPECT_EQ(s.sample(logits.data(), 5, rng), 1);
  EXPECT_EQ(rng.state(), before);
  const std::vector<double> tie{1.0, 3.0, 3.0, -2.0};
  EXPECT_EQ(tnn::argmax_token(tie.data(), 4), 1);  // ties go to the lowest index
  EXPECT_EQ(tnn::sample_token(tie.data(), 4, cfg(0.0), rng), 1);
}

TEST(Sampling, TopKOfOneIsArgmaxAtAnyTemperature) {
  const std::vector<double> logits{0.3, -0.2, 0.31, 0.0};
  tnn::Rng rng(1);
  for (double t : {0.5, 1.0, 10.0}) {
    TokenSampler s(cfg(t, 1));
    for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(logits.data(), 4, rng), 2);
  }
}

TEST(Sampling, FrequenciesMatchSoftmaxAtTemperatureOne) {
  const std::vector<double> logits{0.5, -1.0, 1.2, 0.0, -0.3, 0.9};
  expect_frequencies(logits, cfg(1.0), softmax(logits, 1.0), 11);
  // Float logits go through the same path.
  const std::vector<float> lf(logits.begin(), logits.end());
  expect_frequencies(lf, cfg(1.0), softmax(logits, 1.0), 12);
}

TEST(Sampling, TemperatureSharpensAndFlattens) {
  const std::vector<double> logits{0.5, -1.0, 1.2, 0.0};
  expect_frequencies(logits, cfg(2.0), softmax(logits, 2.0), 21);
  expect_frequencies(logits, cfg(0.5), softmax(logits, 0.5), 22);
}

TEST(Sampling, TopKDrawsFromTheKMostProbableRenormalized) {
  const std::vector<double> logits{0.0, 3.0, 1.0, 2.0, -1.0};
  const auto p = softmax(logits, 1.0);
  const double z = p[1] + p[3];
  expect_frequencies(logits, cfg(1.0, 2), {0, p[1] / z, 0, p[3] / z, 0}, 31);
  // k >= V keeps everything.
  expect_frequencies(logits, cfg(1.0, 10), p, 32);
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.1, 0.5, 0.05, 0.2, 0.15 (shuffled so order is not index order).
  const std::vector<double> probs{0.1, 0.5, 0.05, 0.2, 0.15};
  std::vector<double> logits;
  for (double q : probs) logits.push_back(std::log(q));
  // 0.5 < 0.6 <= 0.5 + 0.2: keep {1, 3}.
  expect_frequencies(logits, cfg(1.0, 0, 0.6), {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0}, 41);
  // Exactly reaching the mass counts (0.5 + 0.2 = 0.7 despite rounding).
  expect_frequencies(logits, cfg(1.0, 0, 0.7), {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0}, 42);
  // Just above: the next most probable (0.15) joins.
  expect_frequencies(logits, cfg(1.0, 0, 0.71), {0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85}, 43);
  // Below the top probability: only the top token.
  expect_frequencies(logits, cfg(1.0, 0, 0.3), {0, 1, 0, 0, 0}, 44, 2000);
  // top-k first, then top-p of the renormalized rest: k = 3 keeps 0.5, 0.2, 0.15 (mass 0.85);
  // p = 0.9 of that is 0.765 > 0.7, so all three stay.
  expect_frequencies(logits, cfg(1.0, 3, 0.9), {0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85}, 45);
}

TEST(Sampling, TiesKeepTheLowestIndicesAndRoundingDoesNotGrowTheNucleus) {
  // 25 equal logits: top-k 3 keeps tokens 0, 1, 2. top-p 0.28 keeps exactly 7 tokens, although
  // 0.28 * 25 = 7.000000000000001 in double exceeds the mass 7 of seven tokens.
  const std::vector<double> flat(25, 0.5);
  std::vector<double> want(25, 0.0);
  for (int i = 0; i < 3; ++i) want[i] = 1.0 / 3;
  expect_frequencies(flat, cfg(1.0, 3), want, 46, 30000);
  std::fill(want.begin(), want.end(), 0.0);
  for (int i = 0; i < 7; ++i) want[i] = 1.0 / 7;
  expect_frequencies(flat, cfg(1.0, 0, 0.28), want, 47, 30000);
}

TEST(Sampling, SameSeedSameTokens) {
  const std::vector<double> logits{0.5, -1.0, 1.2, 0.0, -0.3, 0.9};
  for (const auto& c : {cfg(1.0), cfg(0.8, 3), cfg(1.0, 0, 0.9)}) {
    TokenSampler a(c), b(c);
    tnn::Rng ra(77), rb(77), rc(78);
    std::vector<std::int32_t> sa, sb, sc;
    for (int i = 0; i < 200; ++i) {
      sa.push_back(a.sample(logits.data(), 6, ra));
      sb.push_back(b.sample(logits.data(), 6, rb));
      sc.push_back(a.sample(logits.data(), 6, rc));
    }
    EXPECT_EQ(sa, sb);
    EXPECT_NE(sa, sc);
  }
}

TEST(Sampling, MinusInfinityIsNeverDrawn) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const std::vector<double> logits{ninf, 0.0, ninf, 0.0};
  expect_frequencies(logits, cfg(1.0), {0, 0.5, 0, 0.5}, 51, 20000);
  expect_frequencies(logits, cfg(1.0, 3), {0, 0.5, 0, 0.5}, 52, 20000);
}

TEST(Sampling, RowOfALogitsTensor) {
  tnn::Tensor<float> logits({2, 3, 4});  // [B, N, V]
  logits[1 * 12 + 2 * 4 + 3] = 5.0f;     // row (1, 2) prefers token 3
  TokenSampler s(cfg(0.0));
  tnn::Rng rng(0);
  EXPECT_EQ(s.sample_row(logits, 5, rng), 3);
  EXPECT_EQ(s.sample_row(logits, 0, rng), 0);
  EXPECT_THROW(s.sample_row(logits, 6, rng), tnn::ValueError);
}

TEST(Sampling, BadInputsAreErrors) {
  tnn::Rng rng(0);
  TokenSampler s(cfg(1.0));
  const std::vector<double> nan_row{0.0, std::nan(""), 1.0};
  try {
    s.sample(nan_row.data(), 3, rng);
    FAIL();
  } catch (const tnn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("logits[1]"), std::string::npos) << e.what();
  }
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> pinf{0.0, inf}, all_ninf{-inf, -inf};
  EXPECT_THROW(s.sample(pinf.data(), 2, rng), tnn::ValueError);
  EXPECT_THROW(s.sample(all_ninf.data(), 2, rng), tnn::ValueError);
  EXPECT_THROW(s.sample(pinf.data(), 0, rng), tnn::ShapeError);
  EXPECT_THROW(TokenSampler(cfg(-1.0)), tnn::ConfigError);
  EXPECT_THROW(TokenSampler(cfg(1.0, -1)), tnn::ConfigError);
  EXPECT_THROW(TokenSampler(cfg(1.0, 0, 0.0)), tnn::ConfigError);
  EXPECT_THROW(TokenSampler(cfg(1.0, 0, 1.5)), tnn::ConfigError);
}
