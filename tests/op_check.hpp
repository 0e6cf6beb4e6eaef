// The op-check harness, in the spirit of ggml's test-backend-ops. Every op (the
// Toeplitz and circulant kernels, activation, linear, ..., the LM, the loss) is
// registered once as an OpSpec that builds a seeded instance of itself in float
// or in double: its differentiable inputs, its parameters, its forward, its
// backward and, where one exists, its direct or dense reference. The harness
// then checks, the same way for every op:
//   1. forward (double) against the reference;
//   2. the gradient of L = <y, w> for every input and every trainable parameter
//      against central differences in double (gradcheck.hpp is the one
//      finite-difference core; gradcheck::check_kinked is the one policy for
//      activation kinks); frozen parameters get no gradient;
//   3. float against double, the float instance holding the double one's values
//      rounded: output and every gradient;
//   4. backward accumulates (+=) into parameter gradients and overwrites input
//      gradients (stale contents must not leak in).
// TNN_OP_CHECKS(Suite, specs) turns a list of OpSpecs into one gtest per check
// per op: Ops/Suite.GradientsMatchCentralDifferences/<op name>, ...
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gradcheck.hpp"
#include "test_helpers.hpp"

namespace tnn::opcheck {

using testing_helpers::ParamList;
using testing_helpers::params_of;

// Its arguments written one after another: a case's name.
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}

// Passed to an op's maker to choose its scalar: [](auto s) { using T = typename decltype(s)::type; ... }.
template <class T>
struct Scalar {
  using type = T;
};

// One instance of an op in scalar T. The functions share the op's state (layer,
// inputs, caches) through shared_ptr captures; `inputs` and `params` point into it.
template <class T>
struct Case {
  // Differentiable inputs, read through these pointers by every forward call.
  std::vector<std::pair<std::string, Tensor<T>*>> inputs;
  // Every parameter, in visit order; frozen ones (trainable false) must get no gradient.
  ParamList<T> params;
  // y = op(inputs, params); saves what backward needs.
  std::function<void(Tensor<T>& y)> forward;
  // After forward, from dy (y's shape): accumulate every parameter gradient and
  // write dinputs[i] = dL/d inputs[i] (resized and overwritten; dinputs has one
  // tensor per input, possibly holding stale values).
  std::function<void(const Tensor<T>& dy, std::vector<Tensor<T>>& dinputs)> backward;
  // Optional: y by the op's direct or dense reference (double only is enough).
  std::function<void(Tensor<T>& y)> reference;
};

struct Options {
  bool kinked = false;          // relu upstream of some input/parameter: gradcheck::check_kinked's second step
  bool unit_cotangent = false;  // y is a scalar loss whose backward takes no dy: w = 1
  Index max_entries = -1;       // finite differences on a seeded sample of each tensor (< 0: every entry)
  double grad_tol = 1e-6;       // relative error, analytic vs central differences
  double ref_tol = 1e-12;       // relative error, double forward vs reference
  double float_tol = 1e-4;       // relative error, float vs double, of the output
  double float_grad_tol = 1e-3;  // ... and of every gradient (backward sums more terms, with cancellation)
  std::uint64_t seed = 977;     // the cotangent w
};

struct OpSpec {
  std::string name;  // unique; spec_name() makes it a gtest parameter name
  Options opt;
  std::function<Case<double>()> make_double;
  std::function<Case<float>()> make_float;
};

// Registers one op: make(Scalar<T>{}) returns a Case<T> for T = float and double,
// seeded the same way (the float instance is overwritten with the double one's
// values before they are compared, so the maker need not match them itself).
template <class Maker>
OpSpec op(std::string name, Options opt, Maker make) {
  return OpSpec{std::move(name), opt, [make] { return make(Scalar<double>{}); },
                [make] { return make(Scalar<float>{}); }};
}

// N(0, scale^2) entries drawn in double from a seeded generator, then cast to T.
template <class T>
Tensor<T> random(const Shape& shape, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Tensor<T> t(shape);
  for (auto& v : t) v = static_cast<T>(rng.normal(0.0, scale));
  return t;
}

// Every trainable entry of a layer redrawn around its init value (norm scales
// off 1, biases off 0), so each parameter's gradient path is exercised.
template <class T>
void perturb(const ParamList<T>& params, std::uint64_t seed, double scale = 0.1) {
  Rng rng(seed);
  for (auto& [name, p] : params)
    if (p->trainable)
      for (auto& v : p->value) v = static_cast<T>(double(v) + rng.normal(0.0, scale));
}

inline void PrintTo(const OpSpec& spec, std::ostream* os) { *os << spec.name; }

// The op's name as a gtest parameter name: letters, digits and '_' only, so an option's name
// such as the activation "1+elu" becomes "1_elu".
inline std::string spec_name(const ::testing::TestParamInfo<OpSpec>& info) {
  std::string s = info.param.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') ch = '_';
  return s;
}

namespace detail {

template <class T>
Tensor<T> cotangent(const Tensor<T>& y, const Options& opt) {
  if (opt.unit_cotangent) {
    Tensor<T> w(y.shape());
    w.fill(T(1));
    return w;
  }
  return random<T>(y.shape(), opt.seed);
}

template <class T>
void zero_grads(Case<T>& c) {
  for (auto& [name, p] : c.params) p->zero_grad();
}

template <class T>
std::vector<Tensor<T>> stale_like(const Case<T>& c, std::uint64_t seed) {
  std::vector<Tensor<T>> v;
  for (auto& [name, x] : c.inputs) v.push_back(random<T>(x->shape(), seed++, 10.0));
  return v;
}

}  // namespace detail

// 1. Forward against the direct or dense reference (skipped when the op has none).
inline void check_reference(const OpSpec& spec) {
  Case<double> c = spec.make_double();
  if (!c.reference) GTEST_SKIP() << spec.name << " registers no reference";
  Tensor<double> y, y_ref;
  c.forward(y);
  c.reference(y_ref);
  ASSERT_EQ(y.shape(), y_ref.shape());
  ASSERT_GT(y.size(), 0);
  const double err = gradcheck::max_rel_diff(y, y_ref);
  EXPECT_LT(err, spec.opt.ref_tol) << spec.name << ": forward vs reference";
}

// 2. Central differences in double of every input and trainable parameter.
inline void check_gradients(const OpSpec& spec) {
  const Options& opt = spec.opt;
  Case<double> c = spec.make_double();
  Tensor<double> y;
  c.forward(y);
  const Tensor<double> w = detail::cotangent(y, opt);
  detail::zero_grads(c);
  std::vector<Tensor<double>> din = detail::stale_like(c, 5);
  c.backward(w, din);
  Tensor<double> y2;
  auto loss = [&] {
    c.forward(y2);
    return gradcheck::dot(y2, w);
  };
  const double l0 = loss();
  gradcheck::Options go;
  go.max_entries = opt.max_entries;
  int checked = 0;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    auto& [name, x] = c.inputs[i];
    ASSERT_EQ(din[i].shape(), x->shape()) << "d" << name;
    EXPECT_TRUE(gradcheck::check_kinked("d" + name, *x, din[i], loss, go, opt.kinked, opt.grad_tol));
    ++checked;
  }
  for (auto& [name, p] : c.params) {
    if (!p->trainable) {
      for (double g : p->grad) ASSERT_EQ(g, 0.0) << name << " is frozen: no gradient";
      continue;
    }
    const Tensor<double> analytic = p->grad;  // copied: loss() runs the op again
    EXPECT_TRUE(gradcheck::check_kinked(name, p->value, analytic, loss, go, opt.kinked, opt.grad_tol));
    ++checked;
  }
  EXPECT_GT(checked, 0) << spec.name << " has nothing to differentiate";
  EXPECT_EQ(loss(), l0) << "the perturbed values were not restored exactly";
}

// 3. Float against double: the float instance gets the double one's values.
inline void check_float_vs_double(const OpSpec& spec) {
  const Options& opt = spec.opt;
  Case<double> d = spec.make_double();
  Case<float> f = spec.make_float();
  ASSERT_EQ(d.inputs.size(), f.inputs.size());
  ASSERT_EQ(d.params.size(), f.params.size());
  for (std::size_t i = 0; i < d.inputs.size(); ++i) {
    ASSERT_EQ(d.inputs[i].first, f.inputs[i].first);
    ASSERT_EQ(d.inputs[i].second->shape(), f.inputs[i].second->shape()) << d.inputs[i].first;
    for (Index k = 0; k < d.inputs[i].second->size(); ++k)
      (*f.inputs[i].second)[k] = static_cast<float>((*d.inputs[i].second)[k]);
  }
  for (std::size_t i = 0; i < d.params.size(); ++i) {
    ASSERT_EQ(d.params[i].first, f.params[i].first);
    ASSERT_EQ(d.params[i].second->shape(), f.params[i].second->shape()) << d.params[i].first;
    for (Index k = 0; k < d.params[i].second->value.size(); ++k)
      f.params[i].second->value[k] = static_cast<float>(d.params[i].second->value[k]);
  }
  Tensor<double> yd;
  Tensor<float> yf;
  d.forward(yd);
  f.forward(yf);
  EXPECT_LT(gradcheck::max_rel_diff(yf, yd), opt.float_tol) << "output";
  const Tensor<double> wd = detail::cotangent(yd, opt);
  Tensor<float> wf(wd.shape());
  for (Index k = 0; k < wd.size(); ++k) wf[k] = static_cast<float>(wd[k]);
  detail::zero_grads(d);
  detail::zero_grads(f);
  std::vector<Tensor<double>> dd = detail::stale_like(d, 7);
  std::vector<Tensor<float>> df = detail::stale_like(f, 7);
  d.backward(wd, dd);
  f.backward(wf, df);
  for (std::size_t i = 0; i < dd.size(); ++i)
    EXPECT_LT(gradcheck::max_rel_diff(df[i], dd[i]), opt.float_grad_tol) << "d" << d.inputs[i].first;
  for (std::size_t i = 0; i < d.params.size(); ++i)
    EXPECT_LT(gradcheck::max_rel_diff(f.params[i].second->grad, d.params[i].second->grad), opt.float_grad_tol)
        << d.params[i].first;
}

// 4. A second backward adds the same parameter gradients again (+=) and writes
// the same input gradients over whatever the tensors held.
inline void check_accumulates(const OpSpec& spec) {
  Case<double> c = spec.make_double();
  Tensor<double> y;
  c.forward(y);
  const Tensor<double> w = detail::cotangent(y, spec.opt);
  detail::zero_grads(c);
  std::vector<Tensor<double>> d1 = detail::stale_like(c, 11);
  c.backward(w, d1);
  std::vector<Tensor<double>> first;
  for (auto& [name, p] : c.params) first.push_back(p->grad);
  std::vector<Tensor<double>> d2 = detail::stale_like(c, 13);
  c.backward(w, d2);
  for (std::size_t i = 0; i < d1.size(); ++i)
    EXPECT_LE(gradcheck::max_rel_diff(d2[i], d1[i]), 1e-14) << "d" << c.inputs[i].first << " is not overwritten";
  int trainable = 0, nonzero = 0;  // some parameter must carry gradient, or nothing was checked
  for (std::size_t i = 0; i < c.params.size(); ++i) {
    const auto& [name, p] = c.params[i];
    trainable += p->trainable;
    double mx = 0, err = 0;
    for (Index k = 0; k < p->grad.size(); ++k) {
      mx = std::max(mx, std::abs(first[i][k]));
      err = std::max(err, std::abs(p->grad[k] - 2 * first[i][k]));
    }
    if (p->trainable && mx > 0) ++nonzero;
    EXPECT_LE(err, 1e-12 * std::max(mx, 1e-300)) << name << ": the second backward did not add its gradient";
  }
  if (trainable > 0) {
    EXPECT_GT(nonzero, 0) << spec.name << ": no parameter received a gradient, so nothing was checked";
  }
}

}  // namespace tnn::opcheck

// One gtest per check per op: Ops/Suite.ForwardMatchesReference/<name>, ...
// `specs` is an expression giving a std::vector<OpSpec> (e.g. a function call).
#define TNN_OP_CHECKS(Suite, specs)                                                                       \
  class Suite : public ::testing::TestWithParam<::tnn::opcheck::OpSpec> {};                              \
  TEST_P(Suite, ForwardMatchesReference) { ::tnn::opcheck::check_reference(GetParam()); }               \
  TEST_P(Suite, GradientsMatchCentralDifferences) { ::tnn::opcheck::check_gradients(GetParam()); }      \
  TEST_P(Suite, FloatMatchesDouble) { ::tnn::opcheck::check_float_vs_double(GetParam()); }              \
  TEST_P(Suite, BackwardAccumulatesParamGradsAndOverwritesInputGrads) {                                 \
    ::tnn::opcheck::check_accumulates(GetParam());                                                      \
  }                                                                                                      \
  INSTANTIATE_TEST_SUITE_P(Ops, Suite, ::testing::ValuesIn(specs), ::tnn::opcheck::spec_name)
