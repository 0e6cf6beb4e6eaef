// One TNN layer (model.md §7): token mixing by a GTU and channel mixing by a
// GLU, each on a residual branch with its norm before (pre-norm, the default) or
// after (post-norm) the mixer. Names token_norm, token_mixer, feature_norm,
// feature_mixer are tnn-pytorch's TnnLayer state_dict names (model.md §9).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/token_mixer.hpp"

namespace tnn {

// A layer's choices apart from its token mixer (config keys dim, norm_type, prenorm and the GLU's).
struct BlockOptions {
  Index dim = 0;  // D
  NormType norm = NormType::SimpleRMSNorm;
  bool prenorm = true;
  Index glu_dim = 0;  // G
  Activation glu_act = Activation::Silu;
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
        feature_mixer(o.dim, o.glu_dim, o.glu_act),
        prenorm_(o.prenorm),
        dim_(o.dim) {}

  Norm<T> token_norm;     // norm1
  Mixer token_mixer;      // D -> D over the sequence (or grid)
  Norm<T> feature_norm;   // norm2
  Glu<T> feature_mixer;   // D -> G -> D per position

  bool prenorm() const { return prenorm_; }
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
    Tensor<T> a1;     // [B, N, D]
    Tensor<T> a2;     // [B, N, D]
    Tensor<T> x_mid;  // [B, N, D] x after the token-mixing residual
    typename Norm<T>::Cache norm1, norm2;
    typename Mixer::Cache mixer;
    typename Glu<T>::Cache glu;
    // workspaces (forward branch output, backward gradients), reused across steps
    Tensor<T> tmp;  // [B, N, D]
    Tensor<T> g;    // [B, N, D]
    Tensor<T> gm;   // [B, N, D] dLoss/dx_mid
  };

  // x [B, N, D] -> y [B, N, D]; y must not alias x. `lengths` (I32 [B]) makes the batch
  // ragged: the GTU zeroes row b's positions >= lengths[b] at its TNO input (Gtu::forward),
  // and backward reads them from the cache.
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c, const Tensor<std::int32_t>* lengths = nullptr) {
    if (x.rank() != 3 || x.dim(2) != dim_)
      fail<ShapeError>("TnnBlock x: expected shape [B, N, ", dim_, "], got ", shape_str(x.shape()));
    c.x_mid.resize(x.shape());
    y.resize(x.shape());
    if (prenorm_) {
      token_norm.forward(x, c.a1, c.norm1);
      token_mixer.forward(c.a1, c.tmp, c.mixer, lengths);
      c.x_mid.vec() = x.vec() + c.tmp.vec();
      feature_norm.forward(c.x_mid, c.a2, c.norm2);
      feature_mixer.forward(c.a2, c.tmp, c.glu);
      y.vec() = c.x_mid.vec() + c.tmp.vec();
    } else {
      token_mixer.forward(x, c.a1, c.mixer, lengths);
      token_norm.forward(c.a1, c.tmp, c.norm1);
      c.x_mid.vec() = x.vec() + c.tmp.vec();
      feature_mixer.forward(c.x_mid, c.a2, c.glu);
      feature_norm.forward(c.a2, c.tmp, c.norm2);
      y.vec() = c.x_mid.vec() + c.tmp.vec();
    }
  }

  // x: the forward input; dy [B, N, D]. Accumulates every grad; dx overwritten
  // (dx must alias neither x nor dy).
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Cache& c, Tensor<T>& dx) {
    if (dy.shape() != x.shape() || c.x_mid.shape() != x.shape())
      fail<ShapeError>("TnnBlock backward: expected dy and the cached forward of shape ", shape_str(x.shape()),
                       ", got dy ", shape_str(dy.shape()), " and cache ", shape_str(c.x_mid.shape()));
    if (prenorm_) {
      // y = x_mid + GLU(norm2(x_mid))
      feature_mixer.backward(c.a2, dy, c.glu, &c.g);
      feature_norm.backward(c.x_mid, c.g, c.norm2, c.gm);
      c.gm.vec() += dy.vec();
      // x_mid = x + GTU(norm1(x))
      token_mixer.backward(c.a1, c.gm, c.mixer, &c.g);
      token_norm.backward(x, c.g, c.norm1, dx);
      dx.vec() += c.gm.vec();
    } else {
      // y = x_mid + norm2(GLU(x_mid))
      feature_norm.backward(c.a2, dy, c.norm2, c.g);
      feature_mixer.backward(c.x_mid, c.g, c.glu, &c.gm);
      c.gm.vec() += dy.vec();
      // x_mid = x + norm1(GTU(x))
      token_norm.backward(c.a1, c.gm, c.norm1, c.g);
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
  Index dim_ = 0;
};

}  // namespace tnn
