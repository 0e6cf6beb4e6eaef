// How the `tnn` commands declare their flags beyond CLI11:
//   TaskFlags   flags that apply to some tasks only (shown under a help section naming them; given
//               for another task, refused with one line), and flags that were renamed (refused
//               with one line naming the new spelling, rather than "unexpected argument")
//   ModelFlags  the model's flags, derived from the config key table (TnnConfig::visit_keys):
//               --<key with dashes>, the table's help, the config's default, an enum key's names
//               from its EnumTable, a bool key as --key / --no-key. Their defaults are therefore
//               those of a config file that leaves the key out.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tnn/core/enum_table.hpp>
#include <tnn/core/error.hpp>
#include <tnn/model/config.hpp>

namespace tnncli {

// "task lm" / "tasks classify and image".
inline std::string task_list(const std::vector<tnn::Task>& tasks) {
  std::string s = tasks.size() == 1 ? "task " : "tasks ";
  for (std::size_t i = 0; i < tasks.size(); ++i)
    s += (i == 0 ? "" : i + 1 == tasks.size() ? " and " : ", ") + std::string(tnn::to_string(tasks[i]));
  return s;
}

// "--seq-len": an option's long name (CLI11's get_name() is empty for hidden options).
inline std::string flag_name(const CLI::Option* opt) {
  if (!opt->get_lnames().empty()) return "--" + opt->get_lnames().front();
  if (!opt->get_snames().empty()) return "-" + opt->get_snames().front();
  return opt->get_name();
}

// A CLI11 validator accepting exactly the names of E's EnumTable, with the library's message.
template <class E>
CLI::Validator enum_validator() {
  return CLI::Validator(
      [](std::string& s) {
        E e{};
        return tnn::try_parse_enum(s, e) ? std::string()
                                         : "expected one of " + tnn::enum_choices<E>() + ", got " + tnn::quote(s, 60);
      },
      "{" + tnn::enum_choices<E>("|") + "}");
}

class TaskFlags {
 public:
  // `opt` applies to `tasks` only; its help section is `group` ("" : one naming the tasks).
  CLI::Option* only(CLI::Option* opt, std::vector<tnn::Task> tasks, std::string group = "") {
    opt->group(group.empty() ? "Only for " + task_list(tasks) : group);
    flags_.push_back({opt, std::move(tasks)});
    return opt;
  }
  // A renamed flag: hidden, and refused with one line naming `now` when given.
  void renamed(CLI::Option* old_opt, std::string now) {
    old_opt->group("");
    renamed_.push_back({old_opt, std::move(now)});
  }

  // ValueError for the first given flag that does not apply to `task` (`what`: where the task
  // comes from, e.g. "--task classify" or "checkpoint 'm.safetensors' (task image)"), or that
  // was renamed.
  void check(tnn::Task task, const std::string& what) const {
    check_renamed();
    for (const auto& [opt, tasks] : flags_)
      if (opt->count() > 0 && std::find(tasks.begin(), tasks.end(), task) == tasks.end())
        tnn::fail<tnn::ValueError>(flag_name(opt), ": applies to ", task_list(tasks), " only, not to ", what);
  }
  void check_renamed() const {
    for (const auto& [opt, now] : renamed_)
      if (opt->count() > 0) tnn::fail<tnn::ValueError>(flag_name(opt), ": renamed ", now, "; see --help");
  }

 private:
  std::vector<std::pair<CLI::Option*, std::vector<tnn::Task>>> flags_;
  std::vector<std::pair<CLI::Option*, std::string>> renamed_;
};

class ModelFlags {
  template <class V>
  struct is_optional_enum : std::false_type {};
  template <class E>
  struct is_optional_enum<std::optional<E>> : std::is_enum<E> {};

 public:
  // Config keys the program sets from the data or from other flags, never from a flag of their
  // own: the vocabulary (bytes, the mask symbol of --objective mlm), the task (--task),
  // causality (--objective), the classes, image and feature sizes (the data file).
  static bool from_data(const std::string& key) {
    static const char* const keys[] = {"vocab_size",   "task",        "causal",         "num_classes",
                                       "image_height", "image_width", "image_channels", "input_features",
                                       "output_features"};
    return std::any_of(std::begin(keys), std::end(keys), [&](const char* k) { return key == k; });
  }

  // Registers the flags on `cmd`: keys every task has under "Model", a task's own keys through
  // `per_task` (refused for other tasks).
  void add_to(CLI::App& cmd, TaskFlags& per_task) {
    tnn::TnnConfig::visit_keys(values_, [&](const auto& key, auto& member) {
      const std::string k = key.name;
      if (from_data(k)) return;
      std::string name = "--" + k;
      std::replace(name.begin(), name.end(), '_', '-');
      using V = std::decay_t<decltype(member)>;
      std::string help = key.help;
      help[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(help[0])));
      CLI::Option* opt = nullptr;
      std::function<nlohmann::json()> value;
      if constexpr (std::is_same<V, bool>::value) {
        std::string no = name;
        no.insert(2, "no-");
        opt = cmd.add_flag(name + ",!" + no, member, help + " (default " + (member ? name : no) + ")");
        opt->option_text(" ");
        value = [&member] { return nlohmann::json(member); };
      } else if constexpr (std::is_enum<V>::value) {
        texts_.emplace_back(tnn::to_string(member));
        std::string& text = texts_.back();
        opt = cmd.add_option(name, text, help)->check(enum_validator<V>())->capture_default_str();
        value = [&text] { return nlohmann::json(text); };
      } else if constexpr (is_optional_enum<V>::value) {
        // An optional enum key (unset: derived from another key, as the config's help says): the
        // flag sets it to one of the enum's names; not given, the key stays unset.
        using E = typename V::value_type;
        texts_.emplace_back(member ? tnn::to_string(*member) : std::string());
        std::string& text = texts_.back();
        opt = cmd.add_option(name, text, help)->check(enum_validator<E>());
        value = [&text] { return nlohmann::json(text); };
      } else {
        opt = cmd.add_option(name, member, help)->capture_default_str();
        value = [&member] { return nlohmann::json(member); };
      }
      opt->group("Model (defaults: those of a --config file that leaves the key out)");
      if (key.written) {
        std::vector<tnn::Task> tasks;
        for (tnn::Task t : tnn::enum_values<tnn::Task>()) {
          tnn::TnnConfig probe;
          probe.task = t;
          if (key.written(probe)) tasks.push_back(t);
        }
        // A key written for no task at its defaults is written by its value (token_mixer: only
        // when not tno), not by the task: a key of every task.
        if (!tasks.empty()) per_task.only(opt, tasks, "Model, only for " + task_list(tasks));
      }
      flags_.push_back({k, name, opt, std::move(value)});
    });
  }

  bool any_given() const {
    return std::any_of(flags_.begin(), flags_.end(), [](const Flag& f) { return f.opt->count() > 0; });
  }

  // Sets every given flag's key in `j` (a config as JSON). With `source` ("--config 'c.json'"),
  // one line on stderr per flag says what it overrides there, so nothing is replaced silently.
  void apply(nlohmann::json& j, const std::string& source) const {
    for (const Flag& f : flags_) {
      if (f.opt->count() == 0) continue;
      const nlohmann::json v = f.value();
      const std::string given = v.is_boolean() ? (v.get<bool>() ? f.name : "--no-" + f.name.substr(2))
                                               : f.name + " " + (v.is_string() ? v.get<std::string>() : v.dump());
      if (!source.empty()) {
        std::string had = j.contains(f.key) ? f.key : "";
        for (const char* legacy : {"use_decay", "use_multi_decay"})  // the older spelling of "decay"
          if (f.key == "decay" && had.empty() && j.contains(legacy)) had = legacy;
        if (!had.empty())
          std::fprintf(stderr, "note: %s overrides \"%s\": %s of %s\n", given.c_str(), had.c_str(),
                       j[had].dump().c_str(), source.c_str());
        else
          std::fprintf(stderr, "note: %s sets \"%s\", which %s leaves out\n", given.c_str(), f.key.c_str(),
                       source.c_str());
      }
      if (f.key == "decay") {  // the older spelling of the same key would contradict it
        j.erase("use_decay");
        j.erase("use_multi_decay");
      }
      j[f.key] = v;
    }
  }

 private:
  struct Flag {
    std::string key, name;
    CLI::Option* opt;
    std::function<nlohmann::json()> value;
  };
  tnn::TnnConfig values_;         // the flags' storage; its defaults are the config's
  std::deque<std::string> texts_;  // enum flags' text (a deque: references stay valid)
  std::vector<Flag> flags_;
};

}  // namespace tnncli
