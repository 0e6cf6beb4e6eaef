// Helpers every test file shares (one copy each): the (name, Param*) list of a
// layer, "this throws E and says these things", and small integer tensors.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"

namespace tnn::testing_helpers {

template <class T>
using ParamList = std::vector<std::pair<std::string, Param<T>*>>;

// Every parameter of a layer (anything with visit(prefix, f(name, Param<T>&))),
// in visit order, with the prefix prepended to its name.
template <template <class...> class Layer, class T, class... Rest>
ParamList<T> params_of(Layer<T, Rest...>& layer, const std::string& prefix = "") {
  ParamList<T> v;
  layer.visit(prefix, [&](const std::string& name, Param<T>& p) { v.emplace_back(name, &p); });
  return v;
}

// The names, and the shapes, of a list's parameters, in its order.
template <class T>
std::vector<std::string> names_of(const ParamList<T>& params) {
  std::vector<std::string> names;
  for (const auto& [name, p] : params) names.push_back(name);
  return names;
}
template <class T>
std::vector<Shape> shapes_of(const ParamList<T>& params) {
  std::vector<Shape> shapes;
  for (const auto& [name, p] : params) shapes.push_back(p->shape());
  return shapes;
}

// How many values the list's parameters hold.
template <class T>
Index value_count(const ParamList<T>& params) {
  Index n = 0;
  for (const auto& [name, p] : params) n += p->value.size();
  return n;
}

// The list without attention's key biases (every "...k_proj.bias"). k_proj.bias shifts every
// score of a query row by the same q . b_k, which the softmax cancels: the output does not depend
// on it and its gradient is 0 up to rounding (PyTorch's too). Relative checks would compare that
// rounding noise with itself, so they leave it out; Attention.KeyBiasHasNoEffectAndNoGradient
// holds it to 0.
template <class T>
ParamList<T> without_key_bias(ParamList<T> params) {
  const std::string key_bias = "k_proj.bias";
  params.erase(std::remove_if(params.begin(), params.end(),
                              [&](const auto& p) {
                                const std::string& n = p.first;
                                return n.size() >= key_bias.size() &&
                                       n.compare(n.size() - key_bias.size(), key_bias.size(), key_bias) == 0;
                              }),
               params.end());
  return params;
}

// Success when f throws E (or a subclass) whose message contains every piece;
// the message is printed either way, so a failure shows what came instead.
template <class E>
::testing::AssertionResult throws(const std::function<void()>& f, const std::vector<std::string>& pieces = {}) {
  try {
    f();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : pieces)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks '" << p << "': " << msg;
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw the wrong type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// Runs f and returns the message of the E it throws ("<no error>" otherwise).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no error>";
}

// One step (step(m): the forward with its loss; then the backward) of a fresh model from make(),
// without and with recomputation (Backbone::set_recompute): the same loss and gradients, to the bit.
template <class Make, class Step>
void expect_recompute_bit_identical(Make&& make, Step&& step) {
  std::vector<std::vector<float>> grads[2];
  float loss[2];
  for (int recompute = 0; recompute < 2; ++recompute) {
    auto m = make();
    m.backbone.set_recompute(recompute == 1);
    m.zero_grad();
    loss[recompute] = step(m);
    m.backward();
    for (auto& [name, p] : m.named_parameters()) grads[recompute].emplace_back(p->grad.begin(), p->grad.end());
  }
  EXPECT_EQ(loss[0], loss[1]);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (std::size_t i = 0; i < grads[0].size(); ++i) EXPECT_EQ(grads[0][i], grads[1][i]) << "parameter " << i;
}

// One layer and one cache, as a trainer reuses them, run at each of `lengths` in turn on
// x = input(n): after each forward check(n, x, y); each backward (dy = x) gives a dx of x's shape;
// and the layer holds as many parameter values afterwards as before.
template <class Layer, class Input, class Check>
void expect_runs_at_lengths(Layer& layer, std::initializer_list<Index> lengths, Input input, Check check) {
  const Index count = value_count(params_of(layer));
  typename Layer::Cache c;
  Tensor<double> y, dx;
  for (Index n : lengths) {
    const Tensor<double> x = input(n);
    layer.forward(x, y, c);
    check(n, x, y);
    layer.backward(x, x, c, &dx);
    EXPECT_EQ(dx.shape(), x.shape());
  }
  EXPECT_EQ(value_count(params_of(layer)), count);
}

// An I32 tensor of the given shape holding v in order (token ids, targets).
inline Tensor<std::int32_t> ids(const Shape& s, std::initializer_list<std::int32_t> v) {
  Tensor<std::int32_t> t(s);
  if (static_cast<Index>(v.size()) != t.size())
    fail<ShapeError>("ids: ", v.size(), " values for shape ", shape_str(s));
  Index i = 0;
  for (auto x : v) t[i++] = x;
  return t;
}

}  // namespace tnn::testing_helpers
