// Pointwise activations and their derivatives, shared by the GTU, GLU and RPE: relu, silu,
// exact-erf gelu, none, and the official TNN code's elu, sigmoid, exp, leak (leaky relu,
// slope 0.01), 1+elu and 2+elu. The backward takes the forward *input* x, so a caller keeps
// only the pre-activation, never both. Adding one: a table row below and its two formulas.
#pragma once

#include <algorithm>
#include <cmath>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

enum class Activation { Relu, Silu, Gelu, None, Elu, Sigmoid, Exp, Leak, OnePlusElu, TwoPlusElu };

template <>
struct EnumTable<Activation> {
  static constexpr EnumRow<Activation> rows[] = {
      {Activation::Relu, "relu"}, {Activation::Silu, "silu"},       {Activation::Gelu, "gelu"},
      {Activation::None, "none"}, {Activation::Elu, "elu"},         {Activation::Sigmoid, "sigmoid"},
      {Activation::Exp, "exp"},   {Activation::Leak, "leak"},       {Activation::OnePlusElu, "1+elu"},
      {Activation::TwoPlusElu, "2+elu"}};
};

// The negative slope of `leak` (PyTorch's F.leaky_relu default, which the official code uses).
inline constexpr double kLeakSlope = 0.01;

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
    case Activation::Elu: return x > T(0) ? x : std::expm1(x);
    case Activation::Sigmoid: return detail::sigmoid(x);
    case Activation::Exp: return std::exp(x);
    case Activation::Leak: return x > T(0) ? x : T(kLeakSlope) * x;
    case Activation::OnePlusElu: return T(1) + (x > T(0) ? x : std::expm1(x));
    case Activation::TwoPlusElu: return T(2) + (x > T(0) ? x : std::expm1(x));
  }
  return x;
}

// d act / dx at x. At the kinks PyTorch's choices: relu'(0) = 0, leak'(0) = 0.01, elu'(0) = 1.
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
    case Activation::Elu:
    case Activation::OnePlusElu:
    case Activation::TwoPlusElu: return x > T(0) ? T(1) : std::exp(x);
    case Activation::Sigmoid: {
      const T s = detail::sigmoid(x);
      return s * (T(1) - s);
    }
    case Activation::Exp: return std::exp(x);
    case Activation::Leak: return x > T(0) ? T(1) : T(kLeakSlope);
  }
  return T(1);
}

namespace detail {
// Elements per chunk of the fused kernels: small enough for stack buffers in L1.
inline constexpr Index kActChunk = 256;

// For n <= kActChunk elements: fa[i] = act(x[i]) and fd[i] = act'(x[i]), either
// pointer may be null. Silu goes through Eigen's vectorized exp (one exp for both
// outputs) rather than a scalar libm call per element; its values agree with the
// scalar act_forward to a few ulp. Gelu stays scalar (erf).
template <class T>
void act_eval(Activation a, const T* x, Index n, T* fa, T* fd) {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  const Eigen::Map<const Arr> X(x, n);
  switch (a) {
    case Activation::Silu: {
      alignas(64) T sbuf[kActChunk];
      Eigen::Map<Arr> S(sbuf, n);
      S = (T(1) + (-X).exp()).inverse();  // sigmoid; exp overflow gives 0, as it should
      if (fa) Eigen::Map<Arr>(fa, n) = X * S;
      if (fd) Eigen::Map<Arr>(fd, n) = S * (T(1) + X * (T(1) - S));
      return;
    }
    case Activation::Relu:
      if (fa) Eigen::Map<Arr>(fa, n) = X.max(T(0));
      if (fd) Eigen::Map<Arr>(fd, n) = (X > T(0)).template cast<T>();
      return;
    case Activation::None:
      if (fa) Eigen::Map<Arr>(fa, n) = X;
      if (fd) Eigen::Map<Arr>(fd, n).setOnes();
      return;
    case Activation::Gelu:  // erf: scalar
    case Activation::Elu:   // expm1 and the rest: scalar, off the models' hot paths by default
    case Activation::Sigmoid:
    case Activation::Exp:
    case Activation::Leak:
    case Activation::OnePlusElu:
    case Activation::TwoPlusElu:
      for (Index i = 0; i < n; ++i) {
        if (fa) fa[i] = act_forward(a, x[i]);
        if (fd) fd[i] = act_derivative(a, x[i]);
      }
      return;
  }
}

// f(offset, c0, n) over the elements of a row-major [rows, cols] array in pieces
// of at most kActChunk within one row (flat offset, first column, length): the
// loop of every fused elementwise pass. Large arrays are split into row blocks
// over the threads (elementwise work: the result does not depend on the split).
template <class F>
void for_each_chunk(Index rows, Index cols, F&& f) {
  if (rows <= 0 || cols <= 0) return;
  constexpr Index kMinBlock = grain::kElementwiseBlock;  // elements per thread task
  const Index rows_per = std::max<Index>(1, kMinBlock / cols);
  const Index nblocks = (rows + rows_per - 1) / rows_per;
  ::tnn::parallel_for(nblocks, nblocks > 1, [&](Index blk) {
    const Index r1 = std::min(rows, (blk + 1) * rows_per);
    for (Index r = blk * rows_per; r < r1; ++r)
      for (Index c0 = 0; c0 < cols; c0 += kActChunk) f(r * cols + c0, c0, std::min(kActChunk, cols - c0));
  });
}

// y[0:n] = act(x[0:n]) (y may be x).
template <class T>
void act_forward_n(Activation a, const T* x, T* y, Index n) {
  alignas(64) T buf[kActChunk];
  for (Index i = 0; i < n; i += kActChunk) {
    const Index m = std::min(kActChunk, n - i);
    act_eval(a, x + i, m, buf, static_cast<T*>(nullptr));
    std::copy(buf, buf + m, y + i);
  }
}
// d[0:n] = g[0:n] * act'(x[0:n]) (d may be g, not x).
template <class T>
void act_backward_n(Activation a, const T* x, const T* g, T* d, Index n) {
  alignas(64) T buf[kActChunk];
  for (Index i = 0; i < n; i += kActChunk) {
    const Index m = std::min(kActChunk, n - i);
    act_eval(a, x + i, m, static_cast<T*>(nullptr), buf);
    for (Index j = 0; j < m; ++j) d[i + j] = g[i + j] * buf[j];
  }
}
}  // namespace detail

// y = act(x) elementwise; y is resized to x's shape (y may be x itself).
template <class T>
void activation_forward(Activation a, const Tensor<T>& x, Tensor<T>& y) {
  if (&y != &x) y.resize(x.shape());
  if (a == Activation::None) {
    if (&y != &x) std::copy(x.begin(), x.end(), y.begin());
    return;
  }
  detail::act_forward_n(a, x.data(), y.data(), x.size());
}

// dx = dy * act'(x) elementwise; dx is resized to x's shape (dx may alias dy, not x).
template <class T>
void activation_backward(Activation a, const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dx) {
  if (dy.shape() != x.shape())
    fail<ShapeError>("activation_backward dy: expected shape ", shape_str(x.shape()), " (as x), got ",
                     shape_str(dy.shape()));
  if (&dx != &dy) dx.resize(x.shape());
  if (a == Activation::None) {
    if (&dx != &dy) std::copy(dy.begin(), dy.end(), dx.begin());
    return;
  }
  detail::act_backward_n(a, x.data(), dy.data(), dx.data(), x.size());
}

}  // namespace tnn
