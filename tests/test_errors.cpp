// Validation at the public entry points: every bad argument is a tnn::Error of the right
// kind whose message names the argument, what was expected and what came. Beside each
// header's own tests, this file holds the cross-cutting ones: the configuration (parsed
// from files users may not trust), tensor sizes that would overflow, and the messages.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>

#include "test_helpers.hpp"
#include "tnn/core/toeplitz.hpp"
#include "tnn/infer/decoder.hpp"
#include "tnn/infer/sampling.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/embedding.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/models.hpp"
#include "tnn/model/loss.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/train/data.hpp"
#include "tnn/io/safetensors.hpp"

using namespace tnn;

namespace {

using testing_helpers::throws;  // f throws E with every piece in its message (test_helpers.hpp)

// A minimal valid config with one key replaced by `value` (raw JSON).
std::string with(const std::string& key, const std::string& value) {
  nlohmann::json j = {{"vocab_size", 10}, {"dim", 4}, {"layers", 1}};
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

// A layer whose backward takes dx by pointer (GLU, GTU, TNO), and the calls to hand throws<E>:
// forward(x) and backward(x, dy = x) on zero tensors of a given shape, all on one cache.
template <class Layer>
struct LayerCalls {
  Layer layer;
  typename Layer::Cache cache{};
  Tensor<double> y{}, dx{};
  std::function<void()> forward(const Shape& x) {
    return [this, x] { layer.forward(Tensor<double>(x), y, cache); };
  }
  std::function<void()> backward(const Shape& x) {
    return [this, x] { layer.backward(Tensor<double>(x), Tensor<double>(x), cache, &dx); };
  }
};

TnnConfig tiny() { return TnnConfig::parse(R"({"vocab_size": 7, "dim": 4, "layers": 1, "expand_ratio": 2, "rpe_dim": 4})"); }

}  // namespace

// ---------------------------------------------------------------------------
// TnnConfig (model.md §8)

TEST(ConfigErrors, UnknownKeysAndMissingRequiredKeys) {
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("colour", "\"blue\"")); }, {"unknown key \"colour\""}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(R"({"dim": 4, "layers": 1})"); },
                                  {"required key 'vocab_size'", "missing"}));
  // Every other key has a default: the model a user gets without saying more.
  const TnnConfig c = TnnConfig::parse(R"({"vocab_size": 10})");
  EXPECT_EQ(c.dim, TnnConfig{}.dim);
  EXPECT_EQ(c.layers, TnnConfig{}.layers);
  EXPECT_GT(c.dim, 0);
  EXPECT_GT(c.layers, 0);
}

TEST(ConfigErrors, WrongTypesNameTheKeyTheTypeAndTheValue) {
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("dim", "\"four\"")); },
                                  {"'dim'", "expected an integer", "string", "\"four\""}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("dim", "4.5")); }, {"'dim'", "expected an integer", "4.5"}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("gamma", "\"high\"")); }, {"'gamma'", "expected a number"}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("prenorm", "1")); }, {"'prenorm'", "expected true or false"}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("rpe_act", "3")); }, {"'rpe_act'", "expected a string"}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("layers", "null")); }, {"'layers'", "expected an integer", "null"}));
  // An unsigned value beyond int64 must not wrap around into a small negative one.
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("dim", "18446744073709551615")); },
                                  {"'dim'", "below 2^63", "18446744073709551615"}));
}

TEST(ConfigErrors, MalformedJsonAndNonObjects) {
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(R"({"vocab_size": 10,)"); }, {"valid JSON"}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse("[1, 2]"); }, {"expected a JSON object", "array"}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(""); }, {"valid JSON"}));
}

TEST(ConfigErrors, NonPositiveSizes) {
  for (const char* key : {"vocab_size", "dim", "layers", "heads", "rpe_dim", "glu_dim"}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with(key, "0")); }, {key, "expected", "got 0"}));
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with(key, "-3")); }, {key, "got -3"}));
  }
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("rpe_layers", "-1")); }, {"'rpe_layers'", "got -1"}));
  EXPECT_NO_THROW(TnnConfig::parse(with("rpe_layers", "0")));
  EXPECT_NO_THROW(TnnConfig::parse(with("glu_dim", "-1")));  // -1 = "same as dim"
  for (const char* r : {"0", "-2", "1e300"}) {
    SCOPED_TRACE(r);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with("expand_ratio", r)); }, {"expand_ratio"}));
  }
}

TEST(ConfigErrors, SizesTooLargeForAnyModelAreRefusedBeforeAllocating) {
  const std::string big = std::to_string(TnnConfig::kMaxWidth + 1);
  for (const char* key : {"vocab_size", "dim", "rpe_dim", "glu_dim"}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with(key, big)); }, {key, "16777216", big.c_str()}));
  }
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("layers", "100000")); }, {"'layers'", "65536", "100000"}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("expand_ratio", "1e7")); },
                                  {"'expand_ratio' and 'dim'", "16777216"}));
  // The case that used to pass validation: V * D = 2^64 wrapped the embedding's element
  // count to 0, and the first forward read far outside it.
  TnnConfig c = tiny();
  c.vocab_size = Index(1) << 32;
  c.dim = Index(1) << 32;
  EXPECT_TRUE(throws<ConfigError>([&] { TnnLM<float>{c}; }, {"vocab_size"}));
  // The largest widths themselves are fine.
  c = tiny();
  c.vocab_size = TnnConfig::kMaxWidth;
  EXPECT_NO_THROW(c.validate());
}

TEST(ConfigErrors, HeadsMustLeaveANonEmptyHeadWidth) {
  // E = floor(expand_ratio * D) / H * H (model.md "Notation"): H rounds E down, so only
  // H > floor(expand_ratio * D) is impossible.
  EXPECT_TRUE(throws<ConfigError>(
      [] { TnnConfig::parse(R"({"vocab_size": 10, "dim": 4, "layers": 1, "expand_ratio": 1, "heads": 5})"); },
      {"'heads'", "heads <= floor(expand_ratio * dim) = 4", "got 5"}));
  const TnnConfig c = TnnConfig::parse(R"({"vocab_size": 10, "dim": 10, "layers": 1, "expand_ratio": 1, "heads": 3})");
  EXPECT_EQ(c.inner_dim(), 9);
  EXPECT_EQ(c.head_dim(), 3);
}

TEST(ConfigErrors, GammaOutsideZeroOneAndConflictingDecays) {
  for (const char* g : {"0", "-0.5", "1.0001", "2"}) {
    SCOPED_TRACE(g);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with("gamma", g)); }, {"'gamma'", "(0, 1]"}));
  }
  EXPECT_NO_THROW(TnnConfig::parse(with("gamma", "1")));
  TnnConfig c = tiny();
  c.gamma = std::nan("");
  EXPECT_TRUE(throws<ConfigError>([&] { c.validate(); }, {"'gamma'", "nan"}));
  EXPECT_TRUE(throws<ConfigError>(
      [] { TnnConfig::parse(R"({"vocab_size": 10, "dim": 4, "layers": 1, "use_decay": true, "use_multi_decay": true})"); },
      {"use_decay", "use_multi_decay"}));
}

TEST(ConfigErrors, UnknownActivationOrNorm) {
  for (const char* key : {"rpe_act", "gtu_act", "glu_act"}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with(key, "\"tanh\"")); },
                                    {key, enum_choices<Activation>(), "\"tanh\""}));
  }
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("norm_type", "\"batchnorm\"")); },
                                  {"'norm_type'", enum_choices<NormType>(), "\"batchnorm\""}));
}

// The official options (docs/official.md): impossible values and combinations name the keys.
TEST(ConfigErrors, OfficialOptionsOutOfRangeOrContradictory) {
  for (const char* p : {"0", "4", "-1"}) {
    SCOPED_TRACE(p);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with("par_type", p)); }, {"'par_type'", "[1, 3]", p}));
  }
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("par_type", "true")); }, {"'par_type'", "integer"}));
  for (const char* d : {"1", "-0.1", "1.5"}) {
    SCOPED_TRACE(d);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with("dropout", d)); }, {"'dropout'", "[0, 1)"}));
  }
  EXPECT_NO_THROW(TnnConfig::parse(with("dropout", "0.1")));
  for (const char* key : {"use_norm", "normalize", "residual", "bias", "glu_bias", "scale_embedding",
                          "postnorm_residual"}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(with(key, "1")); }, {key, "true or false"}));
  }
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("act_type", "\"tanh\"")); },
                                  {"'act_type'", enum_choices<Activation>(), "\"tanh\""}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("final_norm_type", "\"batchnorm\"")); },
                                  {"'final_norm_type'", enum_choices<NormType>()}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("embed_norm_type", "\"batchnorm\"")); },
                                  {"'embed_norm_type'", enum_choices<NormType>()}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("lm_head_type", "\"mlp\"")); },
                                  {"'lm_head_type'", enum_choices<LmHeadType>()}));
  // none is a final or embedding norm, not a layer norm
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("norm_type", "\"none\"")); },
                                  {"'norm_type'", "simplermsnorm", "got 'none'"}));
  EXPECT_NO_THROW(TnnConfig::parse(with("final_norm_type", "\"none\"")));
  // norm(x + f(x)) is a post-norm form
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("postnorm_residual", "true")); },
                                  {"'postnorm_residual'", "'prenorm'", "expected prenorm false"}));
  EXPECT_NO_THROW(TnnConfig::parse(R"({"vocab_size": 10, "dim": 4, "layers": 1, "prenorm": false,
                                       "postnorm_residual": true})"));
  // keys of a token embedding or a vocabulary head, on models without one
  const std::string image = R"({"task": "image", "dim": 4, "layers": 1, "causal": false, "num_classes": 2,
      "image_height": 2, "image_width": 2, "image_channels": 1, "patch_size": 1, )";
  EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(image + R"("scale_embedding": true})"); },
                                  {"'scale_embedding'", "tasks lm and classify", "got task image"}));
  EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(image + R"("embed_norm_type": "layernorm"})"); },
                                  {"'embed_norm_type'", "got task image"}));
  EXPECT_TRUE(throws<ConfigError>([&] { TnnConfig::parse(image + R"("par_type": 2})"); },
                                  {"'par_type'", "task image", "(di, dj)", "got 2"}));
  EXPECT_NO_THROW(TnnConfig::parse(image + R"("normalize": true, "use_norm": true, "act_type": "exp"})"));
  EXPECT_TRUE(throws<ConfigError>(
      [] {
        TnnConfig::parse(R"({"task": "classify", "vocab_size": 5, "dim": 4, "layers": 1, "causal": false,
                             "num_classes": 2, "lm_head_type": "roberta"})");
      },
      {"'lm_head_type'", "task lm", "got task classify"}));
}

// final_norm_type follows norm_type until it is set; to_json writes the resolved value, so a
// config read back says the same thing whatever norm_type becomes.
TEST(ConfigErrors, FinalNormTypeFollowsNormTypeUnlessSet) {
  TnnConfig c = TnnConfig::parse(with("norm_type", "\"layernorm\""));
  EXPECT_EQ(c.final_norm(), NormType::LayerNorm);
  EXPECT_EQ(c.to_json().at("final_norm_type"), "layernorm");
  const TnnConfig back = TnnConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(*back.final_norm_type, NormType::LayerNorm);
  TnnConfig d = tiny();
  d.norm_type = NormType::RMSNorm;
  EXPECT_EQ(d.final_norm(), NormType::RMSNorm);
  d.final_norm_type = NormType::None;
  EXPECT_EQ(TnnConfig::from_json(d.to_json()).final_norm(), NormType::None);
  // every key of the table in a config's JSON, the token keys only for token models
  const nlohmann::json j = tiny().to_json();
  for (const char* key : {"use_norm", "normalize", "residual", "par_type", "bias", "glu_bias", "act_type", "dropout",
                          "final_norm_type", "postnorm_residual", "scale_embedding",
                          "embed_norm_type", "lm_head_type"})
    EXPECT_TRUE(j.contains(key)) << key;
}

TEST(ConfigErrors, TokenMixerPositionsAndAttentionHeads) {
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("token_mixer", "\"mamba\"")); },
                                  {"'token_mixer'", enum_choices<TokenMixerKind>(), "\"mamba\""}));
  EXPECT_TRUE(throws<ConfigError>([] { TnnConfig::parse(with("positions", "\"rotary\"")); },
                                  {"'positions'", enum_choices<PositionScheme>(), "\"rotary\""}));
  // attention splits D into H heads of D / H channels
  EXPECT_TRUE(throws<ConfigError>(
      [] { TnnConfig::parse(R"({"vocab_size": 10, "dim": 6, "layers": 1, "token_mixer": "attention", "heads": 4})"); },
      {"'heads'", "divisor of dim (6)", "token_mixer attention", "got 4"}));
  // the GTU's keys are unused with attention: its width E need not hold the heads
  const TnnConfig c = TnnConfig::parse(
      R"({"vocab_size": 10, "dim": 4, "layers": 1, "token_mixer": "attention", "heads": 4, "expand_ratio": 0.5})");
  EXPECT_EQ(c.token_mixer, TokenMixerKind::Attention);
  EXPECT_NO_THROW(TnnLM<float>{c});
}

TEST(ConfigErrors, ModelsValidateTheConfigTheyAreGiven) {
  TnnConfig c = tiny();
  c.layers = 0;
  EXPECT_TRUE(throws<ConfigError>([&] { TnnLM<float>{c}; }, {"'layers'", "got 0"}));
}

// ---------------------------------------------------------------------------
// Tensor sizes

TEST(TensorErrors, NegativeAndOverflowingShapes) {
  EXPECT_TRUE(throws<ShapeError>([] { Tensor<float>({2, -1}); }, {"expected >= 0", "got -1"}));
  const Index big = Index(1) << 40;
  EXPECT_TRUE(throws<ShapeError>([&] { Tensor<float>({big, big}); }, {"tensor shape [1099511627776, 1099511627776]"}));
  Tensor<float> t({2, 3});
  EXPECT_TRUE(throws<ShapeError>([&] { t.resize({big, big, 0}); }, {"tensor shape"}));
  EXPECT_TRUE(throws<ShapeError>([&] { t.resize(Shape{Index(1) << 62, 4}); }, {"tensor shape"}));
  // The training loader once resized its batch to [2^60, 16], whose element count wrapped
  // to 0, and then wrote B * N tokens into it.
  Tensor<std::int32_t> tokens;
  EXPECT_TRUE(throws<ShapeError>([&] { tokens.resize({Index(1) << 60, 16}); }, {"expected at most"}));
  EXPECT_EQ(t.shape(), (Shape{2, 3}));  // a refused resize leaves the tensor as it was
  EXPECT_NO_THROW(t.resize({big, 0}));  // zero elements, however long the other side
}

TEST(TensorErrors, DataSamplerRefusesAnOverflowingBatch) {
  const ByteCorpus data(std::vector<std::uint8_t>(100, 'a'), "mem");
  Rng rng(1);
  Batch b;
  volatile Index batch = Index(1) << 60;  // opaque, or GCC warns about the loop it never reaches
  EXPECT_THROW(sample_clm_batch(data, batch, 16, rng, b), ShapeError);
}

// ---------------------------------------------------------------------------
// The model

TEST(ModelErrors, TokensTargetsAndOrder) {
  TnnLM<float> m(tiny());
  m.init_weights(1);
  Tensor<std::int32_t> tokens({2, 3}), targets({2, 3});
  tokens[5] = 7;
  EXPECT_TRUE(throws<ValueError>([&] { m.forward(tokens, targets); }, {"tokens", "[0, 7)", "got 7", "[1, 2]"}));
  tokens[5] = -1;
  EXPECT_TRUE(throws<ValueError>([&] { m.forward(tokens); }, {"tokens", "got -1"}));
  tokens[5] = 0;
  targets[1] = 9;
  EXPECT_TRUE(throws<ValueError>([&] { m.forward(tokens, targets); }, {"targets", "or -1", "got 9", "[0, 1]"}));
  targets[1] = -1;
  EXPECT_TRUE(throws<ShapeError>([&] { m.forward(Tensor<std::int32_t>({2, 0})); }, {"tokens", "N >= 1", "[2, 0]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { m.forward(Tensor<std::int32_t>({0, 3})); }, {"tokens", "[0, 3]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { m.forward(Tensor<std::int32_t>({6})); }, {"tokens", "[B, N]", "[6]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { m.forward(Tensor<std::int32_t>({1, 2, 3})); }, {"tokens", "[1, 2, 3]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { m.forward(tokens, Tensor<std::int32_t>({3, 2})); }, {"targets", "[2, 3]", "[3, 2]"}));
  TnnLM<float> fresh(tiny());
  EXPECT_TRUE(throws<Error>([&] { fresh.backward(); }, {"backward", "expected a preceding forward"}));
  EXPECT_NO_THROW(m.forward(tokens, targets));
  EXPECT_NO_THROW(m.backward());
}

TEST(ModelErrors, LayersNameTheirArgument) {
  const TnnConfig cfg = tiny();
  Tensor<double> y, dx;
  Linear<double> lin(4, 3);
  EXPECT_TRUE(throws<ShapeError>([&] { lin.forward(Tensor<double>({2, 5}), y); }, {"Linear x", "4", "[2, 5]"}));
  lin.forward(Tensor<double>({2, 4}), y);
  EXPECT_TRUE(throws<ShapeError>([&] { lin.backward(Tensor<double>({2, 4}), Tensor<double>({2, 4}), &dx); },
                                 {"Linear dy", "3", "[2, 4]"}));
  EXPECT_TRUE(throws<ShapeError>([] { Linear<double>(0, 3); }, {"Linear", "in=0"}));

  Norm<double> norm(NormType::LayerNorm, 4);
  Norm<double>::Cache nc;
  EXPECT_TRUE(throws<ShapeError>([&] { norm.forward(Tensor<double>({3, 2}), y, nc); }, {"Norm x", "4", "[3, 2]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { norm.backward(Tensor<double>({3, 4}), Tensor<double>({3, 4}), nc, dx); },
                                 {"Norm cache", "3 rows"}));
  EXPECT_TRUE(throws<ShapeError>([] { Norm<double>(NormType::RMSNorm, 0); }, {"Norm", "got 0"}));

  Embedding<double> emb(5, 4);
  EXPECT_TRUE(throws<ValueError>([&] { emb.forward(Tensor<std::int32_t>({1, 2}, 5), y); }, {"tokens", "[0, 5)", "got 5"}));
  EXPECT_TRUE(throws<ShapeError>([] { Embedding<double>(0, 4); }, {"Embedding", "vocab=0"}));

  EXPECT_TRUE(throws<ShapeError>(
      [&] { activation_backward(Activation::Silu, Tensor<double>({2, 3}), Tensor<double>({3, 2}), dx); },
      {"activation_backward dy", "[2, 3]", "[3, 2]"}));
  EXPECT_TRUE(throws<ShapeError>(
      [&] { cross_entropy(Tensor<double>({2, 3, 5}), Tensor<std::int32_t>({2, 2}), &dx); },
      {"cross_entropy logits", "[2, 2]", "[2, 3, 5]"}));

  LayerCalls<Glu<double>> glu{make_glu<double>(cfg)};
  EXPECT_TRUE(throws<ShapeError>(glu.forward({1, 2, 3}), {"Linear x", "[1, 2, 3]"}));
  EXPECT_TRUE(throws<ShapeError>(glu.backward({1, 2, 4}), {"Glu cache", "2 rows"}));

  LayerCalls<Gtu<double>> gtu{make_gtu<double>(cfg)};
  EXPECT_TRUE(throws<ShapeError>(gtu.forward({1, 3, 5}), {"gtu x", "[B, N >= 1, 4]", "[1, 3, 5]"}));
  EXPECT_TRUE(throws<ShapeError>(gtu.forward({1, 0, 4}), {"gtu x", "[1, 0, 4]"}));
  EXPECT_TRUE(throws<ShapeError>(gtu.backward({1, 3, 4}), {"gtu cache", "[1, 3, 4]"}));

  LayerCalls<Tno<double>> tno{make_tno<double>(cfg)};
  EXPECT_TRUE(throws<ShapeError>(tno.forward({1, 3, 4}), {"tno v", "8", "[1, 3, 4]"}));
  EXPECT_TRUE(throws<Error>(tno.backward({1, 3, 8}), {"tno backward", "length-3", "none"}));
  EXPECT_TRUE(throws<ShapeError>([&] { tno.layer.coefficients(0); }, {"sequence length", ">= 1", "got 0"}));

  Rpe<double> rpe = make_rpe<double>(cfg);
  Rpe<double>::Cache rc;
  EXPECT_TRUE(throws<Error>([&] { rpe.backward(Tensor<double>({3, 8}), rc); }, {"rpe backward", "forward"}));
  EXPECT_TRUE(throws<ShapeError>([&] { rpe.forward(Tensor<double>({3, 2}), y, rc); }, {"rpe offsets", "[K, 1]", "[3, 2]"}));

  TnnBlock<double> blk = make_block<double>(cfg);
  TnnBlock<double>::Cache bc;
  EXPECT_TRUE(throws<ShapeError>([&] { blk.forward(Tensor<double>({1, 3, 5}), y, bc); }, {"TnnBlock x", "[B, N, 4]", "[1, 3, 5]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { blk.backward(Tensor<double>({1, 3, 4}), Tensor<double>({1, 3, 4}), bc, dx); },
                                 {"TnnBlock backward", "[1, 3, 4]"}));
}

// ---------------------------------------------------------------------------
// Toeplitz and circulant operators

TEST(KernelErrors, ToeplitzOpNamesTheArgument) {
  ToeplitzOp<float> op;
  Tensor<float> y, dx, dt;
  EXPECT_TRUE(throws<ShapeError>([&] { op.prepare(Tensor<float>({4, 2}), 0, true); }, {"sequence length", "got 0"}));
  EXPECT_TRUE(throws<ShapeError>([&] { op.prepare(Tensor<float>({8}), 4, true); }, {"toeplitz coefficients", "[K, C]", "[8]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { op.prepare(Tensor<float>({4, 2}), 4, false); },
                                 {"toeplitz coefficients", "[7, 2]", "[4, 2]"}));
  // Before prepare() there is nothing to multiply with.
  EXPECT_TRUE(throws<Error>([&] { op.forward(Tensor<float>({1, 4, 2}), y); }, {"toeplitz forward", "prepare()"}));
  EXPECT_TRUE(throws<Error>([&] { op.backward(Tensor<float>({1, 4, 2}), &dx, &dt); }, {"toeplitz backward", "prepare()"}));
  CirculantOp<float> circ;
  EXPECT_TRUE(throws<Error>([&] { circ.forward(Tensor<float>({1, 4, 2}), y); }, {"circulant forward", "prepare()"}));
  EXPECT_TRUE(throws<Error>([&] { circ.backward(Tensor<float>({1, 4, 2}), &dx, &dt); }, {"circulant backward", "prepare()"}));
  for (ToeplitzMethod m : {ToeplitzMethod::Direct, ToeplitzMethod::FFT}) {
    SCOPED_TRACE(m == ToeplitzMethod::FFT ? "fft" : "direct");
    ToeplitzOp<float> p;
    p.prepare(Tensor<float>({7, 2}), 4, false, m);
    EXPECT_TRUE(throws<Error>([&] { p.backward(Tensor<float>({1, 4, 2}), &dx, &dt); }, {"toeplitz backward", "forward"}));
    EXPECT_TRUE(throws<ShapeError>([&] { p.forward(Tensor<float>({1, 5, 2}), y); }, {"toeplitz x", "[B, 4, 2]", "[1, 5, 2]"}));
    EXPECT_TRUE(throws<ShapeError>([&] { p.forward(Tensor<float>({4, 2}), y); }, {"toeplitz x", "[4, 2]"}));
    p.forward(Tensor<float>({1, 4, 2}), y);
    EXPECT_TRUE(throws<ShapeError>([&] { p.backward(Tensor<float>({1, 4, 3}), &dx, &dt); },
                                   {"toeplitz grad_output", "[B, 4, 2]", "[1, 4, 3]"}));
    EXPECT_NO_THROW(p.backward(Tensor<float>({1, 4, 2}), &dx, &dt));
  }
}

TEST(KernelErrors, CirculantOpNamesTheArgument) {
  CirculantOp<double> op;
  Tensor<double> y, dx, dc;
  EXPECT_TRUE(throws<ShapeError>([&] { op.prepare(Tensor<double>({0, 2})); }, {"circulant columns", "L >= 1", "[0, 2]"}));
  EXPECT_TRUE(throws<ShapeError>([&] { op.prepare(Tensor<double>({6})); }, {"circulant columns", "[6]"}));
  op.prepare(Tensor<double>({6, 2}));
  EXPECT_TRUE(throws<Error>([&] { op.backward(Tensor<double>({1, 6, 2}), &dx, &dc); }, {"backward", "forward"}));
  EXPECT_TRUE(throws<ShapeError>([&] { op.forward(Tensor<double>({1, 5, 2}), y); }, {"circulant x", "[B, 6, 2]", "[1, 5, 2]"}));
  op.forward(Tensor<double>({1, 6, 2}), y);
  EXPECT_TRUE(throws<ShapeError>([&] { op.backward(Tensor<double>({1, 6, 1}), &dx, &dc); }, {"circulant grad_output"}));
  EXPECT_NO_THROW(op.backward(Tensor<double>({1, 6, 2}), &dx, &dc));
}

// ---------------------------------------------------------------------------
// Inference

TEST(InferErrors, SamplingSettingsAndLogits) {
  SamplingConfig sc;
  sc.temperature = -1;
  EXPECT_TRUE(throws<ConfigError>([&] { sc.validate(); }, {"temperature", ">= 0", "-1"}));
  sc.temperature = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(throws<ConfigError>([&] { sc.validate(); }, {"temperature", "finite", "inf"}));
  sc = SamplingConfig{};
  sc.top_k = -2;
  EXPECT_TRUE(throws<ConfigError>([&] { sc.validate(); }, {"top_k", "got -2"}));
  sc = SamplingConfig{};
  for (double p : {0.0, 2.0, std::nan("")}) {
    sc.top_p = p;
    EXPECT_TRUE(throws<ConfigError>([&] { TokenSampler s(sc); }, {"top_p", "0 < top_p <= 1"}));
  }
  const float bad[3] = {0.f, std::nanf(""), 1.f};
  EXPECT_TRUE(throws<ValueError>([&] { argmax_token(bad, 3); }, {"logits[1]", "finite", "nan"}));
  const float ninf = -std::numeric_limits<float>::infinity();
  const float none[2] = {ninf, ninf};
  EXPECT_TRUE(throws<ValueError>([&] { argmax_token(none, 2); }, {"every one of the 2 values is -inf"}));
  EXPECT_TRUE(throws<ShapeError>([&] { argmax_token(bad, 0); }, {"logits", ">= 1", "got 0"}));
  TokenSampler s;
  Rng rng(1);
  EXPECT_TRUE(throws<ValueError>([&] { s.sample_row(Tensor<float>({2, 3}), 2, rng); }, {"logits row", "< 2", "got 2"}));
}

TEST(InferErrors, DecoderArguments) {
  TnnConfig cfg = tiny();
  TnnLM<float> model(cfg);
  EXPECT_TRUE(throws<ValueError>([&] { IncrementalDecoder<float>(model, 0); }, {"capacity", ">= 1", "got 0"}));
  IncrementalDecoder<float> dec(model, 4);
  EXPECT_TRUE(throws<ValueError>([&] { dec.step(7); }, {"decoder token", "[0, 7)", "got 7"}));
  EXPECT_TRUE(throws<ValueError>([&] { dec.rewind(1); }, {"rewind", "[0, 0]", "got 1"}));
  cfg.causal = false;
  TnnLM<float> bidir(cfg);
  EXPECT_TRUE(throws<ConfigError>([&] { IncrementalDecoder<float>(bidir, 4); }, {"causal"}));
  // par_type 2 and 3 make every coefficient depend on the sequence's length: no incremental form
  for (Index p : {2, 3}) {
    cfg = tiny();
    cfg.par_type = p;
    TnnLM<float> m(cfg);
    const std::string msg = testing_helpers::error_of<ConfigError>([&] { IncrementalDecoder<float>(m, 4); });
    EXPECT_NE(msg.find("'par_type'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("got " + std::to_string(p)), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------------------
// Data

TEST(DataErrors, SizesFractionsAndMasks) {
  const ByteCorpus data(std::vector<std::uint8_t>(20, 'a'), "mem.txt");
  Rng rng(1);
  Batch b;
  EXPECT_TRUE(throws<ValueError>([&] { sample_clm_batch(data, 0, 4, rng, b); }, {"batch size", ">= 1", "got 0"}));
  EXPECT_TRUE(throws<ValueError>([&] { sample_clm_batch(data, 2, 0, rng, b); }, {"sequence length", ">= 1", "got 0"}));
  EXPECT_TRUE(throws<FormatError>([&] { sample_clm_batch(data, 2, 20, rng, b); }, {"mem.txt", "21 bytes", "got 20"}));
  EXPECT_TRUE(throws<ValueError>([&] { split_tail(data, 1.0); }, {"fraction", "< 1", "got 1"}));
  EXPECT_TRUE(throws<ValueError>([&] { split_tail(data, -0.1); }, {"fraction", "got -0.1"}));
  MaskConfig mc;
  mc.select_prob = 0;
  EXPECT_TRUE(throws<ConfigError>([&] { mc.validate(); }, {"select_prob", "got 0"}));
  mc = MaskConfig{};
  mc.mask_prob = 0.8;
  mc.random_prob = 0.5;
  EXPECT_TRUE(throws<ConfigError>([&] { mc.validate(); }, {"mask_prob", "sum <= 1"}));
  const BatchSampler sampler(data, 2, 4, LmObjective::Clm, 1);
  EXPECT_TRUE(throws<ValueError>([&] { sampler.sample(-1, b); }, {"step", ">= 0", "got -1"}));
  const EvalWindows windows(data, 2, 4, LmObjective::Clm);
  EXPECT_TRUE(throws<ValueError>([&] { windows.batch(windows.num_batches(), b); }, {"evaluation batch index"}));
  EXPECT_TRUE(throws<IoError>([] { read_file_bytes("/nonexistent/tnn/data.txt"); }, {"/nonexistent/tnn/data.txt", "cannot open"}));
  // A device never ends: refused instead of read until memory runs out.
  EXPECT_TRUE(throws<IoError>([] { read_file_bytes("/dev/zero"); }, {"/dev/zero", "got a device"}));
}

TEST(CheckpointErrors, AFifoIsRefusedWithoutWaitingForAWriter) {
  const std::string path = ::testing::TempDir() + "tnn_errors_fifo_" + std::to_string(::getpid());
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_TRUE(throws<IoError>([&] { read_safetensors(path); }, {path.c_str(), "regular file"}));
  EXPECT_TRUE(throws<IoError>([&] { read_config(path); }, {path.c_str(), "regular file"}));
  std::filesystem::remove(path);
}

// ---------------------------------------------------------------------------
// Checkpoints whose config would build an impossible model are refused before any allocation.

TEST(CheckpointErrors, ConfigAskingForAnImpossibleModel) {
  const std::string path = ::testing::TempDir() + "tnn_errors_" + std::to_string(::getpid()) + ".safetensors";
  SafetensorsWriter w;
  w.add("embed.weight", Tensor<float>({2, 2}));
  w.set_metadata(kConfigMetadataKey, R"({"vocab_size": 4294967296, "dim": 4294967296, "layers": 1})");
  w.write(path);
  EXPECT_TRUE(throws<ConfigError>([&] { read_config(path); }, {path.c_str(), "tnn.config", "vocab_size", "4294967296"}));
  std::filesystem::remove(path);
}
