// Gated linear unit, the channel mixer of model.md §5:
//   o = ( act(x W1^T + b1) * (x W2^T + b2) ) W3^T + b3,  widths D -> G -> D,
// the biases only with `glu_bias` (docs/official.md §2.6). Parameter names l1, l2, l3 as in
// tnn-pytorch's GLU.
#pragma once

#include <algorithm>
#include <string>

#include "tnn/core/tensor.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

template <class T>
class Glu : public Visits<Glu<T>> {
 public:
  Glu() = default;
  Glu(Index dim, Index hidden, Activation act, bool bias = true)
      : l1(dim, hidden, bias), l2(dim, hidden, bias), l3(hidden, dim, bias), act_(act) {}

  Linear<T> l1;  // D -> G, activated
  Linear<T> l2;  // D -> G, the linear gate
  Linear<T> l3;  // G -> D

  Index dim() const { return l1.in_features(); }
  Index hidden() const { return l1.out_features(); }
  Activation activation() const { return act_; }

  // PyTorch's Linear default for each of l1, l2, l3, in that order.
  void init_weights(Rng& rng) {
    l1.init_uniform(rng);
    l2.init_uniform(rng);
    l3.init_uniform(rng);
  }

  // h1, h2 are stored without their bias, which is added where they are read.
  struct Cache {
    Tensor<T> h1;  // [..., G] x W1^T (+ b1 where read), the activation's input
    Tensor<T> h2;  // [..., G] x W2^T (+ b2 where read)
    Tensor<T> p;   // [..., G] act(h1 + b1) * (h2 + b2), the input of l3
    // backward workspaces, kept here so a training step reuses them
    Tensor<T> dp;   // [..., G] dLoss/dp, then dLoss/dh1 in place
    Tensor<T> dh2;  // [..., G]
  };

  // x [..., D] -> y [..., D] (y must not alias x).
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c) const {
    l1.product(x, c.h1);
    l2.product(x, c.h2);
    c.p.resize(c.h1.shape());
    const Activation act = act_;
    const T* b1 = bias_of(l1);
    const T* b2 = bias_of(l2);
    const T* h1 = c.h1.data();
    const T* h2 = c.h2.data();
    T* p = c.p.data();
    detail::for_each_chunk(c.h1.rows(), hidden(), [&](Index off, Index c0, Index n) {
      if (n <= 0) return;  // never (n >= 1): tells GCC 12 that pre is written, no -Wmaybe-uninitialized
      alignas(64) T pre[detail::kActChunk], a[detail::kActChunk];
      if (b1) {
        for (Index j = 0; j < n; ++j) pre[j] = h1[off + j] + b1[c0 + j];
      } else {
        std::copy(h1 + off, h1 + off + n, pre);
      }
      detail::act_eval(act, pre, n, a, static_cast<T*>(nullptr));
      if (b2) {
        for (Index j = 0; j < n; ++j) p[off + j] = a[j] * (h2[off + j] + b2[c0 + j]);
      } else {
        for (Index j = 0; j < n; ++j) p[off + j] = a[j] * h2[off + j];
      }
    });
    l3.forward(c.p, y);
  }

  // Accumulates l1/l2/l3 grads; dx [..., D] overwritten when non-null.
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Cache& c, Tensor<T>* dx) {
    if (c.p.rows() != x.rows())
      fail<ShapeError>("Glu cache: expected the forward of this x (", x.rows(), " rows), got a cache of ",
                       c.p.rows(), " rows");
    l3.backward(c.p, dy, &c.dp);
    c.dh2.resize(c.dp.shape());
    {
      // p = a * h: dh2 = dp * a, dh1 = dp * h * act'(h1), one pass.
      const Activation act = act_;
      const T* b1 = bias_of(l1);
      const T* b2 = bias_of(l2);
      const T* h1 = c.h1.data();
      const T* h2 = c.h2.data();
      T* dp = c.dp.data();
      T* dh2 = c.dh2.data();
      detail::for_each_chunk(c.h1.rows(), hidden(), [&](Index off, Index c0, Index n) {
        if (n <= 0) return;  // never (n >= 1): tells GCC 12 that pre is written, no -Wmaybe-uninitialized
        alignas(64) T pre[detail::kActChunk], a[detail::kActChunk], d[detail::kActChunk];
        if (b1) {
          for (Index j = 0; j < n; ++j) pre[j] = h1[off + j] + b1[c0 + j];
        } else {
          std::copy(h1 + off, h1 + off + n, pre);
        }
        detail::act_eval(act, pre, n, a, d);
        for (Index j = 0; j < n; ++j) {
          const T g = dp[off + j];
          dh2[off + j] = g * a[j];
          dp[off + j] = g * (b2 ? h2[off + j] + b2[c0 + j] : h2[off + j]) * d[j];
        }
      });
    }
    l1.backward(x, c.dp, dx);
    l2.backward(x, c.dh2, nullptr);
    if (dx) l2.input_grad(c.dh2, *dx, T(1));
  }

 private:
  friend Visits<Glu<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.l1.visit(prefix + "l1.", f);
    m.l2.visit(prefix + "l2.", f);
    m.l3.visit(prefix + "l3.", f);
  }

  // A Linear's bias, or null without one (glu_bias false): added where the product is read.
  static const T* bias_of(const Linear<T>& l) { return l.has_bias() ? l.bias.value.data() : nullptr; }

  Activation act_ = Activation::Silu;
};

}  // namespace tnn
