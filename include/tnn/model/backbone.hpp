// The backbone every TNN model shares (model.md §7): TNN layers over a residual stream
// [B, N, D], then the final norm (of final_norm_type; none: the identity). In training, dropout
// on the stream's first state and on every branch (docs/official.md §2.11). An input module
// writes the stream's first state (input()), a head reads the features forward() returns and
// writes their gradient (features_grad()); backward() runs the layers in reverse and leaves
// dLoss/d(input) for the input module.
// Owns every activation and workspace, llm.c style, so a step at a fixed [B, N] reuses the same
// buffers every time. Checkpoint names: layers.i.*, final_norm.*.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/dropout.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/config.hpp"

namespace tnn {

template <class T, class Backend = DefaultFftBackend>
class Backbone : public Visits<Backbone<T, Backend>> {
 public:
  using Block = TnnBlock<T, Backend>;

  Backbone() = default;
  // Layers of cfg; a grid (grid_h, grid_w > 0) makes every GTU the 2-D one over it (attention
  // takes the grid's positions in row-major order as they come).
  explicit Backbone(const BackboneConfig& cfg, Index grid_h = 0, Index grid_w = 0) {
    layers.reserve(static_cast<std::size_t>(cfg.layers));
    for (Index i = 0; i < cfg.layers; ++i)
      layers.emplace_back(block_options(cfg), make_token_mixer<T, Backend>(cfg, grid_h, grid_w));
    final_norm = Norm<T>(cfg.final_norm(), cfg.dim);
    caches_.resize(static_cast<std::size_t>(cfg.layers));
    xs_.resize(static_cast<std::size_t>(cfg.layers + 1));
  }

  std::vector<Block> layers;
  Norm<T> final_norm;

  Index dim() const { return final_norm.dim(); }

  // Per layer, the norms back to 1 / 0, then the token mixer's and the GLU's initialization (one
  // Rng stream, in that order); the final norm reset last.
  void init_weights(Rng& rng) {
    for (auto& l : layers) l.init_weights(rng);
    final_norm.reset_parameters();
  }

  // The stream's first state [B, N, D], written by the input module before forward().
  Tensor<T>& input() { return xs_[0]; }
  const Tensor<T>& input() const { return xs_[0]; }

  // Recomputation: when on, forward keeps only each layer's input (the residual stream) and one
  // layer's cache, and backward runs each layer's forward again just before its backward. The
  // same arithmetic in the same order, so gradients are bit-identical; activation memory drops
  // from all layers' caches to one. Off by default.
  void set_recompute(bool on) {
    recompute_ = on;
    if (on) {  // free the per-layer caches: only caches_[0] is used from now on
      for (std::size_t i = 1; i < caches_.size(); ++i) caches_[i] = typename Block::Cache();
    }
  }
  bool recompute() const { return recompute_; }

  // Runs the layers and the final norm on input(); returns the features [B, N, D] (valid until
  // the next forward). `lengths` (I32 [B]) makes the batch ragged (TnnBlock::forward). `drop`
  // (training only): dropout on input() (site 0) and on both branches of layer i (sites 2i + 1,
  // 2i + 2).
  const Tensor<T>& forward(const Tensor<std::int32_t>* lengths = nullptr, const DropoutContext* drop = nullptr) {
    lengths_ = lengths ? *lengths : Tensor<std::int32_t>();
    has_drop_ = drop != nullptr;
    if (drop) {
      drop_ = *drop;
      dropout_mask(*drop, 0, xs_[0].shape(), input_mask_);
      apply_mask(input_mask_, xs_[0]);
    } else {
      input_mask_.resize({0});
    }
    for (std::size_t i = 0; i < layers.size(); ++i)
      layers[i].forward(xs_[i], xs_[i + 1], cache_for(i), lengths, drop, site_of(i));
    final_norm.forward(xs_[layers.size()], xf_, final_cache_);
    return xf_;
  }
  const Tensor<T>& features() const { return xf_; }  // [B, N, D]

  // Where the head writes dLoss/dfeatures [B, N, D] before backward().
  Tensor<T>& features_grad() { return dxf_; }

  // Accumulates every layer's grads from features_grad(); returns dLoss/d(input()) [B, N, D].
  // `hook`, when set, is called as soon as a group of grads is final (data-parallel reduction
  // overlapping the rest of backward): with layers.size() after the final norm, then i after layer i.
  const Tensor<T>& backward(const std::function<void(Index)>* hook = nullptr) {
    const std::size_t L = layers.size();
    final_norm.backward(xs_[L], dxf_, final_cache_, dres_[0]);
    if (hook && *hook) (*hook)(static_cast<Index>(L));
    int cur = 0;
    for (std::size_t i = L; i-- > 0;) {
      if (recompute_ && i + 1 < L)  // the layer's cache again, from its kept input (scratch output: dres_[1 - cur]);
                                    // the last layer's is still there from forward
        layers[i].forward(xs_[i], dres_[1 - cur], caches_[0], lengths_.size() > 0 ? &lengths_ : nullptr,
                          has_drop_ ? &drop_ : nullptr, site_of(i));  // the same masks: (seed, step, site)
      layers[i].backward(xs_[i], dres_[cur], cache_for(i), dres_[1 - cur]);
      cur = 1 - cur;
      if (hook && *hook) (*hook)(static_cast<Index>(i));
    }
    if (input_mask_.size() > 0) apply_mask(input_mask_, dres_[cur]);  // through the input's dropout
    return dres_[cur];
  }

  // Layer i's cache of the last forward (the decoder reads its TNO input, the tests its parts);
  // with recomputation only the last layer's is kept.
  const typename Block::Cache& cache(Index i) const {
    if (recompute_ && i + 1 != static_cast<Index>(layers.size()))
      fail<Error>("Backbone::cache: with recomputation only the last layer's cache is kept, asked for layer ", i);
    return recompute_ ? caches_.at(0) : caches_.at(static_cast<std::size_t>(i));
  }

 private:
  friend Visits<Backbone<T, Backend>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    for (std::size_t i = 0; i < m.layers.size(); ++i) m.layers[i].visit(prefix + "layers." + std::to_string(i) + ".", f);
    m.final_norm.visit(prefix + "final_norm.", f);
  }

  typename Block::Cache& cache_for(std::size_t i) { return caches_[recompute_ ? 0 : i]; }
  // The first dropout site of layer i (its two branches: this and the next; 0 is the input).
  static std::uint64_t site_of(std::size_t i) { return 2 * static_cast<std::uint64_t>(i) + 1; }

  bool recompute_ = false;
  Tensor<std::int32_t> lengths_;                    // [B] of the last forward, or empty
  bool has_drop_ = false;                           // the last forward was a training step's with dropout
  DropoutContext drop_;                             // its dropout (recomputation draws the same masks)
  std::vector<Tensor<T>> xs_;                       // [layers + 1] x [B, N, D] residual stream: input, after each layer
  std::vector<typename Block::Cache> caches_;       // [layers]
  Tensor<T> xf_;                                    // [B, N, D] final_norm(xs_.back())
  typename Norm<T>::Cache final_cache_;
  Tensor<T> dxf_;                                   // [B, N, D] dLoss/dxf, written by the head
  Tensor<T> dres_[2];                               // [B, N, D] residual-stream gradient, ping-pong over layers
  Tensor<T> input_mask_;                            // [B, N, D] dropout on input() (training only; else empty)
};

}  // namespace tnn
