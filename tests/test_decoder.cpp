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
