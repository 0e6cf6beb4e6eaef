// Row norms (model.md §6) with exact backward passes: simplermsnorm, rmsnorm, layernorm, and
// the official TNN code's scalenorm and gatedrmsnorm; `none` is the identity (a model without
// an embedding norm or a final norm). Statistics are per row of the last dimension; the cache
// holds two numbers per row, so backward re-derives the normalized row from x.
// Adding a norm: a row of EnumTable<NormType> and of kNormParams, and its two formulas.
#pragma once

#include <array>
#include <cmath>
#include <string>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/param.hpp"

namespace tnn {

enum class NormType { SimpleRMSNorm, RMSNorm, LayerNorm, ScaleNorm, GatedRMSNorm, None };

template <>
struct EnumTable<NormType> {
  static constexpr EnumRow<NormType> rows[] = {
      {NormType::SimpleRMSNorm, "simplermsnorm"}, {NormType::RMSNorm, "rmsnorm"},
      {NormType::LayerNorm, "layernorm"},         {NormType::ScaleNorm, "scalenorm"},
      {NormType::GatedRMSNorm, "gatedrmsnorm"},   {NormType::None, "none"}};
};

// A norm's parameters: checkpoint name, width (one per channel, or one number) and initial value.
struct NormParamSpec {
  const char* name = nullptr;  // null: no parameter in this slot
  bool per_channel = true;     // [dim], or [1]
  double init = 1;
};
// Indexed by NormType; the names are the official code's (tnn-pytorch, torch.nn.LayerNorm).
inline constexpr std::array<std::array<NormParamSpec, 2>, 6> kNormParams = {{
    {},                                                          // simplermsnorm: none
    {{{"scale", true, 1.0}, {}}},                                // rmsnorm
    {{{"weight", true, 1.0}, {"bias", true, 0.0}}},              // layernorm
    {{{"scala", false, 1.0}, {}}},                               // scalenorm: one scalar
    {{{"scale", true, 1.0}, {"gate", true, 1.0}}},               // gatedrmsnorm
    {},                                                          // none
}};

template <class T>
class Norm : public Visits<Norm<T>> {
 public:
  static constexpr double kRmsEps = 1e-8;    // added to the rms, outside the sqrt (tnn-pytorch)
  static constexpr double kLayerEps = 1e-5;  // inside the sqrt, as torch.nn.LayerNorm
  static constexpr double kScaleEps = 1e-5;  // inside the sqrt (tnn-pytorch's ScaleNorm)

  Norm() = default;
  Norm(NormType type, Index dim) : type_(type), dim_(dim) {
    if (dim <= 0) fail<ShapeError>("Norm: expected a positive dim, got ", dim);
    for (std::size_t i = 0; i < 2; ++i)
      if (spec(i).name) p_[i].init({spec(i).per_channel ? dim : 1});
    reset_parameters();
  }

  NormType type() const { return type_; }
  Index dim() const { return dim_; }

  // The parameter named `name` (as in the checkpoint: "scale", "weight", ...); ValueError if
  // this type has none of that name.
  Param<T>& param(const std::string& name) { return p_[slot(name)]; }
  const Param<T>& param(const std::string& name) const { return p_[slot(name)]; }

  // The PyTorch initialization (kNormParams: scale = weight = gate = scala = 1, bias = 0).
  void reset_parameters() {
    for (std::size_t i = 0; i < 2; ++i)
      if (spec(i).name) p_[i].value.fill(static_cast<T>(spec(i).init));
  }

  struct Cache {
    Tensor<T> stat;  // [rows] rms = ||x|| / sqrt(d) (rms norms), the mean (layernorm), mean(x^2) (scalenorm)
    Tensor<T> rstd;  // [rows] 1 / (rms + 1e-8), 1 / sqrt(var + 1e-5) or 1 / sqrt(mean(x^2) + 1e-5)
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
    switch (type_) {
      case NormType::LayerNorm: {
        const auto w = row(0), b = row(1);
        for (Index r = 0; r < rows; ++r) {
          const auto xr = X.row(r).array();
          const T mean = xr.sum() / T(d);
          const T var = (xr - mean).square().sum() / T(d);
          const T rstd = T(1) / std::sqrt(var + T(kLayerEps));
          c.stat[r] = mean;
          c.rstd[r] = rstd;
          Y.row(r).array() = (xr - mean) * rstd * w + b;
        }
        return;
      }
      case NormType::ScaleNorm: {
        const T s = p_[0].value[0];
        for (Index r = 0; r < rows; ++r) {
          const T ms = X.row(r).squaredNorm() / T(d);
          const T rstd = T(1) / std::sqrt(ms + T(kScaleEps));
          c.stat[r] = ms;
          c.rstd[r] = rstd;
          Y.row(r) = X.row(r) * (rstd * s);
        }
        return;
      }
      case NormType::None:
        Y = X;
        return;
      case NormType::SimpleRMSNorm:
      case NormType::RMSNorm:
      case NormType::GatedRMSNorm: {
        const T inv_sqrt_d = T(1) / std::sqrt(T(d));
        for (Index r = 0; r < rows; ++r) {
          const T rms = X.row(r).norm() * inv_sqrt_d;
          const T inv = T(1) / (rms + T(kRmsEps));
          c.stat[r] = rms;
          c.rstd[r] = inv;
          if (type_ == NormType::RMSNorm) {
            Y.row(r).array() = X.row(r).array() * inv * row(0);
          } else if (type_ == NormType::GatedRMSNorm) {
            const T* xr = X.row(r).data();
            T* yr = Y.row(r).data();
            const T* sc = p_[0].value.data();
            const T* gt = p_[1].value.data();
            for (Index j = 0; j < d; ++j) yr[j] = sc[j] * (xr[j] * inv) * detail::sigmoid(gt[j] * xr[j]);
          } else {
            Y.row(r) = X.row(r) * inv;
          }
        }
        return;
      }
    }
  }

  // x: the forward input; dy [..., dim]. Accumulates the parameters' grads; dx overwritten
  // (dx may alias dy, not x).
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
    switch (type_) {
      case NormType::LayerNorm: {
        // xh = (x - mean) rstd, gh = dy * w:
        // dx = rstd * (gh - mean(gh) - xh * mean(gh * xh)).
        const auto w = row(0);
        auto wg = grad_row(0);
        auto bg = grad_row(1);
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
        return;
      }
      case NormType::ScaleNorm: {
        // y = s x r, r = (mean(x^2) + eps)^(-1/2), dr/dx = -r^3 x / d:
        // ds = sum(g x r), dx = s r (g - x r^2 (g . x) / d).
        const T s = p_[0].value[0];
        T ds = 0;
        for (Index r = 0; r < rows; ++r) {
          const T rstd = c.rstd[r];
          const T dot = G.row(r).dot(X.row(r));
          ds += dot * rstd;
          DX.row(r) = (G.row(r) - X.row(r) * (rstd * rstd * dot / T(d))) * (s * rstd);
        }
        p_[0].grad[0] += ds;
        return;
      }
      case NormType::None:
        if (&dx != &dy) DX = G;
        return;
      case NormType::SimpleRMSNorm:
      case NormType::RMSNorm:
      case NormType::GatedRMSNorm: {
        // y = a(x) * x / s with s = rms + eps, rms = ||x|| / sqrt(d), ds/dx = x / (d rms):
        // for gs = dy * dy/dxn (the gradient reaching xn = x / s),
        // dx = gs / s - x (gs . x) / (s^2 d rms) (+ the gate's direct term). At x = 0 the
        // second term is 0 (x is), which is also what PyTorch's norm backward gives.
        const bool has_scale = type_ == NormType::RMSNorm;
        for (Index r = 0; r < rows; ++r) {
          const T rms = c.stat[r], inv = c.rstd[r];
          if (type_ == NormType::GatedRMSNorm) {
            gated_row_backward(X.row(r).data(), G.row(r).data(), rms, inv, DX.row(r).data());
            continue;
          }
          const auto xr = X.row(r).array();
          const auto g = G.row(r).array();
          T dot;
          if (has_scale) {
            grad_row(0) += g * xr * inv;
            dot = (g * row(0) * xr).sum();
          } else {
            dot = (g * xr).sum();
          }
          const T coef = rms > T(0) ? dot * inv * inv / (T(d) * rms) : T(0);
          if (has_scale)
            DX.row(r).array() = g * row(0) * inv - xr * coef;
          else
            DX.row(r).array() = g * inv - xr * coef;
        }
        return;
      }
    }
  }

 private:
  friend Visits<Norm<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    for (std::size_t i = 0; i < 2; ++i)
      if (m.spec(i).name) f(prefix + m.spec(i).name, m.p_[i]);
  }

  const NormParamSpec& spec(std::size_t i) const { return kNormParams[static_cast<std::size_t>(type_)][i]; }
  std::size_t slot(const std::string& name) const {
    for (std::size_t i = 0; i < 2; ++i)
      if (spec(i).name && name == spec(i).name) return i;
    fail<ValueError>("Norm ", to_string(type_), ": no parameter named ", quote(name, 40));
  }
  // Parameter i (per channel) as a [1, dim] array row, and its gradient.
  auto row(std::size_t i) const { return p_[i].value.matrix().row(0).array(); }
  auto grad_row(std::size_t i) { return p_[i].grad.matrix().row(0).array(); }
  // gatedrmsnorm, one row: y = scale * xn * sig(gate * x), xn = x / s, s = rms + eps.
  // With q = g * scale * sig (the gradient reaching xn) and e = g * scale * xn * sig * (1 - sig)
  // (reaching gate * x): dscale += g xn sig, dgate += e x,
  // dx = q / s - x (q . x) / (s^2 d rms) + e * gate.
  void gated_row_backward(const T* x, const T* g, T rms, T inv, T* dx) {
    const Index d = dim_;
    const T* sc = p_[0].value.data();
    const T* gt = p_[1].value.data();
    T* dsc = p_[0].grad.data();
    T* dgt = p_[1].grad.data();
    T dot = 0;
    for (Index j = 0; j < d; ++j) {
      const T sg = detail::sigmoid(gt[j] * x[j]), xn = x[j] * inv;
      dsc[j] += g[j] * xn * sg;
      dgt[j] += g[j] * sc[j] * xn * sg * (T(1) - sg) * x[j];
      dot += g[j] * sc[j] * sg * x[j];
    }
    const T coef = rms > T(0) ? dot * inv * inv / (T(d) * rms) : T(0);
    for (Index j = 0; j < d; ++j) {
      const T sg = detail::sigmoid(gt[j] * x[j]), xn = x[j] * inv;
      dx[j] = g[j] * sc[j] * sg * inv - x[j] * coef + g[j] * sc[j] * xn * sg * (T(1) - sg) * gt[j];
    }
  }

  void check(const Tensor<T>& x, const char* what) const {
    if (x.rank() == 0 || x.dim(-1) != dim_)
      fail<ShapeError>(what, ": expected last dim ", dim_, ", got shape ", shape_str(x.shape()));
  }

  NormType type_ = NormType::SimpleRMSNorm;
  Index dim_ = 0;
  Param<T> p_[2];  // the type's parameters in kNormParams order (unused slots empty)
};

}  // namespace tnn
