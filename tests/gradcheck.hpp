// Central-difference gradient checker, in double, shared by every layer test:
// perturb entries of an input or parameter tensor, re-evaluate a scalar loss,
// and compare with the analytic gradient by max abs diff / max abs value per tensor.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/core/rng.hpp"

namespace tnn::gradcheck {

struct Options {
  // Fourth-order central difference (-L(+2h) + 8L(+h) - 8L(-h) + L(-2h)) / 12h:
  // truncation O(h^4) lets h be large enough that rounding in L stays ~1e-12.
  double step = 1e-4;
  Index max_entries = -1;  // < 0: every entry; otherwise a seeded sample (first and last included)
  std::uint64_t seed = 1;
  // Denominator floor: a tensor whose gradient is ~0 everywhere is judged by
  // absolute difference against this scale instead of dividing noise by noise.
  double min_scale = 1e-7;
};

struct Result {
  std::string name;
  double max_abs_diff = 0;   // max |analytic - numeric| over checked entries
  double max_abs_value = 0;  // max over checked entries of max(|analytic|, |numeric|)
  double rel_error = 0;      // max_abs_diff / max(max_abs_value, min_scale)
  Index worst = -1;          // flat index of the largest difference
  double worst_analytic = 0, worst_numeric = 0;
  Index checked = 0;
};

// Dot product, to turn a layer output y into the scalar L = <y, w> whose dL/dy = w.
inline double dot(const Tensor<double>& a, const Tensor<double>& b) {
  if (a.size() != b.size()) fail<ShapeError>("gradcheck::dot: sizes ", a.size(), " and ", b.size(), " differ");
  double s = 0;
  for (Index i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// A tensor of N(0, scale^2) entries from a seeded generator.
inline Tensor<double> random_tensor(const Shape& shape, Rng& rng, double scale = 1.0) {
  Tensor<double> t(shape);
  for (auto& v : t) v = rng.normal(0.0, scale);
  return t;
}
inline Tensor<double> random_tensor(const Shape& shape, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  return random_tensor(shape, rng, scale);
}

// Indices to check: all, or max_entries of them sampled without replacement.
inline std::vector<Index> entries_to_check(Index size, const Options& opt) {
  std::vector<Index> idx;
  if (opt.max_entries < 0 || opt.max_entries >= size) {
    idx.resize(static_cast<std::size_t>(size));
    for (Index i = 0; i < size; ++i) idx[static_cast<std::size_t>(i)] = i;
    return idx;
  }
  std::vector<char> taken(static_cast<std::size_t>(size), 0);
  auto take = [&](Index i) {
    if (!taken[static_cast<std::size_t>(i)]) {
      taken[static_cast<std::size_t>(i)] = 1;
      idx.push_back(i);
    }
  };
  if (opt.max_entries > 0) take(0);
  if (opt.max_entries > 1) take(size - 1);
  Rng rng(opt.seed);
  while (static_cast<Index>(idx.size()) < opt.max_entries) take(static_cast<Index>(rng.below(std::uint64_t(size))));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// dL/dx[i] by central differences; x[i] is restored exactly afterwards.
template <class LossFn>
double numeric_derivative(Tensor<double>& x, Index i, LossFn&& loss, double h) {
  const double orig = x[i];
  auto at = [&](double delta) {
    x[i] = orig + delta;
    const double l = loss();
    x[i] = orig;
    return l;
  };
  const double lp1 = at(h), lm1 = at(-h), lp2 = at(2 * h), lm2 = at(-2 * h);
  return (8.0 * (lp1 - lm1) - (lp2 - lm2)) / (12.0 * h);
}

// Compares `analytic` (dL/dx, same shape as x) against central differences of
// loss() with respect to x. loss() must read x's current values (it is called
// with x perturbed in place) and must not depend on anything else that changes.
template <class LossFn>
Result check_gradient(const std::string& name, Tensor<double>& x, const Tensor<double>& analytic, LossFn&& loss,
                      const Options& opt = {}) {
  if (analytic.shape() != x.shape())
    fail<ShapeError>("gradcheck ", name, ": analytic gradient shape ", shape_str(analytic.shape()),
                     " differs from the tensor's ", shape_str(x.shape()));
  Result r;
  r.name = name;
  for (Index i : entries_to_check(x.size(), opt)) {
    const double num = numeric_derivative(x, i, loss, opt.step);
    const double ana = analytic[i];
    const double diff = std::abs(num - ana);
    r.max_abs_value = std::max({r.max_abs_value, std::abs(num), std::abs(ana)});
    if (diff > r.max_abs_diff || r.worst < 0) {
      r.max_abs_diff = std::max(r.max_abs_diff, diff);
      r.worst = i;
      r.worst_analytic = ana;
      r.worst_numeric = num;
    }
    ++r.checked;
  }
  r.rel_error = r.max_abs_diff / std::max(r.max_abs_value, opt.min_scale);
  return r;
}

// Checks every trainable parameter of a list of (name, Param*) whose grads hold
// dL/dparam for the current values (run forward + backward once before calling).
template <class LossFn>
std::vector<Result> check_params(const std::vector<std::pair<std::string, Param<double>*>>& params, LossFn&& loss,
                                 const Options& opt = {}) {
  std::vector<Result> out;
  for (const auto& [name, p] : params) {
    if (!p->trainable) continue;
    const Tensor<double> analytic = p->grad;  // copied: a loss() that reuses the model must not change it
    out.push_back(check_gradient(name, p->value, analytic, loss, opt));
  }
  return out;
}

// gtest predicate: EXPECT_TRUE(gradcheck::ok(result)) prints the details on failure.
inline ::testing::AssertionResult ok(const Result& r, double tol = 1e-6) {
  std::ostringstream os;
  os << r.name << ": rel error " << r.rel_error << " (max abs diff " << r.max_abs_diff << ", max abs value "
     << r.max_abs_value << ", worst entry " << r.worst << ": analytic " << r.worst_analytic << " vs numeric "
     << r.worst_numeric << ", " << r.checked << " entries checked)";
  if (r.checked > 0 && r.rel_error < tol && std::isfinite(r.rel_error)) return ::testing::AssertionSuccess() << os.str();
  if (r.checked == 0) os << " -- nothing checked";
  return ::testing::AssertionFailure() << os.str();
}

// Largest |a - b| over the largest |b|, in double: how far a (a fast path, or
// the float run) is from b (its reference, or the double run). Both zero: 0.
template <class A, class B>
double max_rel_diff(const Tensor<A>& a, const Tensor<B>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  double d = 0, s = 0;
  for (Index i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    s = std::max(s, std::abs(double(b[i])));
  }
  if (!std::isfinite(d)) return INFINITY;
  return d / std::max(s, 1e-300);
}

// THE policy for activation kinks (the op-check harness applies it to every op
// marked `kinked`). relu is piecewise linear: with hundreds of positions, some
// pre-activation lies within the finite-difference stencil of its kink and the
// default step sees the kink. A much smaller step avoids kinks but loses digits
// to rounding on tiny gradients. So with `relu` set a tensor passes if either
// step agrees: a wrong analytic gradient disagrees at both, a kink or rounding
// artifact at only one.
template <class LossFn>
::testing::AssertionResult check_kinked(const std::string& name, Tensor<double>& x, const Tensor<double>& analytic,
                                        LossFn&& loss, Options opt, bool relu, double tol = 1e-6) {
  auto res = ok(check_gradient(name, x, analytic, loss, opt), tol);
  if (res || !relu) return res;
  opt.step = 1e-6;
  auto second = ok(check_gradient(name, x, analytic, loss, opt), tol);
  if (second) return second;
  return res << " | with step 1e-6: " << second.message();
}

}  // namespace tnn::gradcheck
