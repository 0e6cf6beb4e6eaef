// Model configuration (model.md §8): the JSON stored in a checkpoint's metadata under
// "tnn.config". Every key is written once, in the key table of its struct (visit_keys): name,
// member, meaning, and when it belongs in the JSON. From it come to_json, the strict parser
// (unknown keys, wrong types and impossible values are ConfigErrors naming the key), the list of
// known keys and the program's model flags.
//   BackboneConfig  what the layers need (the token mixer, the channel mixer, the norms, the
//                   positions the input adds)
//   TnnConfig       + the task: vocabulary, classes, image or feature sizes
// The layers know nothing of either: the functions at the end turn a config into their options.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/io/json.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/positions.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/model/block.hpp"

namespace tnn {

// What a model does with the backbone's output (model/models.hpp): next-token or masked-token
// logits (TnnLM), one label per sequence (TnnClassifier), one label per image (TnnImageClassifier:
// the 2-D TNN over a grid of patches), or real values per position (TnnRegressor: sequences of
// float features, e.g. a time series).
enum class Task { Lm, Classify, Image, Regress };
template <>
struct EnumTable<Task> {
  static constexpr EnumRow<Task> rows[] = {
      {Task::Lm, "lm"}, {Task::Classify, "classify"}, {Task::Image, "image"}, {Task::Regress, "regress"}};
};

// How a classifier turns a sequence into one vector: the mean over its valid positions, position 0,
// or each channel's maximum over the valid positions (its gradient goes to the first position
// holding the maximum). Max suits inputs whose evidence sits in a few positions among many, such
// as a path in an image: the mean dilutes it by the number of positions.
enum class Pooling { Mean, First, Max };
template <>
struct EnumTable<Pooling> {
  static constexpr EnumRow<Pooling> rows[] = {
      {Pooling::Mean, "mean"}, {Pooling::First, "first"}, {Pooling::Max, "max"}};
};

// A language model's vocabulary head: x W^T (linear), or fairseq's RobertaLMHead,
// LayerNorm(gelu(dense(x))) W^T + b (roberta; docs/official.md §2.10).
enum class LmHeadType { Linear, Roberta };
template <>
struct EnumTable<LmHeadType> {
  static constexpr EnumRow<LmHeadType> rows[] = {{LmHeadType::Linear, "linear"}, {LmHeadType::Roberta, "roberta"}};
};

// One row of a key table: the JSON key, what it means (the program's --help and the docs), and
// whether it belongs in a config's JSON (keys of other tasks are left out, so a language model's
// config is the same as before those tasks existed).
template <class Config>
struct ConfigKey {
  const char* name;
  const char* help;
  bool (*written)(const Config&) = nullptr;  // null: always
};

// The defaults are the model a user gets by default (a config file that leaves every key out,
// `tnn train` without model flags): a byte-level language model of 1.1 M parameters that learns
// English spelling and some grammar from a few megabytes of text in a few minutes on two cores
// (README, "The tnn program").
struct BackboneConfig {
  Index dim = 192;   // D
  Index layers = 3;
  TokenMixerKind token_mixer = TokenMixerKind::Tno;
  PositionScheme positions = PositionScheme::None;
  Index heads = 1;   // H
  double expand_ratio = 2;
  Index glu_dim = -1;  // G; -1 means "= dim"
  Index rpe_dim = 32;  // R
  Index rpe_layers = 1;
  double gamma = 0.99;
  Activation rpe_act = Activation::Relu;
  Activation gtu_act = Activation::Silu;
  Activation glu_act = Activation::Silu;
  NormType norm_type = NormType::SimpleRMSNorm;
  bool prenorm = true;
  bool causal = true;
  TnoDecay decay = TnoDecay::Fixed;
  // The official code's options (docs/official.md §1-2).
  bool use_norm = false;       // a norm over E before the GTU's output projection
  bool normalize = false;      // TNO(v) / TNO(1)
  bool residual = false;       // residual RPE hidden layers
  Index par_type = 1;          // the RPE's input: k, k / (N - 1), exp(k / (N - 1))
  bool bias = true;            // biases of u_proj, v_proj, o and of every RPE Linear
  bool glu_bias = true;        // biases of the GLU's l1, l2, l3
  Activation act_type = Activation::None;  // on every Toeplitz coefficient, after the decay
  double dropout = 0;          // training only
  std::optional<NormType> final_norm_type;  // unset: = norm_type (final_norm())
  bool postnorm_residual = false;           // with prenorm false: norm(x + f(x))

  // E = floor(expand_ratio * D) / H * H (integer division), model.md "Notation".
  Index inner_dim() const {
    const auto e = static_cast<Index>(std::floor(expand_ratio * static_cast<double>(dim)));
    return e / heads * heads;
  }
  Index head_dim() const { return inner_dim() / heads; }
  Index glu_width() const { return glu_dim < 0 ? dim : glu_dim; }
  NormType final_norm() const { return final_norm_type ? *final_norm_type : norm_type; }

  // f(ConfigKey, member) for every key, `self` a BackboneConfig or a class derived from it.
  template <class Self, class F>
  static void visit_keys(Self& c, F&& f) {
    using K = ConfigKey<std::remove_const_t<Self>>;
    f(K{"dim", "model width D"}, c.dim);
    f(K{"layers", "TNN layers"}, c.layers);
    // (token_mixer and positions are written when not the default: a TNN's config stays as it was)
    f(K{"token_mixer", "what mixes the tokens: tno, the GTU around a Toeplitz neural operator (keys expand_ratio, "
                       "rpe_*, gamma, gtu_act, decay); or attention, softmax attention with H heads of D/H channels "
                       "(those keys unused)",
        [](const auto& x) { return x.token_mixer != TokenMixerKind::Tno; }},
      c.token_mixer);
    f(K{"positions", "absolute positions the input adds to its vectors: none, or sinusoidal (the Transformer "
                     "baseline's; attention needs some, the TNO carries relative positions itself)",
        [](const auto& x) { return x.positions != PositionScheme::None; }},
      c.positions);
    f(K{"heads", "heads H of the token mixer"}, c.heads);
    f(K{"expand_ratio", "GTU width E = floor(expand_ratio * D), a multiple of H"}, c.expand_ratio);
    f(K{"glu_dim", "GLU width G (-1: = dim)"}, c.glu_dim);
    f(K{"rpe_dim", "width R of the relative position encoder"}, c.rpe_dim);
    f(K{"rpe_layers", "hidden layers of the relative position encoder"}, c.rpe_layers);
    f(K{"gamma", "decay rate lambda (decay fixed), or its lower bound (decay learned)"}, c.gamma);
    f(K{"rpe_act", "activation of the relative position encoder"}, c.rpe_act);
    f(K{"gtu_act", "activation of the GTU's gate and value"}, c.gtu_act);
    f(K{"glu_act", "activation of the GLU"}, c.glu_act);
    f(K{"norm_type", "norm of every layer"}, c.norm_type);
    f(K{"prenorm", "norm before each mixer (true) or after it"}, c.prenorm);
    f(K{"causal", "each position sees only itself and earlier ones"}, c.causal);
    f(K{"decay", "the TNO's decay lambda^|k|: fixed lambda = gamma, learned per channel, or none"}, c.decay);
    f(K{"use_norm", "a norm (norm_type) over E before the GTU's output projection"}, c.use_norm);
    f(K{"normalize", "the TNO's output divided by the TNO applied to ones"}, c.normalize);
    f(K{"residual", "each hidden layer of the relative position encoder adds its input"}, c.residual);
    f(K{"par_type", "the relative position encoder's input: 1 k, 2 k/(N-1), 3 exp(k/(N-1))"}, c.par_type);
    f(K{"bias", "biases of the GTU's projections and of every relative position encoder layer"}, c.bias);
    f(K{"glu_bias", "biases of the GLU's three projections"}, c.glu_bias);
    f(K{"act_type", "activation of every Toeplitz coefficient, after the decay"}, c.act_type);
    f(K{"dropout", "dropout probability in training (the embedding and every branch output)"}, c.dropout);
    f(K{"final_norm_type", "the final norm (none: no final norm); default: norm_type"}, c.final_norm_type);
    f(K{"postnorm_residual", "with prenorm false: norm(x + f(x)) instead of x + norm(f(x))"}, c.postnorm_residual);
  }
};

struct TnnConfig : BackboneConfig {
  Index vocab_size = 0;  // V, required for tasks lm and classify
  bool tie_embeddings = false;
  Task task = Task::Lm;
  Index num_classes = 0;  // K, required (>= 2) for tasks classify and image
  Pooling pooling = Pooling::Mean;
  // Image classification (task image): images [Hi, Wi, Ch] cut into patch_size x patch_size
  // patches, a grid of (Hi / P) x (Wi / P) tokens.
  Index image_height = 0, image_width = 0, image_channels = 0, patch_size = 1;
  // Regression (task regress): F float features in and Fo values out per position.
  Index input_features = 0, output_features = 0;

  // Token embedding (tasks lm and classify): times sqrt(D), then a norm (none: no norm).
  bool scale_embedding = false;
  NormType embed_norm_type = NormType::None;
  LmHeadType lm_head_type = LmHeadType::Linear;  // task lm

  Index grid_h() const { return patch_size > 0 ? image_height / patch_size : 0; }
  Index grid_w() const { return patch_size > 0 ? image_width / patch_size : 0; }
  bool has_vocab() const { return task == Task::Lm || task == Task::Classify; }
  bool has_classes() const { return task == Task::Classify || task == Task::Image; }

  template <class Self, class F>
  static void visit_keys(Self& c, F&& f) {
    using K = ConfigKey<std::remove_const_t<Self>>;
    f(K{"vocab_size", "vocabulary size V", [](const TnnConfig& x) { return x.has_vocab(); }}, c.vocab_size);
    BackboneConfig::visit_keys(c, f);
    f(K{"tie_embeddings", "the output head shares the embedding's weight",
        [](const TnnConfig& x) { return x.task == Task::Lm; }},
      c.tie_embeddings);
    auto tokens = [](const TnnConfig& x) { return x.has_vocab(); };
    f(K{"scale_embedding", "the token embedding times sqrt(dim)", tokens}, c.scale_embedding);
    f(K{"embed_norm_type", "a norm on the (scaled) token embedding, or none", tokens}, c.embed_norm_type);
    f(K{"lm_head_type", "the vocabulary head: linear, or RoBERTa's dense-gelu-layernorm head",
        [](const TnnConfig& x) { return x.task == Task::Lm; }},
      c.lm_head_type);
    f(K{"task", "what the model predicts", [](const TnnConfig& x) { return x.task != Task::Lm; }}, c.task);
    f(K{"num_classes", "classes K", [](const TnnConfig& x) { return x.has_classes(); }}, c.num_classes);
    f(K{"pooling", "how a classifier pools a sequence", [](const TnnConfig& x) { return x.has_classes(); }},
      c.pooling);
    auto image = [](const TnnConfig& x) { return x.task == Task::Image; };
    f(K{"image_height", "image height in pixels", image}, c.image_height);
    f(K{"image_width", "image width in pixels", image}, c.image_width);
    f(K{"image_channels", "channels per pixel", image}, c.image_channels);
    f(K{"patch_size", "P: each P x P patch is one token", image}, c.patch_size);
    auto regress = [](const TnnConfig& x) { return x.task == Task::Regress; };
    f(K{"input_features", "F: float features per position", regress}, c.input_features);
    f(K{"output_features", "Fo: values predicted per position", regress}, c.output_features);
  }

  // Upper bounds on every width and count: far beyond any real model, and low enough that
  // no parameter tensor's element count can overflow (a config comes from files a user
  // may not trust, and decides the allocations made before any weight is read).
  static constexpr Index kMaxWidth = Index(1) << 24;   // vocab_size, dim, E, G, R, features
  static constexpr Index kMaxLayers = Index(1) << 16;  // layers, rpe_layers

  // Throws ConfigError on the first impossible value.
  void validate() const {
    auto in_range = [](Index v, Index lo, Index hi, const char* key) {
      if (v < lo || v > hi)
        fail<ConfigError>("config key '", key, "': expected an integer in [", lo, ", ", hi, "], got ", v);
    };
    // Keys of another task must keep their defaults: a config says one thing.
    const nlohmann::json mine = all_keys_json(), defaults = TnnConfig{}.all_keys_json();
    visit_keys(*this, [&](const auto& key, const auto&) {
      if (key.written && !key.written(*this) && mine.at(key.name) != defaults.at(key.name))
        fail<ConfigError>("config key '", key.name, "': expected only with ", tasks_writing(key), ", got task ",
                          to_string(task));
    });
    if (has_vocab()) in_range(vocab_size, 1, kMaxWidth, "vocab_size");
    if (task == Task::Image) {
      in_range(image_height, 1, kMaxWidth, "image_height");
      in_range(image_width, 1, kMaxWidth, "image_width");
      in_range(image_channels, 1, kMaxWidth, "image_channels");
      in_range(patch_size, 1, kMaxWidth, "patch_size");
      if (patch_size > kMaxWidth / patch_size || patch_size * patch_size > kMaxWidth / image_channels)
        fail<ConfigError>("config keys 'patch_size' and 'image_channels': expected patch_size^2 * image_channels <= ",
                          kMaxWidth, " (the patch embedding's width), got ", patch_size, "^2 * ", image_channels);
      if (image_height % patch_size != 0 || image_width % patch_size != 0)
        fail<ConfigError>("config key 'patch_size': expected a divisor of image_height and image_width (", image_height,
                          " x ", image_width, "), got ", patch_size);
    }
    if (task == Task::Regress) {
      in_range(input_features, 1, kMaxWidth, "input_features");
      in_range(output_features, 1, kMaxWidth, "output_features");
    }
    in_range(dim, 1, kMaxWidth, "dim");
    in_range(layers, 1, kMaxLayers, "layers");
    in_range(heads, 1, kMaxWidth, "heads");
    in_range(rpe_dim, 1, kMaxWidth, "rpe_dim");
    in_range(rpe_layers, 0, kMaxLayers, "rpe_layers");
    if (glu_dim != -1) in_range(glu_dim, 1, kMaxWidth, "glu_dim");
    if (!(expand_ratio > 0) || !std::isfinite(expand_ratio))
      fail<ConfigError>("config key 'expand_ratio': expected a positive number, got ", expand_ratio);
    // Checked before inner_dim() converts the product to an integer (found by fuzz_config).
    if (!(expand_ratio * static_cast<double>(dim) < static_cast<double>(kMaxWidth + 1)))
      fail<ConfigError>("config keys 'expand_ratio' and 'dim': expected floor(expand_ratio * dim) <= ", kMaxWidth,
                        " (the GTU width), got ", expand_ratio, " * ", dim);
    if (token_mixer == TokenMixerKind::Attention && dim % heads != 0)
      fail<ConfigError>("config key 'heads': expected a divisor of dim (", dim,
                        ") with token_mixer attention (H heads of dim / H channels), got ", heads);
    if (token_mixer == TokenMixerKind::Tno && inner_dim() <= 0)
      fail<ConfigError>("config key 'heads': expected heads <= floor(expand_ratio * dim) = ",
                        static_cast<Index>(std::floor(expand_ratio * double(dim))), ", got ", heads);
    if (!(gamma > 0 && gamma <= 1) || !std::isfinite(gamma))
      fail<ConfigError>("config key 'gamma': expected a value in (0, 1], got ", gamma);
    if (norm_type == NormType::None)
      fail<ConfigError>("config key 'norm_type': expected one of ", layer_norm_choices(),
                        ", got 'none' (only final_norm_type and embed_norm_type may be none)");
    in_range(par_type, 1, 3, "par_type");
    if (task == Task::Image && par_type != 1)
      fail<ConfigError>("config key 'par_type': expected 1 for task image (its 2-D relative position encoder is fed "
                        "the offset pair (di, dj)), got ", par_type);
    if (!(dropout >= 0 && dropout < 1))
      fail<ConfigError>("config key 'dropout': expected a probability in [0, 1), got ", dropout);
    if (postnorm_residual && prenorm)
      fail<ConfigError>("config keys 'postnorm_residual' and 'prenorm': postnorm_residual is a form of post-norm, "
                        "expected prenorm false, got true");
    if (has_classes()) {
      in_range(num_classes, 2, kMaxWidth, "num_classes");
      if (causal)
        fail<ConfigError>("config keys 'task' and 'causal': a classifier is bidirectional, expected causal false, got true");
    }
  }

  // The config as JSON: the keys of its task (ConfigKey::written), glu_dim and final_norm_type
  // resolved.
  nlohmann::json to_json() const {
    nlohmann::json j = nlohmann::json::object();
    visit_keys(*this, [&](const auto& key, const auto& v) {
      if (!key.written || key.written(*this)) j[key.name] = json_value(v);
    });
    j["glu_dim"] = glu_width();
    j["final_norm_type"] = to_string(final_norm());
    return j;
  }

  static TnnConfig from_json(const nlohmann::json& j) {
    if (!j.is_object()) fail<ConfigError>("config: expected a JSON object, got ", j.type_name());
    TnnConfig c;
    read_legacy_decay(j, c);
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k == "use_decay" || k == "use_multi_decay") continue;  // read_legacy_decay
      bool known = false;
      visit_keys(c, [&](const auto& key, auto& member) {
        if (known || k != key.name) return;
        known = true;
        member = parse_value<std::decay_t<decltype(member)>>(k, it.value());
      });
      if (!known) fail<ConfigError>("config: unknown key ", quote(k, 60), suggest_key(k));
    }
    if (c.has_vocab() && !j.contains("vocab_size")) fail<ConfigError>("config: required key 'vocab_size' is missing");
    c.validate();
    return c;
  }

  // Parses JSON text under the strict policy (io/json.hpp: no NUL or trailing bytes, no key
  // twice, bounded depth, finite numbers); every violation is a ConfigError too.
  static TnnConfig parse(const std::string& text) { return from_json(parse_json_strict<ConfigError>(text, "config")); }

  // Every config key from_json knows, in table order.
  static const std::vector<std::string>& keys() {
    static const std::vector<std::string> k = [] {
      std::vector<std::string> out;
      const TnnConfig c;
      visit_keys(c, [&](const auto& key, const auto&) { out.emplace_back(key.name); });
      return out;
    }();
    return k;
  }
  // " (did you mean 'dim'?)" for a key one or two edits away from a known one, else "".
  static std::string suggest_key(const std::string& k) {
    const std::string best = closest_word(k, keys());
    return best.empty() ? std::string() : " (did you mean '" + best + "'?)";
  }

  // A key's value as JSON (enums by name; an unset optional as null).
  template <class V>
  static nlohmann::json json_value(const V& v) {
    if constexpr (std::is_enum<V>::value)
      return to_string(v);
    else
      return v;
  }
  template <class V>
  static nlohmann::json json_value(const std::optional<V>& v) {
    return v ? json_value(*v) : nlohmann::json();
  }

  // A key's value from JSON, by the member's type: ConfigError naming the key otherwise.
  template <class V>
  static V parse_value(const std::string& k, const nlohmann::json& v) {
    if constexpr (std::is_same<V, bool>::value) {
      if (!v.is_boolean()) fail<ConfigError>("config key '", k, "': expected true or false, got ", json_brief(v));
      return v.get<bool>();
    } else if constexpr (std::is_same<V, Index>::value) {
      if (!v.is_number_integer()) fail<ConfigError>("config key '", k, "': expected an integer, got ", json_brief(v));
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        fail<ConfigError>("config key '", k, "': expected an integer below 2^63, got ", json_brief(v));
      return v.get<Index>();
    } else if constexpr (std::is_same<V, double>::value) {
      if (!v.is_number()) fail<ConfigError>("config key '", k, "': expected a number, got ", json_brief(v));
      return v.get<double>();
    } else if constexpr (is_optional<V>::value) {
      return parse_value<typename V::value_type>(k, v);
    } else {
      static_assert(std::is_enum<V>::value, "a config member is a bool, an integer, a number or an enum");
      if (!v.is_string()) fail<ConfigError>("config key '", k, "': expected a string, got ", json_brief(v));
      return parse_enum<V>(v.get<std::string>(), "config key '" + k + "'");
    }
  }

 private:
  template <class V>
  struct is_optional : std::false_type {};
  template <class V>
  struct is_optional<std::optional<V>> : std::true_type {};
  // The names norm_type accepts: every norm but none.
  static std::string layer_norm_choices() {
    std::string s;
    for (NormType n : enum_values<NormType>())
      if (n != NormType::None) s += (s.empty() ? "" : ", ") + std::string(to_string(n));
    return s;
  }
  // Configs written before the key `decay` said use_decay / use_multi_decay (the official names).
  static void read_legacy_decay(const nlohmann::json& j, TnnConfig& c) {
    const bool has_use = j.contains("use_decay"), has_multi = j.contains("use_multi_decay");
    if (!has_use && !has_multi) return;
    if (j.contains("decay"))
      fail<ConfigError>("config keys 'decay' and 'use_decay'/'use_multi_decay': expected one way of saying the decay, got both");
    const bool use = has_use && parse_value<bool>("use_decay", j.at("use_decay"));
    const bool multi = has_multi && parse_value<bool>("use_multi_decay", j.at("use_multi_decay"));
    if (use && multi)
      fail<ConfigError>("config keys 'use_decay' and 'use_multi_decay': expected at most one true, got both");
    c.decay = multi ? TnoDecay::Learned : use ? TnoDecay::Fixed : TnoDecay::None;
  }
  // Every key, whatever the task.
  nlohmann::json all_keys_json() const {
    nlohmann::json j = nlohmann::json::object();
    visit_keys(*this, [&](const auto& key, const auto& v) { j[key.name] = json_value(v); });
    return j;
  }
  // "task image" / "tasks classify and image": the tasks whose configs hold a key.
  template <class Key>
  static std::string tasks_writing(const Key& key) {
    std::vector<std::string> names;
    for (Task t : enum_values<Task>()) {
      TnnConfig probe;
      probe.task = t;
      if (key.written(probe)) names.emplace_back(to_string(t));
    }
    std::string s = names.size() == 1 ? "task " : "tasks ";
    for (std::size_t i = 0; i < names.size(); ++i) s += (i ? (i + 1 == names.size() ? " and " : ", ") : "") + names[i];
    return s;
  }
};

// The layers' options from a config: the one place where config keys become constructor arguments.
inline RpeOptions rpe_options(const BackboneConfig& c) {
  return RpeOptions{c.rpe_dim, c.rpe_layers, c.norm_type, c.rpe_act, c.residual, c.bias, c.par_type};
}
inline TnoOptions tno_options(const BackboneConfig& c) {
  TnoOptions o;
  o.heads = c.heads;
  o.causal = c.causal;
  o.decay = c.decay;
  o.gamma = c.gamma;
  o.rpe = rpe_options(c);
  o.normalize = c.normalize;
  o.act = c.act_type;
  return o;
}
inline GtuOptions gtu_options(const BackboneConfig& c) {
  return GtuOptions{c.dim, c.gtu_act, c.bias, c.use_norm, c.norm_type};
}
inline BlockOptions block_options(const BackboneConfig& c) {
  return BlockOptions{c.dim, c.norm_type, c.prenorm, c.glu_width(), c.glu_act, c.postnorm_residual, c.glu_bias};
}
template <class T>
Rpe<T> make_rpe(const BackboneConfig& c) {
  return Rpe<T>(rpe_options(c), c.inner_dim());
}
template <class T, class Backend = DefaultFftBackend>
Tno<T, Backend> make_tno(const BackboneConfig& c) {
  return Tno<T, Backend>(tno_options(c), c.head_dim());
}
template <class T, class Backend = DefaultFftBackend>
Gtu<T, Backend> make_gtu(const BackboneConfig& c) {
  return Gtu<T, Backend>(gtu_options(c), make_tno<T, Backend>(c));
}
template <class T, class Backend = DefaultFftBackend>
Gtu2d<T, Backend> make_gtu2d(const BackboneConfig& c, Index grid_h, Index grid_w) {
  return Gtu2d<T, Backend>(gtu_options(c), Tno2d<T, Backend>(tno_options(c), c.head_dim(), grid_h, grid_w));
}
template <class T>
Glu<T> make_glu(const BackboneConfig& c) {
  return Glu<T>(c.dim, c.glu_width(), c.glu_act, c.glu_bias);
}
template <class T>
Attention<T> make_attention(const BackboneConfig& c) {
  return Attention<T>(c.dim, c.heads, c.causal);
}
// The token mixer of every layer: the 1-D GTU, or the 2-D one over a grid_h x grid_w grid; or
// attention, over the sequence or the grid's positions in row-major order alike.
template <class T, class Backend = DefaultFftBackend>
TokenMixer<T, Backend> make_token_mixer(const BackboneConfig& c, Index grid_h = 0, Index grid_w = 0) {
  if (c.token_mixer == TokenMixerKind::Attention) return make_attention<T>(c);
  if (grid_h > 0) return make_gtu2d<T, Backend>(c, grid_h, grid_w);
  return make_gtu<T, Backend>(c);
}
// One layer of cfg (its token mixer as make_token_mixer chooses).
template <class T, class Backend = DefaultFftBackend>
TnnBlock<T, Backend> make_block(const BackboneConfig& c, Index grid_h = 0, Index grid_w = 0) {
  return TnnBlock<T, Backend>(block_options(c), make_token_mixer<T, Backend>(c, grid_h, grid_w));
}

}  // namespace tnn
