// Toeplitz neural operator (model.md §3): per (head, channel) coefficients
// t_k[h,c] = act(RPE(k)[h*Dh+c] * lambda[h,c]^|k|) (act: the official act_type, the identity by
// default), then the Toeplitz product of each channel of v [B, N, E] (channel index h*Dh+c),
// divided by the product of ones with `normalize` (docs/official.md §2.8). Coefficients and
// their spectrum are computed once per forward and reused by backward through the cache.
#pragma once

#include <cmath>
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/core/enum_table.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

// How lambda is obtained (config key `decay`, model.md §3); the tensor "gamma" [H, 1, Dh] holds
//   fixed:   lambda itself, every entry `gamma`, stored but not trained (the official use_decay);
//   learned: theta, lambda = gamma + (1 - gamma) * sigmoid(theta), trained (use_multi_decay);
//   none:    nothing (no "gamma" tensor), lambda = 1.
enum class TnoDecay { None, Fixed, Learned };

template <>
struct EnumTable<TnoDecay> {
  static constexpr EnumRow<TnoDecay> rows[] = {
      {TnoDecay::None, "none"}, {TnoDecay::Fixed, "fixed"}, {TnoDecay::Learned, "learned"}};
};

// A TNO's choices (config keys heads, causal, decay, gamma, normalize, act_type and the RPE's).
struct TnoOptions {
  Index heads = 1;  // H
  bool causal = true;
  TnoDecay decay = TnoDecay::Fixed;
  double gamma = 0.99;  // the fixed lambda, or the lower bound of a learned one
  RpeOptions rpe;
  bool normalize = false;               // y = T v / T 1 per channel (docs/official.md §2.8)
  Activation act = Activation::None;    // applied to every coefficient after the decay
};

// The decay parameter's handling, shared by Tno and Tno2d (layers/tno2d.hpp).
namespace detail {
// Checks the options' gamma and sizes (and, for Fixed, fills) "gamma" [heads, 1, head_dim].
template <class T>
void init_decay(Param<T>& gamma, Index head_dim, const TnoOptions& o) {
  if (o.decay == TnoDecay::None) return;
  if (!(o.gamma > 0 && o.gamma <= 1))
    fail<ConfigError>("config key 'gamma': expected a value in (0, 1], got ", o.gamma);
  gamma.init({o.heads, 1, head_dim}, o.decay == TnoDecay::Learned);
  if (o.decay == TnoDecay::Fixed) gamma.value.fill(static_cast<T>(o.gamma));
}
// Learned theta ~ N(0, 1) as tnn-pytorch's torch.randn(h, 1, dim); Fixed lambda reset to gamma.
template <class T>
void reset_decay(Param<T>& gamma, const TnoOptions& o, Rng& rng) {
  if (o.decay == TnoDecay::Learned)
    for (auto& v : gamma.value) v = static_cast<T>(rng.normal());
  if (o.decay == TnoDecay::Fixed) gamma.value.fill(static_cast<T>(o.gamma));
}
// lam [E] = lambda per channel (and dlam = d lambda / d theta for Learned) from "gamma";
// `what` names the layer in errors.
template <class T>
void decay_rates(const Param<T>& gamma, const TnoOptions& o, Tensor<T>& lam, Tensor<T>& dlam, const char* what) {
  const Index E = gamma.value.size();
  lam.resize({E});
  if (o.decay == TnoDecay::Fixed) {
    for (Index e = 0; e < E; ++e) {
      const T l = gamma.value[e];
      if (!(l >= T(0)) || !std::isfinite(l))
        fail<ValueError>(what, " decay gamma[", e, "]: expected a finite value >= 0, got ", l);
      lam[e] = l;
    }
    return;
  }
  dlam.resize({E});
  const T g0 = static_cast<T>(o.gamma);
  for (Index e = 0; e < E; ++e) {
    const T s = sigmoid(gamma.value[e]);
    lam[e] = g0 + (T(1) - g0) * s;
    dlam[e] = (T(1) - g0) * s * (T(1) - s);
  }
}
// The learned decay's gradient: t_r = RPE(r) lambda^a(r), so d t_r / d lambda = t_r a(r) / lambda
// (lambda >= gamma > 0); with dt [K, E] = dLoss/dt, gamma.grad[e] += sum_r dt t a(r) * dlam / lam.
// `distance(r)` is row r's |k| (1-D) or |di| + |dj| (2-D); acc [E] is scratch.
template <class T, class Distance>
void learned_decay_grad(Param<T>& gamma, const Tensor<T>& dt, const Tensor<T>& t, const Tensor<T>& lam,
                        const Tensor<T>& dlam, Tensor<T>& acc, Distance&& distance) {
  const Index E = lam.size(), K = t.size() / E;
  acc.resize({E});
  acc.set_zero();
  for (Index r = 0; r < K; ++r) {
    const T a = static_cast<T>(distance(r));
    for (Index e = 0; e < E; ++e) acc[e] += dt[r * E + e] * t[r * E + e] * a;
  }
  for (Index e = 0; e < E; ++e) gamma.grad[e] += acc[e] * dlam[e] / lam[e];
}

// act_type: t = act(t), the decayed coefficients kept in `pre` [K, E] for backward. Nothing
// happens (nothing is copied) for the identity.
template <class T>
void activate_coefficients(Activation act, Tensor<T>& t, Tensor<T>& pre) {
  if (act == Activation::None) return;
  pre = t;
  activation_forward(act, pre, t);
}

// normalize: the products of v and of ones share one Toeplitz call (one spectrum of t) by
// stacking: vm [B + Bm, P, E] = [v - mu; m], Bm = 1 row of ones, or with `lengths` (ragged rows)
// Bm = B rows, row b one at positions < lengths[b] and zero after, so a row's normalizer sums
// over its valid positions only. P = positions (N, or H*W on a grid). mu [B, E] is the mean of
// each row and channel over its valid positions: T(v - mu) / T1 + mu = Tv / T1 exactly (and the
// output does not depend on mu, so dv = T^T (dy / T1) still), but the gradient of the
// coefficients, sum_i dy_i (v_{i-k} - y_i) / (T1)_i, is then taken between smaller numbers: less
// cancellation in float when v has a mean (silu's outputs do).
template <class T>
void stack_with_ones(const Tensor<T>& v, Index P, Index E, const std::vector<Index>* lengths, Tensor<T>& vm,
                     Tensor<T>& mu) {
  const Index B = v.size() / (P * E), Bm = lengths ? B : 1, S = P * E;
  vm.resize({B + Bm, P, E});
  mu.resize({B, E});
  for (Index b = 0; b < B; ++b) {
    const Index len = lengths ? (*lengths)[static_cast<std::size_t>(b)] : P;
    const T* vb = v.data() + b * S;
    T* mb = mu.data() + b * E;
    std::fill(mb, mb + E, T(0));
    for (Index i = 0; i < len; ++i)
      for (Index e = 0; e < E; ++e) mb[e] += vb[i * E + e];
    for (Index e = 0; e < E; ++e) mb[e] /= static_cast<T>(len);
    T* ob = vm.data() + b * S;
    for (Index i = 0; i < len; ++i)
      for (Index e = 0; e < E; ++e) ob[i * E + e] = vb[i * E + e] - mb[e];
    std::copy(vb + len * E, vb + S, ob + len * E);  // padding as it is (the GTU has zeroed it): mu only
                                                     // where the mask is 1, so T(v - mu m) = Tv - mu T m
  }
  T* m = vm.data() + B * S;
  if (!lengths) {
    std::fill(m, m + S, T(1));
    return;
  }
  for (Index b = 0; b < B; ++b) {
    const Index len = (*lengths)[static_cast<std::size_t>(b)];
    std::fill(m + b * S, m + b * S + len * E, T(1));
    std::fill(m + b * S + len * E, m + (b + 1) * S, T(0));
  }
}
// y [B, ...] = p / d + mu from ym = [p; d] (stack_with_ones' layout); y resized to `shape`.
template <class T>
void divide_by_ones_rows(const Tensor<T>& ym, const Tensor<T>& mu, Index B, bool per_row, const Shape& shape,
                         Tensor<T>& y) {
  y.resize(shape);
  const Index S = y.size() / B, E = mu.size() / B;
  for (Index b = 0; b < B; ++b) {
    const T* p = ym.data() + b * S;
    const T* d = ym.data() + (B + (per_row ? b : 0)) * S;
    const T* mb = mu.data() + b * E;
    T* o = y.data() + b * S;
    for (Index i = 0; i < S; ++i) o[i] = p[i] / d[i] + mb[i % E];
  }
}
// The gradient of y = p / d (+ mu, a constant to the coefficients) for the stacked product:
// g [B + Bm, ...] with g_p = dy / d and g_d = -sum over the rows sharing d of dy * p / d^2.
template <class T>
void ones_rows_grad(const Tensor<T>& ym, const Tensor<T>& dy, Index B, bool per_row, Tensor<T>& g) {
  g.resize(ym.shape());
  const Index S = dy.size() / B;
  T* gd = g.data() + B * S;
  std::fill(gd, gd + (per_row ? B : 1) * S, T(0));  // g is reused from the last call: every d row is summed into
  for (Index b = 0; b < B; ++b) {
    const T* p = ym.data() + b * S;
    const Index mrow = per_row ? b : 0;
    const T* d = ym.data() + (B + mrow) * S;
    const T* gy = dy.data() + b * S;
    T* gp = g.data() + b * S;
    T* gdr = gd + mrow * S;
    for (Index i = 0; i < S; ++i) {
      const T q = gy[i] / d[i];
      gp[i] = q;
      gdr[i] -= q * p[i] / d[i];
    }
  }
}
// A TNO's width E = H * Dh; a ConfigError naming `layer` ("Tno", "Tno2d") unless both are positive.
inline Index tno_width(const char* layer, Index heads, Index head_dim) {
  if (heads <= 0 || head_dim <= 0)
    fail<ConfigError>(layer, ": expected positive heads and head_dim, got heads=", heads, ", head_dim=", head_dim);
  return heads * head_dim;
}

}  // namespace detail

template <class T, class Backend = DefaultFftBackend>
class Tno : public Visits<Tno<T, Backend>> {
 public:
  Tno() = default;
  // head_dim Dh channels per head; E = H * Dh.
  Tno(const TnoOptions& o, Index head_dim) : rpe(o.rpe, detail::tno_width("Tno", o.heads, head_dim)), opts_(o), head_dim_(head_dim) {
    detail::init_decay(gamma, head_dim, o);
  }

  Rpe<T> rpe;      // offset -> [H*Dh] coefficients
  Param<T> gamma;  // [H, 1, Dh] lambda (Fixed) or theta (Learned); empty for None
  // Direct or FFT product; Auto picks by length (toeplitz.hpp). Tests force each path.
  ToeplitzMethod method = ToeplitzMethod::Auto;

  const TnoOptions& options() const { return opts_; }
  Index heads() const { return opts_.heads; }
  Index head_dim() const { return head_dim_; }
  Index channels() const { return opts_.heads * head_dim_; }  // E
  bool causal() const { return opts_.causal; }
  TnoDecay decay() const { return opts_.decay; }

  // Learned theta ~ N(0, 1) as tnn-pytorch's torch.randn(h, 1, dim); Fixed lambda
  // reset to gamma; then the RPE (PyTorch Linear default, see Rpe::init_weights).
  void init_weights(Rng& rng) {
    detail::reset_decay(gamma, opts_, rng);
    rpe.init_weights(rng);
  }

  struct Cache {
    typename Rpe<T>::Cache rpe;
    Tensor<T> t;     // [K, E] coefficients t_k (rows as in toeplitz.hpp)
    Tensor<T> tpre;  // [K, E] t before the coefficient activation (act_type other than none)
    Tensor<T> pw;    // [K, E] lambda^|k| (decay only), for pw_n, pw_causal and the rates pw_lam
    Index pw_n = 0;
    bool pw_causal = false;
    Tensor<T> pw_lam;
    Tensor<T> lam;   // [E]    lambda (decay only)
    Tensor<T> loglam;  // [E]  log lambda (decay only)
    Tensor<T> dlam;  // [E]    d lambda / d theta (Learned only)
    ToeplitzOp<T, Backend> op;  // holds the spectrum of t and what its backward needs
    Index n = 0;                // sequence length of the last forward
    // normalize: the stacked input [v - mu; ones] and its product [T (v - mu); T 1] (detail::stack_with_ones)
    Tensor<T> vm;       // [B + Bm, N, E]
    Tensor<T> ym;       // [B + Bm, N, E]
    Tensor<T> mu;       // [B, E] each row's mean of v over its valid positions
    bool per_row = false;  // Bm = B (a ragged batch) rather than 1
    // backward workspaces, kept so a training step reuses them
    Tensor<T> dt;   // [K, E] dLoss/dt, then dLoss/dRPE(k) in place
    Tensor<T> acc;  // [E]    dLoss/dlambda
    Tensor<T> gm;   // [B + Bm, N, E] normalize: dLoss/d[T v; T 1]
    Tensor<T> dvm;  // [B + Bm, N, E] normalize: its transposed product
  };

  // The coefficients t [K, E] of a length-n sequence, RPE + decay (+ act_type), without the
  // Toeplitz product; rows as in toeplitz.hpp (causal: row k holds t_k, k = 0..n-1;
  // otherwise row k + n-1 holds t_k, k = -(n-1)..n-1). With par_type 1 a row depends on its
  // offset k only, never on n, so exact causal incremental decoding (model.md §11),
  // y_t = sum_{j<=t} t_{t-j} v_j, can fetch coefficients(max_len) once and read
  // row t-j. `ws` is scratch (its rpe/pw/lam/tpre parts are overwritten; t may be ws.t).
  void coefficients(Index n, Tensor<T>& t, Cache& ws) const {
    if (n < 1) fail<ShapeError>("tno sequence length: expected >= 1, got ", n);
    const bool causal = opts_.causal;
    rpe.forward(n, causal, t, ws.rpe);  // [K, E] RPE(k)
    apply_decay(n, t, ws);
    detail::activate_coefficients(opts_.act, t, ws.tpre);
  }
  // Convenience for decoders: allocates its own scratch.
  Tensor<T> coefficients(Index n) const {
    Cache ws;
    Tensor<T> t;
    coefficients(n, t, ws);
    return t;
  }

  // v, y: [B, N, E] (y must not alias v). `lengths` (a ragged batch: row b valid below
  // lengths[b]) matters only with normalize, whose normalizer then sums over valid positions.
  void forward(const Tensor<T>& v, Tensor<T>& y, Cache& c, const std::vector<Index>* lengths = nullptr) const {
    check_input(v, "tno v");
    const Index n = v.dim(1), E = channels();
    coefficients(n, c.t, c);
    c.op.prepare(c.t, n, opts_.causal, method);
    if (opts_.normalize) {
      c.per_row = lengths != nullptr && !lengths->empty();
      detail::stack_with_ones(v, n, E, c.per_row ? lengths : nullptr, c.vm, c.mu);
      c.op.forward(c.vm, c.ym, true);
      detail::divide_by_ones_rows(c.ym, c.mu, v.dim(0), c.per_row, v.shape(), y);
    } else {
      c.op.forward(v, y, true);
    }
    c.n = n;
  }

  // v: the forward input, dy [B, N, E]. Accumulates the RPE grads and, for Learned,
  // the theta grad; dv [B, N, E] overwritten when non-null.
  void backward(const Tensor<T>& v, const Tensor<T>& dy, Cache& c, Tensor<T>* dv) {
    check_input(v, "tno v");
    if (dy.shape() != v.shape())
      fail<ShapeError>("tno dy: expected shape ", shape_str(v.shape()), " (as v), got ", shape_str(dy.shape()));
    if (c.n != v.dim(1))
      fail<Error>("tno backward: expected the forward of a length-", v.dim(1), " sequence first, got ",
                  c.n == 0 ? std::string("none") : "length " + std::to_string(c.n));
    if (opts_.normalize) {
      detail::ones_rows_grad(c.ym, dy, v.dim(0), c.per_row, c.gm);
      c.op.backward(c.gm, dv ? &c.dvm : nullptr, &c.dt);  // dt [K, E]: both products' terms
      if (dv) {
        dv->resize(v.shape());
        std::copy(c.dvm.data(), c.dvm.data() + v.size(), dv->data());
      }
    } else {
      c.op.backward(dy, dv, &c.dt);  // dt [K, E]
    }
    const bool act = opts_.act != Activation::None;
    if (act) activation_backward(opts_.act, c.tpre, c.dt, c.dt);  // dLoss/d(decayed coefficient)
    if (opts_.decay == TnoDecay::Learned) {
      const Index zero_row = opts_.causal ? 0 : c.n - 1;
      detail::learned_decay_grad(gamma, c.dt, act ? c.tpre : c.t, c.lam, c.dlam, c.acc,
                                 [&](Index r) { return r > zero_row ? r - zero_row : zero_row - r; });  // |k|
    }
    if (opts_.decay != TnoDecay::None) c.dt.vec().array() *= c.pw.vec().array();  // now dLoss/dRPE(k)
    rpe.backward(c.dt, c.rpe);
  }

 private:
  friend Visits<Tno<T, Backend>>;
  // t [K, E] = RPE(k) * lambda^|k| in place (nothing without a decay). The powers depend on
  // n, causal and lambda only, so ws keeps them: a fixed decay computes them once, and a
  // learned one whenever its rates change (the same values either way).
  void apply_decay(Index n, Tensor<T>& t, Cache& ws) const {
    const bool causal = opts_.causal;
    if (opts_.decay == TnoDecay::None) return;
    const Index K = t.rows(), E = channels();
    detail::decay_rates(gamma, opts_, ws.lam, ws.dlam, "tno");
    const bool fresh = ws.pw_n != n || ws.pw_causal != causal || ws.pw_lam.shape() != ws.lam.shape() ||
                       !std::equal(ws.lam.begin(), ws.lam.end(), ws.pw_lam.begin());
    if (fresh) {
      ws.pw_n = 0;  // invalid until the powers below are complete
      ws.pw.resize({K, E});
      ws.loglam.resize({E});
      for (Index e = 0; e < E; ++e) ws.loglam[e] = std::log(ws.lam[e]);  // -inf for lambda = 0
    }
    // lambda^|k| = exp(|k| log lambda): underflows to 0 at long range, as it should.
    // The k = 0 row is set to 1 explicitly, so lambda = 0 gives 1, 0, 0, ...
    const Index zero_row = causal ? 0 : n - 1;
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    const Eigen::Map<const Arr> loglam(ws.loglam.data(), E);
    const T kLogMin = std::log(std::numeric_limits<T>::min());
    // Rows are independent: split over threads for long sequences (Eigen's vectorized exp).
    ::tnn::parallel_for(n, n * E >= grain::kDecayPowersMinWork, [&](Index a) {
      T* row = ws.pw.data() + (zero_row + a) * E;
      Eigen::Map<Arr> pw(row, E);
      if (fresh) {
        if (a == 0)
          pw.setOnes();
        else  // below the normal range flushed to 0 (Eigen's double exp would not reach 0)
          pw = (static_cast<T>(a) * loglam >= kLogMin).select((static_cast<T>(a) * loglam).exp(), T(0));
        if (!causal && a > 0) std::copy(row, row + E, ws.pw.data() + (zero_row - a) * E);
      }
      Eigen::Map<Arr>(t.data() + (zero_row + a) * E, E) *= pw;
      if (!causal && a > 0) Eigen::Map<Arr>(t.data() + (zero_row - a) * E, E) *= pw;
    });
    if (fresh) {
      ws.pw_lam = ws.lam;
      ws.pw_causal = causal;
      ws.pw_n = n;
    }
  }

  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    if (m.opts_.decay != TnoDecay::None) f(prefix + "gamma", m.gamma);
    m.rpe.visit(prefix + "rpe.", f);
  }

  void check_input(const Tensor<T>& v, const char* what) const {
    if (v.rank() != 3 || v.dim(2) != channels() || v.dim(1) < 1)
      fail<ShapeError>(what, ": expected shape [B, N >= 1, ", channels(), "], got ", shape_str(v.shape()));
  }

  TnoOptions opts_;
  Index head_dim_ = 0;
};

}  // namespace tnn
