// The three row norms of model.md §6 (simplermsnorm, rmsnorm, layernorm) with
// exact backward passes. Statistics are per row of the last dimension; the cache
// holds two numbers per row, so backward re-derives the normalized row from x.
#pragma once

#include <cmath>
#include <string>

#include "tnn/core/tensor.hpp"
#include "tnn/layers/param.hpp"

namespace tnn {

enum class NormType { SimpleRMSNorm, RMSNorm, LayerNorm };

inline const char* to_string(NormType n) {
  switch (n) {
    case NormType::SimpleRMSNorm: return "simplermsnorm";
    case NormType::RMSNorm: return "rmsnorm";
    case NormType::LayerNorm: return "layernorm";
  }
  return "?";
}

template <class T>
class Norm {
 public:
  static constexpr double kRmsEps = 1e-8;    // added to the rms, outside the sqrt (tnn-pytorch)
  static constexpr double kLayerEps = 1e-5;  // inside the sqrt, as torch.nn.LayerNorm

  Norm() = default;
  Norm(NormType type, Index dim) : type_(type), dim_(dim) {
    if (dim <= 0) fail<ShapeError>("Norm: expected a positive dim, got ", dim);
    if (type == NormType::RMSNorm) scale.init({dim});
    if (type == NormType::LayerNorm) {
      weight.init({dim});
      bias.init({dim});
    }
    reset_parameters();
  }

  Param<T> scale;   // [dim] rmsnorm only
  Param<T> weight;  // [dim] layernorm only
  Param<T> bias;    // [dim] layernorm only

  NormType type() const { return type_; }
  Index dim() const { return dim_; }

  // The PyTorch initialization: scale = weight = 1, bias = 0.
  void reset_parameters() {
    if (type_ == NormType::RMSNorm) scale.value.fill(T(1));
    if (type_ == NormType::LayerNorm) {
      weight.value.fill(T(1));
      bias.value.set_zero();
    }
  }

  struct Cache {
    Tensor<T> stat;  // [rows] rms = ||x|| / sqrt(d) (rms norms) or the mean (layernorm)
    Tensor<T> rstd;  // [rows] 1 / (rms + 1e-8) or 1 / sqrt(var + 1e-5)
  };

  // x, y [..., dim]; y resized (y must not alias x).
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c) const {
    check(x, "Norm x");
    y.resize(x.shape());
    const Index rows = x.rows(), d = dim_;
    c.stat.resize({rows});
    c.rstd.resize({rows});
    const auto X = x.matrix();
    auto Y = y.matrix();
    if (type_ == NormType::LayerNorm) {
      const auto w = weight.value.matrix().row(0).array();
      const auto b = bias.value.matrix().row(0).array();
      for (Index r = 0; r < rows; ++r) {
        const auto xr = X.row(r).array();
        const T mean = xr.sum() / T(d);
        const T var = (xr - mean).square().sum() / T(d);
        const T rstd = T(1) / std::sqrt(var + T(kLayerEps));
        c.stat[r] = mean;
        c.rstd[r] = rstd;
        Y.row(r).array() = (xr - mean) * rstd * w + b;
      }
    } else {
      const T inv_sqrt_d = T(1) / std::sqrt(T(d));
      for (Index r = 0; r < rows; ++r) {
        const T rms = X.row(r).norm() * inv_sqrt_d;
        const T inv = T(1) / (rms + T(kRmsEps));
        c.stat[r] = rms;
        c.rstd[r] = inv;
        if (type_ == NormType::RMSNorm)
          Y.row(r).array() = X.row(r).array() * inv * scale.value.matrix().row(0).array();
        else
          Y.row(r) = X.row(r) * inv;
      }
    }
  }

  // x: the forward input; dy [..., dim]. Accumulates scale/weight/bias grads;
  // dx overwritten (dx may alias dy, not x).
  void backward(const Tensor<T>& x, const Tensor<T>& dy, const Cache& c, Tensor<T>& dx) {
    check(x, "Norm x");
    if (dy.shape() != x.shape())
      fail<ShapeError>("Norm dy: expected shape ", shape_str(x.shape()), " (as x), got ", shape_str(dy.shape()));
    const Index rows = x.rows(), d = dim_;
    if (c.stat.size() != rows || c.rstd.size() != rows)
      fail<ShapeError>("Norm cache: expected statistics for ", rows, " rows (from forward on this x), got ",
                       c.stat.size());
    if (&dx != &dy) dx.resize(x.shape());
    const auto X = x.matrix();
    const auto G = dy.matrix();
    auto DX = dx.matrix();
    if (type_ == NormType::LayerNorm) {
      // xh = (x - mean) rstd, gh = dy * w:
      // dx = rstd * (gh - mean(gh) - xh * mean(gh * xh)).
      const auto w = weight.value.matrix().row(0).array();
      auto wg = weight.grad.matrix().row(0).array();
      auto bg = bias.grad.matrix().row(0).array();
      for (Index r = 0; r < rows; ++r) {
        const T mean = c.stat[r], rstd = c.rstd[r];
        const auto xh = (X.row(r).array() - mean) * rstd;
        const auto g = G.row(r).array();
        wg += g * xh;
        bg += g;
        const T a = (g * w).sum() / T(d);
        const T b = (g * w * xh).sum() / T(d);
        DX.row(r).array() = rstd * (g * w - a - xh * b);
      }
    } else {
      // y = g(x) x / s with s = rms + eps, rms = ||x|| / sqrt(d), ds/dx = x / (d rms):
      // dx = gs / s - x (gs . x) / (s^2 d rms), gs = dy (* scale). At x = 0 the
      // second term is 0 (x is), which is also what PyTorch's norm backward gives.
      const bool has_scale = type_ == NormType::RMSNorm;
      for (Index r = 0; r < rows; ++r) {
        const T rms = c.stat[r], inv = c.rstd[r];
        const auto xr = X.row(r).array();
        const auto g = G.row(r).array();
        T dot;
        if (has_scale) {
          const auto sc = scale.value.matrix().row(0).array();
          scale.grad.matrix().row(0).array() += g * xr * inv;
          dot = (g * sc * xr).sum();
        } else {
          dot = (g * xr).sum();
        }
        const T coef = rms > T(0) ? dot * inv * inv / (T(d) * rms) : T(0);
        if (has_scale)
          DX.row(r).array() = g * scale.value.matrix().row(0).array() * inv - xr * coef;
        else
          DX.row(r).array() = g * inv - xr * coef;
      }
    }
  }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    if (type_ == NormType::RMSNorm) f(prefix + "scale", scale);
    if (type_ == NormType::LayerNorm) {
      f(prefix + "weight", weight);
      f(prefix + "bias", bias);
    }
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) const {
    if (type_ == NormType::RMSNorm) f(prefix + "scale", scale);
    if (type_ == NormType::LayerNorm) {
      f(prefix + "weight", weight);
      f(prefix + "bias", bias);
    }
  }

 private:
  void check(const Tensor<T>& x, const char* what) const {
    if (x.rank() == 0 || x.dim(-1) != dim_)
      fail<ShapeError>(what, ": expected last dim ", dim_, ", got shape ", shape_str(x.shape()));
  }

  NormType type_ = NormType::SimpleRMSNorm;
  Index dim_ = 0;
};

}  // namespace tnn
