#include <gtest/gtest.h>

#include <cmath>

#include "tnn/train/schedule.hpp"

using tnn::LrSchedule;
using tnn::ScheduleKind;

namespace {
LrSchedule make(ScheduleKind kind, double peak, double floor, std::int64_t warmup, std::int64_t total) {
  LrSchedule s;
  s.kind = kind;
  s.peak_lr = peak;
  s.min_lr = floor;
  s.warmup_steps = warmup;
  s.total_steps = total;
  return s;
}
}  // namespace

TEST(Schedule, WarmupIsLinearAndStartsAboveZero) {
  const auto s = make(ScheduleKind::Cosine, 1e-3, 1e-5, 10, 110);
  for (int step = 0; step < 10; ++step) EXPECT_DOUBLE_EQ(s(step), 1e-3 * (step + 1) / 10.0) << step;
  EXPECT_GT(s(0), 0.0);
  EXPECT_DOUBLE_EQ(s(9), 1e-3);  // the warm-up ends exactly at the peak
}

TEST(Schedule, CosineDecaysToTheFloorAndStaysThere) {
  const auto s = make(ScheduleKind::Cosine, 1e-3, 1e-4, 10, 110);
  // Halfway through the decay (s = step + 1 = 60, progress 0.5) the lr is the midpoint.
  EXPECT_NEAR(s(59), 0.5 * (1e-3 + 1e-4), 1e-15);
  EXPECT_NEAR(s(109), 1e-4, 1e-18);  // the last step of the decay reaches the floor
  EXPECT_DOUBLE_EQ(s(110), 1e-4);
  EXPECT_DOUBLE_EQ(s(100000), 1e-4);
  for (int step = 10; step < 110; ++step) EXPECT_LT(s(step), s(step - 1)) << step;
  // A quarter of the way: min + (peak - min) * (1 + cos(pi/4)) / 2.
  EXPECT_NEAR(s(34), 1e-4 + 9e-4 * 0.5 * (1 + std::cos(3.14159265358979323846 / 4)), 1e-15);
}

TEST(Schedule, InverseSqrtAfterWarmup) {
  const auto s = make(ScheduleKind::InverseSqrt, 2e-3, 0.0, 4, 0);
  EXPECT_DOUBLE_EQ(s(3), 2e-3);
  EXPECT_NEAR(s(15), 2e-3 * std::sqrt(4.0 / 16.0), 1e-18);  // s = 16: half the peak
  EXPECT_NEAR(s(399), 2e-3 * 0.1, 1e-18);                   // s = 400
  const auto floored = make(ScheduleKind::InverseSqrt, 2e-3, 5e-4, 4, 0);
  EXPECT_DOUBLE_EQ(floored(399), 5e-4);
  const auto no_warmup = make(ScheduleKind::InverseSqrt, 1.0, 0.0, 0, 0);
  EXPECT_DOUBLE_EQ(no_warmup(0), 1.0);
  EXPECT_DOUBLE_EQ(no_warmup(3), 0.5);
}

TEST(Schedule, ConstantAfterWarmup) {
  const auto s = make(ScheduleKind::Constant, 3e-4, 0.0, 2, 0);
  EXPECT_DOUBLE_EQ(s(0), 1.5e-4);
  EXPECT_DOUBLE_EQ(s(1), 3e-4);
  EXPECT_DOUBLE_EQ(s(1000000), 3e-4);
}

TEST(Schedule, PureFunctionOfTheStep) {
  const auto s = make(ScheduleKind::Cosine, 1e-3, 0.0, 5, 50);
  const double a = s(17);
  for (int i = 0; i < 40; ++i) s(i);
  EXPECT_EQ(s(17), a);
}

TEST(Schedule, ParseKindAndRejectBadSettings) {
  EXPECT_EQ(tnn::parse_schedule_kind("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(tnn::parse_schedule_kind("invsqrt"), ScheduleKind::InverseSqrt);
  EXPECT_EQ(tnn::parse_schedule_kind("constant"), ScheduleKind::Constant);
  EXPECT_THROW(tnn::parse_schedule_kind("linear"), tnn::ConfigError);
  EXPECT_THROW(make(ScheduleKind::Cosine, 1e-3, 0, 10, 10).validate(), tnn::ConfigError);
  EXPECT_THROW(make(ScheduleKind::Cosine, 0.0, 0, 0, 10).validate(), tnn::ConfigError);
  EXPECT_THROW(make(ScheduleKind::Cosine, 1e-3, 2e-3, 0, 10).validate(), tnn::ConfigError);
  EXPECT_THROW(make(ScheduleKind::Constant, 1e-3, 0, -1, 0).validate(), tnn::ConfigError);
  EXPECT_THROW(make(ScheduleKind::Constant, 1e-3, 0, 0, 0)(-1), tnn::ValueError);
  try {
    make(ScheduleKind::Cosine, 1e-3, 0, 100, 50).validate();
    FAIL();
  } catch (const tnn::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("total_steps"), std::string::npos) << e.what();
  }
}

TEST(Schedule, StretchedCosineContinuesWithoutAJumpToTheNewEnd) {
  const auto s = make(ScheduleKind::Cosine, 1e-3, 1e-4, 10, 110);
  const LrSchedule longer = s.stretched_to(210, 60);
  EXPECT_EQ(longer.restart_step, 60);
  EXPECT_DOUBLE_EQ(longer(60), s(60));  // the update where it is re-stretched keeps its lr
  EXPECT_NEAR(longer(209), 1e-4, 1e-18);  // min_lr at the new last step
  EXPECT_DOUBLE_EQ(longer(500), 1e-4);
  for (int step = 61; step < 210; ++step) {
    EXPECT_LT(longer(step), longer(step - 1)) << step;
    EXPECT_GE(longer(step), s(step)) << step;  // spread over more steps: never below the original
  }
  // 74 of the 149 updates from the restart to the last one: the cosine at 74 / 149.
  const double mid = 1e-4 + (s(60) - 1e-4) * 0.5 * (1 + std::cos(3.14159265358979323846 * 74.0 / 149.0));
  EXPECT_NEAR(longer(134), mid, 1e-15);
  // Shorter works the same way, and a second stretch starts from the first one's curve.
  const LrSchedule shorter = s.stretched_to(80, 60);
  EXPECT_DOUBLE_EQ(shorter(60), s(60));
  EXPECT_NEAR(shorter(79), 1e-4, 1e-18);
  const LrSchedule again = longer.stretched_to(300, 150);
  EXPECT_DOUBLE_EQ(again(150), longer(150));
  EXPECT_NEAR(again(299), 1e-4, 1e-18);
}

TEST(Schedule, StretchingAFinishedOrWarmingUpRunOrAnotherKind) {
  const auto s = make(ScheduleKind::Cosine, 1e-3, 1e-4, 10, 110);
  // Finished: at min_lr, and there it stays.
  const LrSchedule after = s.stretched_to(200, 110);
  for (int step = 110; step < 220; ++step) EXPECT_DOUBLE_EQ(after(step), 1e-4) << step;
  // Still warming up: nothing of the decay happened, so it is the plain schedule of the new total.
  const LrSchedule warm = s.stretched_to(200, 5);
  EXPECT_EQ(warm.restart_step, -1);
  for (int step = 0; step < 200; ++step) EXPECT_DOUBLE_EQ(warm(step), make(ScheduleKind::Cosine, 1e-3, 1e-4, 10, 200)(step));
  // The same total, or a schedule that does not depend on it: unchanged.
  EXPECT_EQ(s.stretched_to(110, 50).restart_step, -1);
  const auto inv = make(ScheduleKind::InverseSqrt, 1e-3, 0, 4, 0);
  EXPECT_EQ(inv.stretched_to(500, 100).restart_step, -1);
  EXPECT_DOUBLE_EQ(inv.stretched_to(500, 100)(300), inv(300));
  // A restart the schedule could not have produced is refused.
  LrSchedule bad = s;
  bad.restart_step = 20;
  bad.restart_lr = 2e-3;  // above peak_lr
  EXPECT_THROW(bad.validate(), tnn::ConfigError);
  bad.restart_lr = 5e-4;
  bad.restart_step = 3;  // inside the warm-up
  EXPECT_THROW(bad.validate(), tnn::ConfigError);
}
