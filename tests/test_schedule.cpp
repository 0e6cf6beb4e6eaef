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
