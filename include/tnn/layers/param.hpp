// A trainable (or stored-but-frozen) parameter: its value and the gradient that
// backward passes accumulate into, always the same shape. Layers expose them
// through one visitor, visit(prefix, f) calling f(name, Param&), which feeds the
// optimizer, checkpoints, gradient checks and `tnn grad` alike.
#pragma once

#include <string>

#include "tnn/core/tensor.hpp"

namespace tnn {

template <class T>
struct Param {
  Tensor<T> value;
  Tensor<T> grad;
  bool trainable = true;  // false: stored in checkpoints, never updated (fixed decay)

  void init(const Shape& shape, bool is_trainable = true) {
    value.resize(shape);
    value.set_zero();
    grad.resize(shape);
    grad.set_zero();
    trainable = is_trainable;
  }
  const Shape& shape() const { return value.shape(); }
  void zero_grad() { grad.set_zero(); }
};

}  // namespace tnn
