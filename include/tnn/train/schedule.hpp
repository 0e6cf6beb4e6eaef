// Learning-rate schedules: a pure function of the step index, so a resumed run
// needs nothing but the optimizer's step count to continue the same curve.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/error.hpp"

namespace tnn {

enum class ScheduleKind {
  Constant,     // warm-up, then peak_lr
  Cosine,       // warm-up, then cosine from peak_lr down to min_lr at total_steps, min_lr after
  InverseSqrt,  // warm-up, then peak_lr * sqrt(warmup / s), never below min_lr
};
template <>
struct EnumTable<ScheduleKind> {
  static constexpr EnumRow<ScheduleKind> rows[] = {
      {ScheduleKind::Constant, "constant"}, {ScheduleKind::Cosine, "cosine"}, {ScheduleKind::InverseSqrt, "invsqrt"}};
};

inline ScheduleKind parse_schedule_kind(const std::string& s) { return parse_enum<ScheduleKind>(s, "schedule"); }

// lr(step) for step = 0, 1, 2, ... the 0-based index of the optimizer update about to be taken
// (pass optimizer.step_count() before calling step()). With s = step + 1:
//   s <= warmup:      peak_lr * s / warmup        (linear, so the first update is not at lr 0)
//   Cosine:           min_lr + (peak_lr - min_lr) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2
//                     for s <= total_steps (reaches min_lr at the last step), min_lr after
//   InverseSqrt:      max(min_lr, peak_lr * sqrt(max(warmup, 1) / s))
//   Constant:         peak_lr
// A cosine run whose length changes part-way (a resumed run given more steps) is re-stretched
// there (stretched_to): from update r = restart_step on, a half cosine from the lr the schedule
// gave at r down to min_lr at the new last step,
//   min_lr + (restart_lr - min_lr) * (1 + cos(pi * (step - r) / (total - 1 - r))) / 2,
// so the lr never jumps and the decay ends where the new run ends (lr(step) for step < r is the
// plain schedule of the new total: those updates were taken under the earlier one). Constant
// and InverseSqrt do not depend on the total: a longer run simply goes on.
struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double peak_lr = 1e-3;
  double min_lr = 0.0;             // floor of Cosine and InverseSqrt
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;    // Cosine only: the step where min_lr is reached
  std::int64_t restart_step = -1;  // Cosine only: where the run was re-stretched (-1: never)
  double restart_lr = 0.0;         // the lr at restart_step

  // This schedule for a run of `total` updates instead, continuing at update `at` (the updates
  // before it are done): the same lr at `at`, then re-stretched to `total`. Before the warm-up
  // ends nothing of the decay has happened: the plain schedule of `total` continues it.
  LrSchedule stretched_to(std::int64_t total, std::int64_t at) const {
    LrSchedule s = *this;
    s.total_steps = total;
    if (kind != ScheduleKind::Cosine || total == total_steps || at < warmup_steps) return s;
    s.restart_step = at;
    s.restart_lr = lr(at);
    return s;
  }

  void validate() const {
    if (!std::isfinite(peak_lr) || peak_lr <= 0)
      fail<ConfigError>("schedule peak_lr: expected a finite value > 0, got ", peak_lr);
    if (!std::isfinite(min_lr) || min_lr < 0 || min_lr > peak_lr)
      fail<ConfigError>("schedule min_lr: expected 0 <= min_lr <= peak_lr (", peak_lr, "), got ", min_lr);
    if (warmup_steps < 0) fail<ConfigError>("schedule warmup_steps: expected >= 0, got ", warmup_steps);
    if (kind == ScheduleKind::Cosine && total_steps <= warmup_steps)
      fail<ConfigError>("schedule total_steps: a cosine schedule needs total_steps > warmup_steps (",
                        warmup_steps, "), got ", total_steps);
    if (restart_step >= 0 && (!(restart_lr >= min_lr && restart_lr <= peak_lr) || restart_step < warmup_steps))
      fail<ConfigError>("schedule restart: expected min_lr <= restart_lr <= peak_lr after the warm-up, got lr ",
                        restart_lr, " at step ", restart_step);
  }

  double operator()(std::int64_t step) const { return lr(step); }
  double lr(std::int64_t step) const {
    if (step < 0) fail<ValueError>("schedule step: expected >= 0, got ", step);
    validate();
    const double s = static_cast<double>(step) + 1.0;
    const double w = static_cast<double>(warmup_steps);
    if (step < warmup_steps) return peak_lr * s / w;
    switch (kind) {
      case ScheduleKind::Constant: return peak_lr;
      case ScheduleKind::Cosine: {
        if (step >= total_steps) return min_lr;
        const double pi = 3.14159265358979323846;
        if (restart_step >= 0 && step >= restart_step) {
          const std::int64_t span = total_steps - 1 - restart_step;  // updates left after the restart's
          if (span <= 0) return min_lr;
          const double t = static_cast<double>(step - restart_step) / static_cast<double>(span);  // [0, 1]
          return min_lr + (restart_lr - min_lr) * 0.5 * (1.0 + std::cos(pi * t));
        }
        const double progress = (s - w) / static_cast<double>(total_steps - warmup_steps);  // (0, 1]
        return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(pi * progress));
      }
      case ScheduleKind::InverseSqrt: return std::max(min_lr, peak_lr * std::sqrt(std::max(w, 1.0) / s));
    }
    return peak_lr;
  }
};

}  // namespace tnn
