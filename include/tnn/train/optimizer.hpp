// AdamW (Loshchilov & Hutter) over the named parameters a model exposes, plus
// global gradient-norm clipping. The state (step count, first and second
// moments by parameter name) is open, so a checkpoint can save and restore it
// exactly: a resumed run then takes bit-identical steps to an uninterrupted one.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"

namespace tnn {

template <class T>
using NamedParams = std::vector<std::pair<std::string, Param<T>*>>;

struct AdamWConfig {
  double lr = 1e-3;  // used by step() without an argument; schedules pass their own
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // decoupled: p -= lr * weight_decay * p, only where decays() says

  void validate() const {
    auto finite = [](double x) { return std::isfinite(x); };
    if (!finite(lr) || lr < 0) fail<ConfigError>("adamw lr: expected a finite value >= 0, got ", lr);
    if (!finite(beta1) || beta1 < 0 || beta1 >= 1)
      fail<ConfigError>("adamw beta1: expected 0 <= beta1 < 1, got ", beta1);
    if (!finite(beta2) || beta2 < 0 || beta2 >= 1)
      fail<ConfigError>("adamw beta2: expected 0 <= beta2 < 1, got ", beta2);
    if (!finite(eps) || eps <= 0) fail<ConfigError>("adamw eps: expected a finite value > 0, got ", eps);
    if (!finite(weight_decay) || weight_decay < 0)
      fail<ConfigError>("adamw weight_decay: expected a finite value >= 0, got ", weight_decay);
  }
};

// Which parameters get weight decay, by default: matrices and embeddings (rank >= 2), i.e. every
// Linear weight (including the RPE's pos_proj [R, 1]), embed.weight and lm_head.weight. Not
// biases, not norm scales/weights (rank 1), and not the decay parameter `...gamma` [H, 1, Dh]
// (rank 3, but decaying it would pull lambda towards a fixed value rather than regularize).
inline bool default_weight_decay_rule(const std::string& name, const Shape& shape) {
  const std::string suffix = "gamma";
  const bool is_gamma = name.size() >= suffix.size() &&
                        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return shape.size() >= 2 && !is_gamma;
}

using WeightDecayRule = std::function<bool(const std::string& name, const Shape& shape)>;

template <class T>
class AdamW {
 public:
  // Keeps the Param pointers: the model must outlive the optimizer and not move. Parameters with
  // trainable == false are skipped entirely (no state, never touched). The moments are allocated
  // here, so step() never allocates.
  explicit AdamW(const NamedParams<T>& params, AdamWConfig cfg = {},
                 WeightDecayRule rule = default_weight_decay_rule)
      : cfg_(cfg) {
    cfg_.validate();
    if (!rule) fail<ConfigError>("adamw weight decay rule: expected a callable, got an empty function");
    for (const auto& [name, p] : params) {
      if (p == nullptr) fail<ValueError>("adamw parameter '", name, "': expected a Param, got a null pointer");
      if (!p->trainable) continue;
      for (const Slot& s : slots_)
        if (s.name == name) fail<ValueError>("adamw parameter '", name, "': the name appears twice");
      Slot s;
      s.name = name;
      s.param = p;
      s.decay = rule(name, p->shape());
      s.exp_avg.resize(p->shape());
      s.exp_avg.set_zero();
      s.exp_avg_sq.resize(p->shape());
      s.exp_avg_sq.set_zero();
      slots_.push_back(std::move(s));
    }
  }

  const AdamWConfig& config() const { return cfg_; }
  void set_config(const AdamWConfig& cfg) {
    cfg.validate();
    cfg_ = cfg;
  }

  void step() { step(cfg_.lr); }

  // One update with learning rate lr (PyTorch's AdamW formula, scalars computed in double):
  //   t += 1;  p *= 1 - lr*wd  (decayed params only)
  //   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
  //   p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
  // Non-finite gradients are not checked here: clip_grad_norm's return value is the place to
  // notice them and skip the step.
  void step(double lr) {
    if (!std::isfinite(lr) || lr < 0) fail<ValueError>("adamw step lr: expected a finite value >= 0, got ", lr);
    for (const Slot& s : slots_) {
      if (s.param->value.shape() != s.exp_avg.shape() || s.param->grad.shape() != s.exp_avg.shape())
        fail<ShapeError>("adamw parameter '", s.name, "': value ", shape_str(s.param->value.shape()), " and grad ",
                         shape_str(s.param->grad.shape()), " must keep the shape ",
                         shape_str(s.exp_avg.shape()), " they had when the optimizer was built");
    }
    ++step_;
    const double t = static_cast<double>(step_);
    const double bc1 = 1.0 - std::pow(cfg_.beta1, t);
    const double bc2 = 1.0 - std::pow(cfg_.beta2, t);
    const T b1 = T(cfg_.beta1), omb1 = T(1.0 - cfg_.beta1);
    const T b2 = T(cfg_.beta2), omb2 = T(1.0 - cfg_.beta2);
    const T eps = T(cfg_.eps);
    const T step_size = T(lr / bc1);
    const T inv_bc2_sqrt = T(1.0 / std::sqrt(bc2));
    const T decay_factor = T(1.0 - lr * cfg_.weight_decay);
    for (Slot& s : slots_) {
      T* p = s.param->value.data();
      const T* g = s.param->grad.data();
      T* m = s.exp_avg.data();
      T* v = s.exp_avg_sq.data();
      const T keep = s.decay ? decay_factor : T(1);
      const Index n = s.exp_avg.size();
      for (Index i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + omb1 * g[i];
        v[i] = b2 * v[i] + omb2 * g[i] * g[i];
        const T denom = std::sqrt(v[i]) * inv_bc2_sqrt + eps;
        p[i] = p[i] * keep - step_size * m[i] / denom;
      }
    }
  }

  // ---- state, for checkpoints ----
  // Number of step() calls so far (t in the bias corrections).
  std::int64_t step_count() const { return step_; }
  void set_step_count(std::int64_t t) {
    if (t < 0) fail<ValueError>("adamw step count: expected >= 0, got ", t);
    step_ = t;
  }

  Index num_params() const { return static_cast<Index>(slots_.size()); }
  // Names of the optimized (trainable) parameters, in the order given to the constructor.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const Slot& s : slots_) out.push_back(s.name);
    return out;
  }
  bool has(const std::string& name) const { return find(name) != nullptr; }
  // Whether weight decay applies to this parameter. ValueError for a name the optimizer lacks.
  bool decays(const std::string& name) const { return get(name).decay; }
  // First / second moment of a parameter, same shape as the parameter.
  Tensor<T>& exp_avg(const std::string& name) { return get(name).exp_avg; }
  const Tensor<T>& exp_avg(const std::string& name) const { return get(name).exp_avg; }
  Tensor<T>& exp_avg_sq(const std::string& name) { return get(name).exp_avg_sq; }
  const Tensor<T>& exp_avg_sq(const std::string& name) const { return get(name).exp_avg_sq; }

  // f(const std::string& key, Tensor<T>& moment) for every moment tensor, keys
  // "<param name>.exp_avg" then "<param name>.exp_avg_sq", parameters in constructor order.
  // Restoring: copy the saved values into the tensors f receives (the shapes must not change);
  // then set_step_count().
  template <class F>
  void visit_state(F&& f) {
    for (Slot& s : slots_) {
      f(s.name + ".exp_avg", s.exp_avg);
      f(s.name + ".exp_avg_sq", s.exp_avg_sq);
    }
  }
  template <class F>
  void visit_state(F&& f) const {
    for (const Slot& s : slots_) {
      f(s.name + ".exp_avg", static_cast<const Tensor<T>&>(s.exp_avg));
      f(s.name + ".exp_avg_sq", static_cast<const Tensor<T>&>(s.exp_avg_sq));
    }
  }

  // Back to the state of a fresh optimizer (t = 0, zero moments); parameters untouched.
  void reset_state() {
    step_ = 0;
    for (Slot& s : slots_) {
      s.exp_avg.set_zero();
      s.exp_avg_sq.set_zero();
    }
  }

 private:
  struct Slot {
    std::string name;
    Param<T>* param = nullptr;
    bool decay = false;
    Tensor<T> exp_avg;     // same shape as the parameter
    Tensor<T> exp_avg_sq;  // same shape as the parameter
  };
  const Slot* find(const std::string& name) const {
    for (const Slot& s : slots_)
      if (s.name == name) return &s;
    return nullptr;
  }
  const Slot& get(const std::string& name) const {
    const Slot* s = find(name);
    if (s == nullptr) fail<ValueError>("adamw state: no trainable parameter named '", name, "'");
    return *s;
  }
  Slot& get(const std::string& name) { return const_cast<Slot&>(static_cast<const AdamW&>(*this).get(name)); }

  AdamWConfig cfg_;
  std::int64_t step_ = 0;
  std::vector<Slot> slots_;
};

// Global L2 norm of the gradients of the trainable parameters, accumulated in double.
template <class T>
double grad_norm(const NamedParams<T>& params) {
  double sum = 0.0;
  for (const auto& [name, p] : params) {
    if (p == nullptr) fail<ValueError>("grad_norm parameter '", name, "': expected a Param, got a null pointer");
    if (!p->trainable) continue;
    for (const T& g : p->grad) sum += static_cast<double>(g) * static_cast<double>(g);
  }
  return std::sqrt(sum);
}

// Scales the gradients of the trainable parameters so that their global L2 norm is at most
// max_norm (> 0; +infinity only measures) and returns the norm BEFORE clipping. A non-finite norm
// leaves the gradients untouched, so the caller can see it and skip the step.
template <class T>
double clip_grad_norm(const NamedParams<T>& params, double max_norm) {
  if (!(max_norm > 0)) fail<ValueError>("clip_grad_norm max_norm: expected > 0, got ", max_norm);
  const double norm = grad_norm(params);
  if (std::isfinite(norm) && norm > max_norm) {
    const T scale = T(max_norm / norm);
    for (const auto& [name, p] : params) {
      if (!p->trainable) continue;
      for (T& g : p->grad) g *= scale;
    }
  }
  return norm;
}

}  // namespace tnn
