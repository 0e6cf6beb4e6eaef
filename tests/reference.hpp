// The slow, obvious twins of the layers, in double, every formula written out one
// row or one offset at a time (no GEMM, no FFT, no layer code): the references the
// op-check harness (tests/op_check.hpp) and the per-layer tests compare against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tnn/layers/embedding.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/lm.hpp"

namespace tnn::reference {

// y = W x + b for one row.
inline std::vector<double> linear_row(const Linear<double>& l, const std::vector<double>& x) {
  const Index in = l.in_features(), out = l.out_features();
  std::vector<double> y(static_cast<std::size_t>(out));
  for (Index o = 0; o < out; ++o) {
    double s = l.has_bias() ? l.bias.value[o] : 0.0;
    for (Index i = 0; i < in; ++i) s += l.weight.value[o * in + i] * x[static_cast<std::size_t>(i)];
    y[static_cast<std::size_t>(o)] = s;
  }
  return y;
}

// x [..., in] -> [..., out], row by row.
inline Tensor<double> linear(const Linear<double>& l, const Tensor<double>& x) {
  const Index in = l.in_features(), out = l.out_features(), rows = x.size() / in;
  Shape s = x.shape();
  s.back() = out;
  Tensor<double> y(s);
  for (Index r = 0; r < rows; ++r) {
    const std::vector<double> row(x.data() + r * in, x.data() + (r + 1) * in);
    const std::vector<double> yr = linear_row(l, row);
    for (Index o = 0; o < out; ++o) y[r * out + o] = yr[static_cast<std::size_t>(o)];
  }
  return y;
}

// The norms of one row: layernorm (x - mean) / sqrt(var + 1e-5) * w + b; the rms
// norms x / (rms + 1e-8), times the scale for RMSNorm.
inline std::vector<double> norm_row(const Norm<double>& n, std::vector<double> x) {
  const double d = static_cast<double>(x.size());
  if (n.type() == NormType::LayerNorm) {
    double mean = 0, var = 0;
    for (double v : x) mean += v / d;
    for (double v : x) var += (v - mean) * (v - mean) / d;
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = (x[i] - mean) / std::sqrt(var + 1e-5) * n.weight.value[Index(i)] + n.bias.value[Index(i)];
    return x;
  }
  double ss = 0;
  for (double v : x) ss += v * v;
  const double rms = std::sqrt(ss) / std::sqrt(d);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] /= rms + 1e-8;
    if (n.type() == NormType::RMSNorm) x[i] *= n.scale.value[Index(i)];
  }
  return x;
}

inline Tensor<double> norm(const Norm<double>& n, const Tensor<double>& x) {
  const Index d = x.shape().back(), rows = x.size() / d;
  Tensor<double> y(x.shape());
  for (Index r = 0; r < rows; ++r) {
    const std::vector<double> yr = norm_row(n, std::vector<double>(x.data() + r * d, x.data() + (r + 1) * d));
    for (Index j = 0; j < d; ++j) y[r * d + j] = yr[static_cast<std::size_t>(j)];
  }
  return y;
}

// The RPE's MLP for one offset p.
inline std::vector<double> rpe(const Rpe<double>& r, double p) {
  std::vector<double> h = linear_row(r.pos_proj, {p});
  auto block = [&](const Rpe<double>::Block& b) {
    std::vector<double> z = norm_row(b.norm, h);
    for (double& v : z) v = act_forward(r.activation(), v);
    h = linear_row(b.linear, z);
  };
  for (const auto& b : r.layers) block(b);
  block(r.out);
  return h;
}

// [toeplitz_num_coeffs(n, causal), E]: the RPE rows in the coefficient row order.
inline Tensor<double> rpe_rows(const Rpe<double>& r, Index n, bool causal) {
  const Index K = toeplitz_num_coeffs(n, causal);
  Tensor<double> y;
  for (Index row = 0; row < K; ++row) {
    const std::vector<double> h = rpe(r, causal ? double(row) : double(row - (n - 1)));
    if (row == 0) y = Tensor<double>({K, Index(h.size())});
    for (std::size_t e = 0; e < h.size(); ++e) y[row * Index(h.size()) + Index(e)] = h[e];
  }
  return y;
}

// t_k for k = -(N-1)..N-1 at index k + N-1 (zero for k < 0 when causal), written
// without Tno: the RPE of each offset alone, lambda from the "gamma" tensor,
// lambda^|k| by std::pow.
inline std::vector<std::vector<double>> tno_coefficients(const Tno<double>& tno, Index n) {
  const Index E = tno.channels();
  std::vector<std::vector<double>> t(static_cast<std::size_t>(2 * n - 1), std::vector<double>(std::size_t(E), 0.0));
  for (Index k = -(n - 1); k < n; ++k) {
    if (tno.causal() && k < 0) continue;
    const std::vector<double> r = rpe(tno.rpe, double(k));
    for (Index e = 0; e < E; ++e) {
      double lam = 1;
      if (tno.decay() == TnoDecay::Fixed) lam = tno.gamma.value[e];
      if (tno.decay() == TnoDecay::Learned) {
        const double g = tno.gamma_bound();
        lam = g + (1 - g) / (1 + std::exp(-tno.gamma.value[e]));
      }
      t[std::size_t(k + n - 1)][std::size_t(e)] = r[std::size_t(e)] * std::pow(lam, double(std::abs(k)));
    }
  }
  return t;
}

// y_i = sum_j t_{i-j} v_j per channel, the O(N^2) loop.
inline Tensor<double> tno(const Tno<double>& tno, const Tensor<double>& v) {
  const Index B = v.dim(0), N = v.dim(1), E = v.dim(2);
  const auto t = tno_coefficients(tno, N);
  Tensor<double> y({B, N, E});
  for (Index b = 0; b < B; ++b)
    for (Index i = 0; i < N; ++i)
      for (Index e = 0; e < E; ++e) {
        double s = 0;
        for (Index j = 0; j < N; ++j) s += t[std::size_t(i - j + N - 1)][std::size_t(e)] * v[(b * N + j) * E + e];
        y[(b * N + i) * E + e] = s;
      }
  return y;
}

// o(act(u_proj x) * T act(v_proj x)), every step written out.
template <class Backend>
Tensor<double> gtu(const Gtu<double, Backend>& g, const Tensor<double>& x) {
  Tensor<double> u = linear(g.u_proj, x), v = linear(g.v_proj, x);
  for (auto& a : u) a = act_forward(g.activation(), a);
  for (auto& a : v) a = act_forward(g.activation(), a);
  Tensor<double> z = tno(g.toep, v);
  for (Index i = 0; i < z.size(); ++i) z[i] *= u[i];
  return linear(g.o, z);
}

// l3(act(l1 x) * l2 x).
inline Tensor<double> glu(const Glu<double>& g, const Tensor<double>& x) {
  Tensor<double> a = linear(g.l1, x), b = linear(g.l2, x);
  for (Index i = 0; i < a.size(); ++i) a[i] = act_forward(g.activation(), a[i]) * b[i];
  return linear(g.l3, a);
}

// Pre-norm: m = x + gtu(norm1(x)), y = m + glu(norm2(m)); post-norm: m = x +
// norm1(gtu(x)), y = m + norm2(glu(m)).
inline Tensor<double> block(const TnnBlock<double>& b, const Tensor<double>& x) {
  Tensor<double> m = b.prenorm() ? gtu(b.token_mixer, norm(b.token_norm, x)) : norm(b.token_norm, gtu(b.token_mixer, x));
  for (Index i = 0; i < m.size(); ++i) m[i] += x[i];
  Tensor<double> y = b.prenorm() ? glu(b.feature_mixer, norm(b.feature_norm, m))
                                 : norm(b.feature_norm, glu(b.feature_mixer, m));
  for (Index i = 0; i < y.size(); ++i) y[i] += m[i];
  return y;
}

// Rows of the embedding: y[..., d] = weight[token, d].
inline Tensor<double> embedding(const Embedding<double>& e, const Tensor<std::int32_t>& tokens) {
  const Index D = e.weight.shape()[1];
  Shape s = tokens.shape();
  s.push_back(D);
  Tensor<double> y(s);
  for (Index i = 0; i < tokens.size(); ++i)
    for (Index d = 0; d < D; ++d) y[i * D + d] = e.weight.value[Index(tokens[i]) * D + d];
  return y;
}

// Mean over targets != -1 of -log softmax(z)[target] (0 when there are none).
inline double cross_entropy(const Tensor<double>& z, const Tensor<std::int32_t>& targets) {
  const Index V = z.shape().back();
  double total = 0;
  Index count = 0;
  for (Index r = 0; r < targets.size(); ++r) {
    if (targets[r] == -1) continue;
    double mx = z[r * V];
    for (Index v = 1; v < V; ++v) mx = std::max(mx, z[r * V + v]);
    double s = 0;
    for (Index v = 0; v < V; ++v) s += std::exp(z[r * V + v] - mx);
    total += -(z[r * V + targets[r]] - mx - std::log(s));
    ++count;
  }
  return count == 0 ? 0.0 : total / double(count);
}

// The LM's logits [B, N, V]: embed -> blocks -> final norm -> head (tied: embed.weight).
inline Tensor<double> lm_logits(const TnnLM<double>& m, const Tensor<std::int32_t>& tokens) {
  Tensor<double> x = embedding(m.embed, tokens);
  for (const auto& l : m.layers) x = block(l, x);
  x = norm(m.final_norm, x);
  if (!m.config().tie_embeddings) return linear(m.lm_head, x);
  const Index V = m.embed.weight.shape()[0], D = m.embed.weight.shape()[1], rows = x.size() / D;
  Shape s = x.shape();
  s.back() = V;
  Tensor<double> z(s);
  for (Index r = 0; r < rows; ++r)
    for (Index v = 0; v < V; ++v) {
      double acc = 0;
      for (Index d = 0; d < D; ++d) acc += x[r * D + d] * m.embed.weight.value[v * D + d];
      z[r * V + v] = acc;
    }
  return z;
}

}  // namespace tnn::reference
