// Token embedding: a lookup table [V, D] whose forward gathers rows and whose
// backward scatter-adds them. Ids are checked on every call, since they come
// straight from user data.
#pragma once

#include <cstdint>
#include <string>

#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

template <class T>
class Embedding : public Visits<Embedding<T>> {
 public:
  Embedding() = default;
  Embedding(Index vocab, Index dim) : vocab_(vocab), dim_(dim) {
    if (vocab <= 0 || dim <= 0)
      fail<ShapeError>("Embedding: expected positive vocab and dim, got vocab=", vocab, ", dim=", dim);
    weight.init({vocab, dim});
  }

  Param<T> weight;  // [V, D]

  Index vocab_size() const { return vocab_; }
  Index dim() const { return dim_; }

  // Every entry N(0, std^2), row-major order (PyTorch's nn.Embedding uses std = 1).
  void init_normal(Rng& rng, double stddev) {
    for (auto& w : weight.value) w = static_cast<T>(rng.normal(0.0, stddev));
  }

  // Throws ValueError naming the first id outside [0, V) and its position.
  void check_tokens(const Tensor<std::int32_t>& tokens, const char* what = "tokens") const {
    for (Index i = 0; i < tokens.size(); ++i) {
      const std::int32_t id = tokens[i];
      if (id < 0 || id >= vocab_)
        fail<ValueError>(what, ": expected ids in [0, ", vocab_, "), got ", id, " at position ",
                         detail::position_str(tokens.shape(), i));
    }
  }

  // tokens [B, N] (any rank) -> y [B, N, D].
  void forward(const Tensor<std::int32_t>& tokens, Tensor<T>& y) const {
    check_tokens(tokens);
    resize_out(tokens, y);
    const auto W = weight.value.matrix();
    auto Y = MatMap<T>(y.data(), tokens.size(), dim_);
    for (Index i = 0; i < tokens.size(); ++i) Y.row(i) = W.row(tokens[i]);
  }

  // weight.grad[tokens[i]] += dy[i] (accumulated; repeated ids add up).
  void backward(const Tensor<std::int32_t>& tokens, const Tensor<T>& dy) {
    check_tokens(tokens);
    if (dy.rank() != tokens.rank() + 1 || dy.dim(-1) != dim_ || dy.size() != tokens.size() * dim_)
      fail<ShapeError>("Embedding dy: expected the tokens' shape ", shape_str(tokens.shape()), " plus [", dim_,
                       "], got ", shape_str(dy.shape()));
    auto Wg = weight.grad.matrix();
    const auto G = ConstMatMap<T>(dy.data(), tokens.size(), dim_);
    for (Index i = 0; i < tokens.size(); ++i) Wg.row(tokens[i]) += G.row(i);
  }

 private:
  friend Visits<Embedding<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {
    f(prefix + "weight", m.weight);
  }

  void resize_out(const Tensor<std::int32_t>& tokens, Tensor<T>& y) const {
    switch (tokens.rank()) {
      case 1: y.resize({tokens.dim(0), dim_}); return;
      case 2: y.resize({tokens.dim(0), tokens.dim(1), dim_}); return;
      default: {
        Shape s = tokens.shape();
        s.push_back(dim_);
        y.resize(s);
      }
    }
  }

  Index vocab_ = 0;
  Index dim_ = 0;
};

}  // namespace tnn
