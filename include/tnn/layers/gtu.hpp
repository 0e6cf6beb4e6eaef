// Gated Toeplitz unit, the token mixer of model.md §4:
//   u = act(x Wu^T + bu), v = act(x Wv^T + bv), y = TNO(v), o = norm(u * y) Wo^T + bo,
// widths D -> E -> D; the norm over E only with `use_norm` (docs/official.md §2.7), the biases
// only with `bias`. Parameter names u_proj, v_proj, o, norm, toep as in tnn-pytorch's Gtu.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/tensor.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

// What a Gtu's forward runs in place of its TNO when Cache::mixer is set: v -> y,
// both [B, N, E]. A decoder feeds one position at a time and keeps the history itself.
template <class T>
class GtuSequenceMixer {
 public:
  virtual void mix(const Tensor<T>& v, Tensor<T>& y) = 0;

 protected:
  ~GtuSequenceMixer() = default;
};

// A GTU's choices apart from its TNO (config keys dim, gtu_act, bias, use_norm, norm_type).
struct GtuOptions {
  Index dim = 0;                        // D
  Activation act = Activation::Silu;    // of the gate u and the values v
  bool bias = true;                     // biases of u_proj, v_proj and o
  bool use_norm = false;                // a norm over E before o
  NormType norm = NormType::SimpleRMSNorm;  // that norm's type
};

// Mixer: the token mixer on v [B, N, E], Tno by default; Tno2d (layers/tno2d.hpp)
// over the flattened grid makes the 2-D GTU (layers/gtu2d.hpp).
template <class T, class Backend = DefaultFftBackend, class Mixer = Tno<T, Backend>>
class Gtu : public Visits<Gtu<T, Backend, Mixer>> {
 public:
  Gtu() = default;
  // dim D -> inner E, the gate/value activation `act`; the TNO (E = its channels) is moved in.
  Gtu(Index dim, Activation act, Mixer tno) : Gtu(GtuOptions{dim, act}, std::move(tno)) {}
  Gtu(const GtuOptions& g, Mixer tno)
      : u_proj(g.dim, tno.channels(), g.bias),
        v_proj(g.dim, tno.channels(), g.bias),
        o(tno.channels(), g.dim, g.bias),
        toep(std::move(tno)),
        act_(g.act),
        use_norm_(g.use_norm) {
    if (g.use_norm) norm = Norm<T>(g.norm, toep.channels());
  }

  Linear<T> u_proj;  // D -> E, the gate
  Linear<T> v_proj;  // D -> E, the TNO input
  Linear<T> o;       // E -> D
  Norm<T> norm;      // over E, before o (use_norm only)
  Mixer toep;

  Index dim() const { return u_proj.in_features(); }
  Index inner_dim() const { return u_proj.out_features(); }
  Activation activation() const { return act_; }
  bool use_norm() const { return use_norm_; }

  // PyTorch-like: every Linear (u_proj, v_proj, o, then the RPE's) weight and bias
  // uniform in [-1/sqrt(in), 1/sqrt(in)); multi-decay theta ~ N(0, 1); fixed decay
  // reset to gamma; norms 1 / 0. Draws in that order from rng.
  void init_weights(Rng& rng) {
    u_proj.init_uniform(rng);
    v_proj.init_uniform(rng);
    o.init_uniform(rng);
    if (use_norm_) norm.reset_parameters();
    toep.init_weights(rng);
  }
  void init_weights(std::uint64_t seed) {
    Rng rng(seed);
    init_weights(rng);
  }

  // The projections are stored without their bias, which is added where they are
  // read: the passes that apply the activation already touch every element.
  struct Cache {
    Tensor<T> u_pre;  // [B, N, E] x Wu^T (+ bu where read)
    Tensor<T> v_pre;  // [B, N, E] x Wv^T (+ bv where read)
    Tensor<T> v;      // [B, N, E] act(v_pre + bv), the TNO input
    Tensor<T> y;      // [B, N, E] TNO(v)
    Tensor<T> z;      // [B, N, E] act(u_pre + bu) * y, the input of o (of the norm with use_norm)
    Tensor<T> zn;     // [B, N, E] norm(z), the input of o (use_norm only)
    typename Norm<T>::Cache norm;
    typename Mixer::Cache tno;
    // backward workspaces, kept so a training step reuses them
    Tensor<T> dz;  // [B, N, E] dLoss/dz, then dLoss/dy in place
    Tensor<T> du;  // [B, N, E] dLoss/du_pre
    Tensor<T> dv;  // [B, N, E] dLoss/dv, then dLoss/dv_pre in place
    Tensor<T> dzn;  // [B, N, E] dLoss/dzn (use_norm only)
    // Ragged batches: row b's valid length, positions >= lengths[b] zeroed at the TNO
    // input (and their dv in backward). Empty: every position valid.
    std::vector<Index> lengths;  // [B]
    // When set, replaces the TNO in forward (not owned): an incremental decoder's causal
    // sum over its own history for one position (infer/decoder.hpp). Null: the TNO.
    GtuSequenceMixer<T>* mixer = nullptr;
  };

  // x, y: [B, N, D] (y must not alias x). With `lengths` (I32 [B], each in [1, N]),
  // row b's positions >= lengths[b] are zeroed at the TNO input, so they contribute
  // nothing to any position < lengths[b]: those outputs equal the row run alone at its
  // length (the ragged-batch contract of a bidirectional classifier).
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c, const Tensor<std::int32_t>* lengths = nullptr) const {
    check_input(x, "gtu x");
    set_lengths(x, lengths, c);
    u_proj.product(x, c.u_pre);
    v_proj.product(x, c.v_pre);
    const Index rows = x.rows(), E = inner_dim();
    const Activation act = act_;
    c.v.resize(c.v_pre.shape());
    {
      const T* bv = bias_of(v_proj);
      const T* vp = c.v_pre.data();
      T* v = c.v.data();
      detail::for_each_chunk(rows, E, [&](Index off, Index c0, Index n) {
        alignas(64) T pre[detail::kActChunk] = {};  // (zeroed: GCC 12 -O2 cannot see add_bias write it)
        add_bias(vp + off, bv, c0, n, pre);
        detail::act_eval(act, pre, n, v + off, static_cast<T*>(nullptr));
      });
    }
    if (!c.lengths.empty()) zero_padding(c.lengths, c.v);
    if (c.mixer)
      c.mixer->mix(c.v, c.y);
    else
      toep.forward(c.v, c.y, c.tno, &c.lengths);
    c.z.resize(c.u_pre.shape());
    {
      const T* bu = bias_of(u_proj);
      const T* up = c.u_pre.data();
      const T* yy = c.y.data();
      T* z = c.z.data();
      detail::for_each_chunk(rows, E, [&](Index off, Index c0, Index n) {
        // (zeroed: GCC 12 at -O2 cannot see that add_bias writes pre before act_eval reads it)
        alignas(64) T pre[detail::kActChunk] = {}, u[detail::kActChunk];
        add_bias(up + off, bu, c0, n, pre);
        detail::act_eval(act, pre, n, u, static_cast<T*>(nullptr));
        for (Index j = 0; j < n; ++j) z[off + j] = u[j] * yy[off + j];
      });
    }
    if (use_norm_) {
      norm.forward(c.z, c.zn, c.norm);
      o.forward(c.zn, y);
    } else {
      o.forward(c.z, y);
    }
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
    if (use_norm_) {
      o.backward(c.zn, dy, &c.dzn);
      norm.backward(c.z, c.dzn, c.norm, c.dz);
    } else {
      o.backward(c.z, dy, &c.dz);
    }
    const Index rows = x.rows(), E = inner_dim();
    const Activation act = act_;
    // z = u * y: du_pre = dz * y * act'(u_pre), dy_tno = dz * u, one pass.
    c.du.resize(c.dz.shape());
    {
      const T* bu = bias_of(u_proj);
      const T* up = c.u_pre.data();
      const T* yy = c.y.data();
      T* dz = c.dz.data();
      T* du = c.du.data();
      detail::for_each_chunk(rows, E, [&](Index off, Index c0, Index n) {
        if (n <= 0) return;  // never (n >= 1): tells GCC 12 that pre is written, no -Wmaybe-uninitialized
        alignas(64) T pre[detail::kActChunk], u[detail::kActChunk], d[detail::kActChunk];
        add_bias(up + off, bu, c0, n, pre);
        detail::act_eval(act, pre, n, u, d);
        for (Index j = 0; j < n; ++j) {
          const T g = dz[off + j];
          du[off + j] = g * yy[off + j] * d[j];
          dz[off + j] = g * u[j];
        }
      });
    }
    toep.backward(c.v, c.dz, c.tno, &c.dv);
    if (!c.lengths.empty()) zero_padding(c.lengths, c.dv);  // v there is a constant 0
    {
      const T* bv = bias_of(v_proj);
      const T* vp = c.v_pre.data();
      T* dv = c.dv.data();
      detail::for_each_chunk(rows, E, [&](Index off, Index c0, Index n) {
        if (n <= 0) return;  // never (n >= 1): tells GCC 12 that pre is written, no -Wmaybe-uninitialized
        alignas(64) T pre[detail::kActChunk]{}, d[detail::kActChunk];  // {}: GCC 12 -O3 still warns without it
        add_bias(vp + off, bv, c0, n, pre);
        detail::act_eval(act, pre, n, static_cast<T*>(nullptr), d);
        for (Index j = 0; j < n; ++j) dv[off + j] *= d[j];
      });
    }
    u_proj.backward(x, c.du, dx);
    v_proj.backward(x, c.dv, nullptr);
    if (dx) v_proj.input_grad(c.dv, *dx, T(1));
  }

 private:
  friend Visits<Gtu<T, Backend, Mixer>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.u_proj.visit(prefix + "u_proj.", f);
    m.v_proj.visit(prefix + "v_proj.", f);
    m.o.visit(prefix + "o.", f);
    if (m.use_norm_) m.norm.visit(prefix + "norm.", f);
    m.toep.visit(prefix + "toep.", f);
  }

  // A projection's bias, or null without one (bias false): the fused passes add it where they
  // read the product.
  static const T* bias_of(const Linear<T>& l) { return l.has_bias() ? l.bias.value.data() : nullptr; }
  // pre[0:n] = p[0:n] + b[c0:c0+n], or p itself without a bias.
  static void add_bias(const T* p, const T* b, Index c0, Index n, T* pre) {
    if (b)
      for (Index j = 0; j < n; ++j) pre[j] = p[j] + b[c0 + j];
    else
      std::copy(p, p + n, pre);
  }

  void check_input(const Tensor<T>& x, const char* what) const {
    if (x.rank() != 3 || x.dim(2) != dim() || x.dim(1) < 1)
      fail<ShapeError>(what, ": expected shape [B, N >= 1, ", dim(), "], got ", shape_str(x.shape()));
  }

  // Row b of t [B, N, C]: positions >= lengths[b] set to 0.
  static void zero_padding(const std::vector<Index>& lengths, Tensor<T>& t) {
    const Index N = t.dim(1), C = t.dim(2);
    for (std::size_t b = 0; b < lengths.size(); ++b) {
      T* row = t.data() + (static_cast<Index>(b) * N + lengths[b]) * C;
      std::fill(row, row + (N - lengths[b]) * C, T(0));
    }
  }

  static void set_lengths(const Tensor<T>& x, const Tensor<std::int32_t>* lengths, Cache& c) {
    read_row_lengths(lengths, x.dim(0), x.dim(1), "gtu lengths", c.lengths);
  }

  Activation act_ = Activation::Silu;
  bool use_norm_ = false;
};

}  // namespace tnn
