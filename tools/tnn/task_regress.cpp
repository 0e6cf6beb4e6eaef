// The regressor (task regress, tnn::TnnRegressor: float features in, real values out, per position)
// in the commands that apply: train and eval on a safetensors file of sequences (inputs F32/F64
// [M, N, F], targets F32/F64 [M, N, Fo]; mean squared error), grad. The model is causal unless a
// --config says "causal": false (each position may then see the whole sequence).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/core/rng.hpp>
#include <tnn/io/safetensors.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/trainer.hpp>

#include "common.hpp"
#include "data_record.hpp"
#include "processes.hpp"
#include "session.hpp"
#include "tasks.hpp"

namespace tnncli {
namespace {

// Sequences with their targets, all of one length N.
struct Sequences {
  tnn::Tensor<float> inputs;   // [M, N, F]
  tnn::Tensor<float> targets;  // [M, N, Fo]
  tnn::Index size() const { return inputs.rank() == 3 ? inputs.dim(0) : 0; }
};

// Reads a regression file, checking what a hostile one could get wrong: both tensors, float
// dtypes, shapes [M, N, F] and [M, N, Fo] with M, N, F, Fo >= 1, finite values.
Sequences read_sequences(const std::string& path, const std::string& flag) {
  const tnn::SafetensorsFile f = tnn::read_safetensors(path);
  const std::string where = flag + " " + tnn::quote_path(path);
  Sequences s;
  for (const char* name : {"inputs", "targets"}) {
    if (!f.has(name))
      tnn::fail<tnn::FormatError>(where, ": expected a tensor named '", name,
                                  "' (a regressor's data: inputs [M, N, F], targets [M, N, Fo]), it is missing");
    if (!tnn::dtype_is_float(f.dtype(name)))
      tnn::fail<tnn::FormatError>(where, ": tensor '", name, "': expected dtype F32 or F64, got ",
                                  tnn::dtype_name(f.dtype(name)));
  }
  const tnn::Shape &in = f.shape("inputs"), &out = f.shape("targets");
  auto positive = [](const tnn::Shape& x) { return x.size() == 3 && x[0] >= 1 && x[1] >= 1 && x[2] >= 1; };
  if (!positive(in) || !positive(out) || in[0] != out[0] || in[1] != out[1])
    tnn::fail<tnn::ShapeError>(where, ": expected inputs [M, N, F] and targets [M, N, Fo] with M, N, F, Fo >= 1, got ",
                               tnn::shape_str(in), " and ", tnn::shape_str(out));
  f.get_into("inputs", s.inputs);
  f.get_into("targets", s.targets);
  for (const tnn::Tensor<float>* t : {&s.inputs, &s.targets})
    for (tnn::Index i = 0; i < t->size(); ++i)
      if (!std::isfinite((*t)[i]))
        tnn::fail<tnn::ValueError>(where, ": tensor '", t == &s.inputs ? "inputs" : "targets", "': element ", i, " is ",
                                   (*t)[i], "; expected finite values");
  return s;
}

// Rows [first, first + n) of a [M, ...] tensor.
tnn::Tensor<float> rows(const tnn::Tensor<float>& t, tnn::Index first, tnn::Index n) {
  tnn::Shape s = t.shape();
  const tnn::Index per = t.size() / s[0];
  s[0] = n;
  tnn::Tensor<float> out(s);
  std::copy(t.data() + first * per, t.data() + (first + n) * per, out.data());
  return out;
}

// The last n sequences of `all`, removed from it.
Sequences take_last(Sequences& all, tnn::Index n) {
  const tnn::Index keep = all.size() - n;
  Sequences tail{rows(all.inputs, keep, n), rows(all.targets, keep, n)};
  all.inputs = rows(all.inputs, 0, keep);
  all.targets = rows(all.targets, 0, keep);
  return tail;
}

// Sum of squared errors and their count over sequences part, part + parts, ... (batches of `batch`).
tnn::EvalSums squared_errors(tnn::TnnRegressor<float>& model, const Sequences& data, tnn::Index batch, tnn::Index part,
                             tnn::Index parts) {
  tnn::EvalSums s;
  std::vector<tnn::Index> mine;
  for (tnn::Index i = part; i < data.size(); i += parts) mine.push_back(i);
  const tnn::Index per_in = data.inputs.size() / data.size(), per_out = data.targets.size() / data.size();
  tnn::Tensor<float> x, y;
  for (std::size_t i = 0; i < mine.size(); i += static_cast<std::size_t>(batch)) {
    const auto n = static_cast<tnn::Index>(std::min(mine.size() - i, static_cast<std::size_t>(batch)));
    x.resize({n, data.inputs.dim(1), data.inputs.dim(2)});
    y.resize({n, data.targets.dim(1), data.targets.dim(2)});
    for (tnn::Index r = 0; r < n; ++r) {
      const tnn::Index m = mine[i + static_cast<std::size_t>(r)];
      std::copy(data.inputs.data() + m * per_in, data.inputs.data() + (m + 1) * per_in, x.data() + r * per_in);
      std::copy(data.targets.data() + m * per_out, data.targets.data() + (m + 1) * per_out, y.data() + r * per_out);
    }
    const double mse = model.forward(x, y);
    s.loss_sum += mse * double(y.size());
    s.tokens += y.size();
  }
  return s;
}

// The regressor's step for tnn::Trainer: `batch` sequences drawn with replacement, a pure function
// of (seed, step); validation: squared errors over the validation sequences.
class RegressTask : public tnn::SupervisedTask<tnn::TnnRegressor<float>> {
 public:
  RegressTask(tnn::TnnRegressor<float>& model, const Sequences& train, const Sequences& valid, tnn::Index batch,
              std::uint64_t seed)
      : SupervisedTask(model), train_(train), valid_(valid), batch_(batch), seed_(seed) {}

  bool has_validation() const override { return valid_.size() > 0; }
  tnn::EvalSums validate(tnn::Index part, tnn::Index parts) override {
    return squared_errors(model(), valid_, batch_, part, parts);
  }

 protected:
  void sample(std::int64_t step, Batch& out) override {
    tnn::Rng rng(tnn::detail::stream_seed(seed_, tnn::detail::kTrainStream, static_cast<std::uint64_t>(step)));
    const tnn::Index N = train_.inputs.dim(1), F = train_.inputs.dim(2), Fo = train_.targets.dim(2);
    out.data.resize({batch_, N, F});
    out.target.resize({batch_, N, Fo});
    for (tnn::Index b = 0; b < batch_; ++b) {
      const auto m = static_cast<tnn::Index>(rng.below(static_cast<std::uint64_t>(train_.size())));
      std::copy(train_.inputs.data() + m * N * F, train_.inputs.data() + (m + 1) * N * F, out.data.data() + b * N * F);
      std::copy(train_.targets.data() + m * N * Fo, train_.targets.data() + (m + 1) * N * Fo,
                out.target.data() + b * N * Fo);
    }
    out.tokens = batch_ * N;
  }

 private:
  const Sequences& train_;
  const Sequences& valid_;
  tnn::Index batch_;
  std::uint64_t seed_;
};

}  // namespace

int train_regress(TrainOptions& o) {
  TrainSession session(o);
  session.check_one_process(tnn::Task::Regress);

  Sequences train = read_sequences(o.data, "--data");
  const std::vector<std::uint8_t> bytes = tnn::read_file_bytes(o.data);  // for the checkpoint's data record
  Sequences valid;
  std::string held_out = "none";
  if (!o.valid.empty()) {
    valid = read_sequences(o.valid, "--valid");
  } else if (o.valid_fraction > 0) {
    held_out = "tail-examples";
    valid = take_last(train, session.data_record(bytes, held_out).held_examples(train.size()));
  }
  const tnn::TnnConfig cfg = session.model_config(
      {{"task", "regress"}, {"input_features", train.inputs.dim(2)}, {"output_features", train.targets.dim(2)}});
  if (cfg.input_features != train.inputs.dim(2) || cfg.output_features != train.targets.dim(2))
    tnn::fail<tnn::ConfigError>("--config: input_features ", cfg.input_features, " and output_features ",
                                cfg.output_features, " but --data has ", train.inputs.dim(2), " and ",
                                train.targets.dim(2));
  if (valid.size() > 0 && (valid.inputs.dim(2) != cfg.input_features || valid.targets.dim(2) != cfg.output_features))
    tnn::fail<tnn::ShapeError>("--valid ", tnn::quote_path(o.valid), ": expected ", cfg.input_features,
                               " input and ", cfg.output_features, " output features (as --data), got ",
                               valid.inputs.dim(2), " and ", valid.targets.dim(2));

  tnn::TnnRegressor<float> model(cfg);
  model.init_weights(o.seed);
  session.prepare(model);
  RegressTask task(model, train, valid, o.batch, o.seed);
  return session.train(
      model, task, cfg, session.data_record(bytes, held_out), {{"task", "regress"}}, TrainSession::Validation::Mse, [&] {
        std::fprintf(stderr,
                     "model: %s, %s regressor, %lld -> %lld features); data: %lld train / %lld valid sequences of "
                     "%lld; %s\n",
                     model_summary(cfg, model.num_parameters()).c_str(), cfg.causal ? "causal" : "bidirectional",
                     (long long)cfg.input_features, (long long)cfg.output_features, (long long)train.size(),
                     (long long)valid.size(), (long long)train.inputs.dim(1),
                     count_of(current_threads(), "thread").c_str());
      });
}

void eval_regress(const EvalOptions& o) {
  if (o.batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o.batch);
  const std::string& path = o.checkpoints.front();
  tnn::TnnRegressor<float> model = tnn::load_model<tnn::TnnRegressor<float>>(path);
  Sequences data = read_sequences(o.data, "--data");
  if (data.inputs.dim(2) != model.config().input_features || data.targets.dim(2) != model.config().output_features)
    tnn::fail<tnn::ShapeError>("--data ", tnn::quote_path(o.data), ": expected ", model.config().input_features,
                               " input and ", model.config().output_features, " output features (the model's), got ",
                               data.inputs.dim(2), " and ", data.targets.dim(2));
  const EvalScope scope = eval_scope(path, tnn::read_file_bytes(o.data), static_cast<std::size_t>(data.size()), o);
  if (static_cast<tnn::Index>(scope.examples) < data.size()) data = take_last(data, static_cast<tnn::Index>(scope.examples));
  const tnn::EvalResult r = tnn::EvalResult::from(squared_errors(model, data, o.batch, 0, 1));
  if (o.json) {
    std::cout << nlohmann::json{{"mse", r.loss}, {"sequences", data.size()}, {"values", r.tokens}, {"scored", scope.scored}}
                     .dump()
              << "\n";
  } else {
    if (!scope.line.empty()) std::printf("%s\n", scope.line.c_str());
    std::printf("mean squared error %.6g (%lld sequences, %lld values)\n", r.loss, (long long)data.size(),
                (long long)r.tokens);
  }
}

void grad_regress(const GradOptions& o) {
  run_in_dtype(o.dtype, [&](auto tag) {
    using T = decltype(tag);
    tnn::TnnRegressor<T> model = tnn::load_model<tnn::TnnRegressor<T>>(o.checkpoint);
    const tnn::SafetensorsFile f = read_grad_inputs(o.inputs, {"inputs", "targets"},
                                                    "a regressor's inputs are inputs [B, N, F], targets [B, N, Fo]");
    tnn::Tensor<T> x, y;
    f.get_into("inputs", x);
    f.get_into("targets", y);
    write_grad_output(o.out, model, x, y);  // checks shapes and finiteness
  });
}

}  // namespace tnncli
