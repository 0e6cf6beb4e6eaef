// Gated Toeplitz unit, the token mixer of spec section 4:
//   u = act(x Wu^T + bu), v = act(x Wv^T + bv), y = TNO(v), o = (u * y) Wo^T + bo,
// widths D -> E -> D. Parameter names u_proj, v_proj, o, toep as in tnn-pytorch's Gtu.
#pragma once

#include <cstdint>
#include <string>

#include "tnn/core/tensor.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/model/config.hpp"
#include "tnn/train/rng.hpp"

namespace tnn {

template <class T, class Backend = FftwBackend>
class Gtu {
 public:
  Gtu() = default;
  explicit Gtu(const TnnConfig& cfg)
      : u_proj(cfg.dim, cfg.inner_dim()),
        v_proj(cfg.dim, cfg.inner_dim()),
        o(cfg.inner_dim(), cfg.dim),
        toep(cfg),
        act_(cfg.gtu_act) {}

  Linear<T> u_proj;  // D -> E, the gate
  Linear<T> v_proj;  // D -> E, the TNO input
  Linear<T> o;       // E -> D
  Tno<T, Backend> toep;

  Index dim() const { return u_proj.in_features(); }
  Index inner_dim() const { return u_proj.out_features(); }
  Activation activation() const { return act_; }

  // PyTorch-like: every Linear (u_proj, v_proj, o, then the RPE's) weight and bias
  // uniform in [-1/sqrt(in), 1/sqrt(in)); multi-decay theta ~ N(0, 1); fixed decay
  // reset to gamma; norms 1 / 0. Draws in that order from rng.
  void init_weights(Rng& rng) {
    u_proj.init_uniform(rng);
    v_proj.init_uniform(rng);
    o.init_uniform(rng);
    toep.init_weights(rng);
  }
  void init_weights(std::uint64_t seed) {
    Rng rng(seed);
    init_weights(rng);
  }

  struct Cache {
    Tensor<T> u_pre;  // [B, N, E] x Wu^T + bu
    Tensor<T> u;      // [B, N, E] act(u_pre)
    Tensor<T> v_pre;  // [B, N, E] x Wv^T + bv
    Tensor<T> v;      // [B, N, E] act(v_pre), the TNO input
    Tensor<T> y;      // [B, N, E] TNO(v)
    Tensor<T> z;      // [B, N, E] u * y, the input of o
    typename Tno<T, Backend>::Cache tno;
    // backward workspaces, kept so a training step reuses them
    Tensor<T> dz;  // [B, N, E] dLoss/dz, then dLoss/dy in place
    Tensor<T> du;  // [B, N, E] dLoss/du, then dLoss/du_pre in place
    Tensor<T> dv;  // [B, N, E] dLoss/dv, then dLoss/dv_pre in place
  };

  // x, y: [B, N, D] (y must not alias x).
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c) const {
    check_input(x, "gtu x");
    u_proj.forward(x, c.u_pre);
    activation_forward(act_, c.u_pre, c.u);
    v_proj.forward(x, c.v_pre);
    activation_forward(act_, c.v_pre, c.v);
    toep.forward(c.v, c.y, c.tno);
    c.z.resize(c.u.shape());
    c.z.vec().array() = c.u.vec().array() * c.y.vec().array();
    o.forward(c.z, y);
  }

  // x: the forward input, dy [B, N, D]. Accumulates every grad; dx [B, N, D]
  // overwritten when non-null.
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Cache& c, Tensor<T>* dx) {
    check_input(x, "gtu x");
    if (dy.shape() != x.shape())
      fail<ShapeError>("gtu dy: expected shape ", shape_str(x.shape()), " (as x), got ", shape_str(dy.shape()));
    if (c.z.rank() != 3 || c.z.dim(0) != x.dim(0) || c.z.dim(1) != x.dim(1))
      fail<ShapeError>("gtu cache: expected the forward of this x ", shape_str(x.shape()), ", got a cache of ",
                       shape_str(c.z.shape()));
    o.backward(c.z, dy, &c.dz);
    c.du.resize(c.dz.shape());
    c.du.vec().array() = c.dz.vec().array() * c.y.vec().array();
    c.dz.vec().array() *= c.u.vec().array();  // dLoss/dy of the TNO
    toep.backward(c.v, c.dz, c.tno, &c.dv);
    activation_backward(act_, c.u_pre, c.du, c.du);
    activation_backward(act_, c.v_pre, c.dv, c.dv);
    u_proj.backward(x, c.du, dx);
    v_proj.backward(x, c.dv, nullptr);
    if (dx) v_proj.input_grad(c.dv, *dx, T(1));
  }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    u_proj.visit(prefix + "u_proj.", f);
    v_proj.visit(prefix + "v_proj.", f);
    o.visit(prefix + "o.", f);
    toep.visit(prefix + "toep.", f);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) const {
    u_proj.visit(prefix + "u_proj.", f);
    v_proj.visit(prefix + "v_proj.", f);
    o.visit(prefix + "o.", f);
    toep.visit(prefix + "toep.", f);
  }

 private:
  void check_input(const Tensor<T>& x, const char* what) const {
    if (x.rank() != 3 || x.dim(2) != dim() || x.dim(1) < 1)
      fail<ShapeError>(what, ": expected shape [B, N >= 1, ", dim(), "], got ", shape_str(x.shape()));
  }

  Activation act_ = Activation::Silu;
};

}  // namespace tnn
