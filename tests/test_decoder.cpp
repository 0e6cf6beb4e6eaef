// Incremental decoding equals the full forward, token by token (spec section 11).
#include <gtest/gtest.h>

#include <cmath>

#include "tnn/infer/decoder.hpp"

using namespace tnn;

namespace {
TnnConfig small_config() {
  TnnConfig c;
  c.vocab_size = 13;
  c.dim = 8;
  c.layers = 2;
  c.heads = 2;
  c.rpe_dim = 6;
  c.rpe_layers = 2;
  return c;
}

template <class T>
double max_rel_diff_to_full_forward(const TnnConfig& cfg, Index n, Index capacity) {
  TnnLM<T> model(cfg);
  model.init_weights(7);
  Rng rng(3);
  Tensor<std::int32_t> tokens({1, n});
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng.below(std::uint64_t(cfg.vocab_size)));
  const Tensor<T> full = model.forward(tokens);  // [1, n, V]
  IncrementalDecoder<T> dec(model, capacity);
  double diff = 0, scale = 0;
  const Index V = cfg.vocab_size;
  for (Index i = 0; i < n; ++i) {
    const Tensor<T>& step = dec.step(tokens[i]);
    for (Index v = 0; v < V; ++v) {
      diff = std::max(diff, std::abs(double(step[v]) - double(full[i * V + v])));
      scale = std::max(scale, std::abs(double(full[i * V + v])));
    }
  }
  EXPECT_EQ(dec.position(), n);
  return diff / scale;
}
}  // namespace

TEST(Decoder, TokenByTokenLogitsEqualFullForwardDouble) {
  TnnConfig cfg = small_config();
  EXPECT_LT(max_rel_diff_to_full_forward<double>(cfg, 70, 128), 1e-11);
}

TEST(Decoder, GrowingTheBuffersKeepsItExact) {
  TnnConfig cfg = small_config();
  EXPECT_LT(max_rel_diff_to_full_forward<double>(cfg, 50, 3), 1e-11);
}

TEST(Decoder, EveryVariantMatches) {
  for (NormType norm : {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm})
    for (bool prenorm : {true, false})
      for (int decay = 0; decay < 3; ++decay) {
        TnnConfig cfg = small_config();
        cfg.norm_type = norm;
        cfg.prenorm = prenorm;
        cfg.use_decay = decay == 0;
        cfg.use_multi_decay = decay == 1;
        cfg.tie_embeddings = decay == 2;
        cfg.gtu_act = decay == 1 ? Activation::Gelu : Activation::Silu;
        SCOPED_TRACE(cfg.to_json().dump());
        EXPECT_LT(max_rel_diff_to_full_forward<double>(cfg, 40, 64), 1e-11);
      }
}

TEST(Decoder, FloatMatchesWithinRounding) {
  TnnConfig cfg = small_config();
  EXPECT_LT(max_rel_diff_to_full_forward<float>(cfg, 300, 512), 1e-4);
}

TEST(Decoder, RefusesBidirectionalModelsAndBadTokens) {
  TnnConfig cfg = small_config();
  cfg.causal = false;
  TnnLM<float> bidir(cfg);
  EXPECT_THROW(IncrementalDecoder<float>(bidir, 8), ConfigError);
  cfg.causal = true;
  TnnLM<float> model(cfg);
  IncrementalDecoder<float> dec(model, 8);
  EXPECT_THROW(dec.step(13), ValueError);
  EXPECT_THROW(dec.step(-1), ValueError);
}

// A prompt fed by prefill (one full forward) continues exactly like one fed token
// by token; rewind(n) then steps again as if the later tokens were never fed.
TEST(Decoder, PrefillAndRewindContinueLikeStepping) {
  TnnConfig cfg = small_config();
  TnnLM<double> model(cfg);
  model.init_weights(11);
  const Index n = 45, extra = 6, V = cfg.vocab_size;
  Rng rng(5);
  Tensor<std::int32_t> tokens({n + extra});
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng.below(std::uint64_t(V)));
  Tensor<std::int32_t> prompt({n});
  std::copy(tokens.begin(), tokens.begin() + n, prompt.begin());

  IncrementalDecoder<double> stepped(model, 64);
  Tensor<double> last;
  for (Index i = 0; i < n; ++i) last = stepped.step(tokens[i]);
  IncrementalDecoder<double> filled(model, 8);  // prefill grows the buffers
  const Tensor<double> first = filled.prefill(prompt);
  EXPECT_EQ(filled.position(), n);
  for (Index v = 0; v < V; ++v) EXPECT_NEAR(first[v], last[v], 1e-11 * (1 + std::abs(last[v])));
  for (Index i = n; i < n + extra; ++i) {
    const Tensor<double> a = stepped.step(tokens[i]);
    const Tensor<double>& b = filled.step(tokens[i]);
    for (Index v = 0; v < V; ++v) EXPECT_NEAR(a[v], b[v], 1e-11 * (1 + std::abs(a[v])));
  }
  // Rewound to n, the next step sees the same history as the first step after the prompt.
  filled.rewind(n);
  const Tensor<double>& again = filled.step(tokens[n]);
  IncrementalDecoder<double> ref(model, 64);
  ref.prefill(prompt);
  const Tensor<double>& expect = ref.step(tokens[n]);
  for (Index v = 0; v < V; ++v) EXPECT_EQ(again[v], expect[v]);
  EXPECT_THROW(filled.rewind(n + 2), ValueError);
  EXPECT_THROW(filled.prefill(prompt), ValueError);  // not at position 0
}

// With a decay that underflows to exactly 0, the sum over the history skips the
// zero tail; results stay those of the full forward.
TEST(Decoder, LongHistoryWithUnderflowedDecayMatchesFullForward) {
  TnnConfig cfg = small_config();
  cfg.gamma = 0.5;  // float: 0.5^k is 0 beyond k ~ 126-149, so most of the history is skipped
  EXPECT_LT(max_rel_diff_to_full_forward<float>(cfg, 400, 512), 1e-4);
}

TEST(Decoder, WideLayersSplitTheHistorySumOverThreadsExactly) {
  // E = 4096 channels: from position 512 on, the history sum has more than 2^21
  // multiply-adds a step and is split over the threads (when there are several).
  TnnConfig cfg = small_config();
  cfg.layers = 1;
  cfg.expand_ratio = 512;
  EXPECT_LT(max_rel_diff_to_full_forward<double>(cfg, 560, 600), 1e-11);
}
