// Model configuration (model.md §8): the JSON stored in a checkpoint's
// metadata under "tnn.config", parsed strictly (unknown keys, wrong types and
// impossible values are ConfigErrors naming the key).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/io/json.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/layers/tno.hpp"

namespace tnn {


inline Activation parse_activation(const std::string& s, const char* key) {
  for (Activation a : {Activation::Relu, Activation::Silu, Activation::Gelu, Activation::None})
    if (s == to_string(a)) return a;
  fail<ConfigError>("config key '", key, "': expected one of relu, silu, gelu, none, got ", quote(s, 60));
}
inline NormType parse_norm(const std::string& s, const char* key) {
  for (NormType n : {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm})
    if (s == to_string(n)) return n;
  fail<ConfigError>("config key '", key, "': expected one of simplermsnorm, rmsnorm, layernorm, got ", quote(s, 60));
}

// What a model does with the backbone's output: next-token / masked-token logits (TnnLM), or
// one label per sequence (TnnClassifier, model/classifier.hpp), or one label per image
// (TnnImageClassifier, model/image_classifier.hpp: the 2-D TNN over a grid of patches).
enum class Task { Lm, Classify, Image };
inline const char* to_string(Task t) { return t == Task::Classify ? "classify" : t == Task::Image ? "image" : "lm"; }
inline Task parse_task(const std::string& s, const char* key) {
  for (Task t : {Task::Lm, Task::Classify, Task::Image})
    if (s == to_string(t)) return t;
  fail<ConfigError>("config key '", key, "': expected one of lm, classify, image, got '", s, "'");
}
// How a classifier turns a sequence into one vector: the mean over its valid positions, or position 0.
enum class Pooling { Mean, First };
inline const char* to_string(Pooling p) { return p == Pooling::First ? "first" : "mean"; }
inline Pooling parse_pooling(const std::string& s, const char* key) {
  for (Pooling p : {Pooling::Mean, Pooling::First})
    if (s == to_string(p)) return p;
  fail<ConfigError>("config key '", key, "': expected one of mean, first, got '", s, "'");
}

struct TnnConfig {
  Index vocab_size = 0;  // V, required
  Index dim = 0;         // D, required
  Index layers = 0;      // required
  Index heads = 1;       // H
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
  bool use_decay = true;
  bool use_multi_decay = false;
  bool tie_embeddings = false;
  // Sequence classification (written to JSON only when task is classify, so LM configs are unchanged).
  Task task = Task::Lm;
  Index num_classes = 0;  // K, required (>= 2) for task classify
  Pooling pooling = Pooling::Mean;
  // Image classification (task image; written to JSON only then): images [Hi, Wi, Ch] cut into
  // patch_size x patch_size patches, a grid of (Hi / P) x (Wi / P) tokens. vocab_size is unused (0).
  Index image_height = 0, image_width = 0, image_channels = 0, patch_size = 0;
  Index grid_h() const { return patch_size > 0 ? image_height / patch_size : 0; }
  Index grid_w() const { return patch_size > 0 ? image_width / patch_size : 0; }

  // E = floor(expand_ratio * D) / H * H (integer division), model.md "Notation".
  Index inner_dim() const {
    const auto e = static_cast<Index>(std::floor(expand_ratio * static_cast<double>(dim)));
    return e / heads * heads;
  }
  Index head_dim() const { return inner_dim() / heads; }
  Index glu_width() const { return glu_dim < 0 ? dim : glu_dim; }

  // Upper bounds on every width and count: far beyond any real model, and low enough that
  // no parameter tensor's element count can overflow (a config comes from files a user
  // may not trust, and decides the allocations made before any weight is read).
  static constexpr Index kMaxWidth = Index(1) << 24;   // vocab_size, dim, E, G, R
  static constexpr Index kMaxLayers = Index(1) << 16;  // layers, rpe_layers

  // Throws ConfigError on the first impossible value.
  void validate() const {
    auto in_range = [](Index v, Index lo, Index hi, const char* key) {
      if (v < lo || v > hi)
        fail<ConfigError>("config key '", key, "': expected an integer in [", lo, ", ", hi, "], got ", v);
    };
    if (task == Task::Image) {
      if (vocab_size != 0) fail<ConfigError>("config key 'vocab_size': an image model has no vocabulary, expected 0 or absent, got ", vocab_size);
      in_range(image_height, 1, kMaxWidth, "image_height");
      in_range(image_width, 1, kMaxWidth, "image_width");
      in_range(image_channels, 1, kMaxWidth, "image_channels");
      in_range(patch_size, 1, kMaxWidth, "patch_size");
      if (image_height % patch_size != 0 || image_width % patch_size != 0)
        fail<ConfigError>("config key 'patch_size': expected a divisor of image_height and image_width (", image_height,
                          " x ", image_width, "), got ", patch_size);
    } else {
      in_range(vocab_size, 1, kMaxWidth, "vocab_size");
      if (image_height != 0 || image_width != 0 || image_channels != 0 || patch_size != 0)
        fail<ConfigError>("config keys 'image_height', 'image_width', 'image_channels', 'patch_size': expected only with task image, got task ", to_string(task));
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
    if (inner_dim() <= 0)
      fail<ConfigError>("config key 'heads': expected heads <= floor(expand_ratio * dim) = ",
                        static_cast<Index>(std::floor(expand_ratio * double(dim))), ", got ", heads);
    if (!(gamma > 0 && gamma <= 1))
      fail<ConfigError>("config key 'gamma': expected a value in (0, 1], got ", gamma);
    if (use_decay && use_multi_decay)
      fail<ConfigError>("config keys 'use_decay' and 'use_multi_decay': expected at most one true, got both");
    if (task == Task::Classify || task == Task::Image) {
      in_range(num_classes, 2, kMaxWidth, "num_classes");
      if (causal)
        fail<ConfigError>("config keys 'task' and 'causal': a classifier is bidirectional, expected causal false, got true");
      if (tie_embeddings)
        fail<ConfigError>("config keys 'task' and 'tie_embeddings': a classifier has no vocabulary head to tie, expected false, got true");
    } else if (num_classes != 0 || pooling != Pooling::Mean) {
      fail<ConfigError>("config keys 'num_classes' and 'pooling': expected only with task classify, got task lm");
    }
  }

  nlohmann::json to_json() const {
    nlohmann::json j;
    j["vocab_size"] = vocab_size;
    j["dim"] = dim;
    j["layers"] = layers;
    j["heads"] = heads;
    j["expand_ratio"] = expand_ratio;
    j["glu_dim"] = glu_width();
    j["rpe_dim"] = rpe_dim;
    j["rpe_layers"] = rpe_layers;
    j["gamma"] = gamma;
    j["rpe_act"] = to_string(rpe_act);
    j["gtu_act"] = to_string(gtu_act);
    j["glu_act"] = to_string(glu_act);
    j["norm_type"] = to_string(norm_type);
    j["prenorm"] = prenorm;
    j["causal"] = causal;
    j["use_decay"] = use_decay;
    j["use_multi_decay"] = use_multi_decay;
    j["tie_embeddings"] = tie_embeddings;
    if (task != Task::Lm) {
      j["task"] = to_string(task);
      j["num_classes"] = num_classes;
      j["pooling"] = to_string(pooling);
    }
    if (task == Task::Image) {
      j["image_height"] = image_height;
      j["image_width"] = image_width;
      j["image_channels"] = image_channels;
      j["patch_size"] = patch_size;
    }
    return j;
  }

  static TnnConfig from_json(const nlohmann::json& j) {
    if (!j.is_object()) fail<ConfigError>("config: expected a JSON object, got ", j.type_name());
    TnnConfig c;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const auto& v = it.value();
      auto integer = [&]() -> Index {
        if (!v.is_number_integer())
          fail<ConfigError>("config key '", k, "': expected an integer, got ", json_brief(v));
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
          fail<ConfigError>("config key '", k, "': expected an integer below 2^63, got ", json_brief(v));
        return v.get<Index>();
      };
      auto number = [&]() -> double {
        if (!v.is_number()) fail<ConfigError>("config key '", k, "': expected a number, got ", json_brief(v));
        return v.get<double>();
      };
      auto boolean = [&]() -> bool {
        if (!v.is_boolean()) fail<ConfigError>("config key '", k, "': expected true or false, got ", json_brief(v));
        return v.get<bool>();
      };
      auto string = [&]() -> std::string {
        if (!v.is_string()) fail<ConfigError>("config key '", k, "': expected a string, got ", json_brief(v));
        return v.get<std::string>();
      };
      if (k == "vocab_size") c.vocab_size = integer();
      else if (k == "dim") c.dim = integer();
      else if (k == "layers") c.layers = integer();
      else if (k == "heads") c.heads = integer();
      else if (k == "expand_ratio") c.expand_ratio = number();
      else if (k == "glu_dim") c.glu_dim = integer();
      else if (k == "rpe_dim") c.rpe_dim = integer();
      else if (k == "rpe_layers") c.rpe_layers = integer();
      else if (k == "gamma") c.gamma = number();
      else if (k == "rpe_act") c.rpe_act = parse_activation(string(), "rpe_act");
      else if (k == "gtu_act") c.gtu_act = parse_activation(string(), "gtu_act");
      else if (k == "glu_act") c.glu_act = parse_activation(string(), "glu_act");
      else if (k == "norm_type") c.norm_type = parse_norm(string(), "norm_type");
      else if (k == "prenorm") c.prenorm = boolean();
      else if (k == "causal") c.causal = boolean();
      else if (k == "use_decay") c.use_decay = boolean();
      else if (k == "use_multi_decay") c.use_multi_decay = boolean();
      else if (k == "tie_embeddings") c.tie_embeddings = boolean();
      else if (k == "task") c.task = parse_task(string(), "task");
      else if (k == "num_classes") c.num_classes = integer();
      else if (k == "pooling") c.pooling = parse_pooling(string(), "pooling");
      else if (k == "image_height") c.image_height = integer();
      else if (k == "image_width") c.image_width = integer();
      else if (k == "image_channels") c.image_channels = integer();
      else if (k == "patch_size") c.patch_size = integer();
      else fail<ConfigError>("config: unknown key ", quote(k, 60), suggest_key(k));
    }
    for (const char* req : {"vocab_size", "dim", "layers"})
      if (!j.contains(req) && !(c.task == Task::Image && std::string(req) == "vocab_size"))
        fail<ConfigError>("config: required key '", req, "' is missing");
    c.validate();
    return c;
  }

  // Parses JSON text under the strict policy (io/json.hpp: no NUL or trailing bytes, no key
  // twice, bounded depth, finite numbers); every violation is a ConfigError too.
  static TnnConfig parse(const std::string& text) { return from_json(parse_json_strict<ConfigError>(text, "config")); }

  // The config keys from_json knows, in the order to_json writes them.
  static const std::vector<std::string>& keys() {
    static const std::vector<std::string> k = [] {
      std::vector<std::string> out;
      const nlohmann::json j = TnnConfig{}.to_json();
      for (auto it = j.begin(); it != j.end(); ++it) out.push_back(it.key());
      return out;
    }();
    return k;
  }
  // " (did you mean 'dim'?)" for a key one or two edits away from a known one, else "".
  static std::string suggest_key(const std::string& k) {
    const std::string best = closest_word(k, keys());
    return best.empty() ? std::string() : " (did you mean '" + best + "'?)";
  }
};

// The layers of a model built from its config: the one place where config keys become the
// layers' constructor arguments (the layers themselves know nothing of TnnConfig or JSON).
inline TnoDecay tno_decay(const TnnConfig& cfg) {
  if (cfg.use_decay && cfg.use_multi_decay)
    fail<ConfigError>("config keys 'use_decay' and 'use_multi_decay': expected at most one true, got both");
  return cfg.use_multi_decay ? TnoDecay::Learned : cfg.use_decay ? TnoDecay::Fixed : TnoDecay::None;
}

template <class T>
Rpe<T> make_rpe(const TnnConfig& cfg) {
  return Rpe<T>(cfg.rpe_dim, cfg.inner_dim(), cfg.rpe_layers, cfg.norm_type, cfg.rpe_act);
}
template <class T, class Backend = DefaultFftBackend>
Tno<T, Backend> make_tno(const TnnConfig& cfg) {
  return Tno<T, Backend>(cfg.heads, cfg.head_dim(), cfg.rpe_dim, cfg.rpe_layers, cfg.norm_type, cfg.rpe_act,
                         cfg.causal, tno_decay(cfg), cfg.gamma);
}
template <class T, class Backend = DefaultFftBackend>
Gtu<T, Backend> make_gtu(const TnnConfig& cfg) {
  return Gtu<T, Backend>(cfg.dim, cfg.gtu_act, make_tno<T, Backend>(cfg));
}
template <class T>
Glu<T> make_glu(const TnnConfig& cfg) {
  return Glu<T>(cfg.dim, cfg.glu_width(), cfg.glu_act);
}

}  // namespace tnn
