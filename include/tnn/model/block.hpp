// One TNN layer (model.md §7): token mixing by a GTU (or attention, the Transformer baseline:
// model.md §15) and channel mixing by a GLU, each on a residual branch with its norm before
// (pre-norm, the default) or after the mixer (post-norm: x + norm(f(x)), or fairseq's
// norm(x + f(x)) with postnorm_residual). Names token_norm, token_mixer, feature_norm,
// feature_mixer are tnn-pytorch's TnnLayer state_dict names (model.md §9).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/dropout.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/token_mixer.hpp"

namespace tnn {

// A layer's choices apart from its token mixer (config keys dim, norm_type, prenorm,
// postnorm_residual and the GLU's).
struct BlockOptions {
  Index dim = 0;  // D
  NormType norm = NormType::SimpleRMSNorm;
  bool prenorm = true;
  Index glu_dim = 0;  // G
  Activation glu_act = Activation::Silu;
  bool postnorm_residual = false;  // post-norm as norm(x + f(x)) (fairseq) instead of x + norm(f(x))
  bool glu_bias = true;
};

template <class T, class Backend = DefaultFftBackend>
class TnnBlock : public Visits<TnnBlock<T, Backend>> {
 public:
  using Mixer = TokenMixer<T, Backend>;

  TnnBlock() = default;
  TnnBlock(const BlockOptions& o, Mixer mixer)
      : token_norm(o.norm, o.dim),
        token_mixer(std::move(mixer)),
        feature_norm(o.norm, o.dim),
        feature_mixer(o.dim, o.glu_dim, o.glu_act, o.glu_bias),
        prenorm_(o.prenorm),
        postnorm_residual_(!o.prenorm && o.postnorm_residual),
        dim_(o.dim) {}

  Norm<T> token_norm;     // norm1
  Mixer token_mixer;      // D -> D over the sequence (or grid)
  Norm<T> feature_norm;   // norm2
  Glu<T> feature_mixer;   // D -> G -> D per position

  bool prenorm() const { return prenorm_; }
  bool postnorm_residual() const { return postnorm_residual_; }
  Index dim() const { return dim_; }

  // Norms back to 1 / 0, then the GTU's and the GLU's own initialization, in that order.
  void init_weights(Rng& rng) {
    token_norm.reset_parameters();
    feature_norm.reset_parameters();
    token_mixer.init_weights(rng);
    feature_mixer.init_weights(rng);
  }

  struct Cache {
    // pre-norm : a1 = norm1(x), the GTU input;   a2 = norm2(x_mid), the GLU input
    // post-norm: a1 = GTU(x), norm1's input;      a2 = GLU(x_mid), norm2's input
    // post-norm with postnorm_residual: a1 = x + GTU(x), a2 = x_mid + GLU(x_mid), the norms' inputs
    Tensor<T> a1;     // [B, N, D]
    Tensor<T> a2;     // [B, N, D]
    Tensor<T> x_mid;  // [B, N, D] x after the token-mixing residual (its norm with postnorm_residual)
    typename Norm<T>::Cache norm1, norm2;
    typename Mixer::Cache mixer;
    typename Glu<T>::Cache glu;
    // dropout (training only): the masks of the two branch outputs; empty without dropout
    Tensor<T> mask1;  // [B, N, D] on the token mixer's branch
    Tensor<T> mask2;  // [B, N, D] on the channel mixer's branch
    // workspaces (forward branch output, backward gradients), reused across steps
    Tensor<T> tmp;  // [B, N, D]
    Tensor<T> g;    // [B, N, D]
    Tensor<T> gm;   // [B, N, D] dLoss/dx_mid
    Tensor<T> gd;   // [B, N, D] a branch's gradient through its dropout mask
  };

  // x [B, N, D] -> y [B, N, D]; y must not alias x. `lengths` (I32 [B]) makes the batch
  // ragged: the GTU zeroes row b's positions >= lengths[b] at its TNO input (Gtu::forward),
  // attention masks those keys; backward reads them from the cache. `drop` (training only)
  // applies dropout to each branch's output before the residual addition (fairseq's
  // placement), with masks of sites `site` (token mixer) and `site + 1` (channel mixer).
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c, const Tensor<std::int32_t>* lengths = nullptr,
               const DropoutContext* drop = nullptr, std::uint64_t site = 0) {
    if (x.rank() != 3 || x.dim(2) != dim_)
      fail<ShapeError>("TnnBlock x: expected shape [B, N, ", dim_, "], got ", shape_str(x.shape()));
    c.x_mid.resize(x.shape());
    y.resize(x.shape());
    if (drop) {
      dropout_mask(*drop, site, x.shape(), c.mask1);
      dropout_mask(*drop, site + 1, x.shape(), c.mask2);
    } else {
      c.mask1.resize({0});
      c.mask2.resize({0});
    }
    if (prenorm_) {
      token_norm.forward(x, c.a1, c.norm1);
      token_mixer.forward(c.a1, c.tmp, c.mixer, lengths);
      if (drop) apply_mask(c.mask1, c.tmp);
      c.x_mid.vec() = x.vec() + c.tmp.vec();
      feature_norm.forward(c.x_mid, c.a2, c.norm2);
      feature_mixer.forward(c.a2, c.tmp, c.glu);
      if (drop) apply_mask(c.mask2, c.tmp);
      y.vec() = c.x_mid.vec() + c.tmp.vec();
    } else if (postnorm_residual_) {
      token_mixer.forward(x, c.tmp, c.mixer, lengths);
      if (drop) apply_mask(c.mask1, c.tmp);
      c.a1.resize(x.shape());
      c.a1.vec() = x.vec() + c.tmp.vec();
      token_norm.forward(c.a1, c.x_mid, c.norm1);
      feature_mixer.forward(c.x_mid, c.tmp, c.glu);
      if (drop) apply_mask(c.mask2, c.tmp);
      c.a2.resize(x.shape());
      c.a2.vec() = c.x_mid.vec() + c.tmp.vec();
      feature_norm.forward(c.a2, y, c.norm2);
    } else {
      token_mixer.forward(x, c.a1, c.mixer, lengths);
      token_norm.forward(c.a1, c.tmp, c.norm1);
      if (drop) apply_mask(c.mask1, c.tmp);
      c.x_mid.vec() = x.vec() + c.tmp.vec();
      feature_mixer.forward(c.x_mid, c.a2, c.glu);
      feature_norm.forward(c.a2, c.tmp, c.norm2);
      if (drop) apply_mask(c.mask2, c.tmp);
      y.vec() = c.x_mid.vec() + c.tmp.vec();
    }
  }

  // x: the forward input; dy [B, N, D]. Accumulates every grad; dx overwritten
  // (dx must alias neither x nor dy).
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Cache& c, Tensor<T>& dx) {
    if (dy.shape() != x.shape() || c.x_mid.shape() != x.shape())
      fail<ShapeError>("TnnBlock backward: expected dy and the cached forward of shape ", shape_str(x.shape()),
                       ", got dy ", shape_str(dy.shape()), " and cache ", shape_str(c.x_mid.shape()));
    const bool drop = c.mask1.size() > 0;
    // g through the mask of a branch whose output the forward dropped out (g itself without dropout).
    auto masked = [&](const Tensor<T>& g, const Tensor<T>& mask) -> const Tensor<T>& {
      if (!drop) return g;
      c.gd.resize(g.shape());
      c.gd.vec().array() = g.vec().array() * mask.vec().array();
      return c.gd;
    };
    if (prenorm_) {
      // y = x_mid + drop(GLU(norm2(x_mid)))
      feature_mixer.backward(c.a2, masked(dy, c.mask2), c.glu, &c.g);
      feature_norm.backward(c.x_mid, c.g, c.norm2, c.gm);
      c.gm.vec() += dy.vec();
      // x_mid = x + drop(GTU(norm1(x)))
      token_mixer.backward(c.a1, masked(c.gm, c.mask1), c.mixer, &c.g);
      token_norm.backward(x, c.g, c.norm1, dx);
      dx.vec() += c.gm.vec();
    } else if (postnorm_residual_) {
      // y = norm2(a2), a2 = x_mid + drop(GLU(x_mid))
      feature_norm.backward(c.a2, dy, c.norm2, c.g);  // g = dLoss/da2
      feature_mixer.backward(c.x_mid, masked(c.g, c.mask2), c.glu, &c.gm);
      c.gm.vec() += c.g.vec();  // dLoss/dx_mid
      // x_mid = norm1(a1), a1 = x + drop(GTU(x))
      token_norm.backward(c.a1, c.gm, c.norm1, c.g);  // g = dLoss/da1
      token_mixer.backward(x, masked(c.g, c.mask1), c.mixer, &dx);
      dx.vec() += c.g.vec();
    } else {
      // y = x_mid + drop(norm2(GLU(x_mid)))
      feature_norm.backward(c.a2, masked(dy, c.mask2), c.norm2, c.g);
      feature_mixer.backward(c.x_mid, c.g, c.glu, &c.gm);
      c.gm.vec() += dy.vec();
      // x_mid = x + drop(norm1(GTU(x)))
      token_norm.backward(c.a1, masked(c.gm, c.mask1), c.norm1, c.g);
      token_mixer.backward(x, c.g, c.mixer, &dx);
      dx.vec() += c.gm.vec();
    }
  }

 private:
  friend Visits<TnnBlock<T, Backend>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.token_norm.visit(prefix + "token_norm.", f);
    m.token_mixer.visit(prefix + "token_mixer.", f);
    m.feature_norm.visit(prefix + "feature_norm.", f);
    m.feature_mixer.visit(prefix + "feature_mixer.", f);
  }

  bool prenorm_ = true;
  bool postnorm_residual_ = false;
  Index dim_ = 0;
};

}  // namespace tnn
