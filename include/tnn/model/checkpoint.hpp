// Checkpoints (spec section 9): a model's tensors under their spec names in one safetensors
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
#include "tnn/io/safetensors.hpp"

namespace tnn {

inline constexpr const char* kConfigMetadataKey = "tnn.config";     // model file: TnnConfig JSON
inline constexpr const char* kStepMetadataKey = "tnn.optim.step";   // optimizer file: decimal step
inline constexpr const char* kExtraMetadataKey = "tnn.optim.extra"; // optimizer file: caller's JSON

namespace detail {

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
  if (!file.has_metadata(kConfigMetadataKey))
    fail<FormatError>(where, ": expected the metadata key '", kConfigMetadataKey,
                      "' to compare with the model's config, it is missing (load_weights(..., false) skips the check)");
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

// The config stored in a checkpoint (reads the header only). FormatError if absent,
// ConfigError (naming the file) if invalid.
inline TnnConfig read_config(const std::string& path) {
  const SafetensorsHeader h = read_safetensors_header(path);
  auto it = h.metadata.find(kConfigMetadataKey);
  if (it == h.metadata.end())
    fail<FormatError>("checkpoint '", path, "': expected the metadata key '", kConfigMetadataKey,
                      "' (the model config), it is missing");
  try {
    return TnnConfig::parse(it->second);
  } catch (const ConfigError& e) {
    fail<ConfigError>("checkpoint '", path, "': metadata '", kConfigMetadataKey, "': ", e.what());
  }
}

// Loads a checkpoint into `model` (all-or-nothing, see the top of this file). The tensor names
// must be exactly the model's (FormatError listing the missing and the unexpected ones),
// shapes equal (FormatError), values finite (ValueError); F32 and F64 files load into either
// precision. With check_config, the stored config must equal model.config() (FormatError
// listing the differing keys).
template <class Model>
void load_weights(const std::string& path, Model& model, bool check_config = true) {
  const SafetensorsFile file = read_safetensors(path);
  const std::string where = "checkpoint '" + path + "'";
  if (check_config) detail::ck_check_config(file, model.config(), where);
  detail::ck_load_tensors(file, where, [&](auto&& f) {
    model.visit([&](const std::string& name, auto& p) { f(name, p.value); });
  });
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
  if (!nlohmann::json::accept(extra_json))
    fail<ValueError>(where, ": extra_json: expected valid JSON, got ", detail::st_quote(extra_json));
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
  const std::string where = "optimizer state '" + path + "'";
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
  if (!nlohmann::json::accept(out.extra_json))
    fail<FormatError>(where, ": metadata '", kExtraMetadataKey, "': expected valid JSON, got ",
                      detail::st_quote(out.extra_json));
  detail::ck_load_tensors(file, where, visit_tensors);
  return out;
}

}  // namespace tnn
