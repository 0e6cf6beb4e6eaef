// The 2-D Toeplitz neural operator: per (head, channel) coefficients
// t[di, dj][h,c] = act(RPE2d(di, dj)[h*Dh+c] * lambda[h,c]^(|di|+|dj|)) (act: act_type, the
// identity by default), then the 2-D Toeplitz product (core/toeplitz2d.hpp) of each channel of v
// over an H x W grid, divided by the product of ones with `normalize`.
// v and y are [B, H*W, E], the grid flattened row-major (position i*W + j), so the
// 1-D Gtu runs it unchanged: Gtu<T, Backend, Tno2d<T, Backend>> is the 2-D GTU.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz2d.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/layers/rpe2d.hpp"
#include "tnn/layers/tno.hpp"  // TnoDecay

namespace tnn {

template <class T, class Backend = DefaultFftBackend>
class Tno2d : public Visits<Tno2d<T, Backend>> {
 public:
  Tno2d() = default;
  // head_dim Dh channels per head over a grid_h x grid_w grid. A grid has no "past": the
  // options' causal must be false.
  Tno2d(const TnoOptions& o, Index head_dim, Index grid_h, Index grid_w)
      : rpe(o.rpe, detail::tno_width("Tno2d", o.heads, head_dim), /*offset_dims=*/2), opts_(o), head_dim_(head_dim),
        grid_h_(grid_h), grid_w_(grid_w) {
    if (grid_h < 1 || grid_w < 1) fail<ConfigError>("Tno2d: expected a grid of at least 1 x 1, got ", grid_h, " x ", grid_w);
    if (o.causal) fail<ConfigError>("Tno2d: a 2-D TNO mixes a grid in every direction, expected causal false, got true");
    if (o.rpe.par_type != 1)
      fail<ConfigError>("config key 'par_type': expected 1 for a 2-D TNO (its RPE is fed the offset pair), got ",
                        o.rpe.par_type);
    detail::init_decay(gamma, head_dim, o);
  }

  Rpe<T> rpe;      // (di, dj) -> [H*Dh] coefficients
  Param<T> gamma;  // [H, 1, Dh] lambda (Fixed) or theta (Learned); empty for None
  // Direct or FFT product; Auto picks by grid size (toeplitz2d.hpp). Tests force each path.
  ToeplitzMethod method = ToeplitzMethod::Auto;

  const TnoOptions& options() const { return opts_; }
  Index heads() const { return opts_.heads; }
  Index head_dim() const { return head_dim_; }
  Index channels() const { return opts_.heads * head_dim_; }  // E
  Index grid_h() const { return grid_h_; }
  Index grid_w() const { return grid_w_; }
  TnoDecay decay() const { return opts_.decay; }

  // As Tno::init_weights: Learned theta ~ N(0, 1), Fixed lambda reset, then the RPE.
  void init_weights(Rng& rng) {
    detail::reset_decay(gamma, opts_, rng);
    rpe.init_weights(rng);
  }

  struct Cache {
    typename Rpe<T>::Cache rpe;
    Tensor<T> t;       // [2H-1, 2W-1, E] coefficients (as [K, E] while the RPE writes them)
    Tensor<T> tpre;    // [K, E] t before the coefficient activation (act_type other than none)
    Tensor<T> pw;      // [K, E] lambda^(|di|+|dj|) (decay only)
    Tensor<T> lam;     // [E]    lambda (decay only)
    Tensor<T> dlam;    // [E]    d lambda / d theta (Learned only)
    Toeplitz2dOp<T, Backend> op;  // holds the spectrum of t and what its backward needs
    Index batch = -1;             // batch of the last forward
    // workspaces, kept so a training step reuses them
    Tensor<T> v4, y4;  // [B, H, W, E] the input and output as grids ([B + 1, ...] with normalize: + ones)
    Tensor<T> g4;      // [B + 1, H, W, E] normalize: dLoss/d[T (v - mu); T 1]
    Tensor<T> mu;      // [B, E] normalize: each image's mean of v (detail::stack_with_ones)
    Tensor<T> dt;      // [2H-1, 2W-1, E] dLoss/dt, then dLoss/dRPE as [K, E]
    Tensor<T> acc;     // [E] dLoss/dlambda
  };

  // The coefficients t [2H-1, 2W-1, E] of the grid, RPE + decay, without the product.
  void coefficients(Tensor<T>& t, Cache& ws) const {
    rpe2d_offsets(grid_h_, grid_w_, ws.rpe.pos);
    rpe.forward(ws.rpe.pos, t, ws.rpe);  // [K, E] RPE(di, dj)
    const Index K = t.rows(), E = channels(), tw = 2 * grid_w_ - 1;
    if (opts_.decay != TnoDecay::None) {
      detail::decay_rates(gamma, opts_, ws.lam, ws.dlam, "tno2d");
      ws.pw.resize({K, E});
      for (Index r = 0; r < K; ++r) {
        const Index a = std::abs(r / tw - (grid_h_ - 1)) + std::abs(r % tw - (grid_w_ - 1));  // |di| + |dj|
        T* pw = ws.pw.data() + r * E;
        T* tr = t.data() + r * E;
        for (Index e = 0; e < E; ++e) {
          // lambda^a, exactly 1 at a = 0 (also for lambda = 0); flushed to 0 below the normal range
          const T p = a == 0 ? T(1) : power(ws.lam[e], a);
          pw[e] = p;
          tr[e] *= p;
        }
      }
    }
    detail::activate_coefficients(opts_.act, t, ws.tpre);
    t.resize({2 * grid_h_ - 1, tw, E});  // same numbers, the kernel's layout
  }
  Tensor<T> coefficients() const {
    Cache ws;
    Tensor<T> t;
    coefficients(t, ws);
    return t;
  }

  // v, y: [B, H*W, E] (y must not alias v). `lengths` (the GTU's ragged rows) is read by
  // nothing but normalize, which has no ragged form on a grid and refuses them.
  void forward(const Tensor<T>& v, Tensor<T>& y, Cache& c, const std::vector<Index>* lengths = nullptr) const {
    check_input(v, "tno2d v");
    if (opts_.normalize && lengths && !lengths->empty())
      fail<ValueError>("tno2d normalize: a grid has no ragged rows, expected no lengths, got ", lengths->size());
    const Index B = v.dim(0), E = channels(), P = grid_h_ * grid_w_;
    coefficients(c.t, c);
    c.op.prepare(c.t, grid_h_, grid_w_, method);
    if (opts_.normalize) {
      detail::stack_with_ones(v, P, E, nullptr, c.v4, c.mu);  // [B + 1, H*W, E]
      c.v4.resize({B + 1, grid_h_, grid_w_, E});              // same numbers, the kernel's layout
      c.op.forward(c.v4, c.y4, true);
      detail::divide_by_ones_rows(c.y4, c.mu, B, false, Shape{B, P, E}, y);
    } else {
      c.v4.resize({B, grid_h_, grid_w_, E});
      std::copy(v.begin(), v.end(), c.v4.begin());
      c.op.forward(c.v4, c.y4, true);
      y.resize({B, P, E});
      std::copy(c.y4.begin(), c.y4.end(), y.begin());
    }
    c.batch = B;
  }

  // v: the forward input, dy [B, H*W, E]. Accumulates the RPE grads and, for Learned,
  // the theta grad; dv [B, H*W, E] overwritten when non-null.
  void backward(const Tensor<T>& v, const Tensor<T>& dy, Cache& c, Tensor<T>* dv) {
    check_input(v, "tno2d v");
    if (dy.shape() != v.shape())
      fail<ShapeError>("tno2d dy: expected shape ", shape_str(v.shape()), " (as v), got ", shape_str(dy.shape()));
    if (c.batch != v.dim(0))
      fail<Error>("tno2d backward: expected the forward of a batch of ", v.dim(0), " first, got ",
                  c.batch < 0 ? std::string("none") : std::to_string(c.batch));
    const Index B = v.dim(0), E = channels(), K = c.t.size() / E, tw = 2 * grid_w_ - 1;
    if (opts_.normalize) {
      detail::ones_rows_grad(c.y4, dy, B, false, c.g4);  // [B + 1, H, W, E]
      if (dv) {
        c.op.backward(c.g4, &c.v4, &c.dt);  // v4 (the stacked input) is not needed any more
        dv->resize(v.shape());
        std::copy(c.v4.data(), c.v4.data() + v.size(), dv->data());
      } else {
        c.op.backward(c.g4, nullptr, &c.dt);
      }
    } else {
      c.y4.resize({B, grid_h_, grid_w_, E});  // the grid view of dy
      std::copy(dy.begin(), dy.end(), c.y4.begin());
      if (dv) {
        dv->resize({B, grid_h_, grid_w_, E});
        c.op.backward(c.y4, dv, &c.dt);
        dv->resize(v.shape());  // same numbers, [B, H*W, E]
      } else {
        c.op.backward(c.y4, nullptr, &c.dt);
      }
    }
    c.dt.resize({K, E});
    const bool act = opts_.act != Activation::None;
    if (act) activation_backward(opts_.act, c.tpre, c.dt, c.dt);  // dLoss/d(decayed coefficient)
    if (opts_.decay == TnoDecay::Learned)
      detail::learned_decay_grad(gamma, c.dt, act ? c.tpre : c.t, c.lam, c.dlam, c.acc, [&](Index r) {
        return std::abs(r / tw - (grid_h_ - 1)) + std::abs(r % tw - (grid_w_ - 1));  // |di| + |dj|
      });
    if (opts_.decay != TnoDecay::None) c.dt.vec().array() *= c.pw.vec().array();  // now dLoss/dRPE
    rpe.backward(c.dt, c.rpe);
  }

 private:
  friend Visits<Tno2d<T, Backend>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    if (m.opts_.decay != TnoDecay::None) f(prefix + "gamma", m.gamma);
    m.rpe.visit(prefix + "rpe.", f);
  }

  void check_input(const Tensor<T>& v, const char* what) const {
    if (v.rank() != 3 || v.dim(1) != grid_h_ * grid_w_ || v.dim(2) != channels())
      fail<ShapeError>(what, ": expected shape [B, ", grid_h_ * grid_w_, " (", grid_h_, " x ", grid_w_, "), ",
                       channels(), "], got ", shape_str(v.shape()));
  }
  static T power(T lam, Index a) {
    if (!(lam > T(0))) return T(0);
    const T l = static_cast<T>(a) * std::log(lam);
    return l >= std::log(std::numeric_limits<T>::min()) ? std::exp(l) : T(0);
  }

  TnoOptions opts_;
  Index head_dim_ = 0, grid_h_ = 0, grid_w_ = 0;
};

}  // namespace tnn
