// Checkpoints (model.md §9): a model's tensors under their spec names in one safetensors
// file, its config in __metadata__["tnn.config"], its tokenizer (when not bytes) in
// __metadata__["tnn.tokenizer"]; the optimizer state (step, moments, RNG and
// other JSON) in a companion file, by default CKPT.optim.safetensors beside CKPT.safetensors.
// Generic over any Model with `const TnnConfig& config()` and `visit(f)` calling
// f(name, Param<T>&), so the same code serves every model of model/models.hpp, your own
// SequenceModel, and test models. The tensors a checkpoint must hold are the model's own: a
// description of the model built under ShapesOnlyScope (layers/param.hpp) names them before
// anything is allocated.
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
#include "tnn/model/class_names.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/models.hpp"
#include "tnn/io/json.hpp"
#include "tnn/io/safetensors.hpp"
#include "tnn/io/tokenizer.hpp"

namespace tnn {

inline constexpr const char* kConfigMetadataKey = "tnn.config";     // model file: TnnConfig JSON
inline constexpr const char* kStepMetadataKey = "tnn.optim.step";   // optimizer file: decimal step
inline constexpr const char* kExtraMetadataKey = "tnn.optim.extra"; // optimizer file: caller's JSON
// A model's tokenizer (io/tokenizer.hpp's tokenizer_to_json), absent for byte models.
inline constexpr const char* kTokenizerMetadataKey = "tnn.tokenizer";

// The metadata that stores `t` in a model file (save_model's extra_metadata): nothing for bytes,
// so a byte model's checkpoint is what it always was.
inline std::map<std::string, std::string> tokenizer_metadata(const Tokenizer& t) {
  if (t.is_bytes()) return {};
  return {{kTokenizerMetadataKey, tokenizer_to_json(t)}};
}

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

// (name, shape) of every tensor a Model built from `cfg` stores, in visit order, without
// allocating any of them (ShapesOnlyScope).
template <class Model>
std::vector<std::pair<std::string, Shape>> model_tensor_shapes(const TnnConfig& cfg) {
  std::vector<std::pair<std::string, Shape>> out;
  ShapesOnlyScope shapes_only;
  const Model m(cfg);
  m.visit([&](const std::string& name, const auto& p) { out.emplace_back(name, p.shape()); });
  return out;
}

// FormatError unless `h` holds exactly the tensors a Model of `cfg` stores, with the same
// shapes and a floating-point dtype. Reads nothing but the header. Memory stays bounded by the
// file: before even the model's description is built, its layer count is held to the header's
// tensor count (every layer stores at least one tensor per RPE linear, or attention's four
// projections).
template <class Model>
void check_header_matches(const SafetensorsHeader& h, const TnnConfig& cfg, const std::string& where) {
  const auto have = static_cast<Index>(h.tensors.size());
  const bool attention = cfg.token_mixer == TokenMixerKind::Attention;
  const Index per_layer = attention ? 4 : cfg.rpe_layers + 1;
  if (cfg.layers * per_layer > have)
    fail<FormatError>(where, ": its config (dim ", cfg.dim, ", token_mixer ", to_string(cfg.token_mixer),
                      attention ? std::string() : ", rpe_layers " + std::to_string(cfg.rpe_layers), ", layers ",
                      cfg.layers, ") needs at least ", cfg.layers * per_layer, " tensors, the file has ", have);
  const auto want = model_tensor_shapes<Model>(cfg);
  if (static_cast<Index>(want.size()) != have)
    fail<FormatError>(where, ": its config (dim ", cfg.dim, ", layers ", cfg.layers, ") needs ", want.size(),
                      " tensors, the file has ", have);
  for (const auto& [name, shape] : want) {
    auto it = h.tensors.find(name);
    if (it == h.tensors.end())
      fail<FormatError>(where, ": expected the tensor ", detail::st_quote(name), " its config implies, it is missing");
    if (it->second.shape != shape)
      fail<FormatError>(where, ": tensor ", detail::st_quote(name), ": its config implies shape ", shape_str(shape),
                        ", the file has ", shape_str(it->second.shape));
    if (!dtype_is_float(it->second.dtype))
      fail<FormatError>(where, ": tensor ", detail::st_quote(name), ": expected dtype F32 or F64, got ",
                        dtype_name(it->second.dtype));
  }
}

// The same for the built-in model of cfg.task (model/models.hpp).
inline void check_header_matches_config(const SafetensorsHeader& h, const TnnConfig& cfg, const std::string& where) {
  with_model_type<float>(cfg.task, [&](auto model) {
    check_header_matches<typename decltype(model)::type>(h, cfg, where);
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

namespace detail {
inline TnnConfig ck_read_config(const SafetensorsHeader& h, const std::string& path, const std::string& where) {
  auto it = h.metadata.find(kConfigMetadataKey);
  if (it == h.metadata.end()) detail::ck_missing_config(h.metadata, path, where);
  try {
    return TnnConfig::parse(it->second);
  } catch (const ConfigError& e) {
    fail<ConfigError>(where, ": metadata '", kConfigMetadataKey, "': ", e.what());
  }
}
}  // namespace detail

// The config stored in a checkpoint (reads the header only). FormatError if absent (saying so
// when the file is a training-state file), ConfigError (naming the file) if invalid. With
// check_tensors (the default), the file's tensors must also be exactly those the built-in model
// of its task stores (check_header_matches_config), so building that model from read_config(p)
// is safe whatever p holds: memory stays bounded by the file. Pass false for other models (and
// use load_model, which checks against the model it builds).
inline TnnConfig read_config(const std::string& path, bool check_tensors = true) {
  const SafetensorsHeader h = read_safetensors_header(path);
  const std::string where = "checkpoint " + quote_path(path);
  const TnnConfig cfg = detail::ck_read_config(h, path, where);
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

// Any model type from a checkpoint (TnnLM, TnnClassifier, TnnImageClassifier, TnnRegressor, your
// own SequenceModel; any precision, whatever the file's F32 or F64): the config, the file's
// tensors checked against the model's description before the model is allocated, then the
// weights (load_weights, all-or-nothing).
//   auto model = tnn::load_model<tnn::TnnImageClassifier<float>>("digits.safetensors");
template <class Model>
Model load_model(const std::string& path) {
  const SafetensorsHeader h = read_safetensors_header(path);
  const std::string where = "checkpoint " + quote_path(path);
  const TnnConfig cfg = detail::ck_read_config(h, path, where);
  check_header_matches<Model>(h, cfg, where);
  Model model(cfg);
  load_weights(path, model);
  return model;
}

// The tokenizer stored in a checkpoint (reads the header only): bytes when there is none. A
// stored tokenizer is checked against the stored config: its ids must be ids of the model
// (FormatError naming the file otherwise); ConfigError when it is SentencePiece and this build
// has no SentencePiece.
inline Tokenizer read_tokenizer(const std::string& path) {
  const SafetensorsHeader h = read_safetensors_header(path);
  const std::string where = "checkpoint " + quote_path(path);
  auto it = h.metadata.find(kTokenizerMetadataKey);
  if (it == h.metadata.end()) return Tokenizer::bytes();
  Tokenizer t = tokenizer_from_json(it->second, where + ": metadata '" + kTokenizerMetadataKey + "'");
  const TnnConfig cfg = detail::ck_read_config(h, path, where);
  if (!cfg.has_vocab() || t.vocab_size() > cfg.vocab_size)
    fail<FormatError>(where, ": its tokenizer, ", t.describe(), ", has more ids than the model's vocab_size ",
                      cfg.vocab_size);
  return t;
}

// A language model from a checkpoint in one call.
//   auto model = tnn::load_lm<float>("run/ckpt.safetensors");
template <class T = float>
TnnLM<T> load_lm(const std::string& path) {
  return load_model<TnnLM<T>>(path);
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
