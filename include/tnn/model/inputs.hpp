// Input modules: what turns a task's data into the backbone's residual stream [B, N, D].
//   TokenInput    token ids [B, N] -> embed.weight rows            (language models, text classifiers)
//   PatchInput    images [B, Hi, Wi, Ch] -> P x P patches -> linear (the 2-D image classifier)
//   FeatureInput  float features [B, N, F] -> linear               (time series, audio frames, sensors)
// Each is constructed from a TnnConfig (or from its sizes), initializes itself from the model's
// Rng stream, saves what its backward needs, and names its own tensors. Each adds the config's
// absolute positions (key `positions`, layers/positions.hpp) to the vectors it writes: no
// parameters, and the backward is the identity, so only the forward sees them. A new input is a
// class with the same members (see model/sequence_model.hpp for the list).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "tnn/core/error.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/embedding.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/positions.hpp"
#include "tnn/model/config.hpp"

namespace tnn {

// Token ids [B, N] -> x [B, N, D] = embed_norm(embed[tokens] * s), s = sqrt(D) with
// scale_embedding (fairseq's LM), else 1; embed_norm of embed_norm_type (none: no norm).
// Checkpoint names embed.weight [V, D], embed_norm.* (docs/official.md §3).
template <class T>
class TokenInput : public Visits<TokenInput<T>> {
 public:
  using Data = Tensor<std::int32_t>;  // [B, N] ids in [0, V)

  TokenInput() : embed_norm(NormType::None, 1) {}
  TokenInput(Index vocab, Index dim, bool scale = false, NormType norm = NormType::None,
             PositionScheme positions = PositionScheme::None)
      : embed(vocab, dim), embed_norm(norm, dim), positions_(positions, dim), scale_(scale) {}
  explicit TokenInput(const TnnConfig& c)
      : TokenInput(c.vocab_size, c.dim, c.scale_embedding, c.embed_norm_type, c.positions) {}

  Embedding<T> embed;   // [V, D]
  Norm<T> embed_norm;   // over D (type none: the identity, no tensors)

  static bool accepts(Task t) { return t == Task::Lm || t == Task::Classify; }
  static Index grid_h(const TnnConfig&) { return 0; }  // a sequence, not a grid
  static Index grid_w(const TnnConfig&) { return 0; }
  static Index batch(const Data& tokens) { return tokens.dim(0); }
  static Index length(const Data& tokens) { return tokens.dim(1); }

  // The vocabulary head's weight when the model ties it to the embedding.
  Param<T>& tied_weight() { return embed.weight; }
  const Param<T>& tied_weight() const { return embed.weight; }
  // The embedding's scale: sqrt(D) with scale_embedding, else 1.
  T scale() const { return scale_ ? static_cast<T>(std::sqrt(static_cast<double>(embed.dim()))) : T(1); }

  // N(0, 1/D), fairseq's convention for LM embeddings, rather than nn.Embedding's N(0, 1),
  // which through a tied head gives logits of std ~sqrt(D) at step 0; the norm reset to 1 / 0.
  void init_weights(Rng& rng) {
    embed.init_normal(rng, 1.0 / std::sqrt(static_cast<double>(embed.dim())));
    embed_norm.reset_parameters();
  }

  void check(const Data& tokens) const {
    if (tokens.rank() != 2 || tokens.dim(0) < 1 || tokens.dim(1) < 1)
      fail<ShapeError>("tokens: expected shape [B, N] with B, N >= 1, got ", shape_str(tokens.shape()));
    embed.check_tokens(tokens);
  }

  // What forward keeps beyond the ids (the decoder keeps its own for one position).
  struct Cache {
    Tensor<T> e;  // [B, N, D] embed[tokens] * s, the norm's input (empty without a norm)
    typename Norm<T>::Cache norm;
  };
  // x [B, N, D] for `tokens` standing at positions offset .. offset + N - 1 (an incremental
  // decoder's next tokens), saving nothing but into `c`.
  void embed_into(const Data& tokens, Index offset, Tensor<T>& x, Cache& c) {
    const bool norm = embed_norm.type() != NormType::None;
    Tensor<T>& e = norm ? c.e : x;
    embed.forward(tokens, e);
    if (scale_) e.vec() *= scale();
    positions_.add(e, offset);  // fairseq's order: scaled embedding plus positions, then the norm
    if (norm) embed_norm.forward(c.e, x, c.norm);
  }

  // x [B, N, D]; keeps the ids for backward (no allocation at a repeated size).
  void forward(const Data& tokens, Tensor<T>& x) {
    check(tokens);
    tokens_ = tokens;
    embed_into(tokens_, 0, x, cache_);
  }
  // Room for the encodings of `positions` positions (a decoder's capacity), so no later
  // embed_into allocates.
  void reserve_positions(Index positions) { positions_.reserve(positions); }
  PositionScheme positions() const { return positions_.scheme(); }
  void backward(const Tensor<T>& dx) {
    const Tensor<T>* de = &dx;
    if (embed_norm.type() != NormType::None) {
      embed_norm.backward(cache_.e, dx, cache_.norm, de_);
      de = &de_;
    }
    if (scale_) {
      if (de != &de_) de_ = dx;
      de_.vec() *= scale();
      de = &de_;
    }
    embed.backward(tokens_, *de);
  }

 private:
  friend Visits<TokenInput<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.embed.visit(prefix + "embed.", f);
    m.embed_norm.visit(prefix + "embed_norm.", f);
  }

  InputPositions<T> positions_;
  bool scale_ = false;
  Data tokens_;  // [B, N] of the last forward
  Cache cache_;
  Tensor<T> de_;  // [B, N, D] dLoss/d(embed[tokens]) (with a scale or a norm)
};

// images [B, Hi, Wi, Ch] -> patches [B, (Hi/P) (Wi/P), P*P*Ch]: token gi * (Wi/P) + gj holds
// patch (gi, gj), its values in (row in patch, column in patch, channel) order.
template <class T>
void image_to_patches(const Tensor<T>& images, Index P, Tensor<T>& patches) {
  if (images.rank() != 4 || P < 1 || images.dim(1) % P != 0 || images.dim(2) % P != 0)
    fail<ShapeError>("images: expected shape [B, Hi, Wi, Ch] with Hi and Wi multiples of the patch size ", P,
                     ", got ", shape_str(images.shape()));
  const Index B = images.dim(0), Hi = images.dim(1), Wi = images.dim(2), Ch = images.dim(3);
  const Index gh = Hi / P, gw = Wi / P, F = P * P * Ch;
  patches.resize({B, gh * gw, F});
  for (Index b = 0; b < B; ++b)
    for (Index gi = 0; gi < gh; ++gi)
      for (Index gj = 0; gj < gw; ++gj) {
        T* dst = patches.data() + ((b * gh + gi) * gw + gj) * F;
        for (Index pi = 0; pi < P; ++pi) {
          const T* src = images.data() + ((b * Hi + gi * P + pi) * Wi + gj * P) * Ch;
          std::copy(src, src + P * Ch, dst + pi * P * Ch);
        }
      }
}

// Images [B, Hi, Wi, Ch] (pixel values as the caller scales them, e.g. u8 / 255) -> x [B, N, D]
// over the (Hi/P) x (Wi/P) grid of patches. Checkpoint names patch_embed.{weight [D, P*P*Ch], bias [D]}.
template <class T>
class PatchInput : public Visits<PatchInput<T>> {
 public:
  using Data = Tensor<T>;

  PatchInput() = default;
  explicit PatchInput(const TnnConfig& c)
      : patch_embed(c.patch_size * c.patch_size * c.image_channels, c.dim),
        height_(c.image_height),
        width_(c.image_width),
        channels_(c.image_channels),
        patch_(c.patch_size),
        positions_(c.positions, c.dim) {}

  Linear<T> patch_embed;  // P*P*Ch -> D

  static bool accepts(Task t) { return t == Task::Image; }
  static Index grid_h(const TnnConfig& c) { return c.grid_h(); }
  static Index grid_w(const TnnConfig& c) { return c.grid_w(); }
  static Index batch(const Data& images) { return images.dim(0); }
  Index length(const Data&) const { return (height_ / patch_) * (width_ / patch_); }
  Index tokens() const { return (height_ / patch_) * (width_ / patch_); }  // N, the grid's positions
  Index patch_features() const { return patch_embed.in_features(); }

  // PyTorch's Linear default.
  void init_weights(Rng& rng) { patch_embed.init_uniform(rng); }

  void check(const Data& images) const {
    if (images.rank() != 4 || images.dim(0) < 1 || images.dim(1) != height_ || images.dim(2) != width_ ||
        images.dim(3) != channels_)
      fail<ShapeError>("images: expected shape [B >= 1, ", height_, ", ", width_, ", ", channels_, "], got ",
                       shape_str(images.shape()));
  }
  void forward(const Data& images, Tensor<T>& x) {
    check(images);
    image_to_patches(images, patch_, patches_);
    patch_embed.forward(patches_, x);
    positions_.add(x);  // grid position gi * (Wi / P) + gj
  }
  void backward(const Tensor<T>& dx) { patch_embed.backward(patches_, dx, nullptr); }

 private:
  friend Visits<PatchInput<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.patch_embed.visit(prefix + "patch_embed.", f);
  }

  Index height_ = 0, width_ = 0, channels_ = 0, patch_ = 1;
  InputPositions<T> positions_;
  Tensor<T> patches_;  // [B, N, P*P*Ch] of the last forward
};

// Float features [B, N, F] -> x [B, N, D] by a linear map. Checkpoint names
// input_proj.{weight [D, F], bias [D]}. Values must be finite (ValueError naming the first that is not).
template <class T>
class FeatureInput : public Visits<FeatureInput<T>> {
 public:
  using Data = Tensor<T>;

  FeatureInput() = default;
  FeatureInput(Index features, Index dim, PositionScheme positions = PositionScheme::None)
      : input_proj(features, dim), positions_(positions, dim) {}
  explicit FeatureInput(const TnnConfig& c) : FeatureInput(c.input_features, c.dim, c.positions) {}

  Linear<T> input_proj;  // F -> D

  static bool accepts(Task t) { return t == Task::Regress; }
  static Index grid_h(const TnnConfig&) { return 0; }
  static Index grid_w(const TnnConfig&) { return 0; }
  static Index batch(const Data& x) { return x.dim(0); }
  static Index length(const Data& x) { return x.dim(1); }
  Index features() const { return input_proj.in_features(); }

  void init_weights(Rng& rng) { input_proj.init_uniform(rng); }

  void check(const Data& x) const {
    if (x.rank() != 3 || x.dim(0) < 1 || x.dim(1) < 1 || x.dim(2) != features())
      fail<ShapeError>("features: expected shape [B, N, ", features(), "] with B, N >= 1, got ", shape_str(x.shape()));
    for (Index i = 0; i < x.size(); ++i)
      if (!std::isfinite(x[i]))
        fail<ValueError>("features: expected finite values, got ", x[i], " at position ",
                         detail::position_str(x.shape(), i));
  }
  // Keeps a copy of the input for backward (no allocation at a repeated size).
  void forward(const Data& x_in, Tensor<T>& x) {
    check(x_in);
    in_ = x_in;
    input_proj.forward(in_, x);
    positions_.add(x);
  }
  void backward(const Tensor<T>& dx) { input_proj.backward(in_, dx, nullptr); }

 private:
  friend Visits<FeatureInput<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.input_proj.visit(prefix + "input_proj.", f);
  }

  InputPositions<T> positions_;
  Data in_;  // [B, N, F] of the last forward
};

}  // namespace tnn
