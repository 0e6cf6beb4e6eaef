#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "temp_files.hpp"
#include "test_helpers.hpp"
#include "tiny_sentencepiece.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/models.hpp"
#include "tnn/io/file.hpp"
#include "tnn/train/data.hpp"

using tnn::Dtype;
using tnn::Index;
using tnn::Param;
using tnn::Tensor;
using tnn::TnnConfig;
using tnn_test::Bytes;
using tnn_test::read_bytes;
using tnn_test::TempDir;

namespace {

TnnConfig small_config() { return TnnConfig::parse(R"({"vocab_size": 5, "dim": 3, "layers": 1, "rpe_dim": 4})"); }

// Stands in for TnnLM: a config and a few named parameters, one of them frozen. `extra`
// adds a tensor, `drop_last` removes final_norm.scale, `wide` changes one shape.
template <class T>
struct FakeModel {
  TnnConfig cfg = small_config();
  Param<T> embed, proj, gamma, norm, more;
  bool extra = false, drop_last = false;

  explicit FakeModel(bool wide = false) {
    embed.init({cfg.vocab_size, cfg.dim});
    proj.init({wide ? 4 : 2, cfg.dim});
    gamma.init({1, 1, 2}, /*is_trainable=*/false);
    norm.init({cfg.dim});
    more.init({2});
  }
  const TnnConfig& config() const { return cfg; }
  template <class F>
  void visit(F&& f) {
    f("embed.weight", embed);
    f("layers.0.token_mixer.u_proj.weight", proj);
    f("layers.0.token_mixer.toep.gamma", gamma);
    if (!drop_last) f("final_norm.scale", norm);
    if (extra) f("lm_head.weight", more);
  }
  void fill(double seed) {
    int k = 0;
    visit([&](const std::string&, Param<T>& p) {
      for (Index i = 0; i < p.value.size(); ++i) p.value[i] = T(std::sin(seed + 0.37 * ++k));
    });
  }
};

template <class A, class B>
void expect_same_values(FakeModel<A>& a, FakeModel<B>& b, double tol) {
  std::vector<std::vector<double>> va, vb;
  a.visit([&](const std::string&, Param<A>& p) { va.emplace_back(p.value.begin(), p.value.end()); });
  b.visit([&](const std::string&, Param<B>& p) { vb.emplace_back(p.value.begin(), p.value.end()); });
  ASSERT_EQ(va.size(), vb.size());
  for (std::size_t t = 0; t < va.size(); ++t) {
    ASSERT_EQ(va[t].size(), vb[t].size());
    for (std::size_t i = 0; i < va[t].size(); ++i) EXPECT_NEAR(va[t][i], vb[t][i], tol) << "tensor " << t << " element " << i;
  }
}

using tnn::testing_helpers::error_of;  // the message of the E f throws (test_helpers.hpp)
#define EXPECT_CONTAINS(msg, piece) EXPECT_NE((msg).find(piece), std::string::npos) << (msg)

// The message of the E that read_config throws on the file at `path`.
template <class E = tnn::FormatError>
std::string read_config_error(const std::string& path) {
  return error_of<E>([&] { tnn::read_config(path); });
}

}  // namespace

TEST(Checkpoint, SaveThenLoadRestoresEveryTensorExactly) {
  TempDir dir("tnn_ck_");
  FakeModel<float> a;
  a.fill(1.0);
  tnn::save_model(dir.file("m.safetensors"), a);
  FakeModel<float> b;
  b.norm.grad.fill(3.f);
  tnn::load_weights(dir.file("m.safetensors"), b);
  expect_same_values(a, b, 0.0);
  EXPECT_FALSE(b.gamma.trainable);       // loading changes values only
  EXPECT_EQ(b.norm.grad[0], 3.f);        // not gradients
  const auto f = tnn::read_safetensors(dir.file("m.safetensors"));
  EXPECT_EQ(f.dtype("embed.weight"), Dtype::F32);
  EXPECT_EQ(f.shape("layers.0.token_mixer.u_proj.weight"), (tnn::Shape{2, 3}));
}

TEST(Checkpoint, F32AndF64FilesLoadIntoEitherPrecision) {
  TempDir dir("tnn_ck_");
  FakeModel<double> d;
  d.fill(2.0);
  tnn::save_model(dir.file("d64.safetensors"), d, Dtype::F64);
  tnn::save_model(dir.file("d32.safetensors"), d, Dtype::F32);
  EXPECT_EQ(tnn::read_safetensors(dir.file("d64.safetensors")).dtype("embed.weight"), Dtype::F64);

  FakeModel<double> d64;
  tnn::load_weights(dir.file("d64.safetensors"), d64);
  expect_same_values(d, d64, 0.0);
  FakeModel<float> f64;
  tnn::load_weights(dir.file("d64.safetensors"), f64);
  expect_same_values(d, f64, 1e-7);
  FakeModel<double> d32;
  tnn::load_weights(dir.file("d32.safetensors"), d32);
  expect_same_values(d, d32, 1e-7);

  FakeModel<float> f;
  f.fill(3.0);
  tnn::save_model(dir.file("f64.safetensors"), f, Dtype::F64);
  FakeModel<float> back;
  tnn::load_weights(dir.file("f64.safetensors"), back);
  expect_same_values(f, back, 0.0);  // float -> double -> float is exact

  EXPECT_THROW(tnn::save_model(dir.file("i.safetensors"), f, Dtype::I32), tnn::ValueError);
}

TEST(Checkpoint, SaveLoadSaveIsByteIdentical) {
  TempDir dir("tnn_ck_");
  FakeModel<double> a;
  a.fill(4.0);
  tnn::save_model(dir.file("1.safetensors"), a, Dtype::F64, {{"tnn.step", "17"}});
  FakeModel<double> b;
  tnn::load_weights(dir.file("1.safetensors"), b);
  tnn::save_model(dir.file("2.safetensors"), b, Dtype::F64, {{"tnn.step", "17"}});
  EXPECT_EQ(read_bytes(dir.file("1.safetensors")), read_bytes(dir.file("2.safetensors")));
}

TEST(Checkpoint, ConfigIsStoredAndReadBack) {
  TempDir dir("tnn_ck_");
  FakeModel<float> a;
  a.cfg.gamma = 0.9;
  a.cfg.glu_act = tnn::Activation::Gelu;
  tnn::save_model(dir.file("m.safetensors"), a, Dtype::F32, {{"tnn.step", "5"}});
  const TnnConfig c = tnn::read_config(dir.file("m.safetensors"), /*check_tensors=*/false);  // FakeModel is no TnnLM
  EXPECT_EQ(c.to_json(), a.cfg.to_json());
  EXPECT_EQ(tnn::read_safetensors(dir.file("m.safetensors")).metadata_at("tnn.step"), "5");
  EXPECT_THROW(tnn::save_model(dir.file("x.safetensors"), a, Dtype::F32, {{"tnn.config", "{}"}}), tnn::ValueError);
}

// The tokenizer travels in the model file: absent for bytes (the file is what it always was),
// stored and read back otherwise, and refused when the model has fewer ids than it.
TEST(Checkpoint, TokenizerIsStoredAndReadBack) {
  TempDir dir("tnn_ck_");
  FakeModel<float> a;  // vocab_size 5
  tnn::save_model(dir.file("bytes.safetensors"), a, Dtype::F32, tnn::tokenizer_metadata(tnn::Tokenizer()));
  EXPECT_FALSE(tnn::read_safetensors(dir.file("bytes.safetensors")).has_metadata(tnn::kTokenizerMetadataKey));
  EXPECT_EQ(tnn::read_tokenizer(dir.file("bytes.safetensors")), tnn::Tokenizer::bytes());
  tnn::save_model(dir.file("ids.safetensors"), a, Dtype::F32, tnn::tokenizer_metadata(tnn::Tokenizer::ids(5)));
  EXPECT_EQ(tnn::read_tokenizer(dir.file("ids.safetensors")), tnn::Tokenizer::ids(5));
  tnn::save_model(dir.file("six.safetensors"), a, Dtype::F32, tnn::tokenizer_metadata(tnn::Tokenizer::ids(6)));
  const std::string msg = error_of<tnn::FormatError>([&] { tnn::read_tokenizer(dir.file("six.safetensors")); });
  EXPECT_CONTAINS(msg, "six.safetensors");
  EXPECT_CONTAINS(msg, "vocab_size 5");
  tnn::save_model(dir.file("bad.safetensors"), a, Dtype::F32, {{tnn::kTokenizerMetadataKey, "{\"kind\":1}"}});
  EXPECT_CONTAINS(error_of<tnn::FormatError>([&] { tnn::read_tokenizer(dir.file("bad.safetensors")); }), "tnn.tokenizer");
#if defined(TNN_USE_SENTENCEPIECE)
  const tnn::Tokenizer sp = tnn::Tokenizer::sentencepiece(tnn_test::train_tiny_sentencepiece(tnn_test::tiny_text()), "tiny");
  a.cfg.vocab_size = sp.vocab_size();
  a.embed.init({a.cfg.vocab_size, a.cfg.dim});
  tnn::save_model(dir.file("sp.safetensors"), a, Dtype::F32, tnn::tokenizer_metadata(sp));
  const tnn::Tokenizer back = tnn::read_tokenizer(dir.file("sp.safetensors"));
  EXPECT_EQ(back, sp);
  EXPECT_EQ(back.decode(back.encode("the light\n")), "the light\n");
#endif
}

TEST(Checkpoint, ReadConfigNeedsAValidConfig) {
  TempDir dir("tnn_ck_");
  tnn::SafetensorsWriter w;
  w.add("x", Tensor<float>({1}));
  w.write(dir.file("none.safetensors"));
  EXPECT_CONTAINS(read_config_error(dir.file("none.safetensors")), "tnn.config");
  w.set_metadata("tnn.config", "{\"vocab_size\": 5, \"dim\": 3, \"layers\": 0}");  // no layers
  w.write(dir.file("bad.safetensors"));
  const std::string msg = read_config_error<tnn::ConfigError>(dir.file("bad.safetensors"));
  EXPECT_CONTAINS(msg, "layers");
  EXPECT_CONTAINS(msg, dir.file("bad.safetensors"));
}

TEST(Checkpoint, MissingAndExtraTensorsAreNamed) {
  TempDir dir("tnn_ck_");
  FakeModel<float> full;
  full.extra = true;
  tnn::save_model(dir.file("full.safetensors"), full);
  FakeModel<float> base;
  tnn::save_model(dir.file("base.safetensors"), base);

  FakeModel<float> m;
  std::string msg = error_of<tnn::FormatError>([&] { tnn::load_weights(dir.file("full.safetensors"), m); });
  EXPECT_CONTAINS(msg, "not expected: [\"lm_head.weight\"]");
  EXPECT_CONTAINS(msg, "missing from the file: []");

  FakeModel<float> wants_more;
  wants_more.extra = true;
  msg = error_of<tnn::FormatError>([&] { tnn::load_weights(dir.file("base.safetensors"), wants_more); });
  EXPECT_CONTAINS(msg, "missing from the file: [\"lm_head.weight\"]");

  FakeModel<float> both;
  both.extra = true;
  both.drop_last = true;
  msg = error_of<tnn::FormatError>([&] { tnn::load_weights(dir.file("base.safetensors"), both); });
  EXPECT_CONTAINS(msg, "missing from the file: [\"lm_head.weight\"]");
  EXPECT_CONTAINS(msg, "not expected: [\"final_norm.scale\"]");
  EXPECT_CONTAINS(msg, dir.file("base.safetensors"));
}

TEST(Checkpoint, MisshapedTensorIsNamedWithBothShapes) {
  TempDir dir("tnn_ck_");
  FakeModel<float> narrow;
  tnn::save_model(dir.file("m.safetensors"), narrow);
  FakeModel<float> wide(/*wide=*/true);
  const std::string msg = error_of<tnn::FormatError>([&] { tnn::load_weights(dir.file("m.safetensors"), wide); });
  EXPECT_CONTAINS(msg, "layers.0.token_mixer.u_proj.weight");
  EXPECT_CONTAINS(msg, "expected shape [4, 3]");
  EXPECT_CONTAINS(msg, "got [2, 3]");
}

TEST(Checkpoint, NonFiniteValuesAreRefusedAndTheModelIsLeftAsItWas) {
  TempDir dir("tnn_ck_");
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(), 1e300}) {
    // Written by hand: save_model itself refuses such values.
    FakeModel<double> src;
    src.fill(5.0);
    Tensor<double> scale({3}, 1.0);
    scale[2] = bad;
    tnn::SafetensorsWriter w2;
    src.visit([&](const std::string& name, Param<double>& p) {
      w2.add(name, name == "final_norm.scale" ? scale : p.value, Dtype::F64);
    });
    w2.set_metadata("tnn.config", src.cfg.to_json().dump());
    w2.write(dir.file("bad.safetensors"));

    FakeModel<float> m;  // 1e300 is finite in the file but not as float
    m.fill(6.0);
    FakeModel<float> before = m;
    const std::string msg = error_of<tnn::ValueError>([&] { tnn::load_weights(dir.file("bad.safetensors"), m); });
    EXPECT_CONTAINS(msg, "final_norm.scale");
    EXPECT_CONTAINS(msg, "element 2");
    expect_same_values(before, m, 0.0);
  }
}

TEST(Checkpoint, SavingNonFiniteWeightsKeepsThePreviousFile) {
  TempDir dir("tnn_ck_");
  FakeModel<double> m;
  m.fill(7.0);
  tnn::save_model(dir.file("m.safetensors"), m);
  const Bytes good = read_bytes(dir.file("m.safetensors"));
  m.proj.value[3] = std::nan("");
  EXPECT_CONTAINS(error_of<tnn::ValueError>([&] { tnn::save_model(dir.file("m.safetensors"), m); }),
                  "layers.0.token_mixer.u_proj.weight");
  m.proj.value[3] = 1e300;  // finite, but not as F32
  EXPECT_THROW(tnn::save_model(dir.file("m.safetensors"), m, Dtype::F32), tnn::ValueError);
  EXPECT_EQ(read_bytes(dir.file("m.safetensors")), good);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.safetensors"});
}

TEST(Checkpoint, ConfigMismatchIsRefusedNamingTheKeys) {
  TempDir dir("tnn_ck_");
  FakeModel<float> a;
  tnn::save_model(dir.file("m.safetensors"), a);
  FakeModel<float> b;
  b.cfg.gamma = 0.5;
  b.cfg.causal = false;
  const std::string msg = error_of<tnn::FormatError>([&] { tnn::load_weights(dir.file("m.safetensors"), b); });
  EXPECT_CONTAINS(msg, "gamma: model 0.5, checkpoint 0.99");
  EXPECT_CONTAINS(msg, "causal: model false, checkpoint true");
  EXPECT_NO_THROW(tnn::load_weights(dir.file("m.safetensors"), b, /*check_config=*/false));

  tnn::SafetensorsWriter w;  // no config at all
  a.visit([&](const std::string& name, Param<float>& p) { w.add(name, p.value); });
  w.write(dir.file("noconfig.safetensors"));
  EXPECT_CONTAINS(error_of<tnn::FormatError>([&] { tnn::load_weights(dir.file("noconfig.safetensors"), a); }),
                  "tnn.config");
  EXPECT_NO_THROW(tnn::load_weights(dir.file("noconfig.safetensors"), a, false));
}

TEST(Checkpoint, IntegerTensorsAreNotWeights) {
  TempDir dir("tnn_ck_");
  FakeModel<float> a;
  tnn::SafetensorsWriter w;
  a.visit([&](const std::string& name, Param<float>& p) {
    if (name == "final_norm.scale") w.add(name, Tensor<std::int32_t>({3}, 1));
    else w.add(name, p.value);
  });
  w.set_metadata("tnn.config", a.cfg.to_json().dump());
  w.write(dir.file("m.safetensors"));
  const std::string msg = error_of<tnn::FormatError>([&] { tnn::load_weights(dir.file("m.safetensors"), a); });
  EXPECT_CONTAINS(msg, "final_norm.scale");
  EXPECT_CONTAINS(msg, "I32");
}

// ---- optimizer state ----

namespace {
std::map<std::string, Tensor<float>> moments(float base) {
  std::map<std::string, Tensor<float>> m;
  m["embed.weight.exp_avg"] = Tensor<float>({5, 3}, base);
  m["embed.weight.exp_avg_sq"] = Tensor<float>({5, 3}, base * 2);
  m["final_norm.scale.exp_avg"] = Tensor<float>({3}, base * 3);
  m["final_norm.scale.exp_avg"][1] = 0.1f;
  return m;
}
auto visitor(std::map<std::string, Tensor<float>>& m) {
  return [&m](auto&& f) {
    for (auto& [k, t] : m) f(k, t);
  };
}
}  // namespace

TEST(OptimizerState, RoundTripsTensorsStepAndExtraJson) {
  TempDir dir("tnn_ck_");
  const std::string path = tnn::optimizer_state_path(dir.file("ckpt.safetensors"));
  EXPECT_EQ(path, dir.file("ckpt.optim.safetensors"));
  auto saved = moments(0.25f);
  const std::string extra = R"({"rng":[18446744073709551615,1,2,3],"data_pos":12})";
  tnn::save_optimizer_state(path, 123456789012345, visitor(saved), extra);

  auto loaded = moments(0.0f);
  const tnn::OptimizerStateInfo info = tnn::load_optimizer_state(path, visitor(loaded));
  EXPECT_EQ(info.step, 123456789012345);
  EXPECT_EQ(info.extra_json, extra);
  EXPECT_EQ(nlohmann::json::parse(info.extra_json)["rng"][0].get<std::uint64_t>(), 18446744073709551615ull);
  for (auto& [k, t] : saved) {
    ASSERT_EQ(loaded[k].shape(), t.shape());
    for (Index i = 0; i < t.size(); ++i) EXPECT_EQ(loaded[k][i], t[i]) << k << " " << i;
  }
  // Stored in its own precision: a resume is bit-exact.
  EXPECT_EQ(tnn::read_safetensors(path).dtype("embed.weight.exp_avg"), Dtype::F32);
  EXPECT_EQ(tnn::optimizer_state_path("run/x"), "run/x.optim.safetensors");
}

TEST(OptimizerState, NamesShapesAndValuesAreChecked) {
  TempDir dir("tnn_ck_");
  const std::string path = dir.file("o.safetensors");
  auto saved = moments(0.5f);
  tnn::save_optimizer_state(path, 3, visitor(saved));

  auto fewer = moments(0.f);
  fewer.erase("embed.weight.exp_avg_sq");
  EXPECT_CONTAINS(error_of<tnn::FormatError>([&] { tnn::load_optimizer_state(path, visitor(fewer)); }),
                  "not expected: [\"embed.weight.exp_avg_sq\"]");
  auto reshaped = moments(0.f);
  reshaped["final_norm.scale.exp_avg"] = Tensor<float>({4});
  EXPECT_CONTAINS(error_of<tnn::FormatError>([&] { tnn::load_optimizer_state(path, visitor(reshaped)); }),
                  "final_norm.scale.exp_avg");
  // A destination untouched by a failed load.
  EXPECT_EQ(reshaped["embed.weight.exp_avg"][0], 0.f);

  auto bad = moments(0.5f);
  bad["embed.weight.exp_avg"][4] = std::numeric_limits<float>::infinity();
  EXPECT_CONTAINS(error_of<tnn::ValueError>([&] { tnn::save_optimizer_state(path, 4, visitor(bad)); }),
                  "embed.weight.exp_avg");
  EXPECT_THROW(tnn::save_optimizer_state(path, -1, visitor(saved)), tnn::ValueError);
  EXPECT_THROW(tnn::save_optimizer_state(path, 4, visitor(saved), "{not json"), tnn::ValueError);
  auto again = moments(0.f);
  EXPECT_EQ(tnn::load_optimizer_state(path, visitor(again)).step, 3);  // still the first file
}

TEST(OptimizerState, MetadataMustBeWellFormed) {
  TempDir dir("tnn_ck_");
  auto t = moments(1.f);
  auto write_with = [&](const std::map<std::string, std::string>& meta) {
    tnn::SafetensorsWriter w;
    for (auto& [k, v] : t) w.add(k, v);
    for (auto& [k, v] : meta) w.set_metadata(k, v);
    w.write(dir.file("o.safetensors"));
  };
  auto load_error = [&] {
    auto dst = moments(0.f);
    return error_of<tnn::FormatError>([&] { tnn::load_optimizer_state(dir.file("o.safetensors"), visitor(dst)); });
  };
  write_with({{"tnn.optim.extra", "{}"}});
  EXPECT_CONTAINS(load_error(), "tnn.optim.step");
  for (const char* step : {"", "-1", "12a", " 1", "9223372036854775808", "1e3"}) {
    write_with({{"tnn.optim.step", step}, {"tnn.optim.extra", "{}"}});
    EXPECT_CONTAINS(load_error(), "tnn.optim.step");
  }
  write_with({{"tnn.optim.step", "1"}});
  EXPECT_CONTAINS(load_error(), "tnn.optim.extra");
  write_with({{"tnn.optim.step", "1"}, {"tnn.optim.extra", "{"}});
  EXPECT_CONTAINS(load_error(), "tnn.optim.extra");
  write_with({{"tnn.optim.step", "9223372036854775807"}, {"tnn.optim.extra", "[]"}});
  auto dst = moments(0.f);
  EXPECT_EQ(tnn::load_optimizer_state(dir.file("o.safetensors"), visitor(dst)).step,
            std::numeric_limits<std::int64_t>::max());
}

// ---- Checks made before a model is allocated (model/checkpoint.hpp, read_config) ----

namespace {

std::map<std::string, tnn::Shape> shapes_of_model(const TnnConfig& cfg) {
  tnn::TnnLM<float> m(cfg);
  std::map<std::string, tnn::Shape> out;
  m.visit([&](const std::string& name, Param<float>& p) { out.emplace(name, p.value.shape()); });
  return out;
}

// A file with exactly the tensors (zeros) `shapes_cfg` implies, and `stored_cfg` as its config.
// (name, shape) of every tensor the built-in model of cfg.task stores, from its description.
std::vector<std::pair<std::string, tnn::Shape>> implied_shapes(const TnnConfig& cfg) {
  return tnn::with_model_type<float>(cfg.task, [&](auto model) {
    return tnn::model_tensor_shapes<typename decltype(model)::type>(cfg);
  });
}

void write_model_file(const std::string& path, const TnnConfig& shapes_cfg, const std::string& stored_cfg) {
  tnn::SafetensorsWriter w;
  for (const auto& [name, s] : implied_shapes(shapes_cfg)) w.add(name, Tensor<float>(s));
  w.set_metadata("tnn.config", stored_cfg);
  w.write(path);
}

long peak_rss_kb() {
  struct rusage u {};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// A model config of 7 tokens, `dim` wide and `layers` deep; the rest as TnnConfig has it.
TnnConfig lm_config(Index dim, Index layers) {
  TnnConfig c;
  c.vocab_size = 7;
  c.dim = dim;
  c.layers = layers;
  return c;
}

// Saves m, a model of config c, at dir/m.safetensors: read_config gives c back. A file holding as
// many tensors as c's model but the shapes of c after change(c), under c's config, is refused (a
// FormatError) with a message containing `piece`.
template <class Model, class Change>
void expect_read_config_checks_tensors(const TempDir& dir, Model& m, const TnnConfig& c, Change change,
                                       const std::string& piece) {
  tnn::save_model(dir.file("m.safetensors"), m);
  EXPECT_EQ(tnn::read_config(dir.file("m.safetensors")).to_json(), c.to_json());
  TnnConfig other = c;
  change(other);
  write_model_file(dir.file("other.safetensors"), other, c.to_json().dump());
  const std::string msg = read_config_error(dir.file("other.safetensors"));
  EXPECT_CONTAINS(msg, piece);
}

// `tiny` with layers 2^22 wide (expand ratio 1): a config that asks for tensors of TiBs.
TnnConfig huge_width(TnnConfig tiny) {
  tiny.dim = Index(1) << 22;
  tiny.expand_ratio = 1;
  return tiny;
}

// Runs read, which reads files whose configs ask for far more than they hold, and expects the peak
// RSS to grow by less than 16 MiB meanwhile: the configs are refused before any allocation.
template <class Read>
void expect_refused_before_allocation(const std::string& what, Read read) {
  const long before = peak_rss_kb();
  read();
  EXPECT_LT(peak_rss_kb() - before, 16 * 1024) << "peak RSS grew while reading " << what;
}

}  // namespace

TEST(Checkpoint, ModelTensorsMatchTheModelsVisit) {
  std::vector<TnnConfig> cfgs;
  for (auto norm : {tnn::NormType::SimpleRMSNorm, tnn::NormType::RMSNorm, tnn::NormType::LayerNorm})
    for (int variant = 0; variant < 4; ++variant) {
      TnnConfig c = lm_config(4 + variant, 1 + variant % 2);
      c.heads = variant == 3 ? 2 : 1;
      c.rpe_dim = 3;
      c.rpe_layers = variant;
      c.glu_dim = variant == 2 ? 5 : -1;
      c.norm_type = norm;
      c.tie_embeddings = variant % 2 == 1;
      c.decay = (variant == 1) ? tnn::TnoDecay::Learned : (variant != 1) ? tnn::TnoDecay::Fixed : tnn::TnoDecay::None;
      if (variant == 0) c.decay = tnn::TnoDecay::None;
      cfgs.push_back(c);
    }
  for (const TnnConfig& c : cfgs) {
    SCOPED_TRACE(c.to_json().dump());
    std::map<std::string, tnn::Shape> implied;
    for (const auto& [name, s] : implied_shapes(c)) EXPECT_TRUE(implied.emplace(name, s).second) << name << " named twice";
    EXPECT_EQ(implied, shapes_of_model(c));
  }
}

// The tensors of the official options (docs/official.md §3), by name and shape, and the
// description read_config checks a file against says the same.
TEST(Checkpoint, OfficialOptionTensorNames) {
  TnnConfig c = lm_config(4, 1);
  c.expand_ratio = 1;
  c.rpe_dim = 3;
  c.rpe_layers = 1;
  c.decay = tnn::TnoDecay::None;
  c.norm_type = tnn::NormType::LayerNorm;
  c.use_norm = true;
  c.bias = false;
  c.glu_bias = false;
  c.embed_norm_type = tnn::NormType::GatedRMSNorm;
  c.final_norm_type = tnn::NormType::None;
  c.lm_head_type = tnn::LmHeadType::Roberta;
  const std::string t = "layers.0.token_mixer.", r = t + "toep.rpe.";
  std::map<std::string, tnn::Shape> want = {
      {"embed.weight", {7, 4}}, {"embed_norm.scale", {4}}, {"embed_norm.gate", {4}},
      {"layers.0.token_norm.weight", {4}}, {"layers.0.token_norm.bias", {4}},
      {t + "u_proj.weight", {4, 4}}, {t + "v_proj.weight", {4, 4}}, {t + "o.weight", {4, 4}},
      {t + "norm.weight", {4}}, {t + "norm.bias", {4}},
      {r + "pos_proj.weight", {3, 1}}, {r + "layers.0.0.weight", {3}}, {r + "layers.0.0.bias", {3}},
      {r + "layers.0.2.weight", {3, 3}}, {r + "out.0.weight", {3}}, {r + "out.0.bias", {3}},
      {r + "out.2.weight", {4, 3}},
      {"layers.0.feature_norm.weight", {4}}, {"layers.0.feature_norm.bias", {4}},
      {"layers.0.feature_mixer.l1.weight", {4, 4}}, {"layers.0.feature_mixer.l2.weight", {4, 4}},
      {"layers.0.feature_mixer.l3.weight", {4, 4}},
      {"lm_head.dense.weight", {4, 4}}, {"lm_head.dense.bias", {4}}, {"lm_head.layer_norm.weight", {4}},
      {"lm_head.layer_norm.bias", {4}}, {"lm_head.weight", {7, 4}}, {"lm_head.bias", {7}}};
  EXPECT_EQ(shapes_of_model(c), want);
  std::map<std::string, tnn::Shape> implied;
  for (const auto& [name, s] : implied_shapes(c)) implied.emplace(name, s);
  EXPECT_EQ(implied, want);
  c.tie_embeddings = true;  // the tied RoBERTa head keeps its bias, not its weight
  want.erase("lm_head.weight");
  EXPECT_EQ(shapes_of_model(c), want);
}

// The paper's models as shipped in configs/ (configs/README.md): each parses as it is and
// describes the official architecture's tensors (without allocating them). The files name no
// vocabulary: the program adds the data's (bytes: 256, 257 with the mask symbol; a tokenizer's
// pieces), as load() does here.
TEST(Checkpoint, ShippedConfigsDescribeThePapersModels) {
  auto load = [](const std::string& name, tnn::Index vocab) {
    const std::string path = std::string(TNN_SOURCE_DIR) + "/configs/" + name;
    const std::vector<std::uint8_t> bytes = tnn::read_file_bounded(path, 1 << 20, "config");
    nlohmann::json j = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
    EXPECT_FALSE(j.contains("vocab_size")) << name;
    j["vocab_size"] = vocab;
    return TnnConfig::from_json(j);
  };
  auto names = [](const TnnConfig& c) {
    std::map<std::string, tnn::Shape> out;
    for (const auto& [name, s] : implied_shapes(c)) out.emplace(name, s);
    return out;
  };
  const TnnConfig lm = load("wikitext103_tnn_lm.json", 4000);
  EXPECT_EQ(lm.dim, 512);
  EXPECT_EQ(lm.layers, 7);
  EXPECT_EQ(lm.inner_dim(), 1536);
  EXPECT_TRUE(lm.causal && lm.prenorm && lm.scale_embedding);
  EXPECT_EQ(lm.final_norm(), tnn::NormType::LayerNorm);
  EXPECT_EQ(lm.dropout, 0.1);
  const auto lm_names = names(lm);
  EXPECT_EQ(lm_names.at("final_norm.weight"), tnn::Shape{512});
  EXPECT_EQ(lm_names.at("layers.6.token_mixer.toep.rpe.layers.5.2.weight"), (tnn::Shape{64, 64}));
  EXPECT_EQ(lm_names.count("layers.0.token_norm.weight"), 0u);  // simplermsnorm layers
  EXPECT_EQ(lm_names.at("embed.weight"), (tnn::Shape{4000, 512}));
  const TnnConfig mlm = load("roberta_tnn_mlm.json", tnn::kMlmVocab);
  EXPECT_FALSE(mlm.causal || mlm.prenorm);
  EXPECT_TRUE(mlm.postnorm_residual && mlm.tie_embeddings);
  EXPECT_EQ(mlm.lm_head_type, tnn::LmHeadType::Roberta);
  const auto mlm_names = names(mlm);
  EXPECT_EQ(mlm_names.at("embed_norm.weight"), tnn::Shape{768});
  EXPECT_EQ(mlm_names.at("lm_head.dense.weight"), (tnn::Shape{768, 768}));
  EXPECT_EQ(mlm_names.at("lm_head.bias"), tnn::Shape{257});
  EXPECT_EQ(mlm_names.count("lm_head.weight"), 0u);  // tied to the embedding
  EXPECT_EQ(mlm_names.count("final_norm.weight"), 0u);
}

TEST(Checkpoint, ReadConfigAcceptsARealModelAndChecksItsTensors) {
  TempDir dir("tnn_ck_");
  TnnConfig c = small_config();
  tnn::TnnLM<float> m(c);
  expect_read_config_checks_tensors(dir, m, c, [](TnnConfig& wider) { wider.dim = 6; },
                                    "its config implies shape [5, 3], the file has [5, 6]");
}

TEST(Checkpoint, HugeVocabularyInATinyFileFailsBeforeAnyAllocation) {
  TempDir dir("tnn_ck_");
  const TnnConfig tiny = small_config();
  // Same tensor count as `tiny`, but a config asking for a 2^24 x 2^22 embedding (256 TiB).
  TnnConfig huge = huge_width(tiny);
  huge.vocab_size = Index(1) << 24;
  write_model_file(dir.file("h.safetensors"), tiny, huge.to_json().dump());
  // And one claiming 65536 layers of that.
  huge.layers = Index(1) << 16;
  tnn::SafetensorsWriter w;
  w.add("embed.weight", Tensor<float>({1}));
  w.set_metadata("tnn.config", huge.to_json().dump());
  w.write(dir.file("l.safetensors"));
  ASSERT_LT(read_bytes(dir.file("l.safetensors")).size(), 1000u);

  expect_refused_before_allocation("two tiny checkpoints", [&] {
    EXPECT_CONTAINS(read_config_error(dir.file("h.safetensors")),
                    "tensor \"embed.weight\": its config implies shape [16777216, 4194304]");
    const std::string many = read_config_error(dir.file("l.safetensors"));
    EXPECT_CONTAINS(many, "layers 65536) needs");
    EXPECT_CONTAINS(many, "the file has 1");
  });
}

namespace {

TnnConfig small_image_config() {
  return TnnConfig::parse(R"({"task": "image", "causal": false, "image_height": 6, "image_width": 4, "image_channels": 2,
                              "patch_size": 2, "num_classes": 3, "dim": 4, "layers": 1, "rpe_dim": 3})");
}

}  // namespace

TEST(Checkpoint, ImageModelTensorsMatchTheModelsVisit) {
  for (auto norm : {tnn::NormType::SimpleRMSNorm, tnn::NormType::RMSNorm, tnn::NormType::LayerNorm})
    for (int variant = 0; variant < 3; ++variant) {
      TnnConfig c = small_image_config();
      c.norm_type = norm;
      c.layers = 1 + variant % 2;
      c.heads = variant == 2 ? 2 : 1;
      c.rpe_layers = variant;
      c.decay = (variant == 1) ? tnn::TnoDecay::Learned : (variant != 1) ? tnn::TnoDecay::Fixed : tnn::TnoDecay::None;
      c.patch_size = variant == 0 ? 1 : 2;
      SCOPED_TRACE(c.to_json().dump());
      std::map<std::string, tnn::Shape> implied, actual;
      for (const auto& [name, s] : implied_shapes(c)) EXPECT_TRUE(implied.emplace(name, s).second) << name << " named twice";
      tnn::TnnImageClassifier<float> m(c);
      m.visit([&](const std::string& name, Param<float>& p) { actual.emplace(name, p.value.shape()); });
      EXPECT_EQ(implied, actual);
    }
}

TEST(Checkpoint, ImageModelLoadsThroughReadConfig) {
  TempDir dir("tnn_ck_");
  const TnnConfig c = small_image_config();
  tnn::TnnImageClassifier<float> m(c);
  m.init_weights(3);
  // patch_embed.weight [4, 2] instead of [4, 8]
  expect_read_config_checks_tensors(
      dir, m, c, [](TnnConfig& other) { other.patch_size = 1; },
      "tensor \"patch_embed.weight\": its config implies shape [4, 8], the file has [4, 2]");
  auto back = tnn::load_model<tnn::TnnImageClassifier<double>>(dir.file("m.safetensors"));
  EXPECT_EQ(back.num_parameters(), m.num_parameters());
}

TEST(Checkpoint, HugeImageModelInATinyFileFailsBeforeAnyAllocation) {
  TempDir dir("tnn_ck_");
  const TnnConfig tiny = small_image_config();
  // The tensors of `tiny`, and a config asking for 2^22-wide layers over 1024 x 1024 x 16 patches
  // (a patch_embed of 2^22 x 2^24 floats: 256 TiB).
  TnnConfig huge = huge_width(tiny);
  huge.image_height = huge.image_width = Index(1) << 12;
  huge.patch_size = Index(1) << 10;
  huge.image_channels = 16;
  write_model_file(dir.file("h.safetensors"), tiny, huge.to_json().dump());
  // One whose patch_size^2 * image_channels would overflow an int64 (2^24 * 2^24 * 2^24).
  TnnConfig over = tiny;
  over.image_height = over.image_width = over.patch_size = over.image_channels = Index(1) << 24;
  write_model_file(dir.file("o.safetensors"), tiny, over.to_json().dump());
  ASSERT_LT(read_bytes(dir.file("h.safetensors")).size(), 8000u);  // a few kB

  expect_refused_before_allocation("two tiny image checkpoints", [&] {
    EXPECT_CONTAINS(read_config_error(dir.file("h.safetensors")),
                    "tensor \"patch_embed.weight\": its config implies shape [4194304, 16777216]");
    EXPECT_CONTAINS(error_of<tnn::FormatError>([&] {
                      tnn::load_model<tnn::TnnImageClassifier<float>>(dir.file("h.safetensors"));
                    }),
                    "its config implies shape");
    EXPECT_CONTAINS(read_config_error<tnn::ConfigError>(dir.file("o.safetensors")),
                    "expected patch_size^2 * image_channels <= 16777216");
  });
}

TEST(Checkpoint, TrainingStateGivenAsCheckpointSaysWhichFileToUse) {
  TempDir dir("tnn_ck_");
  const std::string optim = dir.file("run.optim.safetensors");
  std::map<std::string, Tensor<float>> t{{"m", Tensor<float>({2})}};
  tnn::save_optimizer_state(optim, 3, [&](auto&& f) {
    for (auto& [k, v] : t) f(k, v);
  });
  const std::string msg = read_config_error(optim);
  EXPECT_CONTAINS(msg, "training-state");
  EXPECT_CONTAINS(msg, "'" + dir.file("run.safetensors") + "'");
  FakeModel<float> a;
  EXPECT_CONTAINS(error_of<tnn::FormatError>([&] { tnn::load_weights(optim, a); }), "training-state");
  // And the other way round: a model file given as the training state.
  tnn::save_model(dir.file("run.safetensors"), a);
  const std::string back = error_of<tnn::FormatError>(
      [&] { tnn::load_optimizer_state(dir.file("run.safetensors"), [&](auto&& f) { (void)f; }); });
  EXPECT_CONTAINS(back, "this is a model checkpoint, not a training-state file");
}

TEST(Checkpoint, TnnConfigMetadataIsStrictJson) {
  TempDir dir("tnn_ck_");
  const TnnConfig c = small_config();
  const std::string good = c.to_json().dump();
  const std::string body = good.substr(0, good.size() - 1);  // without the closing brace
  std::string deep = "{\"vocab_size\":" + std::string(100000, '[');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good + std::string("\0{\"x\":1}", 8), "NUL byte"},
      {body + ",\"dim\":3}", "\"dim\" appears twice"},
      {deep, "nested at most"},
      {good + "{}", "valid JSON"},
  };
  for (const auto& [text, piece] : cases) {
    write_model_file(dir.file("c.safetensors"), c, text);
    const std::string msg = read_config_error<tnn::ConfigError>(dir.file("c.safetensors"));
    EXPECT_CONTAINS(msg, piece);
    EXPECT_CONTAINS(msg, "tnn.config");
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    EXPECT_LT(msg.size(), 400u);
  }
}

TEST(Checkpoint, PathsWithNewlinesStayOnOneLineInMessages) {
  TempDir dir("tnn_ck_");
  const std::string path = dir.file("a\nb.safetensors");
  const std::string msg = read_config_error<tnn::IoError>(path);
  EXPECT_CONTAINS(msg, "a\\nb.safetensors");
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

// An attention model's checkpoint: the projections under layers.i.token_mixer.*, described
// before allocation like any model's, saved and loaded into either precision with the same
// logits; a GTU checkpoint is not one, and a huge layer count fails on the header alone.
TEST(Checkpoint, AttentionModelRoundTripsAndIsCheckedLikeAnyModel) {
  TempDir dir("tnn_ck_");
  TnnConfig c = lm_config(4, 2);
  c.heads = 2;
  c.token_mixer = tnn::TokenMixerKind::Attention;
  c.positions = tnn::PositionScheme::Sinusoidal;
  EXPECT_EQ(tnn::model_tensor_shapes<tnn::TnnLM<float>>(c).size(), shapes_of_model(c).size());
  std::map<std::string, tnn::Shape> implied;
  for (const auto& [name, s] : implied_shapes(c)) implied.emplace(name, s);
  EXPECT_EQ(implied, shapes_of_model(c));
  EXPECT_EQ(implied.at("layers.1.token_mixer.out_proj.weight"), (tnn::Shape{4, 4}));
  EXPECT_EQ(implied.count("layers.0.token_mixer.u_proj.weight"), 0u);

  tnn::TnnLM<float> m(c);
  m.init_weights(4);
  // GTU tensors, attention config
  expect_read_config_checks_tensors(
      dir, m, c, [](TnnConfig& gtu) { gtu.token_mixer = tnn::TokenMixerKind::Tno; }, "tensors, the file has");
  auto back = tnn::load_model<tnn::TnnLM<float>>(dir.file("m.safetensors"));
  Tensor<std::int32_t> tokens({1, 6});
  for (Index i = 0; i < 6; ++i) tokens[i] = std::int32_t(i % 7);
  const Tensor<float> want = m.forward(tokens);
  const Tensor<float>& got = back.forward(tokens);
  ASSERT_EQ(got.shape(), want.shape());
  for (Index i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << i;

  TnnConfig huge = c;
  huge.layers = Index(1) << 16;
  write_model_file(dir.file("h.safetensors"), c, huge.to_json().dump());
  const std::string many = read_config_error(dir.file("h.safetensors"));
  EXPECT_CONTAINS(many, "token_mixer attention, layers 65536) needs at least 262144 tensors");
}
