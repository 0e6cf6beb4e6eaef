// The slow, obvious twins of the layers, in double, every formula written out one
// row or one offset at a time (no GEMM, no FFT, no layer code): the references the
// op-check harness (tests/op_check.hpp) and the per-layer tests compare against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tnn/layers/dropout.hpp"
#include "tnn/layers/attention.hpp"
#include "tnn/layers/embedding.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/layers/tno2d.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/models.hpp"

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
// norms x / (rms + 1e-8), times the scale for RMSNorm (and the gate's sigmoid for
// gatedrmsnorm); scalenorm x / sqrt(mean(x^2) + 1e-5) times its one scalar; none: x.
inline std::vector<double> norm_row(const Norm<double>& n, std::vector<double> x) {
  const double d = static_cast<double>(x.size());
  if (n.type() == NormType::LayerNorm) {
    double mean = 0, var = 0;
    for (double v : x) mean += v / d;
    for (double v : x) var += (v - mean) * (v - mean) / d;
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = (x[i] - mean) / std::sqrt(var + 1e-5) * n.param("weight").value[Index(i)] + n.param("bias").value[Index(i)];
    return x;
  }
  if (n.type() == NormType::None) return x;
  double ss = 0;
  for (double v : x) ss += v * v;
  if (n.type() == NormType::ScaleNorm) {  // scala * x / sqrt(mean(x^2) + 1e-5)
    for (double& v : x) v *= n.param("scala").value[0] / std::sqrt(ss / d + 1e-5);
    return x;
  }
  const double rms = std::sqrt(ss) / std::sqrt(d);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    x[i] /= rms + 1e-8;
    if (n.type() == NormType::RMSNorm) x[i] *= n.param("scale").value[Index(i)];
    if (n.type() == NormType::GatedRMSNorm)  // scale * xn * sigmoid(gate * x)
      x[i] *= n.param("scale").value[Index(i)] / (1 + std::exp(-n.param("gate").value[Index(i)] * xi));
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

// The RPE's MLP for one input p (the 2-D RPE: the offset pair); with residual, every hidden
// block adds its input to its output.
inline std::vector<double> rpe(const Rpe<double>& r, std::vector<double> p) {
  std::vector<double> h = linear_row(r.pos_proj, p);
  auto block = [&](const Rpe<double>::Block& b, bool residual) {
    std::vector<double> z = norm_row(b.norm, h);
    for (double& v : z) v = act_forward(r.activation(), v);
    std::vector<double> out = linear_row(b.linear, z);
    if (residual)
      for (std::size_t i = 0; i < out.size(); ++i) out[i] += h[i];
    h = out;
  };
  for (const auto& b : r.layers) block(b, r.residual());
  block(r.out, false);
  return h;
}
inline std::vector<double> rpe(const Rpe<double>& r, double p) { return rpe(r, std::vector<double>{p}); }

// The RPE's input for offset k of a length-n sequence, written out: k (par_type 1), k / (n - 1)
// (2), exp(k / (n - 1)) (3); at n = 1, 0, 0 and 1.
inline double rpe_input(Index k, Index n, Index par_type) {
  if (par_type == 1) return double(k);
  const double s = n == 1 ? 0.0 : double(k) / double(n - 1);
  return par_type == 2 ? s : std::exp(s);
}

// [toeplitz_num_coeffs(n, causal), E]: the RPE rows in the coefficient row order.
inline Tensor<double> rpe_rows(const Rpe<double>& r, Index n, bool causal) {
  const Index K = toeplitz_num_coeffs(n, causal);
  Tensor<double> y;
  for (Index row = 0; row < K; ++row) {
    const std::vector<double> h = rpe(r, rpe_input(causal ? row : row - (n - 1), n, r.par_type()));
    if (row == 0) y = Tensor<double>({K, Index(h.size())});
    for (std::size_t e = 0; e < h.size(); ++e) y[row * Index(h.size()) + Index(e)] = h[e];
  }
  return y;
}

// lambda of channel e from a TNO's (Tno, Tno2d) "gamma" tensor (1 without decay).
template <class Op>
double decay_lambda(const Op& tno, Index e) {
  if (tno.decay() == TnoDecay::Fixed) return tno.gamma.value[e];
  if (tno.decay() == TnoDecay::Learned) {
    const double g = tno.options().gamma;
    return g + (1 - g) / (1 + std::exp(-tno.gamma.value[e]));
  }
  return 1;
}

// t_k for k = -(N-1)..N-1 at index k + N-1 (zero for k < 0 when causal), written
// without Tno: the RPE of each offset's input alone, lambda from the "gamma" tensor,
// lambda^|k| by std::pow, then the coefficient activation (act_type).
inline std::vector<std::vector<double>> tno_coefficients(const Tno<double>& tno, Index n) {
  const Index E = tno.channels();
  std::vector<std::vector<double>> t(static_cast<std::size_t>(2 * n - 1), std::vector<double>(std::size_t(E), 0.0));
  for (Index k = -(n - 1); k < n; ++k) {
    if (tno.causal() && k < 0) continue;
    const std::vector<double> r = rpe(tno.rpe, rpe_input(k, n, tno.rpe.par_type()));
    for (Index e = 0; e < E; ++e) {
      const double lam = decay_lambda(tno, e);
      t[std::size_t(k + n - 1)][std::size_t(e)] =
          act_forward(tno.options().act, r[std::size_t(e)] * std::pow(lam, double(std::abs(k))));
    }
  }
  return t;
}

// The 2-D TNO over its H x W grid, v [B, H*W, E]: y[i, j] = sum_{i', j'} t(i - i', j - j') v[i', j']
// with t(di, dj) = act(RPE(di, dj) lambda^(|di| + |dj|)), the O((HW)^2) loop; with normalize
// divided by the same sum over v = 1.
inline Tensor<double> tno(const Tno2d<double>& tno, const Tensor<double>& v) {
  const Index B = v.dim(0), H = tno.grid_h(), W = tno.grid_w(), E = v.dim(2);
  Tensor<double> y({B, H * W, E}), den({H * W, E});
  y.set_zero();
  den.set_zero();
  for (Index di = -(H - 1); di < H; ++di)
    for (Index dj = -(W - 1); dj < W; ++dj) {
      const std::vector<double> r = rpe(tno.rpe, {double(di), double(dj)});
      for (Index e = 0; e < E; ++e) {
        const double t = act_forward(
            tno.options().act, r[std::size_t(e)] * std::pow(decay_lambda(tno, e), double(std::abs(di) + std::abs(dj))));
        for (Index i = std::max<Index>(0, di); i < std::min(H, H + di); ++i)
          for (Index j = std::max<Index>(0, dj); j < std::min(W, W + dj); ++j) {
            den[(i * W + j) * E + e] += t;
            for (Index b = 0; b < B; ++b)
              y[(b * H * W + i * W + j) * E + e] += t * v[(b * H * W + (i - di) * W + (j - dj)) * E + e];
          }
      }
    }
  if (tno.options().normalize)
    for (Index i = 0; i < y.size(); ++i) y[i] /= den[i % (H * W * E)];
  return y;
}

// y_i = sum_j t_{i-j} v_j per channel, the O(N^2) loop; with normalize divided by
// sum_j t_{i-j} over the valid j (j < lengths[b] in a ragged batch, else all).
inline Tensor<double> tno(const Tno<double>& tno, const Tensor<double>& v,
                          const Tensor<std::int32_t>* lengths = nullptr) {
  const Index B = v.dim(0), N = v.dim(1), E = v.dim(2);
  const auto t = tno_coefficients(tno, N);
  Tensor<double> y({B, N, E});
  for (Index b = 0; b < B; ++b) {
    const Index len = lengths ? Index((*lengths)[b]) : N;
    for (Index i = 0; i < N; ++i)
      for (Index e = 0; e < E; ++e) {
        double s = 0, den = 0;
        for (Index j = 0; j < N; ++j) {
          s += t[std::size_t(i - j + N - 1)][std::size_t(e)] * v[(b * N + j) * E + e];
          if (j < len) den += t[std::size_t(i - j + N - 1)][std::size_t(e)];
        }
        y[(b * N + i) * E + e] = tno.options().normalize ? s / den : s;
      }
  }
  return y;
}
template <class Backend>
Tensor<double> tno(const Tno2d<double, Backend>& t, const Tensor<double>& v, const Tensor<std::int32_t>*) {
  return tno(t, v);
}

// o(norm(act(u_proj x) * T act(v_proj x))) (the norm with use_norm), every step written out;
// with `lengths` (ragged rows) the TNO input of row b is zero at positions >= lengths[b].
template <class Backend, class Mixer>
Tensor<double> gtu(const Gtu<double, Backend, Mixer>& g, const Tensor<double>& x,
                   const Tensor<std::int32_t>* lengths = nullptr) {
  Tensor<double> u = linear(g.u_proj, x), v = linear(g.v_proj, x);
  for (auto& a : u) a = act_forward(g.activation(), a);
  for (auto& a : v) a = act_forward(g.activation(), a);
  if (lengths) {
    const Index N = v.dim(1), E = v.dim(2);
    for (Index b = 0; b < v.dim(0); ++b)
      for (Index n = (*lengths)[b]; n < N; ++n)
        for (Index e = 0; e < E; ++e) v[(b * N + n) * E + e] = 0;
  }
  Tensor<double> z = tno(g.toep, v, lengths);
  for (Index i = 0; i < z.size(); ++i) z[i] *= u[i];
  if (g.use_norm()) z = norm(g.norm, z);
  return linear(g.o, z);
}

// Multi-head softmax attention one scalar at a time: q, k, v projections, per head the scaled
// scores of the visible keys (j <= i when causal, j < lengths[b] in a ragged row), their softmax
// and the weighted values, then out_proj.
inline Tensor<double> attention(const Attention<double>& a, const Tensor<double>& x,
                                const Tensor<std::int32_t>* lengths = nullptr) {
  const Index B = x.dim(0), N = x.dim(1), D = x.dim(2), H = a.heads(), Dh = D / H;
  const Tensor<double> q = linear(a.q_proj, x), k = linear(a.k_proj, x), v = linear(a.v_proj, x);
  Tensor<double> z(x.shape());
  for (Index b = 0; b < B; ++b) {
    const Index len = lengths ? Index((*lengths)[b]) : N;
    for (Index h = 0; h < H; ++h)
      for (Index i = 0; i < N; ++i) {
        const Index visible = a.causal() ? std::min(i + 1, len) : len;
        std::vector<double> s(static_cast<std::size_t>(visible));
        double mx = -INFINITY;
        for (Index j = 0; j < visible; ++j) {
          double d = 0;
          for (Index c = 0; c < Dh; ++c) d += q[(b * N + i) * D + h * Dh + c] * k[(b * N + j) * D + h * Dh + c];
          s[static_cast<std::size_t>(j)] = d / std::sqrt(double(Dh));
          mx = std::max(mx, s[static_cast<std::size_t>(j)]);
        }
        double sum = 0;
        for (double& e : s) sum += e = std::exp(e - mx);
        for (Index c = 0; c < Dh; ++c) {
          double o = 0;
          for (Index j = 0; j < visible; ++j) o += s[static_cast<std::size_t>(j)] * v[(b * N + j) * D + h * Dh + c];
          z[(b * N + i) * D + h * Dh + c] = o / sum;
        }
      }
  }
  return linear(a.out_proj, z);
}

// x [B, N, D] += the sinusoidal encoding of position n in row n: sin(n w_i) at channel i and
// cos(n w_i) at channel half + i, w_i = 10000^(-i / (half - 1)) (w_0 = 1 when half = 1), half = D / 2;
// an odd D's last channel gets 0.
inline void add_sinusoidal(Tensor<double>& x) {
  const Index B = x.dim(0), N = x.dim(1), D = x.dim(2), half = D / 2;
  for (Index b = 0; b < B; ++b)
    for (Index n = 0; n < N; ++n)
      for (Index i = 0; i < half; ++i) {
        const double w = half > 1 ? std::pow(10000.0, -double(i) / double(half - 1)) : 1.0;
        x[(b * N + n) * D + i] += std::sin(double(n) * w);
        x[(b * N + n) * D + half + i] += std::cos(double(n) * w);
      }
}
inline void add_positions(PositionScheme scheme, Tensor<double>& x) {
  if (scheme == PositionScheme::Sinusoidal) add_sinusoidal(x);
}

// l3(act(l1 x) * l2 x).
inline Tensor<double> glu(const Glu<double>& g, const Tensor<double>& x) {
  Tensor<double> a = linear(g.l1, x), b = linear(g.l2, x);
  for (Index i = 0; i < a.size(); ++i) a[i] = act_forward(g.activation(), a[i]) * b[i];
  return linear(g.l3, a);
}

// Pre-norm: m = x + gtu(norm1(x)), y = m + glu(norm2(m)); post-norm: m = x +
// norm1(gtu(x)), y = m + norm2(glu(m)); post-norm with postnorm_residual: m = norm1(x + gtu(x)),
// y = norm2(m + glu(m)). With `masks` (dropout in training: the block's two masks) each branch's
// output is multiplied by its mask before the addition.
// The token mixer of a block, whichever kind it is.
template <class Backend>
Tensor<double> mixer(const TokenMixer<double, Backend>& m, const Tensor<double>& x, const Tensor<std::int32_t>* lengths) {
  if (m.gtu()) return gtu(*m.gtu(), x, lengths);
  if (m.attention()) return attention(*m.attention(), x, lengths);
  return gtu(*m.gtu2d(), x, lengths);
}

template <class Backend>
Tensor<double> block(const TnnBlock<double, Backend>& b, const Tensor<double>& x,
                     const Tensor<std::int32_t>* lengths = nullptr, const Tensor<double>* mask1 = nullptr,
                     const Tensor<double>* mask2 = nullptr) {
  auto drop = [](Tensor<double> t, const Tensor<double>* mask) {
    if (mask)
      for (Index i = 0; i < t.size(); ++i) t[i] *= (*mask)[i];
    return t;
  };
  if (b.postnorm_residual()) {
    Tensor<double> m = drop(mixer(b.token_mixer, x, lengths), mask1);
    for (Index i = 0; i < m.size(); ++i) m[i] += x[i];
    m = norm(b.token_norm, m);
    Tensor<double> y = drop(glu(b.feature_mixer, m), mask2);
    for (Index i = 0; i < y.size(); ++i) y[i] += m[i];
    return norm(b.feature_norm, y);
  }
  Tensor<double> m = drop(b.prenorm() ? mixer(b.token_mixer, norm(b.token_norm, x), lengths)
                                      : norm(b.token_norm, mixer(b.token_mixer, x, lengths)),
                          mask1);
  for (Index i = 0; i < m.size(); ++i) m[i] += x[i];
  Tensor<double> y = drop(b.prenorm() ? glu(b.feature_mixer, norm(b.feature_norm, m))
                                      : norm(b.feature_norm, glu(b.feature_mixer, m)),
                          mask2);
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

// The token input: embed[tokens], times sqrt(D) with scale_embedding, plus the positions' encoding,
// then the embedding norm.
inline Tensor<double> token_input(const TokenInput<double>& in, const Tensor<std::int32_t>& tokens) {
  Tensor<double> x = embedding(in.embed, tokens);
  const double s = in.scale();
  for (auto& v : x) v *= s;
  add_positions(in.positions(), x);
  return norm(in.embed_norm, x);
}

// The dropout masks a model in training mode draws (tnn::dropout_mask: the reference checks
// where they apply, not how they are drawn): site 0 on the embedding, 2i + 1 and 2i + 2 on
// layer i's branches; none in evaluation.
template <class Model>
std::vector<Tensor<double>> dropout_masks(const Model& m, const DropoutContext* drop, const Shape& shape) {
  std::vector<Tensor<double>> masks;
  if (!drop) return masks;
  for (std::size_t site = 0; site < 2 * m.backbone.layers.size() + 1; ++site) {
    masks.emplace_back();
    dropout_mask(*drop, site, shape, masks.back());
  }
  return masks;
}

// The residual stream through every layer (with the masks of dropout_masks, if any), then the
// final norm.
template <class Model>
Tensor<double> backbone(const Model& m, Tensor<double> x, const Tensor<std::int32_t>* lengths,
                        const std::vector<Tensor<double>>& masks) {
  if (!masks.empty())
    for (Index i = 0; i < x.size(); ++i) x[i] *= masks[0][i];
  for (std::size_t l = 0; l < m.backbone.layers.size(); ++l)
    x = masks.empty() ? block(m.backbone.layers[l], x, lengths)
                      : block(m.backbone.layers[l], x, lengths, &masks[2 * l + 1], &masks[2 * l + 2]);
  return norm(m.backbone.final_norm, x);
}

// The LM's logits [B, N, V]: the token input -> blocks -> final norm -> head (tied: embed.weight;
// roberta: LayerNorm(gelu(dense x)) first, the bias after). `drop`: a training step's dropout.
inline Tensor<double> lm_logits(const TnnLM<double>& m, const Tensor<std::int32_t>& tokens,
                                const DropoutContext* drop = nullptr) {
  Tensor<double> x = token_input(m.input, tokens);
  x = backbone(m, x, nullptr, dropout_masks(m, drop, x.shape()));
  const bool roberta = m.config().lm_head_type == LmHeadType::Roberta;
  if (roberta) {
    x = linear(m.head.dense, x);
    for (auto& v : x) v = act_forward(Activation::Gelu, v);
    x = norm(m.head.layer_norm, x);
  }
  const Param<double>& w = m.config().tie_embeddings ? m.input.embed.weight : m.head.lm_head.weight;
  const Index V = w.shape()[0], D = w.shape()[1], rows = x.size() / D;
  Shape s = x.shape();
  s.back() = V;
  Tensor<double> z(s);
  for (Index r = 0; r < rows; ++r)
    for (Index v = 0; v < V; ++v) {
      double acc = roberta ? m.head.bias.value[v] : 0.0;
      for (Index d = 0; d < D; ++d) acc += x[r * D + d] * w.value[v * D + d];
      z[r * V + v] = acc;
    }
  return z;
}

// Pooling (mean over row b's first lengths[b] positions, position 0, or each channel's maximum over
// those positions) and the head: logits [B, K].
inline Tensor<double> classifier_head(const ClassifierHead<double>& h, const Tensor<double>& x,
                                      const Tensor<std::int32_t>* lengths) {
  const Index B = x.dim(0), N = x.dim(1), D = x.dim(2);
  Tensor<double> pooled({B, D});
  pooled.set_zero();
  for (Index b = 0; b < B; ++b) {
    const Index len = h.pooling() == Pooling::First ? 1 : lengths ? Index((*lengths)[b]) : N;
    for (Index d = 0; d < D; ++d) {
      double m = x[b * N * D + d];
      for (Index n = 0; n < len; ++n) {
        const double v = x[(b * N + n) * D + d];
        if (h.pooling() == Pooling::Max) m = std::max(m, v);
        else pooled[b * D + d] += v / double(len);
      }
      if (h.pooling() == Pooling::Max) pooled[b * D + d] = m;
    }
  }
  return linear(h.head, pooled);
}

// The classifier's logits [B, K] of a (ragged) batch.
inline Tensor<double> classifier_logits(const TnnClassifier<double>& m, const Tensor<std::int32_t>& tokens,
                                        const Tensor<std::int32_t>* lengths) {
  return classifier_head(m.head, backbone(m, token_input(m.input, tokens), lengths, {}), lengths);
}

// The image classifier's logits [B, K]: each P x P patch's values in (row, column, channel)
// order through patch_embed, the 2-D blocks, the final norm, the pooling, the head.
inline Tensor<double> image_logits(const TnnImageClassifier<double>& m, const Tensor<double>& images) {
  const TnnConfig& c = m.config();
  const Index B = images.dim(0), Hi = images.dim(1), Wi = images.dim(2), Ch = images.dim(3), P = c.patch_size;
  const Index gh = Hi / P, gw = Wi / P;
  Tensor<double> patches({B, gh * gw, P * P * Ch});
  Index f = 0;
  for (Index b = 0; b < B; ++b)
    for (Index gi = 0; gi < gh; ++gi)
      for (Index gj = 0; gj < gw; ++gj)
        for (Index pi = 0; pi < P; ++pi)
          for (Index pj = 0; pj < P; ++pj)
            for (Index ch = 0; ch < Ch; ++ch) patches[f++] = images[((b * Hi + gi * P + pi) * Wi + gj * P + pj) * Ch + ch];
  Tensor<double> x = linear(m.input.patch_embed, patches);
  add_positions(c.positions, x);
  return classifier_head(m.head, backbone(m, x, nullptr, {}), nullptr);
}

// The regressor's loss: features [B, N, F] through input_proj (plus the positions), the blocks,
// the final norm and the head give values [B, N, Fo]; the loss is the mean of (value - target)^2
// over row b's first lengths[b] positions (every position without lengths) and all Fo outputs,
// one sum divided by one count, so a short row weighs less than a long one.
inline double regress_loss(const TnnRegressor<double>& m, const Tensor<double>& features, const Tensor<double>& targets,
                           const Tensor<std::int32_t>* lengths) {
  Tensor<double> x = linear(m.input.input_proj, features);
  add_positions(m.config().positions, x);
  const Tensor<double> y = linear(m.head.head, backbone(m, x, lengths, {}));
  const Index B = y.dim(0), N = y.dim(1), Fo = y.dim(2);
  double total = 0;
  Index count = 0;
  for (Index b = 0; b < B; ++b) {
    const Index len = lengths ? Index((*lengths)[b]) : N;
    for (Index n = 0; n < len; ++n)
      for (Index o = 0; o < Fo; ++o) {
        const double d = y[(b * N + n) * Fo + o] - targets[(b * N + n) * Fo + o];
        total += d * d;
        ++count;
      }
  }
  return total / double(count);
}

}  // namespace tnn::reference
