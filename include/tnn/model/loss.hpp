// Mean cross-entropy (natural log) of logits against integer targets, -1 meaning
// "no target here" (the padding of a causal LM, the unmasked positions of a
// masked LM). Computes the loss and its gradient in the same pass over the logits.
#pragma once

#include <cmath>
#include <cstdint>

#include "tnn/core/tensor.hpp"

namespace tnn {

// Throws ValueError naming the first target outside [-1, V) and its position.
inline void check_targets(const Tensor<std::int32_t>& targets, Index vocab, const char* what = "targets") {
  for (Index i = 0; i < targets.size(); ++i) {
    const std::int32_t t = targets[i];
    if (t < -1 || t >= vocab)
      fail<ValueError>(what, ": expected ids in [0, ", vocab, ") or -1 (ignored), got ", t, " at position ",
                       detail::position_str(targets.shape(), i));
  }
}

inline Index count_targets(const Tensor<std::int32_t>& targets) {
  Index n = 0;
  for (Index i = 0; i < targets.size(); ++i) n += targets[i] != -1;
  return n;
}

// logits [B, N, V], targets [B, N]. Returns mean over targets != -1 of
// -log softmax(logits)[target] (0 when there are none). When dlogits is non-null
// it is resized to [B, N, V] and overwritten with dLoss/dlogits: (softmax - onehot)
// / count on counted rows, 0 on ignored rows. dlogits may be &logits (in place).
// log-softmax is taken as z - max - log(sum exp(z - max)): no overflow, and the
// sum is accumulated in double so float logits over a large vocabulary lose nothing.
template <class T>
T cross_entropy(const Tensor<T>& logits, const Tensor<std::int32_t>& targets, Tensor<T>* dlogits) {
  const Index V = logits.rank() == 0 ? 0 : logits.dim(-1);
  bool ok = logits.rank() == targets.rank() + 1;
  for (int i = 0; ok && i < targets.rank(); ++i) ok = logits.dim(i) == targets.dim(i);
  if (!ok)
    fail<ShapeError>("cross_entropy logits: expected the targets' shape ", shape_str(targets.shape()),
                     " plus [V], got ", shape_str(logits.shape()));
  if (V <= 0) fail<ShapeError>("cross_entropy logits: expected a positive vocabulary dim, got ", V);
  check_targets(targets, V);
  const Index count = count_targets(targets);
  const Index rows = targets.size();
  if (dlogits && dlogits != &logits) dlogits->resize(logits.shape());
  const T* z_all = logits.data();
  T* g_all = dlogits ? dlogits->data() : nullptr;
  const double inv_count = count > 0 ? 1.0 / double(count) : 0.0;
  double total = 0;
  for (Index r = 0; r < rows; ++r) {
    const T* z = z_all + r * V;
    T* g = g_all ? g_all + r * V : nullptr;
    const std::int32_t t = targets[r];
    if (t == -1) {
      if (g)
        for (Index v = 0; v < V; ++v) g[v] = T(0);
      continue;
    }
    const double zt = double(z[t]);  // read before g (possibly z itself) is overwritten
    T m = z[0];
    for (Index v = 1; v < V; ++v) m = z[v] > m ? z[v] : m;
    double sum = 0;
    if (g) {
      for (Index v = 0; v < V; ++v) {
        g[v] = std::exp(z[v] - m);
        sum += double(g[v]);
      }
    } else {
      for (Index v = 0; v < V; ++v) sum += double(std::exp(z[v] - m));
    }
    total += double(m) + std::log(sum) - zt;
    if (g) {
      const T s = T(inv_count / sum);
      for (Index v = 0; v < V; ++v) g[v] *= s;
      g[t] -= T(inv_count);
    }
  }
  return static_cast<T>(total * inv_count);
}

}  // namespace tnn
