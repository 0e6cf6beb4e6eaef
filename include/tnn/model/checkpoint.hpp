// Checkpoints (model.md §9): a model's tensors under their spec names in one safetensors
// file, its config in __metadata__["tnn.config"]; the optimizer state (step, moments, RNG and
// other JSON) in a companion file, by default CKPT.optim.safetensors beside CKPT.safetensors.
// Generic over any Model with `const TnnConfig& config()` and `visit(f)` calling
// f(name, Param<T>&), so the same code serves TnnLM<float>, TnnLM<double> and test models.
//
// Loading is all-or-nothing: names, shapes, dtypes, config and finiteness are all checked
// before the first parameter is overwritten, so a failed load leaves the model as it was.
// Saving refuses non-finite values, so a diverged run never replaces a good checkpoint.
// Each file is written atomically, but the pair is not: a crash between the two writes leaves
// a new model beside the old optimizer state. Store the step in the model's metadata too
// (save_model's extra_metadata, e.g. "tnn.step") and compare it on resume to notice.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/lm.hpp"
#include "tnn/io/json.hpp"
#include "tnn/io/safetensors.hpp"

namespace tnn {

inline constexpr const char* kConfigMetadataKey = "tnn.config";     // model file: TnnConfig JSON
inline constexpr const char* kStepMetadataKey = "tnn.optim.step";   // optimizer file: decimal step
inline constexpr const char* kExtraMetadataKey = "tnn.optim.extra"; // optimizer file: caller's JSON

namespace detail {

// The model file beside an optimizer-state file: "m.optim.safetensors" -> "m.safetensors".
inline std::string ck_model_path_of(const std::string& optim_path) {
  const std::string ext = ".optim.safetensors";
  if (optim_path.size() > ext.size() && optim_path.compare(optim_path.size() - ext.size(), ext.size(), ext) == 0)
    return optim_path.substr(0, optim_path.size() - ext.size()) + ".safetensors";
  return "";
}
// A checkpoint without "tnn.config": if it is a training-state file, say so and name the file
// to use instead of saying a key is missing.
[[noreturn]] inline void ck_missing_config(const std::map<std::string, std::string>& metadata, const std::string& path,
                                           const std::string& where) {
  if (metadata.count(kStepMetadataKey)) {
    const std::string model = ck_model_path_of(path);
    fail<FormatError>(where, ": this is a training-state (optimizer) file, not a model checkpoint; give the model file",
                      model.empty() ? std::string(" written beside it") : " " + quote_path(model), " instead");
  }
  fail<FormatError>(where, ": expected the metadata key '", kConfigMetadataKey,
                    "' (the model config), it is missing (is this a tnn checkpoint?)");
}
template <class T>
Index first_nonfinite(const Tensor<T>& t) {
  for (Index i = 0; i < t.size(); ++i)
    if (!std::isfinite(t[i])) return i;
  return -1;
}

// At most `max` names, then how many more: a mismatch against a 1000-tensor model stays readable.
inline std::string ck_name_list(const std::vector<std::string>& names, std::size_t max = 10) {
  std::string s = "[";
  for (std::size_t i = 0; i < names.size() && i < max; ++i) s += (i ? ", " : "") + st_quote(names[i]);
  if (names.size() > max) s += ", ... " + std::to_string(names.size() - max) + " more";
  return s + "]";
}

// Loads the tensors `visit(f)` names (f(name, Tensor<T>&)) from `file`, all-or-nothing: the
// names must be exactly the file's, shapes equal, dtypes F32/F64, values finite once converted.
template <class Visit>
void ck_load_tensors(const SafetensorsFile& file, const std::string& where, Visit&& visit) {
  std::vector<std::string> wanted;
  std::set<std::string> seen;
  visit([&](const std::string& name, auto& t) {
    (void)t;
    if (!seen.insert(name).second) fail<ValueError>(where, ": the destination names tensor ", st_quote(name), " twice");
    wanted.push_back(name);
  });
  std::vector<std::string> missing, extra;
  for (const std::string& n : wanted)
    if (!file.has(n)) missing.push_back(n);
  for (const auto& kv : file.header().tensors)
    if (!seen.count(kv.first)) extra.push_back(kv.first);
  if (!missing.empty() || !extra.empty())
    fail<FormatError>(where, ": expected exactly the ", wanted.size(), " tensors of the destination, got ", file.size(),
                      "; missing from the file: ", ck_name_list(missing), "; in the file but not expected: ",
                      ck_name_list(extra));
  visit([&](const std::string& name, auto& t) {
    const TensorInfo& ti = file.info(name);
    if (ti.shape != t.shape())
      fail<FormatError>(where, ": tensor ", st_quote(name), ": expected shape ", shape_str(t.shape()), ", got ",
                        shape_str(ti.shape));
    if (!dtype_is_float(ti.dtype))
      fail<FormatError>(where, ": tensor ", st_quote(name), ": expected dtype F32 or F64, got ", dtype_name(ti.dtype));
  });
  // Decode once into scratch to check the values, then again into the destination: the
  // destination is untouched unless everything is good, and memory grows by one tensor only.
  std::tuple<Tensor<float>, Tensor<double>> scratch;
  visit([&](const std::string& name, auto& t) {
    using T = typename std::decay_t<decltype(t)>::Scalar;
    Tensor<T>& s = std::get<Tensor<T>>(scratch);
    file.get_into(name, s);
    const Index bad = first_nonfinite(s);
    if (bad >= 0)
      fail<ValueError>(where, ": tensor ", st_quote(name), ": element ", bad, " is ", s[bad],
                       "; expected finite values");
  });
  visit([&](const std::string& name, auto& t) { file.get_into(name, t); });
}

// P * P * Ch, the patch embedding's input width, of an image config; ConfigError when it
// overflows (each factor may be up to 2^24, so the product is computed with checks).
inline Index ck_patch_features(const TnnConfig& cfg) {
  const Index P = cfg.patch_size, Ch = cfg.image_channels;
  const Index lim = std::numeric_limits<Index>::max();
  if (P < 1 || Ch < 1 || P > lim / P || P * P > lim / Ch)
    fail<ConfigError>("config keys 'patch_size' and 'image_channels': expected patch_size^2 * image_channels below 2^63, got ",
                      P, "^2 * ", Ch);
  return P * P * Ch;
}

inline void ck_check_config(const SafetensorsFile& file, const TnnConfig& model_cfg, const std::string& where) {
  if (!file.has_metadata(kConfigMetadataKey)) {
    if (file.has_metadata(kStepMetadataKey)) ck_missing_config(file.metadata(), file.label(), where);
    fail<FormatError>(where, ": expected the metadata key '", kConfigMetadataKey,
                      "' to compare with the model's config, it is missing (load_weights(..., false) skips the check)");
  }
  TnnConfig file_cfg;
  try {
    file_cfg = TnnConfig::parse(file.metadata_at(kConfigMetadataKey));
  } catch (const ConfigError& e) {
    fail<ConfigError>(where, ": metadata '", kConfigMetadataKey, "': ", e.what());
  }
  const nlohmann::json a = model_cfg.to_json(), b = file_cfg.to_json();
  std::string diffs;
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key()) || b.at(it.key()) != it.value())
      diffs += (diffs.empty() ? "" : "; ") + it.key() + ": model " + it.value().dump() + ", checkpoint " +
               (b.contains(it.key()) ? b.at(it.key()).dump() : std::string("absent"));
  if (!diffs.empty()) fail<FormatError>(where, ": expected the model's config, got a different one: ", diffs);
}

}  // namespace detail

// f(name, shape) for every tensor a model built from `cfg` stores (docs: model.md §9, §13), in
// the order its visit names them, computed from the config alone: a checkpoint's header is
// checked against this before any model is allocated, so a few-hundred-byte file claiming a
// huge vocabulary fails in microseconds instead of allocating gigabytes. The tests
// Checkpoint.ModelTensorsMatchTheModelsVisit and ImageModelTensorsMatchTheModelsVisit hold it to
// TnnLM::visit and TnnImageClassifier::visit. An image classifier (task image, model/image_classifier.hpp) stores patch_embed.{weight
// [D, P*P*Ch], bias [D]} instead of embed.weight, a 2-wide pos_proj.weight [R, 2] in each RPE,
// and head.{weight [K, D], bias [K]}; P*P*Ch must fit in an int64 (ConfigError otherwise).
template <class F>
void for_each_model_tensor(const TnnConfig& cfg, F&& f) {
  const Index V = cfg.vocab_size, D = cfg.dim, E = cfg.inner_dim(), G = cfg.glu_width(), R = cfg.rpe_dim;
  const bool image = cfg.task == Task::Image;
  const Index H = cfg.heads, Dh = cfg.head_dim();
  auto norm = [&](const std::string& p, Index width) {
    if (cfg.norm_type == NormType::RMSNorm) f(p + "scale", Shape{width});
    if (cfg.norm_type == NormType::LayerNorm) {
      f(p + "weight", Shape{width});
      f(p + "bias", Shape{width});
    }
  };
  auto linear = [&](const std::string& p, Index in, Index out) {
    f(p + "weight", Shape{out, in});
    f(p + "bias", Shape{out});
  };
  if (image)
    linear("patch_embed.", detail::ck_patch_features(cfg), D);
  else
    f(std::string("embed.weight"), Shape{V, D});
  for (Index i = 0; i < cfg.layers; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".";
    norm(l + "token_norm.", D);
    linear(l + "token_mixer.u_proj.", D, E);
    linear(l + "token_mixer.v_proj.", D, E);
    linear(l + "token_mixer.o.", E, D);
    if (tno_decay(cfg) != TnoDecay::None) f(l + "token_mixer.toep.gamma", Shape{H, 1, Dh});
    const std::string r = l + "token_mixer.toep.rpe.";
    linear(r + "pos_proj.", image ? 2 : 1, R);
    for (Index h = 0; h < cfg.rpe_layers; ++h) {
      norm(r + "layers." + std::to_string(h) + ".0.", R);
      linear(r + "layers." + std::to_string(h) + ".2.", R, R);
    }
    norm(r + "out.0.", R);
    linear(r + "out.2.", R, H * Dh);
    norm(l + "feature_norm.", D);
    linear(l + "feature_mixer.l1.", D, G);
    linear(l + "feature_mixer.l2.", D, G);
    linear(l + "feature_mixer.l3.", G, D);
  }
  norm("final_norm.", D);
  if (cfg.task == Task::Classify || image)
    linear("head.", D, cfg.num_classes);  // TnnClassifier, TnnImageClassifier: head [K, D], [K]
  else if (!cfg.tie_embeddings)
    f(std::string("lm_head.weight"), Shape{V, D});
}

// How many tensors for_each_model_tensor names, without naming them (O(1)).
inline std::uint64_t model_tensor_count(const TnnConfig& cfg) {
  const std::uint64_t per_norm = cfg.norm_type == NormType::RMSNorm ? 1 : cfg.norm_type == NormType::LayerNorm ? 2 : 0;
  const std::uint64_t rpe = 2 + static_cast<std::uint64_t>(cfg.rpe_layers) * (per_norm + 2) + per_norm + 2;
  const std::uint64_t layer = per_norm + 6 + (tno_decay(cfg) != TnoDecay::None ? 1 : 0) + rpe + per_norm + 6;
  const bool image = cfg.task == Task::Image;
  const std::uint64_t embed = image ? 2 : 1;  // patch_embed.{weight, bias} or embed.weight
  const std::uint64_t head = cfg.task == Task::Classify || image ? 2 : cfg.tie_embeddings ? 0 : 1;
  return embed + static_cast<std::uint64_t>(cfg.layers) * layer + per_norm + head;
}

// FormatError unless `h` holds exactly the tensors a model of `cfg` stores (TnnLM, TnnClassifier
// or TnnImageClassifier, by cfg.task), with the same
// shapes and a floating-point dtype. Reads nothing but the header; allocates nothing that
// grows with the config before the tensor count has been compared with the header's.
inline void check_header_matches_config(const SafetensorsHeader& h, const TnnConfig& cfg, const std::string& where) {
  const std::uint64_t want = model_tensor_count(cfg);
  if (want != h.tensors.size())
    fail<FormatError>(where, ": its config (vocab_size ", cfg.vocab_size, ", dim ", cfg.dim, ", layers ", cfg.layers,
                      ") needs ", want, " tensors, the file has ", h.tensors.size());
  for_each_model_tensor(cfg, [&](const std::string& name, const Shape& shape) {
    auto it = h.tensors.find(name);
    if (it == h.tensors.end())
      fail<FormatError>(where, ": expected the tensor ", detail::st_quote(name), " its config implies, it is missing");
    if (it->second.shape != shape)
      fail<FormatError>(where, ": tensor ", detail::st_quote(name), ": its config implies shape ", shape_str(shape),
                        ", the file has ", shape_str(it->second.shape));
    if (!dtype_is_float(it->second.dtype))
      fail<FormatError>(where, ": tensor ", detail::st_quote(name), ": expected dtype F32 or F64, got ",
                        dtype_name(it->second.dtype));
  });
}

// Writes every tensor model.visit() names, converted to `dtype` (F32 or F64), with the config
// in "tnn.config" and any extra string metadata. ValueError (target untouched) for a non-finite
// value, a value beyond F32's range, a name visited twice, or a reserved metadata key.
template <class Model>
void save_model(const std::string& path, Model& model, Dtype dtype = Dtype::F32,
                const std::map<std::string, std::string>& extra_metadata = {}) {
  const std::string where = "save_model '" + path + "'";
  if (!dtype_is_float(dtype)) fail<ValueError>(where, ": dtype: expected F32 or F64, got ", dtype_name(dtype));
  SafetensorsWriter w;
  model.visit([&](const std::string& name, auto& p) {
    const Index bad = detail::first_nonfinite(p.value);
    if (bad >= 0)
      fail<ValueError>(where, ": tensor ", detail::st_quote(name), ": element ", bad, " is ", p.value[bad],
                       "; expected finite values (the previous file is kept)");
    if (w.has(name)) fail<ValueError>(where, ": the model names tensor ", detail::st_quote(name), " twice");
    w.add_view(name, p.value, dtype);
  });
  for (const auto& [k, v] : extra_metadata) {
    if (k == kConfigMetadataKey) fail<ValueError>(where, ": extra metadata key '", k, "' is reserved");
    w.set_metadata(k, v);
  }
  w.set_metadata(kConfigMetadataKey, model.config().to_json().dump());
  w.write(path);
}

// The config stored in a checkpoint (reads the header only). FormatError if absent (saying so
// when the file is a training-state file), ConfigError (naming the file) if invalid. With
// check_tensors (the default), the file's tensors must also be exactly those a TnnLM of that
// config stores (check_header_matches_config), so allocating TnnLM(read_config(p)),
// TnnClassifier or TnnImageClassifier from it is safe whatever p holds: memory stays bounded by
// the file. Pass false for other models.
inline TnnConfig read_config(const std::string& path, bool check_tensors = true) {
  const SafetensorsHeader h = read_safetensors_header(path);
  const std::string where = "checkpoint " + quote_path(path);
  auto it = h.metadata.find(kConfigMetadataKey);
  if (it == h.metadata.end()) detail::ck_missing_config(h.metadata, path, where);
  TnnConfig cfg;
  try {
    cfg = TnnConfig::parse(it->second);
  } catch (const ConfigError& e) {
    fail<ConfigError>(where, ": metadata '", kConfigMetadataKey, "': ", e.what());
  }
  if (check_tensors) check_header_matches_config(h, cfg, where);
  return cfg;
}

// Loads a checkpoint into `model` (all-or-nothing, see the top of this file). The tensor names
// must be exactly the model's (FormatError listing the missing and the unexpected ones),
// shapes equal (FormatError), values finite (ValueError); F32 and F64 files load into either
// precision. With check_config, the stored config must equal model.config() (FormatError
// listing the differing keys).
template <class Model>
void load_weights(const std::string& path, Model& model, bool check_config = true) {
  const SafetensorsFile file = read_safetensors(path);
  const std::string where = "checkpoint " + quote_path(path);
  if (check_config) detail::ck_check_config(file, model.config(), where);
  detail::ck_load_tensors(file, where, [&](auto&& f) {
    model.visit([&](const std::string& name, auto& p) { f(name, p.value); });
  });
}

// A language model from a checkpoint in one call: its config (read_config) and its weights
// (load_weights, all-or-nothing), in precision T whatever the file's (F32 or F64).
//   auto model = tnn::load_lm<float>("run/ckpt.safetensors");
template <class T = float>
TnnLM<T> load_lm(const std::string& path) {
  TnnLM<T> model(read_config(path));
  load_weights(path, model);
  return model;
}

// Any model type from a checkpoint (TnnLM, TnnClassifier, TnnImageClassifier, in any
// precision): the config, checked against the file's tensor shapes before the model is
// allocated (read_config), then the weights (load_weights, all-or-nothing).
//   auto model = tnn::load_model<tnn::TnnImageClassifier<float>>("digits.safetensors");
template <class Model>
Model load_model(const std::string& path) {
  Model model(read_config(path));
  load_weights(path, model);
  return model;
}

// "run/ckpt.safetensors" -> "run/ckpt.optim.safetensors"; any other name gets the suffix appended.
inline std::string optimizer_state_path(const std::string& model_path) {
  const std::string ext = ".safetensors";
  if (model_path.size() >= ext.size() && model_path.compare(model_path.size() - ext.size(), ext.size(), ext) == 0)
    return model_path.substr(0, model_path.size() - ext.size()) + ".optim.safetensors";
  return model_path + ".optim.safetensors";
}

struct OptimizerStateInfo {
  std::int64_t step = 0;
  std::string extra_json = "{}";  // as given to save_optimizer_state
};

// Writes an optimizer state: every tensor visit_tensors(f) names (f(name, const Tensor<T>&);
// AdamW::visit_state fits, and so does [&](auto&& f) { for (auto& [k, t] : map) f(k, t); }),
// in its own precision so a resume is bit-exact, plus the step and a JSON text (RNG state,
// schedule, data position; integers up to 2^64 survive exactly). ValueError for a negative
// step, invalid JSON, non-finite values or a name given twice; the target is then untouched.
template <class VisitTensors>
void save_optimizer_state(const std::string& path, std::int64_t step, VisitTensors&& visit_tensors,
                          const std::string& extra_json = "{}") {
  const std::string where = "save_optimizer_state '" + path + "'";
  if (step < 0) fail<ValueError>(where, ": step: expected >= 0, got ", step);
  if (!json_is_strict(extra_json))
    fail<ValueError>(where, ": extra_json: expected strict JSON (io/json.hpp), got ", detail::st_quote(extra_json));
  SafetensorsWriter w;
  visit_tensors([&](const std::string& name, const auto& t) {
    const Index bad = detail::first_nonfinite(t);
    if (bad >= 0)
      fail<ValueError>(where, ": tensor ", detail::st_quote(name), ": element ", bad, " is ", t[bad],
                       "; expected finite values (the previous file is kept)");
    if (w.has(name)) fail<ValueError>(where, ": tensor ", detail::st_quote(name), " given twice");
    w.add_view(name, t);
  });
  w.set_metadata(kStepMetadataKey, std::to_string(step));
  w.set_metadata(kExtraMetadataKey, extra_json);
  w.write(path);
}

// Reads an optimizer state into the tensors visit_tensors(f) names (f(name, Tensor<T>&)),
// with the same all-or-nothing checks as load_weights; returns the step and the JSON text.
template <class VisitTensors>
OptimizerStateInfo load_optimizer_state(const std::string& path, VisitTensors&& visit_tensors) {
  const SafetensorsFile file = read_safetensors(path);
  const std::string where = "optimizer state " + quote_path(path);
  if (!file.has_metadata(kStepMetadataKey) && file.has_metadata(kConfigMetadataKey))
    fail<FormatError>(where, ": this is a model checkpoint, not a training-state file (expected the metadata key '",
                      kStepMetadataKey, "'; the training state is ", quote_path(optimizer_state_path(path)), ")");
  OptimizerStateInfo out;
  const std::string& s = file.metadata_at(kStepMetadataKey);
  std::uint64_t step = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() ||
      step > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    fail<FormatError>(where, ": metadata '", kStepMetadataKey, "': expected a decimal integer in [0, 2^63), got ",
                      detail::st_quote(s));
  out.step = static_cast<std::int64_t>(step);
  out.extra_json = file.metadata_at(kExtraMetadataKey);
  try {
    parse_json_strict<FormatError>(out.extra_json, "");
  } catch (const FormatError& e) {
    fail<FormatError>(where, ": metadata '", kExtraMetadataKey, "'", e.what());
  }
  detail::ck_load_tensors(file, where, visit_tensors);
  return out;
}

}  // namespace tnn
