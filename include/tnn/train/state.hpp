// The JSON part of a training-state file (CKPT.optim.safetensors, metadata "tnn.optim.extra"):
// {identity, adamw_step, bad_steps, steps, schedule}, read under io/json.hpp's strict policy with every key's
// type checked (a FormatError naming the file and the key, never a bare library message), and
// the differences between two identities named key by key for "--resume with other flags".
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/io/json.hpp"

namespace tnn {

struct TrainingStateJson {
  nlohmann::json identity = nlohmann::json::object();  // the run's settings (flags, config, data)
  std::int64_t adamw_step = 0;
  std::int64_t bad_steps = 0;
  // The run's length when it saved and its schedule's total_steps (0: not recorded, a file from
  // before runs could be extended), and where that schedule was re-stretched (-1: never;
  // LrSchedule::stretched_to).
  std::int64_t steps = 0;
  std::int64_t schedule_total = 0;
  std::int64_t restart_step = -1;
  double restart_lr = 0;
};

namespace detail {
inline std::int64_t ts_count(const nlohmann::json& j, const char* key, const std::string& where, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) fail<FormatError>(where, ": expected the key '", key, "', it is missing");
    return 0;
  }
  if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<std::uint64_t>() >
                                                                   std::uint64_t(std::numeric_limits<std::int64_t>::max())))
    fail<FormatError>(where, ": key '", key, "': expected an integer >= 0, got ", json_brief(*it));
  const auto v = it->get<std::int64_t>();
  if (v < 0) fail<FormatError>(where, ": key '", key, "': expected an integer >= 0, got ", v);
  return v;
}
}  // namespace detail

// Parses the training-state JSON; `where` names the file ("training state 'run.optim.safetensors'").
inline TrainingStateJson parse_training_state(const std::string& text, const std::string& where) {
  const nlohmann::json j = parse_json_strict<FormatError>(text, where);
  if (!j.is_object()) fail<FormatError>(where, ": expected a JSON object {identity, adamw_step, bad_steps}, got ", json_brief(j));
  TrainingStateJson s;
  auto id = j.find("identity");
  if (id == j.end()) fail<FormatError>(where, ": expected the key 'identity', it is missing");
  if (!id->is_object()) fail<FormatError>(where, ": key 'identity': expected an object, got ", json_brief(*id));
  s.identity = *id;
  s.adamw_step = detail::ts_count(j, "adamw_step", where, /*required=*/true);
  s.bad_steps = detail::ts_count(j, "bad_steps", where, /*required=*/false);
  s.steps = detail::ts_count(j, "steps", where, /*required=*/false);
  if (auto sch = j.find("schedule"); sch != j.end()) {
    if (!sch->is_object()) fail<FormatError>(where, ": key 'schedule': expected an object, got ", json_brief(*sch));
    const std::string at = where + ": key 'schedule'";
    s.schedule_total = detail::ts_count(*sch, "total_steps", at, /*required=*/true);
    if (!sch->contains("restart_step")) return s;
    s.restart_step = detail::ts_count(*sch, "restart_step", at, /*required=*/true);
    auto lr = sch->find("restart_lr");
    if (lr == sch->end() || !lr->is_number() || !(lr->get<double>() >= 0))
      fail<FormatError>(at, ": key 'restart_lr': expected a number >= 0, got ",
                        lr == sch->end() ? std::string("nothing") : json_brief(*lr));
    s.restart_lr = lr->get<double>();
  }
  return s;
}

// "--steps: saved 100, now 200; --lr: saved 0.001, now 0.002" for the top-level keys whose
// values differ (keys only on one side say "absent"), at most max_keys of them, every value
// rendered by json_brief (bounded, no recursion). "" when equal. Nested objects that differ are
// named with their key path one level down ("config.dim").
namespace detail {
// A value as in JSON text when it is a scalar (strings quoted and cut), else its size.
inline std::string ts_value(const nlohmann::json& v) {
  if (v.is_string()) return quote(v.get_ref<const std::string&>(), 60);
  if (v.is_structured() || v.is_binary()) return json_brief(v);
  return v.dump();
}
}  // namespace detail

inline std::string json_differences(const nlohmann::json& saved, const nlohmann::json& now, std::size_t max_keys = 8) {
  if (!saved.is_object() || !now.is_object()) {
    if (saved == now) return "";
    return "saved " + detail::ts_value(saved) + ", now " + detail::ts_value(now);
  }
  std::string out;
  std::size_t n = 0, more = 0;
  auto add = [&](const std::string& key, const nlohmann::json* a, const nlohmann::json* b) {
    if (n == max_keys) {
      ++more;
      return;
    }
    ++n;
    out += (out.empty() ? "" : "; ") + detail::one_line(key, 60) + ": saved " + (a ? detail::ts_value(*a) : "absent") +
           ", now " + (b ? detail::ts_value(*b) : "absent");
  };
  auto visit = [&](const std::string& key, const nlohmann::json* a, const nlohmann::json* b) {
    if (a && b && *a == *b) return;
    if (a && b && a->is_object() && b->is_object()) {
      for (auto it = a->begin(); it != a->end(); ++it) {
        auto jt = b->find(it.key());
        if (jt == b->end()) add(key + "." + it.key(), &it.value(), nullptr);
        else if (*jt != it.value()) add(key + "." + it.key(), &it.value(), &*jt);
      }
      for (auto jt = b->begin(); jt != b->end(); ++jt)
        if (!a->contains(jt.key())) add(key + "." + jt.key(), nullptr, &jt.value());
      return;
    }
    add(key, a, b);
  };
  for (auto it = saved.begin(); it != saved.end(); ++it) {
    auto jt = now.find(it.key());
    visit(it.key(), &it.value(), jt == now.end() ? nullptr : &*jt);
  }
  for (auto jt = now.begin(); jt != now.end(); ++jt)
    if (!saved.contains(jt.key())) visit(jt.key(), nullptr, &jt.value());
  if (more) out += "; and " + std::to_string(more) + " more";
  return out;
}

}  // namespace tnn
