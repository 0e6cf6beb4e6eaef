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

// How a classifier turns a sequence into one vector: the mean over its valid positions, or position 0.
enum class Pooling { Mean, First };
template <>
struct EnumTable<Pooling> {
  static constexpr EnumRow<Pooling> rows[] = {{Pooling::Mean, "mean"}, {Pooling::First, "first"}};
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

struct BackboneConfig {
  Index dim = 0;     // D, required
  Index layers = 0;  // required
  TokenMixerKind token_mixer = TokenMixerKind::Tno;
  PositionScheme positions = PositionScheme::None;
  Index heads = 1;   // H
  double expand_ratio = 3;
  Index glu_dim = -1;  // G; -1 means "= dim"
  Index rpe_dim = 64;  // R
  Index rpe_layers = 1;
  double gamma = 0.99;
  Activation rpe_act = Activation::Relu;
  Activation gtu_act = Activation::Silu;
  Activation glu_act = Activation::Silu;
  NormType norm_type = NormType::SimpleRMSNorm;
  bool prenorm = true;
  bool causal = true;
  TnoDecay decay = TnoDecay::Fixed;

  // E = floor(expand_ratio * D) / H * H (integer division), model.md "Notation".
  Index inner_dim() const {
    const auto e = static_cast<Index>(std::floor(expand_ratio * static_cast<double>(dim)));
    return e / heads * heads;
  }
  Index head_dim() const { return inner_dim() / heads; }
  Index glu_width() const { return glu_dim < 0 ? dim : glu_dim; }

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
  Index image_height = 0, image_width = 0, image_channels = 0, patch_size = 0;
  // Regression (task regress): F float features in and Fo values out per position.
  Index input_features = 0, output_features = 0;

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
    if (has_classes()) {
      in_range(num_classes, 2, kMaxWidth, "num_classes");
      if (causal)
        fail<ConfigError>("config keys 'task' and 'causal': a classifier is bidirectional, expected causal false, got true");
    }
  }

  // The config as JSON: the keys of its task (ConfigKey::written), glu_dim resolved.
  nlohmann::json to_json() const {
    nlohmann::json j = nlohmann::json::object();
    visit_keys(*this, [&](const auto& key, const auto& v) {
      if (!key.written || key.written(*this)) j[key.name] = json_value(v);
    });
    j["glu_dim"] = glu_width();
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
    if (!j.contains("dim")) fail<ConfigError>("config: required key 'dim' is missing");
    if (!j.contains("layers")) fail<ConfigError>("config: required key 'layers' is missing");
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

  // A key's value as JSON (enums by name).
  template <class V>
  static nlohmann::json json_value(const V& v) {
    if constexpr (std::is_enum<V>::value)
      return to_string(v);
    else
      return v;
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
    } else {
      static_assert(std::is_enum<V>::value, "a config member is a bool, an integer, a number or an enum");
      if (!v.is_string()) fail<ConfigError>("config key '", k, "': expected a string, got ", json_brief(v));
      return parse_enum<V>(v.get<std::string>(), "config key '" + k + "'");
    }
  }

 private:
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
inline RpeOptions rpe_options(const BackboneConfig& c) { return RpeOptions{c.rpe_dim, c.rpe_layers, c.norm_type, c.rpe_act}; }
inline TnoOptions tno_options(const BackboneConfig& c) {
  TnoOptions o;
  o.heads = c.heads;
  o.causal = c.causal;
  o.decay = c.decay;
  o.gamma = c.gamma;
  o.rpe = rpe_options(c);
  return o;
}
inline BlockOptions block_options(const BackboneConfig& c) {
  return BlockOptions{c.dim, c.norm_type, c.prenorm, c.glu_width(), c.glu_act};
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
  return Gtu<T, Backend>(c.dim, c.gtu_act, make_tno<T, Backend>(c));
}
template <class T, class Backend = DefaultFftBackend>
Gtu2d<T, Backend> make_gtu2d(const BackboneConfig& c, Index grid_h, Index grid_w) {
  return Gtu2d<T, Backend>(c.dim, c.gtu_act, Tno2d<T, Backend>(tno_options(c), c.head_dim(), grid_h, grid_w));
}
template <class T>
Glu<T> make_glu(const BackboneConfig& c) {
  return Glu<T>(c.dim, c.glu_width(), c.glu_act);
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
