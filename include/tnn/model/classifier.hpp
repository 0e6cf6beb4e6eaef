// Sequence classification with a bidirectional TNN (issue 14; the LRA setting of the paper):
// token embedding, TNN layers with causal false, the final norm, pooling over each sequence's
// valid positions, a linear head [K, D] + [K], mean cross-entropy over the batch.
// ClassifierHead (pooling + head + loss) is the reusable piece: any backbone that produces
// [B, N, D] features (the 2-D image model too) puts it on top.
//
// Ragged batches are exact: with lengths [B], every layer zeroes row b's positions
// >= lengths[b] at its TNO input (Gtu::forward), and pooling reads only positions < lengths[b],
// so a row's logits equal that row run alone at its own length.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/embedding.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/loss.hpp"

namespace tnn {

// Checkpoint metadata key of a classifier's label names: a JSON array of strings, class k's
// name at index k (written by `tnn train --task classify`, read by `tnn classify`).
inline constexpr const char* kLabelsMetadataKey = "tnn.labels";

// Throws ShapeError / ValueError unless lengths is I32 [B] with every value in [1, N].
inline void check_lengths(const Tensor<std::int32_t>& lengths, Index B, Index N, const char* what = "lengths") {
  if (lengths.rank() != 1 || lengths.dim(0) != B)
    fail<ShapeError>(what, ": expected shape [", B, "] (one length per sequence), got ", shape_str(lengths.shape()));
  for (Index b = 0; b < B; ++b)
    if (lengths[b] < 1 || lengths[b] > N)
      fail<ValueError>(what, ": expected values in [1, ", N, "] (the padded length), got ", lengths[b], " at row ", b);
}

// Throws ShapeError / ValueError unless labels is I32 [B] with every value in [0, K).
inline void check_labels(const Tensor<std::int32_t>& labels, Index B, Index K, const char* what = "labels") {
  if (labels.rank() != 1 || labels.dim(0) != B)
    fail<ShapeError>(what, ": expected shape [", B, "] (one label per sequence), got ", shape_str(labels.shape()));
  for (Index b = 0; b < B; ++b)
    if (labels[b] < 0 || labels[b] >= K)
      fail<ValueError>(what, ": expected class ids in [0, ", K, "), got ", labels[b], " at row ", b);
}

// Pooling, head and loss: features x [B, N, D] -> pooled [B, D] -> logits [B, K]; the loss is
// the mean over the batch of -log softmax(logits)[label]. Forward saves, backward reads.
template <class T>
class ClassifierHead {
 public:
  ClassifierHead() = default;
  ClassifierHead(Index dim, Index num_classes, Pooling pooling)
      : head(dim, num_classes, /*bias=*/true), pooling_(pooling) {}

  Linear<T> head;  // D -> K: checkpoint names head.weight [K, D], head.bias [K]

  Index dim() const { return head.in_features(); }
  Index num_classes() const { return head.out_features(); }
  Pooling pooling() const { return pooling_; }

  // PyTorch Linear default: weight then bias uniform in [-1/sqrt(D), 1/sqrt(D)).
  void init_weights(Rng& rng) { head.init_uniform(rng); }

  // x [B, N, D]; lengths I32 [B] in [1, N], or null for "every row has length N".
  // Returns logits [B, K] (valid until the next forward).
  const Tensor<T>& forward(const Tensor<T>& x, const Tensor<std::int32_t>* lengths) {
    if (x.rank() != 3 || x.dim(2) != dim() || x.dim(0) < 1 || x.dim(1) < 1)
      fail<ShapeError>("ClassifierHead x: expected shape [B, N, ", dim(), "] with B, N >= 1, got ", shape_str(x.shape()));
    const Index B = x.dim(0), N = x.dim(1), D = dim();
    lengths_.resize(static_cast<std::size_t>(B));
    if (lengths) check_lengths(*lengths, B, N);
    for (Index b = 0; b < B; ++b) lengths_[static_cast<std::size_t>(b)] = lengths ? Index((*lengths)[b]) : N;
    x_shape_ = x.shape();
    pooled_.resize({B, D});
    for (Index b = 0; b < B; ++b) {
      T* p = pooled_.data() + b * D;
      const T* xb = x.data() + b * N * D;
      if (pooling_ == Pooling::First) {
        for (Index d = 0; d < D; ++d) p[d] = xb[d];
        continue;
      }
      const Index len = lengths_[static_cast<std::size_t>(b)];
      for (Index d = 0; d < D; ++d) p[d] = T(0);
      for (Index n = 0; n < len; ++n)
        for (Index d = 0; d < D; ++d) p[d] += xb[n * D + d];
      const T inv = T(1) / static_cast<T>(len);
      for (Index d = 0; d < D; ++d) p[d] *= inv;
    }
    head.forward(pooled_, logits_);
    has_loss_ = false;
    return logits_;
  }

  // After forward: mean cross-entropy against labels I32 [B] in [0, K); keeps dLoss/dlogits.
  T loss(const Tensor<std::int32_t>& labels) {
    check_labels(labels, logits_.dim(0), num_classes());
    const T l = cross_entropy(logits_, labels, &dlogits_);
    has_loss_ = true;
    return l;
  }

  // Accumulates head.weight/bias grads; dx [B, N, D] overwritten with dLoss/dx (zero at
  // positions pooling does not read).
  void backward(Tensor<T>& dx) {
    if (!has_loss_) fail<Error>("ClassifierHead::backward: expected a preceding forward and loss(labels), got none");
    head.backward(pooled_, dlogits_, &dpooled_);
    const Index B = x_shape_[0], N = x_shape_[1], D = dim();
    dx.resize(x_shape_);
    dx.set_zero();
    for (Index b = 0; b < B; ++b) {
      const T* g = dpooled_.data() + b * D;
      T* db = dx.data() + b * N * D;
      const Index len = pooling_ == Pooling::First ? 1 : lengths_[static_cast<std::size_t>(b)];
      const T scale = pooling_ == Pooling::First ? T(1) : T(1) / static_cast<T>(len);
      for (Index n = 0; n < len; ++n)
        for (Index d = 0; d < D; ++d) db[n * D + d] = g[d] * scale;
    }
  }

  const Tensor<T>& logits() const { return logits_; }  // [B, K]
  const Tensor<T>& pooled() const { return pooled_; }  // [B, D]

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    head.visit(prefix, f);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) const {
    head.visit(prefix, f);
  }

 private:
  Pooling pooling_ = Pooling::Mean;
  std::vector<Index> lengths_;  // [B] of the last forward
  Shape x_shape_;               // [B, N, D] of the last forward
  Tensor<T> pooled_;            // [B, D]
  Tensor<T> logits_;            // [B, K]
  Tensor<T> dlogits_;           // [B, K]
  Tensor<T> dpooled_;           // [B, D]
  bool has_loss_ = false;
};

// The bidirectional TNN classifier of a config with task "classify". Checkpoint names are the
// LM's (embed., layers.i., final_norm.) plus head.weight and head.bias; no lm_head.
template <class T>
class TnnClassifier : public ParameterSet<TnnClassifier<T>, T> {
 public:
  explicit TnnClassifier(const TnnConfig& cfg) : cfg_((cfg.validate(), cfg)) {
    if (cfg_.task != Task::Classify)
      fail<ConfigError>("TnnClassifier: expected a config with task 'classify', got task '", to_string(cfg_.task), "'");
    embed = Embedding<T>(cfg_.vocab_size, cfg_.dim);
    layers.reserve(static_cast<std::size_t>(cfg_.layers));
    for (Index i = 0; i < cfg_.layers; ++i) layers.emplace_back(cfg_);
    final_norm = Norm<T>(cfg_.norm_type, cfg_.dim);
    head = ClassifierHead<T>(cfg_.dim, cfg_.num_classes, cfg_.pooling);
    caches_.resize(static_cast<std::size_t>(cfg_.layers));
    xs_.resize(static_cast<std::size_t>(cfg_.layers + 1));
  }

  Embedding<T> embed;  // [V, D]
  std::vector<TnnBlock<T>> layers;
  Norm<T> final_norm;
  ClassifierHead<T> head;  // pooling, D -> K, loss

  const TnnConfig& config() const { return cfg_; }
  Index num_classes() const { return cfg_.num_classes; }

  // One Rng stream, the LM's order: embed ~ N(0, 1/D), the layers, final_norm reset, the head.
  void init_weights(std::uint64_t seed) {
    Rng rng(seed);
    embed.init_normal(rng, 1.0 / std::sqrt(static_cast<double>(cfg_.dim)));
    for (auto& l : layers) l.init_weights(rng);
    final_norm.reset_parameters();
    head.init_weights(rng);
  }

  // f(name, Param&) in checkpoint order; ParameterSet derives the rest from it.
  template <class F>
  void visit(F&& f) {
    visit_all(*this, f);
  }
  template <class F>
  void visit(F&& f) const {
    visit_all(*this, f);
  }

  // tokens I32 [B, N] (padding positions must hold valid ids too; they are never read into a
  // valid position); lengths I32 [B] in [1, N] or null (every row length N); labels I32 [B].
  // Returns the mean cross-entropy and keeps what backward() needs.
  T forward(const Tensor<std::int32_t>& tokens, const Tensor<std::int32_t>* lengths,
            const Tensor<std::int32_t>& labels) {
    if (tokens.rank() == 2) check_labels(labels, tokens.dim(0), cfg_.num_classes);
    run_forward(tokens, lengths);
    const T l = head.loss(labels);
    has_loss_ = true;
    return l;
  }

  // Logits [B, K] only (evaluation, classification); a following backward() is an error.
  const Tensor<T>& forward(const Tensor<std::int32_t>& tokens, const Tensor<std::int32_t>* lengths = nullptr) {
    run_forward(tokens, lengths);
    return head.logits();
  }

  const Tensor<T>& logits() const { return head.logits(); }  // [B, K]

  void backward() {
    if (!has_loss_)
      fail<Error>("TnnClassifier::backward: expected a preceding forward(tokens, lengths, labels), got none (or a logits-only forward)");
    const std::size_t L = layers.size();
    head.backward(dxf_);
    final_norm.backward(xs_[L], dxf_, final_cache_, dres_[0]);
    int cur = 0;
    for (std::size_t i = L; i-- > 0;) {
      layers[i].backward(xs_[i], dres_[cur], caches_[i], dres_[1 - cur]);
      cur = 1 - cur;
    }
    embed.backward(tokens_, dres_[cur]);
  }

 private:
  template <class Self, class F>
  static void visit_all(Self& m, F& f) {  // Self: TnnClassifier or const TnnClassifier
    m.embed.visit("embed.", f);
    for (std::size_t i = 0; i < m.layers.size(); ++i) m.layers[i].visit("layers." + std::to_string(i) + ".", f);
    m.final_norm.visit("final_norm.", f);
    m.head.visit("head.", f);
  }

  void run_forward(const Tensor<std::int32_t>& tokens, const Tensor<std::int32_t>* lengths) {
    has_loss_ = false;
    if (tokens.rank() != 2 || tokens.dim(0) < 1 || tokens.dim(1) < 1)
      fail<ShapeError>("tokens: expected shape [B, N] with B, N >= 1, got ", shape_str(tokens.shape()));
    if (lengths) check_lengths(*lengths, tokens.dim(0), tokens.dim(1));
    embed.check_tokens(tokens);
    tokens_ = tokens;
    embed.forward(tokens_, xs_[0]);
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i].forward(xs_[i], xs_[i + 1], caches_[i], lengths);
    final_norm.forward(xs_[layers.size()], xf_, final_cache_);
    head.forward(xf_, lengths);
  }

  TnnConfig cfg_;
  Tensor<std::int32_t> tokens_;                      // [B, N]
  std::vector<Tensor<T>> xs_;                        // [layers + 1] x [B, N, D] residual stream
  std::vector<typename TnnBlock<T>::Cache> caches_;  // [layers]
  Tensor<T> xf_;                                     // [B, N, D] final_norm(xs_.back())
  typename Norm<T>::Cache final_cache_;
  bool has_loss_ = false;
  Tensor<T> dxf_;      // [B, N, D]
  Tensor<T> dres_[2];  // [B, N, D] residual-stream gradient, ping-pong over layers
};

// One call to load a classifier checkpoint: its config (task classify) and weights.
template <class T>
TnnClassifier<T> load_classifier(const std::string& path) {
  const TnnConfig cfg = read_config(path);
  if (cfg.task != Task::Classify)
    fail<ConfigError>("checkpoint '", path, "': expected a classifier (config task 'classify'), got task '",
                      to_string(cfg.task), "'");
  TnnClassifier<T> model(cfg);
  load_weights(path, model);
  return model;
}

}  // namespace tnn
