// A model of your own from the library's public pieces: a causal TNN over a sequence of float
// features (here one value per hour of a synthetic series with a daily and a weekly season, a
// trend and noise) with a regression head, trained by tnn::Trainer to forecast the next hour,
// compared with the naive forecasts, saved, and loaded back.
//   train_timeseries [STEPS]   ->  writes timeseries.safetensors (1,500 steps: under a minute on 2 cores;
//   held-out MSE 0.021 against 0.029 for the best naive forecast, the same hour last week)
//
// The model is SequenceModel<float, FeatureInput<float>, RegressionHead<float>> (tnn::TnnRegressor):
// a linear map of the F input features to the width D, the shared TNN backbone, and a linear
// head to Fo values per position, trained on the mean squared error. Any other input or head
// with the members listed in tnn/model/sequence_model.hpp plugs in the same way.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <tnn/core/rng.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/trainer.hpp>

namespace {

constexpr tnn::Index kDay = 24, kWeek = 7 * 24;

// The series, standardized: y_t = trend + daily + weekly seasons + AR(1) noise.
std::vector<float> make_series(tnn::Index n, std::uint64_t seed) {
  tnn::Rng rng(seed);
  const double pi = 3.14159265358979323846;
  std::vector<double> y(static_cast<std::size_t>(n));
  double noise = 0;
  for (tnn::Index t = 0; t < n; ++t) {
    noise = 0.7 * noise + 0.3 * rng.normal();
    y[std::size_t(t)] = 0.0005 * double(t) + 2.0 * std::sin(2 * pi * double(t) / kDay) +
                        std::sin(2 * pi * double(t) / kDay * 2 + 0.5) + 1.5 * std::cos(2 * pi * double(t) / kWeek) +
                        noise;
  }
  double mean = 0, var = 0;
  for (double v : y) mean += v / double(n);
  for (double v : y) var += (v - mean) * (v - mean) / double(n);
  std::vector<float> out;
  for (double v : y) out.push_back(static_cast<float>((v - mean) / std::sqrt(var)));
  return out;
}

// The input features of hour h: its value y[h], and the calendar of the hour being forecast,
// h + 1 (known in advance, as in any real forecast): sin and cos of its hour of the day and of
// its hour of the week. Without the calendar a window's first week could not see last week's
// season, which the naive forecasts below read from the full history.
constexpr tnn::Index kFeatures = 5;

// Windows of the series: input x [B, N, kFeatures] for hours s .. s+N-1, target [B, N, 1] =
// y[s+1 .. s+N] (position t forecasts the hour after it). Windows start at random offsets in
// [lo, hi - N - 1].
struct Windows {
  const std::vector<float>* y;
  tnn::Index lo, hi, n;
  void fill(tnn::Index b, tnn::Index start, tnn::Tensor<float>& x, tnn::Tensor<float>& target) const {
    const double pi = 3.14159265358979323846;
    for (tnn::Index t = 0; t < n; ++t) {
      const tnn::Index h = start + t;
      const double day = 2 * pi * double((h + 1) % kDay) / kDay, week = 2 * pi * double((h + 1) % kWeek) / kWeek;
      float* f = &x[(b * n + t) * kFeatures];
      f[0] = (*y)[std::size_t(h)];
      f[1] = static_cast<float>(std::sin(day));
      f[2] = static_cast<float>(std::cos(day));
      f[3] = static_cast<float>(std::sin(week));
      f[4] = static_cast<float>(std::cos(week));
      target[b * n + t] = (*y)[std::size_t(h + 1)];
    }
  }
};

// The training step for tnn::Trainer: SupervisedTask does zero_grad, forward, backward and the
// checkpoint; this class says what a batch of step `step` is (a pure function of the step, so a
// resumed run sees the same batches) and how validation is scored.
class ForecastTask : public tnn::SupervisedTask<tnn::TnnRegressor<float>> {
 public:
  ForecastTask(tnn::TnnRegressor<float>& model, Windows train, Windows valid, tnn::Index batch)
      : SupervisedTask(model), train_(train), valid_(valid), batch_(batch) {}

  bool has_validation() const override { return true; }
  // Sums of squared errors over every window of the validation range (loss_sum / tokens = MSE).
  tnn::EvalSums validate(tnn::Index part, tnn::Index parts) override {
    tnn::EvalSums s;
    const tnn::Index N = valid_.n, count = (valid_.hi - valid_.lo - 1) / N;
    tnn::Tensor<float> x({1, N, kFeatures}), target({1, N, 1});
    for (tnn::Index w = part; w < count; w += parts) {
      valid_.fill(0, valid_.lo + w * N, x, target);
      const float mse = model().forward(x, target);
      s.loss_sum += double(mse) * double(N);
      s.tokens += N;
    }
    return s;
  }

 protected:
  void sample(std::int64_t step, Batch& out) override {
    const tnn::Index N = train_.n;
    out.data.resize({batch_, N, kFeatures});
    out.target.resize({batch_, N, 1});
    tnn::Rng rng(1000 + static_cast<std::uint64_t>(step));
    for (tnn::Index b = 0; b < batch_; ++b)
      train_.fill(b, train_.lo + tnn::Index(rng.below(std::uint64_t(train_.hi - train_.lo - N - 1))), out.data,
                  out.target);
    out.tokens = batch_ * N;
  }

 private:
  Windows train_, valid_;
  tnn::Index batch_;
};

// Mean squared error of forecasting y[t+1] by y[t + 1 - lag] over [lo, hi - 1).
double naive_mse(const std::vector<float>& y, tnn::Index lo, tnn::Index hi, tnn::Index lag) {
  double s = 0;
  tnn::Index n = 0;
  for (tnn::Index t = std::max(lo, lag - 1); t + 1 < hi; ++t, ++n) {
    const double d = double(y[std::size_t(t + 1)]) - double(y[std::size_t(t + 1 - lag)]);
    s += d * d;
  }
  return s / double(n);
}

}  // namespace

int main(int argc, char** argv) try {
  const std::int64_t steps = argc > 1 ? std::stoll(argv[1]) : 1500;
  tnn::set_num_threads(0);  // OpenMP's count (OMP_NUM_THREADS or every core), BLAS single-threaded under it

  const tnn::Index total = 24 * 7 * 120, split = total * 4 / 5, N = 336;  // 120 weeks; windows of two weeks
  const std::vector<float> y = make_series(total, 7);

  tnn::TnnConfig cfg;
  cfg.task = tnn::Task::Regress;
  cfg.input_features = kFeatures;  // F: the hour's value and the forecast hour's calendar
  cfg.output_features = 1;  // Fo: the next hour's
  cfg.dim = 32;
  cfg.layers = 2;
  cfg.expand_ratio = 2;
  cfg.rpe_dim = 16;
  cfg.causal = true;  // position t sees only hours <= t
  tnn::TnnRegressor<float> model(cfg);
  model.init_weights(1);

  ForecastTask task(model, Windows{&y, 0, split, N}, Windows{&y, split, total, N}, /*batch=*/8);
  tnn::TrainerConfig tc;
  tc.steps = steps;
  tc.schedule = {tnn::ScheduleKind::Cosine, /*peak=*/3e-3, /*min=*/1e-4, /*warmup=*/20, /*total=*/steps};
  tc.eval_every = 100;
  tc.out = "timeseries.safetensors";
  tnn::TrainHooks<float> hooks;
  hooks.on_event = [](const tnn::TrainEvent& e) {
    if (e.kind == tnn::TrainEvent::Kind::Validation)
      std::printf("step %4lld  validation MSE %.4f\n", (long long)e.step, e.eval.loss);
  };
  tnn::Trainer<float> trainer(task, tc, hooks);
  trainer.run();

  // The model against the naive forecasts on the held-out last fifth (the same MSE: validate()).
  const double model_mse = tnn::EvalResult::from(task.validate(0, 1)).loss;
  std::printf("held-out MSE (standardized units): TNN %.4f | last value %.4f | same hour yesterday %.4f | "
              "same hour last week %.4f\n",
              model_mse, naive_mse(y, split, total, 1), naive_mse(y, split, total, kDay),
              naive_mse(y, split, total, kWeek));

  // Saved with its config; load_model checks the file's tensors against the model before allocating.
  auto loaded = tnn::load_model<tnn::TnnRegressor<float>>(tc.out);
  tnn::Tensor<float> x({1, N, kFeatures}), unused({1, N, 1});
  Windows{&y, split, total, N}.fill(0, split, x, unused);
  const float a = model.forward(x)[N - 1], b = loaded.forward(x)[N - 1];
  std::printf("saved %s (%lld parameters); forecast of hour %lld: %.4f (loaded model: %.4f), actual %.4f\n",
              tc.out.c_str(), (long long)model.num_parameters(), (long long)(split + N), a, b,
              y[std::size_t(split + N)]);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_timeseries: %s\n", e.what());
  return 1;
}
