// Incremental decoding equals the full forward, token by token (model.md §11).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tnn/infer/decoder.hpp"

using namespace tnn;

namespace {
TnnConfig small_config() {
  return TnnConfig::parse(R"({"vocab_size": 13, "dim": 8, "layers": 2, "heads": 2, "rpe_dim": 6, "rpe_layers": 2})");
}

// n random ids [1, n] of cfg's vocabulary, the same every time.
Tensor<std::int32_t> random_tokens(const TnnConfig& cfg, Index n) {
  Rng rng(3);
  Tensor<std::int32_t> tokens({1, n});
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng.below(std::uint64_t(cfg.vocab_size)));
  return tokens;
}

template <class T>
double max_rel_diff_to_full_forward(const TnnConfig& cfg, Index n, Index capacity) {
  TnnLM<T> model(cfg);
  model.init_weights(7);
  const Tensor<std::int32_t> tokens = random_tokens(cfg, n);
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
        cfg.decay = (decay == 1) ? TnoDecay::Learned : (decay == 0) ? TnoDecay::Fixed : TnoDecay::None;
        cfg.tie_embeddings = decay == 2;
        cfg.gtu_act = decay == 1 ? Activation::Gelu : Activation::Silu;
        SCOPED_TRACE(cfg.to_json().dump());
        EXPECT_LT(max_rel_diff_to_full_forward<double>(cfg, 40, 64), 1e-11);
      }
}

// The official options a causal LM can have (docs/official.md): each changes the embedding, the
// layers, the TNO or the head, and the decoder runs them as the full forward does.
TEST(Decoder, EveryOfficialOptionMatches) {
  std::vector<TnnConfig> cfgs;
  auto add = [&](auto&& set) {
    TnnConfig c = small_config();
    set(c);
    cfgs.push_back(c);
  };
  add([](TnnConfig& c) { c.normalize = true, c.act_type = Activation::Exp; });
  add([](TnnConfig& c) { c.normalize = true, c.act_type = Activation::Sigmoid, c.decay = TnoDecay::Learned; });
  add([](TnnConfig& c) { c.use_norm = true, c.norm_type = NormType::GatedRMSNorm; });
  add([](TnnConfig& c) { c.act_type = Activation::Elu, c.residual = true; });
  add([](TnnConfig& c) { c.bias = false, c.glu_bias = false, c.residual = true; });
  add([](TnnConfig& c) { c.scale_embedding = true, c.embed_norm_type = NormType::LayerNorm; });
  add([](TnnConfig& c) { c.final_norm_type = NormType::None, c.prenorm = false, c.postnorm_residual = true; });
  add([](TnnConfig& c) { c.lm_head_type = LmHeadType::Roberta, c.final_norm_type = NormType::ScaleNorm; });
  add([](TnnConfig& c) { c.lm_head_type = LmHeadType::Roberta, c.tie_embeddings = true, c.dropout = 0.3; });
  for (const TnnConfig& cfg : cfgs) {
    SCOPED_TRACE(cfg.to_json().dump());
    EXPECT_LT(max_rel_diff_to_full_forward<double>(cfg, 40, 16), 1e-11);
  }
}

// With normalize a prompt fed at once (the full forward's normalized TNO) continues like one fed
// token by token (the decoder's running sums of the coefficients).
TEST(Decoder, NormalizedPrefillContinuesLikeStepping) {
  TnnConfig cfg = small_config();
  cfg.normalize = true;
  cfg.act_type = Activation::Sigmoid;
  TnnLM<double> model(cfg);
  model.init_weights(3);
  const Index n = 20, V = cfg.vocab_size;
  Tensor<std::int32_t> prompt({n});
  Rng rng(8);
  for (auto& t : prompt) t = static_cast<std::int32_t>(rng.below(std::uint64_t(V)));
  IncrementalDecoder<double> stepped(model, 32), filled(model, 32);
  for (Index i = 0; i < n; ++i) stepped.step(prompt[i]);
  filled.prefill(prompt);
  const Tensor<double> a = stepped.step(5);
  const Tensor<double>& b = filled.step(5);
  for (Index v = 0; v < V; ++v) EXPECT_NEAR(a[v], b[v], 1e-11 * (1 + std::abs(a[v])));
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

// ---- the tiled (Fft) decoder and batches ----------------------------------------

namespace {
// Logits of `method` after prefilling the first `prompt` tokens (0: stepping from the
// start), then stepping to n, against the full forward at every position fed by step.
template <class T>
double method_vs_full_forward(const TnnConfig& cfg, Index n, Index prompt, DecoderMethod method, Index capacity = 64) {
  TnnLM<T> model(cfg);
  model.init_weights(7);
  const Tensor<std::int32_t> tokens = random_tokens(cfg, n);
  const Tensor<T> full = model.forward(tokens);  // [1, n, V]
  IncrementalDecoder<T> dec(model, capacity, 1, method);
  const Index V = cfg.vocab_size;
  double diff = 0, scale = 0;
  auto compare = [&](const Tensor<T>& got, Index i) {
    for (Index v = 0; v < V; ++v) {
      diff = std::max(diff, std::abs(double(got[v]) - double(full[i * V + v])));
      scale = std::max(scale, std::abs(double(full[i * V + v])));
    }
  };
  if (prompt > 0) {
    Tensor<std::int32_t> p({prompt});
    std::copy(tokens.begin(), tokens.begin() + prompt, p.begin());
    compare(dec.prefill(p), prompt - 1);
  }
  for (Index i = prompt; i < n; ++i) compare(dec.step(tokens[i]), i);
  EXPECT_EQ(dec.position(), n);
  return diff / scale;
}
}  // namespace

TEST(Decoder, FftLogitsEqualFullForwardAtEveryPositionDouble) {
  // 3000 positions: every block size up to 1024 completes, FFT products from 64 on
  TnnConfig cfg = small_config();
  EXPECT_LT(method_vs_full_forward<double>(cfg, 3000, 0, DecoderMethod::Fft), 1e-10);
}

TEST(Decoder, FftAfterPromptsOfAnyLengthDouble) {
  TnnConfig cfg = small_config();
  for (Index prompt : {1, 3, 63, 100, 129, 777})
    for (int decay = 0; decay < 3; ++decay) {
      cfg.decay = (decay == 2) ? TnoDecay::Learned : (decay == 1) ? TnoDecay::Fixed : TnoDecay::None;
      SCOPED_TRACE(std::to_string(prompt) + " " + cfg.to_json().dump());
      EXPECT_LT(method_vs_full_forward<double>(cfg, prompt + 1200, prompt, DecoderMethod::Fft), 1e-10);
    }
}

TEST(Decoder, FftEveryVariantMatchesDouble) {
  for (NormType norm : {NormType::SimpleRMSNorm, NormType::LayerNorm})
    for (bool prenorm : {true, false})
      for (int decay = 0; decay < 3; ++decay) {
        TnnConfig cfg = small_config();
        cfg.heads = 4;
        cfg.dim = 12;
        cfg.norm_type = norm;
        cfg.prenorm = prenorm;
        cfg.decay = (decay == 1) ? TnoDecay::Learned : (decay == 0) ? TnoDecay::Fixed : TnoDecay::None;
        cfg.tie_embeddings = decay == 2;
        SCOPED_TRACE(cfg.to_json().dump());
        EXPECT_LT(method_vs_full_forward<double>(cfg, 600, 37, DecoderMethod::Fft), 1e-10);
      }
}

TEST(Decoder, FftFloatWithinRounding) {
  TnnConfig cfg = small_config();
  EXPECT_LT(method_vs_full_forward<float>(cfg, 4100, 0, DecoderMethod::Fft, 4100), 1e-4);
  cfg.decay = TnoDecay::Fixed;
  EXPECT_LT(method_vs_full_forward<float>(cfg, 2100, 1000, DecoderMethod::Fft), 1e-4);
}

TEST(Decoder, AutoAndDirectMatchFullForward) {
  TnnConfig cfg = small_config();
  const Index n = IncrementalDecoder<double>::kAutoCrossover + 300;
  EXPECT_LT(method_vs_full_forward<double>(cfg, n, 0, DecoderMethod::Auto), 1e-10);
  EXPECT_LT(method_vs_full_forward<double>(cfg, n, 50, DecoderMethod::Direct), 1e-10);
}

// Each sequence of a batch decodes as it would alone: prompts [B, n], own tokens.
namespace {
void check_batch_equals_one_sequence_at_a_time(const TnnConfig& cfg, Index steps) {
  TnnLM<double> model(cfg);
  model.init_weights(5);
  const Index B = 3, n = 70, V = cfg.vocab_size;
  Rng rng(9);
  Tensor<std::int32_t> prompts({B, n}), next({steps, B});
  for (auto& t : prompts) t = static_cast<std::int32_t>(rng.below(std::uint64_t(V)));
  for (auto& t : next) t = static_cast<std::int32_t>(rng.below(std::uint64_t(V)));
  for (DecoderMethod m : {DecoderMethod::Direct, DecoderMethod::Fft, DecoderMethod::Auto}) {
    SCOPED_TRACE(to_string(m));
    IncrementalDecoder<double> batch(model, 16, B, m);
    std::vector<Tensor<double>> logits(std::size_t(B * (steps + 1)));  // [B][steps + 1]
    const Tensor<double>& first = batch.prefill(prompts);
    ASSERT_EQ(first.shape(), (Shape{B, V}));
    Tensor<std::int32_t> tok({B});
    for (Index b = 0; b < B; ++b) logits[std::size_t(b * (steps + 1))] = Tensor<double>({V});
    for (Index b = 0; b < B; ++b) std::copy(first.data() + b * V, first.data() + (b + 1) * V, logits[std::size_t(b * (steps + 1))].data());
    for (Index s = 0; s < steps; ++s) {
      std::copy(next.data() + s * B, next.data() + (s + 1) * B, tok.data());
      const Tensor<double>& l = batch.step(tok);
      for (Index b = 0; b < B; ++b) {
        Tensor<double>& dst = logits[std::size_t(b * (steps + 1) + s + 1)];
        dst = Tensor<double>({V});
        std::copy(l.data() + b * V, l.data() + (b + 1) * V, dst.data());
      }
    }
    for (Index b = 0; b < B; ++b) {
      IncrementalDecoder<double> alone(model, 16, 1, m);
      Tensor<std::int32_t> p({n});
      std::copy(prompts.data() + b * n, prompts.data() + (b + 1) * n, p.data());
      const Tensor<double>* l = &alone.prefill(p);
      for (Index s = 0; s <= steps; ++s) {
        if (s > 0) l = &alone.step(next[(s - 1) * B + b]);
        const Tensor<double>& want = logits[std::size_t(b * (steps + 1) + s)];
        for (Index v = 0; v < V; ++v) ASSERT_NEAR((*l)[v], want[v], 1e-12 * (1 + std::abs(want[v]))) << b << " " << s;
      }
    }
  }
}
}  // namespace

TEST(Decoder, BatchEqualsOneSequenceAtATime) { check_batch_equals_one_sequence_at_a_time(small_config(), 400); }

// One prompt [n] shared by every sequence of the batch; switching methods and
// rewinding in the middle keep every sequence exact.
namespace {
void check_shared_prompt_rewind_and_method_switch(const TnnConfig& cfg, double tol) {
  TnnLM<double> model(cfg);
  model.init_weights(5);
  const Index n = 90, V = cfg.vocab_size;
  Tensor<std::int32_t> tokens({1, 700});
  Rng rng(2);
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng.below(std::uint64_t(V)));
  const Tensor<double> full = model.forward(tokens);
  IncrementalDecoder<double> dec(model, 32, 2, DecoderMethod::Fft);
  Tensor<std::int32_t> prompt({n});
  std::copy(tokens.begin(), tokens.begin() + n, prompt.begin());
  dec.prefill(prompt);
  Tensor<std::int32_t> tok({2});
  auto check = [&](Index i) {
    tok.fill(tokens[i]);
    const Tensor<double>& l = dec.step(tok);
    for (Index b = 0; b < 2; ++b)
      for (Index v = 0; v < V; ++v) ASSERT_NEAR(l[b * V + v], full[i * V + v], tol * (1 + std::abs(full[i * V + v])));
  };
  for (Index i = n; i < 300; ++i) check(i);
  tok.fill(0);
  for (int j = 0; j < 50; ++j) dec.step(tok);  // junk after 300
  dec.rewind(300);
  dec.set_method(DecoderMethod::Direct);
  for (Index i = 300; i < 400; ++i) check(i);
  dec.set_method(DecoderMethod::Fft);
  for (Index i = 400; i < 700; ++i) check(i);
  EXPECT_THROW(dec.step(std::int32_t(1)), ShapeError);  // batch 2 needs two tokens
  Tensor<std::int32_t> bad({2});
  bad[1] = std::int32_t(V);
  EXPECT_THROW(dec.step(bad), ValueError);
}
}  // namespace

TEST(Decoder, SharedPromptRewindAndMethodSwitchStayExact) {
  check_shared_prompt_rewind_and_method_switch(small_config(), 1e-10);
  EXPECT_THROW(parse_enum<DecoderMethod>("fast", "--decoder"), ConfigError);
}

// ---- attention models: each layer's KV cache -------------------------------------

namespace {
// The small config with attention in every layer (2 heads of 4 channels) and sinusoidal positions.
TnnConfig attention_config() {
  TnnConfig c = small_config();
  c.token_mixer = TokenMixerKind::Attention;
  c.positions = PositionScheme::Sinusoidal;
  c.validate();
  return c;
}
}  // namespace

// 300 positions: the full forward's key and query blocks of 128, a tail; prompts from none to
// beyond one block; capacity 3, so the KV caches grow (by doubling) while stepping and at prefill.
TEST(Decoder, AttentionLogitsEqualFullForwardAtEveryPositionDouble) {
  for (Index prompt : {0, 1, 37, 150}) {
    SCOPED_TRACE(prompt);
    EXPECT_LT(method_vs_full_forward<double>(attention_config(), 300, prompt, DecoderMethod::Auto, 3), 1e-12);
  }
}

TEST(Decoder, AttentionEveryVariantMatchesDouble) {
  for (Index heads : {1, 2, 4})
    for (PositionScheme positions : enum_values<PositionScheme>())
      for (bool prenorm : {true, false}) {
        TnnConfig cfg = attention_config();
        cfg.heads = heads;
        cfg.positions = positions;
        cfg.prenorm = prenorm;
        cfg.norm_type = prenorm ? NormType::LayerNorm : NormType::RMSNorm;
        cfg.tie_embeddings = heads == 2;
        SCOPED_TRACE(cfg.to_json().dump());
        EXPECT_LT(method_vs_full_forward<double>(cfg, 140, 10 * heads, DecoderMethod::Auto), 1e-12);
      }
}

TEST(Decoder, AttentionFloatWithinRounding) {
  EXPECT_LT(method_vs_full_forward<float>(attention_config(), 600, 0, DecoderMethod::Auto), 1e-4);
  EXPECT_LT(method_vs_full_forward<float>(attention_config(), 600, 300, DecoderMethod::Auto), 1e-4);
}

TEST(Decoder, AttentionBatchEqualsOneSequenceAtATime) {
  check_batch_equals_one_sequence_at_a_time(attention_config(), 100);
}

TEST(Decoder, AttentionSharedPromptAndRewindStayExact) {
  check_shared_prompt_rewind_and_method_switch(attention_config(), 1e-12);
}

TEST(Decoder, RefusesABidirectionalAttentionModel) {
  TnnConfig cfg = attention_config();
  cfg.causal = false;
  TnnLM<float> bidir(cfg);
  EXPECT_THROW(IncrementalDecoder<float>(bidir, 8), ConfigError);
}
