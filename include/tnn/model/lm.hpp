// The TNN language model (model.md §7): token embedding, TNN layers, a final
// norm and the vocabulary head (its own [V, D] weight, or embed.weight when tied),
// trained by mean cross-entropy. Owns every activation and workspace, llm.c style,
// so a training step at a fixed [B, N] reuses the same buffers every time.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/gemm.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/embedding.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/loss.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

template <class T>
class TnnLM : public ParameterSet<TnnLM<T>, T> {
 public:
  explicit TnnLM(const TnnConfig& cfg) : cfg_((cfg.validate(), cfg)) {
    embed = Embedding<T>(cfg_.vocab_size, cfg_.dim);
    layers.reserve(static_cast<std::size_t>(cfg_.layers));
    for (Index i = 0; i < cfg_.layers; ++i) layers.emplace_back(cfg_);
    final_norm = Norm<T>(cfg_.norm_type, cfg_.dim);
    if (!cfg_.tie_embeddings) lm_head = Linear<T>(cfg_.dim, cfg_.vocab_size, /*bias=*/false);
    caches_.resize(static_cast<std::size_t>(cfg_.layers));
    xs_.resize(static_cast<std::size_t>(cfg_.layers + 1));
  }

  Embedding<T> embed;             // [V, D]
  std::vector<TnnBlock<T>> layers;
  Norm<T> final_norm;
  Linear<T> lm_head;              // D -> V, no bias; unused (empty) when tie_embeddings

  const TnnConfig& config() const { return cfg_; }

  // Seeded initialization, one tnn::Rng stream consumed in this order:
  //  - embed.weight ~ N(0, 1/D), fairseq's convention for LM embeddings, rather
  //    than nn.Embedding's N(0, 1), which through a tied head gives logits of
  //    std ~sqrt(D) at step 0;
  //  - per layer: norms reset to 1 / 0, then the GTU's init_weights (PyTorch
  //    Linear defaults for its projections and RPE; gamma per the config), then
  //    the GLU's (PyTorch Linear defaults: uniform +-1/sqrt(fan_in));
  //  - final_norm reset; lm_head.weight PyTorch Linear default, uniform +-1/sqrt(D).
  void init_weights(std::uint64_t seed) {
    Rng rng(seed);
    embed.init_normal(rng, 1.0 / std::sqrt(static_cast<double>(cfg_.dim)));
    for (auto& l : layers) l.init_weights(rng);
    final_norm.reset_parameters();
    if (!cfg_.tie_embeddings) lm_head.init_uniform(rng);
  }

  // f(name, Param&) for every stored tensor in checkpoint order (model.md §9);
  // named_parameters(), zero_grad() and num_parameters() come from it (ParameterSet).
  template <class F>
  void visit(F&& f) {
    visit_all(*this, f);
  }
  template <class F>
  void visit(F&& f) const {
    visit_all(*this, f);
  }

  // tokens, targets [B, N]; target -1 = ignored. Returns the mean cross-entropy
  // over targets != -1 (0 if none) and keeps dLoss/dlogits for backward().
  T forward(const Tensor<std::int32_t>& tokens, const Tensor<std::int32_t>& targets) {
    if (targets.shape() != tokens.shape())
      fail<ShapeError>("targets: expected the tokens' shape ", shape_str(tokens.shape()), ", got ",
                       shape_str(targets.shape()));
    check_targets(targets, cfg_.vocab_size);
    run_forward(tokens);
    const T loss = cross_entropy(logits_, targets, &dlogits_);
    has_loss_ = true;
    return loss;
  }

  // The same, but the loss is the sum over targets != -1 divided by `normalizer` instead of by
  // their count, and so is its gradient: a data-parallel rank holding some rows of a global
  // batch passes the global batch's target count, so the ranks' losses and gradients add up to
  // the global mean's (tnn/dist/data_parallel.hpp).
  T forward(const Tensor<std::int32_t>& tokens, const Tensor<std::int32_t>& targets, Index normalizer) {
    if (normalizer < 1) fail<ValueError>("forward normalizer: expected a target count >= 1, got ", normalizer);
    const T mean = forward(tokens, targets);
    const Index count = count_targets(targets);
    if (count == normalizer) return mean;
    const T scale = T(double(count) / double(normalizer));
    for (T& g : dlogits_) g *= scale;
    return mean * scale;
  }

  // Optional, for data-parallel training: called inside backward() as soon as a group of
  // gradients is final, so their reduction over processes can start while the layers below
  // still run. Argument: layers.size() once the final norm (and an untied lm_head) are done,
  // then i after layer i (i = layers.size()-1 .. 0), then -1 after the embedding (last call;
  // with tied embeddings embed.weight, which the head also feeds, is final only then).
  std::function<void(Index)> backward_hook;

  // Logits only (evaluation, generation); a following backward() is an error.
  const Tensor<T>& forward(const Tensor<std::int32_t>& tokens) {
    run_forward(tokens);
    return logits_;
  }

  const Tensor<T>& logits() const { return logits_; }  // [B, N, V]

  // The TNO input v [B, N, E] of layer i in the last forward: the history an
  // incremental decoder keeps (IncrementalDecoder::prefill).
  const Tensor<T>& tno_input(Index i) const {
    if (i < 0 || i >= static_cast<Index>(layers.size()))
      fail<ValueError>("tno_input layer: expected an index in [0, ", layers.size(), "), got ", i);
    return caches_[static_cast<std::size_t>(i)].gtu.v;
  }

  // Accumulates dLoss/dparam of the last forward(tokens, targets) into every trainable grad.
  void backward() {
    if (!has_loss_)
      fail<Error>("TnnLM::backward: expected a preceding forward(tokens, targets), got none (or a logits-only forward)");
    const std::size_t L = layers.size();
    Param<T>& head = head_param();
    // logits = xf W^T: W.grad += dlogits^T xf, dxf = dlogits W
    const Index rows = xf_.rows(), D = cfg_.dim, V = cfg_.vocab_size;
    gemm_tn(V, D, rows, dlogits_.data(), V, xf_.data(), D, T(1), head.grad.data(), D);
    dxf_.resize(xf_.shape());
    gemm_nn(rows, D, V, dlogits_.data(), V, head.value.data(), D, T(0), dxf_.data(), D);
    final_norm.backward(xs_[L], dxf_, final_cache_, dres_[0]);
    if (backward_hook) backward_hook(static_cast<Index>(L));
    int cur = 0;
    for (std::size_t i = L; i-- > 0;) {
      layers[i].backward(xs_[i], dres_[cur], caches_[i], dres_[1 - cur]);
      cur = 1 - cur;
      if (backward_hook) backward_hook(static_cast<Index>(i));
    }
    embed.backward(tokens_, dres_[cur]);
    if (backward_hook) backward_hook(-1);
  }

 private:
  template <class Self, class F>
  static void visit_all(Self& m, F& f) {  // Self: TnnLM or const TnnLM
    m.embed.visit("embed.", f);
    for (std::size_t i = 0; i < m.layers.size(); ++i) m.layers[i].visit("layers." + std::to_string(i) + ".", f);
    m.final_norm.visit("final_norm.", f);
    if (!m.cfg_.tie_embeddings) m.lm_head.visit("lm_head.", f);
  }

  Param<T>& head_param() { return cfg_.tie_embeddings ? embed.weight : lm_head.weight; }

  void run_forward(const Tensor<std::int32_t>& tokens) {
    has_loss_ = false;
    if (tokens.rank() != 2 || tokens.dim(0) < 1 || tokens.dim(1) < 1)
      fail<ShapeError>("tokens: expected shape [B, N] with B, N >= 1, got ", shape_str(tokens.shape()));
    embed.check_tokens(tokens);
    tokens_ = tokens;  // kept for the embedding backward; no allocation at a repeated size
    embed.forward(tokens_, xs_[0]);
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i].forward(xs_[i], xs_[i + 1], caches_[i]);
    final_norm.forward(xs_[layers.size()], xf_, final_cache_);
    const Param<T>& head = head_param();
    logits_.resize({tokens.dim(0), tokens.dim(1), cfg_.vocab_size});
    gemm_nt(xf_.rows(), cfg_.vocab_size, cfg_.dim, xf_.data(), cfg_.dim, head.value.data(), cfg_.dim, T(0),
            logits_.data(), cfg_.vocab_size);
  }

  TnnConfig cfg_;
  // activations of the last forward, read by backward
  Tensor<std::int32_t> tokens_;                       // [B, N]
  std::vector<Tensor<T>> xs_;                         // [layers + 1] x [B, N, D] residual stream: embed, after each layer
  std::vector<typename TnnBlock<T>::Cache> caches_;   // [layers]
  Tensor<T> xf_;                                      // [B, N, D] final_norm(xs_.back())
  typename Norm<T>::Cache final_cache_;
  Tensor<T> logits_;                                  // [B, N, V]
  Tensor<T> dlogits_;                                 // [B, N, V] dLoss/dlogits of the last forward with targets
  bool has_loss_ = false;
  // backward workspaces
  Tensor<T> dxf_;                                     // [B, N, D]
  Tensor<T> dres_[2];                                 // [B, N, D] residual-stream gradient, ping-pong over layers
};

}  // namespace tnn
