// Pointwise activations (relu, silu, exact-erf gelu, none) and their derivatives,
// shared by the GTU, GLU and RPE. The backward takes the forward *input* x, so a
// caller keeps only the pre-activation, never both.
#pragma once

#include <algorithm>
#include <cmath>

#include "tnn/core/tensor.hpp"
#include "tnn/model/config.hpp"

namespace tnn {

namespace detail {
// Written in the branch that cannot overflow exp().
template <class T>
inline T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}
}  // namespace detail

template <class T>
inline T act_forward(Activation a, T x) {
  switch (a) {
    case Activation::Relu: return x > T(0) ? x : T(0);
    case Activation::Silu: return x * detail::sigmoid(x);
    case Activation::Gelu: return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
    case Activation::None: return x;
  }
  return x;
}

// d act / dx at x. relu'(0) = 0, as PyTorch takes it.
template <class T>
inline T act_derivative(Activation a, T x) {
  switch (a) {
    case Activation::Relu: return x > T(0) ? T(1) : T(0);
    case Activation::Silu: {
      const T s = detail::sigmoid(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case Activation::Gelu: {
      // Phi(x) + x * phi(x), Phi/phi the standard normal cdf/pdf.
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
      const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * x * x);
      return cdf + x * pdf;
    }
    case Activation::None: return T(1);
  }
  return T(1);
}

// y = act(x) elementwise; y is resized to x's shape (y may be x itself).
template <class T>
void activation_forward(Activation a, const Tensor<T>& x, Tensor<T>& y) {
  if (&y != &x) y.resize(x.shape());
  const Index n = x.size();
  const T* px = x.data();
  T* py = y.data();
  // The switch sits outside the loop so each branch vectorizes on its own.
  switch (a) {
    case Activation::Relu:
      for (Index i = 0; i < n; ++i) py[i] = px[i] > T(0) ? px[i] : T(0);
      break;
    case Activation::Silu:
      for (Index i = 0; i < n; ++i) py[i] = act_forward(Activation::Silu, px[i]);
      break;
    case Activation::Gelu:
      for (Index i = 0; i < n; ++i) py[i] = act_forward(Activation::Gelu, px[i]);
      break;
    case Activation::None:
      if (&y != &x) std::copy(px, px + n, py);
      break;
  }
}

// dx = dy * act'(x) elementwise; dx is resized to x's shape (dx may alias dy, not x).
template <class T>
void activation_backward(Activation a, const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dx) {
  if (dy.shape() != x.shape())
    fail<ShapeError>("activation_backward dy: expected shape ", shape_str(x.shape()), " (as x), got ",
                     shape_str(dy.shape()));
  if (&dx != &dy) dx.resize(x.shape());
  const Index n = x.size();
  const T* px = x.data();
  const T* pg = dy.data();
  T* pd = dx.data();
  switch (a) {
    case Activation::Relu:
      for (Index i = 0; i < n; ++i) pd[i] = px[i] > T(0) ? pg[i] : T(0);
      break;
    case Activation::Silu:
      for (Index i = 0; i < n; ++i) pd[i] = pg[i] * act_derivative(Activation::Silu, px[i]);
      break;
    case Activation::Gelu:
      for (Index i = 0; i < n; ++i) pd[i] = pg[i] * act_derivative(Activation::Gelu, px[i]);
      break;
    case Activation::None:
      if (&dx != &dy) std::copy(pg, pg + n, pd);
      break;
  }
}

}  // namespace tnn
