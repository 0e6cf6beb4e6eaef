// Fully connected layer y = x W^T + b over the last dimension, PyTorch layout
// (W [out, in]) so checkpoints map one to one. Every GEMM goes through tnn::gemm
// (BLAS or Eigen) on the caller's row-major buffers: no copies, no temporaries.
#pragma once

#include <cmath>
#include <string>
#include <type_traits>

#include "tnn/core/gemm.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

namespace detail {
// Resizes y to x's shape with the last dimension replaced by `last`, without a
// heap allocation for ranks 1-4 once y has held that size (a Shape temporary would
// allocate on every call).
template <class T, class U>
void resize_last_dim(Tensor<T>& y, const Tensor<U>& x, Index last) {
  switch (x.rank()) {
    case 1: y.resize({last}); return;
    case 2: y.resize({x.dim(0), last}); return;
    case 3: y.resize({x.dim(0), x.dim(1), last}); return;
    case 4: y.resize({x.dim(0), x.dim(1), x.dim(2), last}); return;
    default: {
      Shape s = x.shape();
      s.back() = last;
      y.resize(s);
    }
  }
}

// True when a has b's leading dimensions and last dimension `last`.
template <class T, class U>
bool same_leading_dims(const Tensor<T>& a, const Tensor<U>& b, Index last) {
  if (a.rank() != b.rank() || a.rank() == 0 || a.dim(-1) != last) return false;
  for (int i = 0; i + 1 < a.rank(); ++i)
    if (a.dim(i) != b.dim(i)) return false;
  return true;
}
}  // namespace detail

template <class T>
class Linear : public Visits<Linear<T>> {
 public:
  Linear() = default;
  Linear(Index in, Index out, bool with_bias = true) : in_(in), out_(out), has_bias_(with_bias) {
    if (in <= 0 || out <= 0)
      fail<ShapeError>("Linear: expected positive in/out features, got in=", in, ", out=", out);
    weight.init({out, in});
    if (with_bias) bias.init({out});
  }

  Param<T> weight;  // [out, in]
  Param<T> bias;    // [out], empty when !has_bias()

  Index in_features() const { return in_; }
  Index out_features() const { return out_; }
  bool has_bias() const { return has_bias_; }

  // Products in fp32 whatever weight.precision says (the RPE: its inputs are positions, which
  // bf16's 8-bit mantissa would merge beyond 256).
  void set_fp32_only(bool on) { fp32_only_ = on; }
  // The precision of this layer's products: weight.precision, for float layers not kept in fp32.
  Precision precision() const {
    if constexpr (std::is_same_v<T, float>) return fp32_only_ ? Precision::F32 : weight.precision;
    return Precision::F32;
  }

  // PyTorch's default (kaiming_uniform with a = sqrt(5)): weight and bias
  // uniform in [-1/sqrt(in), 1/sqrt(in)), weight first, row-major, then bias.
  void init_uniform(Rng& rng) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
    for (auto& w : weight.value) w = static_cast<T>(rng.uniform(-bound, bound));
    if (has_bias_)
      for (auto& b : bias.value) b = static_cast<T>(rng.uniform(-bound, bound));
  }

  // x [..., in] -> y [..., out] with the same leading dims. y must not alias x.
  void forward(const Tensor<T>& x, Tensor<T>& y) const {
    check_input(x, "Linear x");
    detail::resize_last_dim(y, x, out_);
    const Index rows = x.rows();
    if (has_bias_) {
      // Bias first, then the product accumulates onto it: one pass over y, not two.
      auto Y = y.matrix();
      Y.rowwise() = bias.value.matrix().row(0);
      gemm_nt(rows, out_, in_, x.data(), in_, weight.value.data(), in_, T(1), y.data(), out_, precision());
    } else {
      gemm_nt(rows, out_, in_, x.data(), in_, weight.value.data(), in_, T(0), y.data(), out_, precision());
    }
  }

  // y = x W^T without the bias, for callers that add it in a fused pass of their own.
  void product(const Tensor<T>& x, Tensor<T>& y) const {
    check_input(x, "Linear x");
    detail::resize_last_dim(y, x, out_);
    gemm_nt(x.rows(), out_, in_, x.data(), in_, weight.value.data(), in_, T(0), y.data(), out_, precision());
  }

  // weight.grad += dy^T x, bias.grad += sum over rows of dy (accumulated);
  // dx [..., in] = dy W overwritten when non-null.
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>* dx) {
    check_input(x, "Linear x");
    if (!detail::same_leading_dims(dy, x, out_))
      fail<ShapeError>("Linear dy: expected x's leading dims with last dim ", out_, ", got ", shape_str(dy.shape()),
                       " for x ", shape_str(x.shape()));
    accumulate_grads(x, dy);
    if (dx) {
      detail::resize_last_dim(*dx, x, in_);
      input_grad(dy, *dx, T(0));
    }
  }

  // The two halves of backward, for callers that fuse: weight.grad += dy^T x and
  // bias.grad += column sums of dy; dx = dy W + beta dx (beta 1: accumulate into
  // an input gradient another branch already wrote).
  void accumulate_grads(const Tensor<T>& x, const Tensor<T>& dy) {
    const Index rows = x.rows();
    gemm_tn(out_, in_, rows, dy.data(), out_, x.data(), in_, T(1), weight.grad.data(), in_, precision());
    if (has_bias_) {
      // Row after row, so the inner loop runs along contiguous memory.
      T* bg = bias.grad.data();
      const T* g = dy.data();
      for (Index r = 0; r < rows; ++r)
        for (Index o = 0; o < out_; ++o) bg[o] += g[r * out_ + o];
    }
  }
  void input_grad(const Tensor<T>& dy, Tensor<T>& dx, T beta) const {
    if (dx.rows() != dy.rows() || dx.cols() != in_ || dy.cols() != out_)
      fail<ShapeError>("Linear dx: expected ", dy.rows(), " rows of ", in_, " for dy ", shape_str(dy.shape()),
                       ", got ", shape_str(dx.shape()));
    gemm_nn(dy.rows(), in_, out_, dy.data(), out_, weight.value.data(), in_, beta, dx.data(), in_, precision());
  }

 private:
  friend Visits<Linear<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    f(prefix + "weight", m.weight);
    if (m.has_bias_) f(prefix + "bias", m.bias);
  }

  void check_input(const Tensor<T>& x, const char* what) const {
    if (x.rank() == 0 || x.dim(-1) != in_)
      fail<ShapeError>(what, ": expected last dim ", in_, " (in_features), got shape ", shape_str(x.shape()));
  }

  Index in_ = 0;
  Index out_ = 0;
  bool has_bias_ = true;
  bool fp32_only_ = false;
};

}  // namespace tnn
