// Model configuration (spec section 8): the JSON stored in a checkpoint's
// metadata under "tnn.config", parsed strictly (unknown keys, wrong types and
// impossible values are ConfigErrors naming the key).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
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
  fail<ConfigError>("config key '", key, "': expected one of relu, silu, gelu, none, got '", s, "'");
}
inline NormType parse_norm(const std::string& s, const char* key) {
  for (NormType n : {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm})
    if (s == to_string(n)) return n;
  fail<ConfigError>("config key '", key, "': expected one of simplermsnorm, rmsnorm, layernorm, got '", s, "'");
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

  // E = floor(expand_ratio * D) / H * H (integer division), spec "Notation".
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
    in_range(vocab_size, 1, kMaxWidth, "vocab_size");
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
          fail<ConfigError>("config key '", k, "': expected an integer, got ", v.type_name(), " ", v.dump());
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
          fail<ConfigError>("config key '", k, "': expected an integer below 2^63, got ", v.dump());
        return v.get<Index>();
      };
      auto number = [&]() -> double {
        if (!v.is_number()) fail<ConfigError>("config key '", k, "': expected a number, got ", v.type_name(), " ", v.dump());
        return v.get<double>();
      };
      auto boolean = [&]() -> bool {
        if (!v.is_boolean()) fail<ConfigError>("config key '", k, "': expected true or false, got ", v.type_name(), " ", v.dump());
        return v.get<bool>();
      };
      auto string = [&]() -> std::string {
        if (!v.is_string()) fail<ConfigError>("config key '", k, "': expected a string, got ", v.type_name(), " ", v.dump());
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
      else fail<ConfigError>("config: unknown key '", k, "'");
    }
    for (const char* req : {"vocab_size", "dim", "layers"})
      if (!j.contains(req)) fail<ConfigError>("config: required key '", req, "' is missing");
    c.validate();
    return c;
  }

  // Parses JSON text; malformed JSON is a ConfigError too.
  static TnnConfig parse(const std::string& text) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail<ConfigError>("config: expected valid JSON, got a parse error: ", e.what());
    }
    return from_json(j);
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
