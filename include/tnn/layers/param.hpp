// A trainable (or stored-but-frozen) parameter: its value and the gradient that
// backward passes accumulate into, always the same shape. Layers expose them
// through one visitor, visit(prefix, f) calling f(name, Param&), which feeds the
// optimizer, checkpoints, gradient checks and `tnn grad` alike.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tnn/core/gemm.hpp"  // Precision
#include "tnn/core/tensor.hpp"

namespace tnn {

namespace detail {
inline int& shapes_only_depth() {
  thread_local int depth = 0;
  return depth;
}
}  // namespace detail

// While one is alive, Param::init on this thread records shapes and allocates nothing: a model
// built inside it is a description of its tensors (names and shapes through visit), which is
// how a checkpoint's header is checked against the model before any memory is committed
// (model/checkpoint.hpp). Such a model is for visit() only.
class ShapesOnlyScope {
 public:
  ShapesOnlyScope() { ++detail::shapes_only_depth(); }
  ~ShapesOnlyScope() { --detail::shapes_only_depth(); }
  ShapesOnlyScope(const ShapesOnlyScope&) = delete;
  ShapesOnlyScope& operator=(const ShapesOnlyScope&) = delete;
};

template <class T>
struct Param {
  Tensor<T> value;
  Tensor<T> grad;
  bool trainable = true;  // false: stored in checkpoints, never updated (fixed decay)
  // The precision of the matrix products this weight takes part in (Linear, the LM head): bf16
  // rounds their operands to bf16 and sums in fp32; the value itself always stays in T.
  Precision precision = Precision::F32;

  void init(const Shape& shape, bool is_trainable = true) {
    shape_ = shape;
    trainable = is_trainable;
    if (detail::shapes_only_depth() > 0) return;
    value.resize(shape);
    value.set_zero();
    grad.resize(shape);
    grad.set_zero();
  }
  const Shape& shape() const { return shape_; }
  void zero_grad() { grad.set_zero(); }

 private:
  Shape shape_;
};

// The two visit overloads of a module, from the one place it names its tensors: a static
//   template <class Self, class F> static void visit_all(Self& m, const std::string& prefix, F& f)
// (Self: the module or its const) calling f(prefix + name, Param&) for each stored tensor. A
// module is `class M : public Visits<M>` with `friend Visits<M>;`.
template <class Module>
class Visits {
 public:
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    Module::visit_all(static_cast<Module&>(*this), prefix, f);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) const {
    Module::visit_all(static_cast<const Module&>(*this), prefix, f);
  }
};

// What a model derives from its visit(f) (f(name, Param&) for every stored tensor, in
// checkpoint order): the named list, zero_grad and the trainable count. A model is
// `class M : public ParameterSet<M, T>` and defines visit(f) and visit(f) const.
template <class Model, class T>
class ParameterSet {
 public:
  std::vector<std::pair<std::string, Param<T>*>> named_parameters() {
    std::vector<std::pair<std::string, Param<T>*>> out;
    model().visit([&](const std::string& name, Param<T>& p) { out.emplace_back(name, &p); });
    return out;
  }

  // Once per training step, so without the visitor's name strings: the Param list is
  // cached, and rebuilt if the model was copied or moved (owner check).
  void zero_grad() {
    if (param_list_owner_ != this) {
      param_list_.clear();
      model().visit([&](const std::string&, Param<T>& p) { param_list_.push_back(&p); });
      param_list_owner_ = this;
    }
    for (Param<T>* p : param_list_) p->zero_grad();
  }

  // Number of trainable scalars (a fixed decay is stored, not counted).
  Index num_parameters() const {
    Index n = 0;
    static_cast<const Model&>(*this).visit([&](const std::string&, const Param<T>& p) {
      if (p.trainable) n += p.value.size();
    });
    return n;
  }

 private:
  Model& model() { return static_cast<Model&>(*this); }
  std::vector<Param<T>*> param_list_;  // valid while param_list_owner_ == this
  const ParameterSet* param_list_owner_ = nullptr;
};

}  // namespace tnn
