// A TNN model = an input module + the shared backbone + a head (model.md §7). The four models
// of model/models.hpp are instances; your own is another:
//   using MyModel = tnn::SequenceModel<float, tnn::FeatureInput<float>, MyHead<float>>;
// An Input has: `using Data`; a constructor from `const TnnConfig&`; static accepts(Task) (the
// tasks it serves); static grid_h/grid_w(cfg) (0: a sequence); batch(data), length(data);
// init_weights(Rng&); check(data); forward(data, x [B, N, D]); backward(dx); and visit(prefix, f)
// naming its tensors (layers/param.hpp: Visits). A Head has: `using Target`; a constructor from
// `const TnnConfig&`; static accepts(Task); init_weights(Rng&); check_target(target, data);
// forward(features, lengths*, input) -> output; output(); loss(target); static count(target,
// lengths*); scale_loss_grad(s); backward(features, dfeatures, input); visit(prefix, f).
// model/inputs.hpp and model/heads.hpp hold the built-in ones.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "tnn/core/error.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/model/backbone.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/heads.hpp"

namespace tnn {

template <class T, class Input, class Head, class Backend = DefaultFftBackend>
class SequenceModel : public ParameterSet<SequenceModel<T, Input, Head, Backend>, T> {
 public:
  using Scalar = T;
  using InputType = Input;
  using HeadType = Head;
  using Data = typename Input::Data;
  using Target = typename Head::Target;

 private:
  TnnConfig cfg_;  // declared first: the modules below are built from it

 public:
  explicit SequenceModel(const TnnConfig& cfg)
      : cfg_((cfg.validate(), check_task(cfg), cfg)),
        input(cfg_),
        backbone(cfg_, Input::grid_h(cfg_), Input::grid_w(cfg_)),
        head(cfg_) {}

  Input input;
  Backbone<T, Backend> backbone;
  Head head;

  const TnnConfig& config() const { return cfg_; }

  // bf16 mixed precision: the large matrix products (every Linear but the RPE's, the LM head)
  // round their operands to bf16 and sum in fp32; weights, gradients, the optimizer, the FFTs,
  // norms, softmax and loss stay in T. F32 (the default) is the plain product. Float models only.
  void set_precision(Precision p) {
    if (!std::is_same_v<T, float> && p != Precision::F32)
      fail<ValueError>("set_precision: bf16 products are for float models, this one is double");
    visit([&](const std::string&, Param<T>& w) { w.precision = p; });
    precision_ = p;
  }
  Precision precision() const { return precision_; }

  // Seeded initialization, one tnn::Rng stream: the input, the layers (model/backbone.hpp),
  // the final norm reset, the head.
  void init_weights(std::uint64_t seed) {
    Rng rng(seed);
    input.init_weights(rng);
    backbone.init_weights(rng);
    head.init_weights(rng);
  }

  // f(name, Param&) for every stored tensor in checkpoint order (model.md §9): the input's, the
  // backbone's, the head's. named_parameters(), zero_grad() and num_parameters() come from it.
  template <class F>
  void visit(F&& f) {
    visit_all(*this, f);
  }
  template <class F>
  void visit(F&& f) const {
    visit_all(*this, f);
  }

  // The loss of `data` against `target` (the head's: mean cross-entropy, mean squared error),
  // keeping what backward() needs. `lengths` (I32 [B], each in [1, N]) makes the batch ragged:
  // row b's positions >= lengths[b] affect nothing at positions below it.
  T forward(const Data& data, const Target& target, const Tensor<std::int32_t>* lengths = nullptr) {
    input.check(data);
    head.check_target(target, data);
    run_forward(data, lengths);
    const T loss = head.loss(target);
    has_loss_ = true;
    return loss;
  }

  // The same, but the loss is the sum of its terms divided by `normalizer` instead of by their
  // count, and so is its gradient: a data-parallel rank holding some rows of a global batch
  // passes the global batch's count, so the ranks' losses and gradients add up to the global
  // mean's (tnn/dist/data_parallel.hpp).
  T forward(const Data& data, const Target& target, Index normalizer, const Tensor<std::int32_t>* lengths = nullptr) {
    if (normalizer < 1) fail<ValueError>("forward normalizer: expected a count >= 1, got ", normalizer);
    const T mean = forward(data, target, lengths);
    const Index count = Head::count(target, lengths);
    if (count == normalizer) return mean;
    const T scale = T(double(count) / double(normalizer));
    head.scale_loss_grad(scale);
    return mean * scale;
  }

  // The head's output only (logits, values); a following backward() is an error.
  const Tensor<T>& forward(const Data& data, const Tensor<std::int32_t>* lengths = nullptr) {
    input.check(data);
    run_forward(data, lengths);
    return head.output();
  }

  // Training mode for one step: the following forwards apply the config's dropout with masks
  // drawn from (seed, step) (layers/dropout.hpp), `first_row` being the global index of the
  // batch's row 0 (a data-parallel shard), until set_evaluation(). Nothing changes without
  // dropout. A model starts in evaluation mode, the mode of `tnn grad`, eval and generation.
  void set_training(std::uint64_t seed, std::int64_t step, Index first_row = 0) {
    drop_ = DropoutContext{cfg_.dropout, seed, step, first_row};
    training_ = cfg_.dropout > 0;
  }
  void set_evaluation() { training_ = false; }
  bool training() const { return training_; }

  // The output of the last forward: logits [B, N, V] (LM), [B, K] (classifiers), values [B, N, Fo].
  const Tensor<T>& output() const { return head.output(); }
  const Tensor<T>& logits() const { return head.output(); }

  // Optional, for data-parallel training: called inside backward() as soon as a group of
  // gradients is final, so their reduction over processes can start while the layers below
  // still run. Argument: layers once the head and the final norm are done, then i after layer i
  // (i = layers-1 .. 0), then -1 after the input module (last call; a tied embedding, which the
  // head also feeds, is final only then).
  std::function<void(Index)> backward_hook;

  // Accumulates dLoss/dparam of the last forward(data, target) into every trainable grad.
  void backward() {
    if (!has_loss_)
      fail<Error>("backward: expected a preceding forward(data, target), got none (or an output-only forward)");
    head.backward(backbone.features(), backbone.features_grad(), input);
    input.backward(backbone.backward(&backward_hook));
    if (backward_hook) backward_hook(-1);
  }

 private:
  template <class Self, class F>
  static void visit_all(Self& m, F& f) {  // Self: this class or its const
    m.input.visit("", f);
    m.backbone.visit("", f);
    m.head.visit("", f);
  }

  static void check_task(const TnnConfig& cfg) {
    if (Input::accepts(cfg.task) && Head::accepts(cfg.task)) return;
    std::string tasks;
    for (Task t : enum_values<Task>())
      if (Input::accepts(t) && Head::accepts(t)) tasks += (tasks.empty() ? "'" : " or '") + std::string(to_string(t)) + "'";
    fail<ConfigError>("model: expected a config with task ", tasks.empty() ? std::string("(none fits)") : tasks,
                      " (the task of this model's input and head), got task '", to_string(cfg.task), "'");
  }

  void run_forward(const Data& data, const Tensor<std::int32_t>* lengths) {
    has_loss_ = false;
    if (lengths) check_lengths(*lengths, input.batch(data), input.length(data));
    input.forward(data, backbone.input());
    head.forward(backbone.forward(lengths, training_ ? &drop_ : nullptr), lengths, input);
  }

  bool has_loss_ = false;
  bool training_ = false;
  DropoutContext drop_;  // of the current training step (training_ only)
  Precision precision_ = Precision::F32;
};

}  // namespace tnn
