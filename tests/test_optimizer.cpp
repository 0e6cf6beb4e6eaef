#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>

#include "tnn/train/optimizer.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/train/schedule.hpp"

// Counts heap allocations so that "step() does not allocate" is a checked claim. The release
// goes through a function GCC cannot see into, else it flags free() after operator new.
static std::atomic<long> g_allocations{0};
[[gnu::noinline]] static void release(void* p) noexcept { std::free(p); }
void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  ++g_allocations;
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }

using tnn::AdamW;
using tnn::AdamWConfig;
using tnn::Index;
using tnn::NamedParams;
using tnn::Param;

namespace {

template <class T>
void set_values(tnn::Tensor<T>& t, std::initializer_list<double> v) {
  ASSERT_EQ(static_cast<std::size_t>(t.size()), v.size());
  Index i = 0;
  for (double x : v) t[i++] = T(x);
}

// A small model-like parameter set: one of each kind the decay rule distinguishes.
template <class T>
struct Toy {
  Param<T> weight, bias, scale, gamma, frozen;
  Toy() {
    weight.init({3, 4});
    bias.init({3});
    scale.init({4});
    gamma.init({2, 1, 3});
    frozen.init({2, 1, 3}, /*is_trainable=*/false);
  }
  NamedParams<T> named() {
    return {{"layers.0.u_proj.weight", &weight},
            {"layers.0.u_proj.bias", &bias},
            {"final_norm.scale", &scale},
            {"layers.0.token_mixer.toep.gamma", &gamma},
            {"layers.1.token_mixer.toep.gamma", &frozen}};
  }
  // Values and gradients from a seeded stream; the gradient depends on the values, as in training.
  void fill(tnn::Rng& rng) {
    for (auto& [n, p] : named()) {
      (void)n;
      for (T& x : p->value) x = T(rng.normal());
    }
  }
  void make_grads(tnn::Rng& rng) {
    for (auto& [n, p] : named()) {
      (void)n;
      for (Index i = 0; i < p->value.size(); ++i) p->grad[i] = T(0.5) * p->value[i] + T(rng.normal());
    }
  }
};

}  // namespace

TEST(AdamW, FirstStepIsSignOfGradientTimesLr) {
  // At t = 1 the bias-corrected moments are g and g^2, so the update is lr * g / (|g| + eps).
  Param<double> w;
  w.init({2, 2});
  set_values(w.value, {1.0, -2.0, 0.5, 3.0});
  set_values(w.grad, {0.25, -4.0, 0.0, 1e-3});
  AdamWConfig cfg;
  cfg.lr = 0.1;
  cfg.weight_decay = 0.2;
  cfg.eps = 1e-8;
  AdamW<double> opt({{"w.weight", &w}}, cfg);
  opt.step();
  const double p0[] = {1.0, -2.0, 0.5, 3.0}, g[] = {0.25, -4.0, 0.0, 1e-3};
  for (int i = 0; i < 4; ++i) {
    const double expected = p0[i] * (1 - 0.1 * 0.2) - 0.1 * g[i] / (std::abs(g[i]) + 1e-8);
    EXPECT_NEAR(w.value[i], expected, 1e-15) << i;
  }
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(AdamW, MatchesTheTextbookFormulaOverSeveralSteps) {
  // Reference in the m_hat / v_hat form of the paper, independent of the implementation's
  // rearrangement: p = p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps).
  const double lr[] = {0.05, 0.03, 0.01}, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
  Param<double> w;
  w.init({1, 3});
  set_values(w.value, {0.5, -1.0, 2.0});
  const double grads[3][3] = {{0.3, -0.1, 0.2}, {-0.2, 0.4, 0.1}, {0.0, 0.01, -0.3}};
  double p[3] = {0.5, -1.0, 2.0}, m[3] = {}, v[3] = {};
  AdamW<double> opt({{"w.weight", &w}}, AdamWConfig{0.0, b1, b2, eps, wd});
  for (int t = 1; t <= 3; ++t) {
    for (int i = 0; i < 3; ++i) w.grad[i] = grads[t - 1][i];
    opt.step(lr[t - 1]);
    for (int i = 0; i < 3; ++i) {
      const double g = grads[t - 1][i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      p[i] = p[i] * (1 - lr[t - 1] * wd) - lr[t - 1] * mh / (std::sqrt(vh) + eps);
      EXPECT_NEAR(w.value[i], p[i], 1e-14) << "step " << t << " element " << i;
      EXPECT_NEAR(opt.exp_avg("w.weight")[i], m[i], 1e-15);
      EXPECT_NEAR(opt.exp_avg_sq("w.weight")[i], v[i], 1e-15);
    }
  }
}

TEST(AdamW, MatchesTorchOptimAdamW) {
  // Values printed by torch.optim.AdamW (float64, foreach=False): weight decay 0.1 on the
  // matrix, 0 on the bias, betas (0.8, 0.95), eps 1e-6, three steps at lr 0.05, 0.03, 0.01.
  Param<double> w, b;
  w.init({2, 3});
  b.init({2});
  set_values(w.value, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5});
  set_values(b.value, {0.1, -0.2});
  AdamW<double> opt({{"l.weight", &w}, {"l.bias", &b}}, AdamWConfig{0.0, 0.8, 0.95, 1e-6, 0.1});
  const double gw[3][6] = {{0.3, -0.1, 0.2, 1.0, 0.0, -2.0}, {-0.2, 0.4, 0.1, 0.5, 0.3, -1.0},
                           {0.0, 0.01, -0.3, 2.0, -0.4, 0.6}};
  const double gb[3][2] = {{0.5, -0.5}, {0.05, 0.7}, {-1.5, 0.2}};
  const double lr[3] = {0.05, 0.03, 0.01};
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 6; ++i) w.grad[i] = gw[t][i];
    for (int i = 0; i < 2; ++i) b.grad[i] = gb[t][i];
    opt.step(lr[t]);
  }
  const double want_w[6] = {0.44244478885505323, -0.9638817963052226, 1.9063835099621875,
                            0.16108218600083937, -0.764282393464026,  1.56854516377395};
  const double want_b[2] = {0.03363462966805647, -0.16174794676966173};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(w.value[i], want_w[i], 1e-14) << i;
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(b.value[i], want_b[i], 1e-14) << i;
}

TEST(AdamW, WeightDecayOnlyOnMatricesAndNeverOnFrozenParams) {
  Toy<double> toy;
  tnn::Rng rng(3);
  toy.fill(rng);
  Toy<double> before = toy;
  AdamWConfig cfg;
  cfg.lr = 0.1;
  cfg.weight_decay = 0.5;
  AdamW<double> opt(toy.named(), cfg);
  EXPECT_EQ(opt.num_params(), 4);  // the frozen gamma has no state
  EXPECT_FALSE(opt.has("layers.1.token_mixer.toep.gamma"));
  EXPECT_TRUE(opt.decays("layers.0.u_proj.weight"));
  EXPECT_FALSE(opt.decays("layers.0.u_proj.bias"));
  EXPECT_FALSE(opt.decays("final_norm.scale"));
  EXPECT_FALSE(opt.decays("layers.0.token_mixer.toep.gamma"));
  EXPECT_TRUE(tnn::default_weight_decay_rule("toep.rpe.pos_proj.weight", {64, 1}));
  EXPECT_TRUE(tnn::default_weight_decay_rule("embed.weight", {256, 32}));

  // Zero gradients: Adam's part of the update is 0, only the decay moves anything.
  for (auto& [n, p] : toy.named()) {
    (void)n;
    p->grad.set_zero();
  }
  toy.frozen.grad.fill(1.0);  // must be ignored
  opt.step();
  for (Index i = 0; i < toy.weight.value.size(); ++i)
    EXPECT_DOUBLE_EQ(toy.weight.value[i], before.weight.value[i] * (1 - 0.1 * 0.5));
  for (Index i = 0; i < toy.bias.value.size(); ++i) EXPECT_EQ(toy.bias.value[i], before.bias.value[i]);
  for (Index i = 0; i < toy.scale.value.size(); ++i) EXPECT_EQ(toy.scale.value[i], before.scale.value[i]);
  for (Index i = 0; i < toy.gamma.value.size(); ++i) EXPECT_EQ(toy.gamma.value[i], before.gamma.value[i]);
  for (Index i = 0; i < toy.frozen.value.size(); ++i) EXPECT_EQ(toy.frozen.value[i], before.frozen.value[i]);
}

TEST(AdamW, CustomDecayRuleIsHonoured) {
  Toy<double> toy;
  AdamW<double> opt(toy.named(), {}, [](const std::string& name, const tnn::Shape&) {
    return name.find("bias") != std::string::npos;
  });
  EXPECT_TRUE(opt.decays("layers.0.u_proj.bias"));
  EXPECT_FALSE(opt.decays("layers.0.u_proj.weight"));
}

TEST(AdamW, ClipGradNormScalesToMaxNormAndReturnsTheNormBefore) {
  Param<float> a, b, frozen;
  a.init({2});
  b.init({1, 1});
  frozen.init({1}, false);
  set_values(a.grad, {3.0, 0.0});
  set_values(b.grad, {4.0});
  frozen.grad[0] = 100.0f;  // not trained: neither counted nor scaled
  NamedParams<float> ps{{"a", &a}, {"b", &b}, {"f", &frozen}};
  EXPECT_DOUBLE_EQ(tnn::grad_norm(ps), 5.0);
  EXPECT_DOUBLE_EQ(tnn::clip_grad_norm(ps, 1.0), 5.0);
  EXPECT_FLOAT_EQ(a.grad[0], 0.6f);
  EXPECT_FLOAT_EQ(b.grad[0], 0.8f);
  EXPECT_EQ(frozen.grad[0], 100.0f);
  EXPECT_NEAR(tnn::grad_norm(ps), 1.0, 1e-6);

  // Under the limit: returned, not changed.
  set_values(a.grad, {0.3, 0.0});
  set_values(b.grad, {0.4});
  EXPECT_NEAR(tnn::clip_grad_norm(ps, 1.0), 0.5, 1e-7);
  EXPECT_EQ(a.grad[0], 0.3f);
  EXPECT_EQ(b.grad[0], 0.4f);

  // Infinity measures only.
  EXPECT_NEAR(tnn::clip_grad_norm(ps, std::numeric_limits<double>::infinity()), 0.5, 1e-7);
  EXPECT_THROW(tnn::clip_grad_norm(ps, 0.0), tnn::ValueError);
  EXPECT_THROW(tnn::clip_grad_norm(ps, -1.0), tnn::ValueError);
}

TEST(AdamW, ClipGradNormAccumulatesInDoubleAndReportsNonFinite) {
  // Squares of these would underflow (1e-46) or overflow (1e40) in float; in double they do not.
  Param<float> tiny, huge;
  tiny.init({4});
  huge.init({4});
  tiny.grad.fill(1e-23f);
  huge.grad.fill(1e20f);
  EXPECT_NEAR(tnn::grad_norm(NamedParams<float>{{"tiny", &tiny}}), 2.0 * double(1e-23f), 1e-30);
  EXPECT_NEAR(tnn::grad_norm(NamedParams<float>{{"huge", &huge}}) / (2.0 * double(1e20f)), 1.0, 1e-15);

  Param<float> p;
  p.init({3});
  set_values(p.grad, {1.0, std::nan(""), 2.0});
  NamedParams<float> q{{"p", &p}};
  EXPECT_TRUE(std::isnan(tnn::clip_grad_norm(q, 1.0)));
  EXPECT_EQ(p.grad[0], 1.0f);  // untouched, so the caller can inspect and skip the step
}

TEST(AdamW, RestoredStateContinuesBitIdentically) {
  // Run A: 12 uninterrupted steps. Run B: 6 steps, state copied out (as a checkpoint would),
  // a fresh model and optimizer restored from it, 6 more steps. Same schedule, same gradients.
  tnn::LrSchedule sched;
  sched.kind = tnn::ScheduleKind::Cosine;
  sched.peak_lr = 0.02;
  sched.min_lr = 0.001;
  sched.warmup_steps = 3;
  sched.total_steps = 12;
  AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  auto train = [&](Toy<float>& toy, AdamW<float>& opt, int steps) {
    for (int s = 0; s < steps; ++s) {
      tnn::Rng grng(1000 + static_cast<std::uint64_t>(opt.step_count()));
      toy.make_grads(grng);
      tnn::clip_grad_norm(toy.named(), 1.0);
      opt.step(sched(opt.step_count()));
    }
  };
  tnn::Rng init_a(7), init_b(7);
  Toy<float> a, b;
  a.fill(init_a);
  b.fill(init_b);
  AdamW<float> opt_a(a.named(), cfg), opt_b(b.named(), cfg);
  train(a, opt_a, 12);
  train(b, opt_b, 6);

  std::map<std::string, tnn::Tensor<float>> saved;
  for (auto& [n, p] : b.named()) saved[n] = p->value;
  opt_b.visit_state([&](const std::string& key, const tnn::Tensor<float>& t) { saved["optim." + key] = t; });
  const std::int64_t saved_step = opt_b.step_count();
  EXPECT_EQ(saved.size(), 5u + 2u * 4u);

  Toy<float> c;
  AdamW<float> opt_c(c.named(), cfg);
  for (auto& [n, p] : c.named()) p->value = saved.at(n);
  opt_c.visit_state([&](const std::string& key, tnn::Tensor<float>& t) { t = saved.at("optim." + key); });
  opt_c.set_step_count(saved_step);
  train(c, opt_c, 6);

  for (auto [pa, pc] : {std::pair{&a.weight, &c.weight}, {&a.bias, &c.bias}, {&a.scale, &c.scale},
                        {&a.gamma, &c.gamma}, {&a.frozen, &c.frozen}}) {
    ASSERT_EQ(pa->value.size(), pc->value.size());
    EXPECT_EQ(std::memcmp(pa->value.data(), pc->value.data(), sizeof(float) * pa->value.size()), 0);
  }
  EXPECT_EQ(opt_c.step_count(), 12);
  const auto& ma = opt_a.exp_avg_sq("layers.0.u_proj.weight");
  const auto& mc = opt_c.exp_avg_sq("layers.0.u_proj.weight");
  EXPECT_EQ(std::memcmp(ma.data(), mc.data(), sizeof(float) * ma.size()), 0);
  // And the run did move: not a trivially equal pair.
  Toy<float> fresh;
  tnn::Rng init_f(7);
  fresh.fill(init_f);
  EXPECT_NE(a.weight.value[0], fresh.weight.value[0]);
}

TEST(AdamW, StepDoesNotAllocate) {
  Toy<float> toy;
  tnn::Rng rng(1);
  toy.fill(rng);
  toy.make_grads(rng);
  AdamW<float> opt(toy.named());
  const auto named = toy.named();
  opt.step(1e-3);
  const long before = g_allocations.load();
  for (int i = 0; i < 5; ++i) {
    opt.step(1e-3);
    tnn::clip_grad_norm(named, 0.5);
  }
  EXPECT_EQ(g_allocations.load(), before);
}

TEST(AdamW, ErrorsNameTheProblem) {
  Param<float> p;
  p.init({2, 2});
  EXPECT_THROW(AdamW<float>({{"x", nullptr}}), tnn::ValueError);
  EXPECT_THROW(AdamW<float>({{"x", &p}, {"x", &p}}), tnn::ValueError);
  AdamWConfig bad;
  bad.beta1 = 1.0;
  EXPECT_THROW(AdamW<float>({{"x", &p}}, bad), tnn::ConfigError);
  bad = AdamWConfig{};
  bad.eps = 0;
  EXPECT_THROW(AdamW<float>({{"x", &p}}, bad), tnn::ConfigError);
  bad = AdamWConfig{};
  bad.weight_decay = -0.1;
  EXPECT_THROW(AdamW<float>({{"x", &p}}, bad), tnn::ConfigError);

  AdamW<float> opt({{"x", &p}});
  try {
    opt.exp_avg("y");
    FAIL() << "expected ValueError";
  } catch (const tnn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(opt.step(-1.0), tnn::ValueError);
  EXPECT_THROW(opt.step(std::nan("")), tnn::ValueError);
  EXPECT_THROW(opt.set_step_count(-1), tnn::ValueError);
  p.grad.resize({4});
  try {
    opt.step();
    FAIL() << "expected ShapeError";
  } catch (const tnn::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(opt.step_count(), 0);  // a refused step does not count
}
