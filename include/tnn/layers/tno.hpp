// Toeplitz neural operator (model.md §3): per (head, channel) coefficients
// t_k[h,c] = RPE(k)[h*Dh+c] * lambda[h,c]^|k|, then the Toeplitz product of each
// channel of v [B, N, E] (channel index h*Dh+c). Coefficients and their spectrum
// are computed once per forward and reused by backward through the cache.
#pragma once

#include <cmath>
#include <limits>
#include <string>

#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

// How lambda is obtained (model.md §3); the tensor "gamma" [H, 1, Dh] holds
//   Fixed:   lambda itself, every entry cfg.gamma, stored but not trained (use_decay);
//   Learned: theta, lambda = gamma + (1 - gamma) * sigmoid(theta), trained (use_multi_decay);
//   None:    nothing (no "gamma" tensor), lambda = 1.
enum class TnoDecay { None, Fixed, Learned };

// The decay parameter's handling, shared by Tno and Tno2d (layers/tno2d.hpp).
namespace detail {
// Checks gamma_value and sizes (and, for Fixed, fills) "gamma" [heads, 1, head_dim].
template <class T>
void init_decay(Param<T>& gamma, Index heads, Index head_dim, TnoDecay decay, double gamma_value) {
  if (decay == TnoDecay::None) return;
  if (!(gamma_value > 0 && gamma_value <= 1))
    fail<ConfigError>("config key 'gamma': expected a value in (0, 1], got ", gamma_value);
  gamma.init({heads, 1, head_dim}, decay == TnoDecay::Learned);
  if (decay == TnoDecay::Fixed) gamma.value.fill(static_cast<T>(gamma_value));
}
// Learned theta ~ N(0, 1) as tnn-pytorch's torch.randn(h, 1, dim); Fixed lambda reset to gamma.
template <class T>
void reset_decay(Param<T>& gamma, TnoDecay decay, double gamma_value, Rng& rng) {
  if (decay == TnoDecay::Learned)
    for (auto& v : gamma.value) v = static_cast<T>(rng.normal());
  if (decay == TnoDecay::Fixed) gamma.value.fill(static_cast<T>(gamma_value));
}
// lam [E] = lambda per channel (and dlam = d lambda / d theta for Learned) from "gamma";
// `what` names the layer in errors.
template <class T>
void decay_rates(const Param<T>& gamma, TnoDecay decay, double gamma_value, Tensor<T>& lam, Tensor<T>& dlam,
                 const char* what) {
  const Index E = gamma.value.size();
  lam.resize({E});
  if (decay == TnoDecay::Fixed) {
    for (Index e = 0; e < E; ++e) {
      const T l = gamma.value[e];
      if (!(l >= T(0)) || !std::isfinite(l))
        fail<ValueError>(what, " decay gamma[", e, "]: expected a finite value >= 0, got ", l);
      lam[e] = l;
    }
    return;
  }
  dlam.resize({E});
  const T g0 = static_cast<T>(gamma_value);
  for (Index e = 0; e < E; ++e) {
    const T s = sigmoid(gamma.value[e]);
    lam[e] = g0 + (T(1) - g0) * s;
    dlam[e] = (T(1) - g0) * s * (T(1) - s);
  }
}
}  // namespace detail

template <class T, class Backend = DefaultFftBackend>
class Tno {
 public:
  Tno() = default;
  // heads H, head_dim Dh; the RPE gets (rpe_dim, rpe_layers, norm, rpe_act); gamma_value is
  // the fixed lambda (Fixed) or the lower bound of lambda (Learned).
  Tno(Index heads, Index head_dim, Index rpe_dim, Index rpe_layers, NormType norm, Activation rpe_act, bool causal,
      TnoDecay decay, double gamma_value)
      : rpe(rpe_dim, checked_width(heads, head_dim), rpe_layers, norm, rpe_act),
        heads_(heads),
        head_dim_(head_dim),
        causal_(causal),
        decay_(decay),
        gamma0_(gamma_value) {
    detail::init_decay(gamma, heads, head_dim, decay, gamma_value);
  }

  Rpe<T> rpe;      // offset -> [H*Dh] coefficients
  Param<T> gamma;  // [H, 1, Dh] lambda (Fixed) or theta (Learned); empty for None
  // Direct or FFT product; Auto picks by length (toeplitz.hpp). Tests force each path.
  ToeplitzMethod method = ToeplitzMethod::Auto;

  Index heads() const { return heads_; }
  Index head_dim() const { return head_dim_; }
  Index channels() const { return heads_ * head_dim_; }  // E
  bool causal() const { return causal_; }
  TnoDecay decay() const { return decay_; }
  double gamma_bound() const { return gamma0_; }

  // Learned theta ~ N(0, 1) as tnn-pytorch's torch.randn(h, 1, dim); Fixed lambda
  // reset to gamma; then the RPE (PyTorch Linear default, see Rpe::init_weights).
  void init_weights(Rng& rng) {
    detail::reset_decay(gamma, decay_, gamma0_, rng);
    rpe.init_weights(rng);
  }

  struct Cache {
    typename Rpe<T>::Cache rpe;
    Tensor<T> t;     // [K, E] coefficients t_k (rows as in toeplitz.hpp)
    Tensor<T> pw;    // [K, E] lambda^|k| (decay only)
    Tensor<T> lam;   // [E]    lambda (decay only)
    Tensor<T> loglam;  // [E]  log lambda (decay only)
    Tensor<T> dlam;  // [E]    d lambda / d theta (Learned only)
    ToeplitzOp<T, Backend> op;  // holds the spectrum of t and what its backward needs
    Index n = 0;                // sequence length of the last forward
    // backward workspaces, kept so a training step reuses them
    Tensor<T> dt;   // [K, E] dLoss/dt, then dLoss/dRPE(k) in place
    Tensor<T> acc;  // [E]    dLoss/dlambda
  };

  // The coefficients t [K, E] of a length-n sequence, RPE + decay, without the
  // Toeplitz product; rows as in toeplitz.hpp (causal: row k holds t_k, k = 0..n-1;
  // otherwise row k + n-1 holds t_k, k = -(n-1)..n-1). A row depends on its offset
  // k only, never on n, so exact causal incremental decoding (model.md §11),
  // y_t = sum_{j<=t} t_{t-j} v_j, can fetch coefficients(max_len) once and read
  // row t-j. `ws` is scratch (its rpe/pw/lam parts are overwritten; t may be ws.t).
  void coefficients(Index n, Tensor<T>& t, Cache& ws) const {
    if (n < 1) fail<ShapeError>("tno sequence length: expected >= 1, got ", n);
    rpe.forward(n, causal_, t, ws.rpe);  // [K, E] RPE(k)
    if (decay_ == TnoDecay::None) return;
    const Index K = t.rows(), E = channels();
    detail::decay_rates(gamma, decay_, gamma0_, ws.lam, ws.dlam, "tno");
    // lambda^|k| = exp(|k| log lambda): underflows to 0 at long range, as it should.
    // The k = 0 row is set to 1 explicitly, so lambda = 0 gives 1, 0, 0, ...
    ws.pw.resize({K, E});
    ws.loglam.resize({E});
    for (Index e = 0; e < E; ++e) ws.loglam[e] = std::log(ws.lam[e]);  // -inf for lambda = 0
    const Index zero_row = causal_ ? 0 : n - 1;
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    const Eigen::Map<const Arr> loglam(ws.loglam.data(), E);
    const T kLogMin = std::log(std::numeric_limits<T>::min());
    // Rows are independent: split over threads for long sequences (Eigen's vectorized exp).
    ::tnn::parallel_for(n, n * E >= grain::kDecayPowersMinWork, [&](Index a) {
      T* row = ws.pw.data() + (zero_row + a) * E;
      Eigen::Map<Arr> pw(row, E);
      if (a == 0)
        pw.setOnes();
      else  // below the normal range flushed to 0 (Eigen's double exp would not reach 0)
        pw = (static_cast<T>(a) * loglam >= kLogMin).select((static_cast<T>(a) * loglam).exp(), T(0));
      Eigen::Map<Arr>(t.data() + (zero_row + a) * E, E) *= pw;
      if (!causal_ && a > 0) {
        std::copy(row, row + E, ws.pw.data() + (zero_row - a) * E);
        Eigen::Map<Arr>(t.data() + (zero_row - a) * E, E) *= pw;
      }
    });
  }
  // Convenience for decoders: allocates its own scratch.
  Tensor<T> coefficients(Index n) const {
    Cache ws;
    Tensor<T> t;
    coefficients(n, t, ws);
    return t;
  }

  // v, y: [B, N, E] (y must not alias v).
  void forward(const Tensor<T>& v, Tensor<T>& y, Cache& c) const {
    check_input(v, "tno v");
    const Index n = v.dim(1);
    coefficients(n, c.t, c);
    c.op.prepare(c.t, n, causal_, method);
    c.op.forward(v, y, true);
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
    c.op.backward(dy, dv, &c.dt);  // dt [K, E]
    if (decay_ == TnoDecay::Learned) {
      // d t_k / d lambda = RPE(k) |k| lambda^(|k|-1) = t_k |k| / lambda (lambda >= gamma > 0).
      const Index n = c.n, E = channels(), zero_row = causal_ ? 0 : n - 1;
      const T* dt = c.dt.data();
      const T* t = c.t.data();
      c.acc.resize({E});
      c.acc.set_zero();
      for (Index r = 0; r < c.t.rows(); ++r) {
        const T a = static_cast<T>(r > zero_row ? r - zero_row : zero_row - r);  // |k|
        for (Index e = 0; e < E; ++e) c.acc[e] += dt[r * E + e] * t[r * E + e] * a;
      }
      for (Index e = 0; e < E; ++e) gamma.grad[e] += c.acc[e] * c.dlam[e] / c.lam[e];
    }
    if (decay_ != TnoDecay::None) c.dt.vec().array() *= c.pw.vec().array();  // now dLoss/dRPE(k)
    rpe.backward(c.dt, c.rpe);
  }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    visit_all(*this, prefix, f);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) const {
    visit_all(*this, prefix, f);
  }

 private:
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    if (m.decay_ != TnoDecay::None) f(prefix + "gamma", m.gamma);
    m.rpe.visit(prefix + "rpe.", f);
  }

  static Index checked_width(Index heads, Index head_dim) {
    if (heads <= 0 || head_dim <= 0)
      fail<ConfigError>("Tno: expected positive heads and head_dim, got heads=", heads, ", head_dim=", head_dim);
    return heads * head_dim;
  }
  void check_input(const Tensor<T>& v, const char* what) const {
    if (v.rank() != 3 || v.dim(2) != channels() || v.dim(1) < 1)
      fail<ShapeError>(what, ": expected shape [B, N >= 1, ", channels(), "], got ", shape_str(v.shape()));
  }

  Index heads_ = 0, head_dim_ = 0;
  bool causal_ = true;
  TnoDecay decay_ = TnoDecay::None;
  double gamma0_ = 0.99;
};

}  // namespace tnn
