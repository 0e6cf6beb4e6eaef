// TnnLM: parameter names/order, tied head, init, the loss against a manual
// composition, no-target batches, accumulation and zero_grad, errors; attention as the token
// mixer (names, parameter count) and sinusoidal positions; the token_mixer and positions keys.
// Central-difference gradients of the loss against every parameter across model
// variants, float vs double and the loss against the fully written-out reference:
// the op-check harness (test_ops.cpp, LM_*).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "test_helpers.hpp"
#include "tnn/model/models.hpp"
#include "tiny_configs.hpp"

using namespace tnn;

namespace {

using testing_helpers::lm_batch;
using testing_helpers::tiny_lm_config;

// Initialized by init_weights, then every trainable entry moved off its init
// value so norm scales, biases and decay rates all carry gradient.
TnnLM<double> make_model(const TnnConfig& cfg, std::uint64_t seed) {
  TnnLM<double> m(cfg);
  m.init_weights(seed);
  Rng rng(seed + 100);
  m.visit([&](const std::string&, Param<double>& p) {
    if (p.trainable)
      for (auto& v : p.value) v += rng.normal(0.0, 0.1);
  });
  return m;
}

}  // namespace

TEST(TnnLM, NamesAndOrderFollowTheSpec) {
  TnnConfig c = tiny_lm_config();
  c.layers = 2;
  c.norm_type = NormType::RMSNorm;
  c.rpe_layers = 2;
  TnnLM<float> m(c);
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  const std::vector<std::string> expect_l0 = {
      "layers.0.token_norm.scale",
      "layers.0.token_mixer.u_proj.weight",
      "layers.0.token_mixer.u_proj.bias",
      "layers.0.token_mixer.v_proj.weight",
      "layers.0.token_mixer.v_proj.bias",
      "layers.0.token_mixer.o.weight",
      "layers.0.token_mixer.o.bias",
      "layers.0.token_mixer.toep.gamma",
      "layers.0.token_mixer.toep.rpe.pos_proj.weight",
      "layers.0.token_mixer.toep.rpe.pos_proj.bias",
      "layers.0.token_mixer.toep.rpe.layers.0.0.scale",
      "layers.0.token_mixer.toep.rpe.layers.0.2.weight",
      "layers.0.token_mixer.toep.rpe.layers.0.2.bias",
      "layers.0.token_mixer.toep.rpe.layers.1.0.scale",
      "layers.0.token_mixer.toep.rpe.layers.1.2.weight",
      "layers.0.token_mixer.toep.rpe.layers.1.2.bias",
      "layers.0.token_mixer.toep.rpe.out.0.scale",
      "layers.0.token_mixer.toep.rpe.out.2.weight",
      "layers.0.token_mixer.toep.rpe.out.2.bias",
      "layers.0.feature_norm.scale",
      "layers.0.feature_mixer.l1.weight",
      "layers.0.feature_mixer.l1.bias",
      "layers.0.feature_mixer.l2.weight",
      "layers.0.feature_mixer.l2.bias",
      "layers.0.feature_mixer.l3.weight",
      "layers.0.feature_mixer.l3.bias",
  };
  ASSERT_EQ(names.size(), 1 + 2 * expect_l0.size() + 2);
  EXPECT_EQ(names.front(), "embed.weight");
  EXPECT_EQ(std::vector<std::string>(names.begin() + 1, names.begin() + 1 + expect_l0.size()), expect_l0);
  EXPECT_EQ(names[1 + expect_l0.size()], "layers.1.token_norm.scale");
  EXPECT_EQ(names[names.size() - 2], "final_norm.scale");
  EXPECT_EQ(names.back(), "lm_head.weight");
  std::set<std::string> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size());

  // Shapes of model.md §9.
  for (auto& [n, p] : m.named_parameters()) {
    if (n == "embed.weight" || n == "lm_head.weight") {
      EXPECT_EQ(p->shape(), (Shape{11, 8})) << n;
    }
    if (n == "layers.0.token_mixer.toep.gamma") {
      EXPECT_EQ(p->shape(), (Shape{1, 1, 12}));
      EXPECT_FALSE(p->trainable);  // use_decay: stored, not trained
    }
  }
}

TEST(TnnLM, TiedHeadHasNoLmHeadAndCountsParameters) {
  TnnConfig c = tiny_lm_config();
  c.tie_embeddings = true;
  TnnLM<double> tied(c);
  c.tie_embeddings = false;
  TnnLM<double> untied(c);
  EXPECT_EQ(tied.named_parameters().back().first, "layers.0.feature_mixer.l3.bias");  // simplermsnorm: no final_norm params
  for (auto& [n, p] : tied.named_parameters()) EXPECT_NE(n, "lm_head.weight");
  EXPECT_EQ(untied.num_parameters(), tied.num_parameters() + 11 * 8);
  Index total = 0;
  untied.visit([&](const std::string&, const Param<double>& p) {
    if (p.trainable) total += p.value.size();
  });
  EXPECT_EQ(untied.num_parameters(), total);
}

TEST(TnnLM, InitIsSeededAndDocumentedScales) {
  TnnConfig c = tiny_lm_config();
  TnnLM<double> a(c), b(c), d(c);
  a.init_weights(5);
  b.init_weights(5);
  d.init_weights(6);
  auto pa = a.named_parameters(), pb = b.named_parameters(), pd = d.named_parameters();
  bool any_diff = false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    for (Index j = 0; j < pa[i].second->value.size(); ++j) {
      EXPECT_EQ(pa[i].second->value[j], pb[i].second->value[j]) << pa[i].first;
      any_diff |= pa[i].second->value[j] != pd[i].second->value[j];
    }
  }
  EXPECT_TRUE(any_diff);
  // embed ~ N(0, 1/D): sample std near 1/sqrt(8) = 0.354
  double ss = 0;
  for (double v : a.input.embed.weight.value) ss += v * v;
  const double sd = std::sqrt(ss / double(a.input.embed.weight.value.size()));
  EXPECT_GT(sd, 0.25);
  EXPECT_LT(sd, 0.45);
  for (double v : a.head.lm_head.weight.value) EXPECT_LE(std::abs(v), 1 / std::sqrt(8.0));
}

TEST(TnnLM, LossAndLogitsMatchManualComposition) {
  TnnConfig c = tiny_lm_config();
  c.layers = 2;
  auto m = make_model(c, 4);
  Tensor<std::int32_t> tokens, targets;
  lm_batch(c, 2, 5, 9, tokens, targets);
  const double loss = m.forward(tokens, targets);
  // Recompute: embed -> blocks -> final norm -> head -> cross-entropy.
  Tensor<double> x, y;
  m.input.embed.forward(tokens, x);
  for (auto& l : m.backbone.layers) {
    TnnBlock<double>::Cache cache;
    l.forward(x, y, cache);
    x = y;
  }
  Norm<double>::Cache nc;
  m.backbone.final_norm.forward(x, y, nc);
  Tensor<double> logits;
  m.head.lm_head.forward(y, logits);
  ASSERT_EQ(m.logits().shape(), (Shape{2, 5, 11}));
  for (Index i = 0; i < logits.size(); ++i) EXPECT_NEAR(m.logits()[i], logits[i], 1e-12);
  EXPECT_NEAR(loss, cross_entropy(logits, targets, static_cast<Tensor<double>*>(nullptr)), 1e-12);
  const Tensor<double> only = m.forward(tokens);
  for (Index i = 0; i < logits.size(); ++i) EXPECT_EQ(only[i], m.logits()[i]);
}

TEST(TnnLM, NoTargetsGivesZeroLossAndZeroGradients) {
  auto m = make_model(tiny_lm_config(), 2);
  Tensor<std::int32_t> tokens({1, 4}), targets({1, 4}, -1);
  m.zero_grad();
  EXPECT_EQ(m.forward(tokens, targets), 0.0);
  m.backward();
  for (auto& [n, p] : m.named_parameters())
    for (double g : p->grad) EXPECT_EQ(g, 0.0) << n;
}

TEST(TnnLM, BackwardTwiceAccumulatesTwice) {
  TnnConfig c = tiny_lm_config();
  c.tie_embeddings = true;
  c.decay = TnoDecay::Learned;
  auto m = make_model(c, 5);
  Tensor<std::int32_t> tokens, targets;
  lm_batch(c, 2, 6, 7, tokens, targets);
  m.zero_grad();
  m.forward(tokens, targets);
  m.backward();
  std::vector<Tensor<double>> first;
  for (auto& [n, p] : m.named_parameters()) first.push_back(p->grad);
  m.backward();
  std::size_t k = 0;
  for (auto& [n, p] : m.named_parameters()) {
    double mx = 0;
    for (Index i = 0; i < p->grad.size(); ++i) {
      EXPECT_NEAR(p->grad[i], 2 * first[k][i], 1e-12 * (1 + std::abs(first[k][i]))) << n;
      mx = std::max(mx, std::abs(first[k][i]));
    }
    if (p->trainable) {
      EXPECT_GT(mx, 0.0) << n;
    }
    ++k;
  }
  m.zero_grad();
  for (auto& [n, p] : m.named_parameters())
    for (double g : p->grad) EXPECT_EQ(g, 0.0);
}

TEST(TnnLM, Errors) {
  TnnLM<double> m(tiny_lm_config());
  m.init_weights(1);
  Tensor<std::int32_t> tokens({2, 3}), targets({2, 3});
  tokens[4] = 11;
  EXPECT_TRUE(testing_helpers::throws<ValueError>([&] { m.forward(tokens, targets); }, {"[1, 1]", "11"}));
  tokens[4] = -3;
  EXPECT_THROW(m.forward(tokens), ValueError);
  tokens[4] = 0;
  targets[2] = 11;
  EXPECT_THROW(m.forward(tokens, targets), ValueError);
  targets[2] = -2;
  EXPECT_THROW(m.forward(tokens, targets), ValueError);
  targets[2] = -1;
  EXPECT_THROW(m.forward(tokens, Tensor<std::int32_t>({3, 2})), ShapeError);
  EXPECT_THROW(m.forward(Tensor<std::int32_t>({6})), ShapeError);
  EXPECT_THROW(m.forward(Tensor<std::int32_t>({2, 0})), ShapeError);
  // backward needs a forward with targets
  TnnLM<double> fresh(tiny_lm_config());
  EXPECT_THROW(fresh.backward(), Error);
  m.forward(tokens);
  EXPECT_THROW(m.backward(), Error);
  m.forward(tokens, targets);
  EXPECT_NO_THROW(m.backward());
  TnnConfig bad = tiny_lm_config();
  bad.dim = 0;
  EXPECT_THROW(TnnLM<double>{bad}, ConfigError);
}

// ---- attention as the token mixer, sinusoidal positions ----

TEST(TnnLM, AttentionLayersStoreFairseqProjectionsAndNoGtu) {
  TnnConfig c = tiny_lm_config();
  c.token_mixer = TokenMixerKind::Attention;
  c.heads = 2;
  c.layers = 2;
  TnnLM<float> m(c);
  std::vector<std::string> mixer;
  for (auto& [n, p] : m.named_parameters()) {
    if (n.rfind("layers.1.token_mixer.", 0) == 0) mixer.push_back(n);
    if (n.find("token_mixer.") != std::string::npos) {
      EXPECT_EQ(p->shape(), n.size() > 6 && n.compare(n.size() - 6, 6, "weight") == 0 ? Shape({8, 8}) : Shape({8}))
          << n;
    }
  }
  const std::string p = "layers.1.token_mixer.";
  EXPECT_EQ(mixer, (std::vector<std::string>{p + "q_proj.weight", p + "q_proj.bias", p + "k_proj.weight",
                                             p + "k_proj.bias", p + "v_proj.weight", p + "v_proj.bias",
                                             p + "out_proj.weight", p + "out_proj.bias"}));
  ASSERT_NE(m.backbone.layers[0].token_mixer.attention(), nullptr);
  EXPECT_EQ(m.backbone.layers[0].token_mixer.gtu(), nullptr);
  EXPECT_EQ(m.backbone.layers[0].token_mixer.kind(), TokenMixerKind::Attention);
  EXPECT_EQ(m.backbone.layers[0].token_mixer.attention()->heads(), 2);
  EXPECT_TRUE(m.backbone.layers[0].token_mixer.attention()->causal());
  // 4 D^2 + 4 D per layer in place of the GTU's (the GLU, norms, embedding and head unchanged)
  TnnConfig t = tiny_lm_config();
  t.layers = 2;
  TnnLM<float> tnn(t);
  Index gtu = 0;
  for (auto& [n, q] : tnn.named_parameters())
    if (n.find("token_mixer.") != std::string::npos && q->trainable) gtu += q->value.size();
  EXPECT_EQ(m.num_parameters(), tnn.num_parameters() - gtu + 2 * (4 * 8 * 8 + 4 * 8));
}

// The input adds the positions: the same weights with and without them differ by PE(n) at
// position n. Bidirectional attention without positions sees a set: equal ids, equal outputs;
// with positions they differ.
TEST(TnnLM, SinusoidalPositionsEnterThroughTheInput) {
  TnnConfig c = tiny_lm_config();
  c.token_mixer = TokenMixerKind::Attention;
  c.heads = 2;
  c.causal = false;
  TnnLM<double> plain = make_model(c, 3);
  c.positions = PositionScheme::Sinusoidal;
  TnnLM<double> with_pe = make_model(c, 3);  // the same draws: positions have no parameters
  Tensor<std::int32_t> tokens({1, 9});
  for (Index i = 0; i < 9; ++i) tokens[i] = std::int32_t(i % 3);  // positions 0, 3, 6 hold id 0
  Tensor<double> x0, x1, pe({1, 9, 8});
  plain.input.forward(tokens, x0);
  with_pe.input.forward(tokens, x1);
  pe.set_zero();
  add_sinusoidal_positions(pe);
  for (Index i = 0; i < pe.size(); ++i) EXPECT_NEAR(x1[i] - x0[i], pe[i], 1e-15) << i;
  const Tensor<double> a = plain.forward(tokens), b = with_pe.forward(tokens);
  double same = 0, differ = 0;
  for (Index v = 0; v < 11; ++v) {
    same = std::max(same, std::abs(a[3 * 11 + v] - a[0 * 11 + v]));
    differ = std::max(differ, std::abs(b[3 * 11 + v] - b[0 * 11 + v]));
  }
  EXPECT_LT(same, 1e-12);
  EXPECT_GT(differ, 1e-3);
}

TEST(TnnConfig, TokenMixerAndPositionsKeysRoundTripAndStayOutOfTnnConfigs) {
  TnnConfig c = tiny_lm_config();
  const nlohmann::json tnn = c.to_json();
  EXPECT_FALSE(tnn.contains("token_mixer"));  // a TNN's config is what it was before the keys
  EXPECT_FALSE(tnn.contains("positions"));
  EXPECT_EQ(TnnConfig::from_json(tnn).token_mixer, TokenMixerKind::Tno);
  for (TokenMixerKind mixer : enum_values<TokenMixerKind>())
    for (PositionScheme positions : enum_values<PositionScheme>()) {
      c.token_mixer = mixer;
      c.positions = positions;
      const nlohmann::json j = c.to_json();
      EXPECT_EQ(j.contains("token_mixer"), mixer != TokenMixerKind::Tno);
      if (j.contains("token_mixer")) {
        EXPECT_EQ(j.at("token_mixer"), to_string(mixer));
      }
      EXPECT_EQ(j.contains("positions"), positions != PositionScheme::None);
      if (j.contains("positions")) {
        EXPECT_EQ(j.at("positions"), to_string(positions));
      }
      const TnnConfig back = TnnConfig::from_json(j);
      EXPECT_EQ(back.token_mixer, mixer);
      EXPECT_EQ(back.positions, positions);
      EXPECT_EQ(back.to_json(), j);
    }
  const auto& keys = TnnConfig::keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "token_mixer"), keys.end());
  EXPECT_NE(std::find(keys.begin(), keys.end(), "positions"), keys.end());
}

// Recomputation (Backbone::set_recompute) keeps only the layers' inputs and runs each layer's
// forward again in backward: the same arithmetic, so the loss and every gradient are equal bit
// for bit, for causal and bidirectional models of several layers, with ragged lengths too.
TEST(TnnLM, RecomputationGivesBitIdenticalGradients) {
  for (bool causal : {true, false}) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.layers = 3;
    c.causal = causal;
    Tensor<std::int32_t> tokens, targets;
    testing_helpers::lm_batch(c, 2, 9, 4, tokens, targets);
    const Tensor<std::int32_t> lengths = testing_helpers::ids({2}, {9, 5});
    testing_helpers::expect_recompute_bit_identical(
        [&] {
          TnnLM<float> m(c);
          m.init_weights(3);
          return m;
        },
        [&](TnnLM<float>& m) { return m.forward(tokens, targets, causal ? nullptr : &lengths); });
  }
}
