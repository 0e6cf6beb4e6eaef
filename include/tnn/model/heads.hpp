// Heads: what a model computes from the backbone's features x [B, N, D], and its loss.
//   LmHead          logits [B, N, V] = x W^T (W its own [V, D], or the embedding when tied);
//                   mean cross-entropy over targets != -1
//   ClassifierHead  pooling (mean, first or max) over each sequence's valid positions -> logits [B, K];
//                   mean cross-entropy
//   RegressionHead  values [B, N, Fo] = linear(x); mean squared error over the valid positions
// Each is constructed from a TnnConfig (or its sizes), saves in forward what its backward reads,
// and names its own tensors. A new head is a class with the same members (model/sequence_model.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/gemm.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/loss.hpp"

namespace tnn {

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

// Next-token (causal) or masked-token logits over a vocabulary of V: logits = x W^T (linear),
// or fairseq's RobertaLMHead (roberta, docs/official.md §2.10):
//   logits = LayerNorm(gelu(x Wd^T + bd)) W^T + b
// W is lm_head.weight [V, D], or the input's embed.weight when tied (lm_head.weight is then
// absent). Checkpoint names lm_head.weight; roberta adds lm_head.dense.{weight [D, D], bias [D]},
// lm_head.layer_norm.{weight, bias} [D] (a LayerNorm whatever norm_type) and lm_head.bias [V].
template <class T>
class LmHead : public Visits<LmHead<T>> {
 public:
  using Target = Tensor<std::int32_t>;  // [B, N] ids in [0, V), -1 = ignored

  LmHead() = default;
  LmHead(Index dim, Index vocab, bool tied, LmHeadType type = LmHeadType::Linear)
      : vocab_(vocab), dim_(dim), tied_(tied), type_(type) {
    if (!tied) lm_head = Linear<T>(dim, vocab, /*bias=*/false);
    if (type == LmHeadType::Roberta) {
      dense = Linear<T>(dim, dim, /*bias=*/true);
      layer_norm = Norm<T>(NormType::LayerNorm, dim);
      bias.init({vocab});
    }
  }
  explicit LmHead(const TnnConfig& c) : LmHead(c.dim, c.vocab_size, c.tie_embeddings, c.lm_head_type) {}

  Linear<T> dense;     // roberta: D -> D, then the exact gelu
  Norm<T> layer_norm;  // roberta: LayerNorm over D (eps 1e-5)
  Linear<T> lm_head;   // D -> V, no bias; empty when tied
  Param<T> bias;       // roberta: [V], added to the logits

  static bool accepts(Task t) { return t == Task::Lm; }
  bool tied() const { return tied_; }
  Index vocab_size() const { return vocab_; }
  LmHeadType type() const { return type_; }

  // PyTorch Linear default, uniform +-1/sqrt(D), for dense (roberta) then lm_head (nothing to
  // draw when tied); the LayerNorm 1 / 0 and the logits' bias 0, as fairseq builds them.
  void init_weights(Rng& rng) {
    if (type_ == LmHeadType::Roberta) {
      dense.init_uniform(rng);
      layer_norm.reset_parameters();
      bias.value.set_zero();
    }
    if (!tied_) lm_head.init_uniform(rng);
  }

  // Before any work: targets must have the data's [B, N] shape and ids in [-1, V).
  template <class Data>
  void check_target(const Target& targets, const Data& tokens) const {
    if (targets.shape() != tokens.shape())
      fail<ShapeError>("targets: expected the tokens' shape ", shape_str(tokens.shape()), ", got ",
                       shape_str(targets.shape()));
    check_targets(targets, vocab_);
  }

  // What the roberta head keeps for backward (empty for linear).
  struct Cache {
    Tensor<T> hpre;  // [B, N, D] x Wd^T + bd, gelu's input
    Tensor<T> h;     // [B, N, D] gelu(hpre), the LayerNorm's input
    Tensor<T> hn;    // [B, N, D] LayerNorm(h), the vocabulary projection's input
    typename Norm<T>::Cache norm;
  };

  // logits [B, N, V] of features x [B, N, D], keeping in `c` what backward reads: the one
  // computation of forward and of the incremental decoder. `input` gives the tied weight.
  template <class Input>
  void logits_into(const Tensor<T>& x, const Input& input, Tensor<T>& logits, Cache& c) const {
    const Param<T>& w = weight(input);
    const Tensor<T>* z = &x;
    if (type_ == LmHeadType::Roberta) {
      dense.forward(x, c.hpre);
      activation_forward(Activation::Gelu, c.hpre, c.h);
      layer_norm.forward(c.h, c.hn, c.norm);
      z = &c.hn;
    }
    const Index rows = x.rows();
    detail::resize_last_dim(logits, x, vocab_);
    if (type_ == LmHeadType::Roberta) {
      logits.matrix().rowwise() = bias.value.matrix().row(0);
      gemm_nt(rows, vocab_, dim_, z->data(), dim_, w.value.data(), dim_, T(1), logits.data(), vocab_, w.precision);
    } else {
      gemm_nt(rows, vocab_, dim_, z->data(), dim_, w.value.data(), dim_, T(0), logits.data(), vocab_, w.precision);
    }
  }

  // x [B, N, D] -> logits [B, N, V]. `input` gives the tied weight.
  template <class Input>
  const Tensor<T>& forward(const Tensor<T>& x, const Tensor<std::int32_t>*, Input& input) {
    logits_into(x, input, logits_, cache_);
    return logits_;
  }
  const Tensor<T>& output() const { return logits_; }

  // After forward: the mean cross-entropy over targets != -1 (0 if none); keeps dLoss/dlogits.
  T loss(const Target& targets) { return cross_entropy(logits_, targets, &dlogits_); }
  // How many terms the loss averages (a data-parallel rank rescales by its share of the global count).
  static Index count(const Target& targets, const Tensor<std::int32_t>* = nullptr) { return count_targets(targets); }
  void scale_loss_grad(T s) {
    for (T& g : dlogits_) g *= s;
  }

  // logits = z W^T (+ b): W.grad += dlogits^T z, dz = dlogits W; then back through the roberta
  // head's LayerNorm, gelu and dense to dx (overwritten).
  template <class Input>
  void backward(const Tensor<T>& x, Tensor<T>& dx, Input& input) {
    Param<T>& w = weight(input);
    const Index rows = x.rows();
    const bool roberta = type_ == LmHeadType::Roberta;
    const Tensor<T>& z = roberta ? cache_.hn : x;
    gemm_tn(vocab_, dim_, rows, dlogits_.data(), vocab_, z.data(), dim_, T(1), w.grad.data(), dim_, w.precision);
    Tensor<T>& dz = roberta ? dz_ : dx;
    dz.resize(x.shape());
    gemm_nn(rows, dim_, vocab_, dlogits_.data(), vocab_, w.value.data(), dim_, T(0), dz.data(), dim_, w.precision);
    if (!roberta) return;
    T* bg = bias.grad.data();
    const T* g = dlogits_.data();
    for (Index r = 0; r < rows; ++r)
      for (Index v = 0; v < vocab_; ++v) bg[v] += g[r * vocab_ + v];
    layer_norm.backward(cache_.h, dz_, cache_.norm, dz_);
    activation_backward(Activation::Gelu, cache_.hpre, dz_, dz_);
    dense.backward(x, dz_, &dx);
  }

  // The vocabulary head's weight: lm_head's, or the input's when tied.
  template <class Input>
  Param<T>& weight(Input& input) {
    if constexpr (has_tied_weight<Input>(0)) {
      if (tied_) return input.tied_weight();
    } else {
      if (tied_) fail<ConfigError>("tie_embeddings: this model's input has no embedding to tie the head to");
    }
    return lm_head.weight;
  }
  template <class Input>
  const Param<T>& weight(const Input& input) const {
    if constexpr (has_tied_weight<Input>(0)) {
      if (tied_) return input.tied_weight();
    } else {
      if (tied_) fail<ConfigError>("tie_embeddings: this model's input has no embedding to tie the head to");
    }
    return lm_head.weight;
  }

 private:
  friend Visits<LmHead<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    if (m.type_ == LmHeadType::Roberta) {
      m.dense.visit(prefix + "lm_head.dense.", f);
      m.layer_norm.visit(prefix + "lm_head.layer_norm.", f);
    }
    if (!m.tied_) m.lm_head.visit(prefix + "lm_head.", f);
    if (m.type_ == LmHeadType::Roberta) f(prefix + "lm_head.bias", m.bias);
  }

  template <class Input>
  static constexpr auto has_tied_weight(int) -> decltype(std::declval<Input&>().tied_weight(), bool()) {
    return true;
  }
  template <class Input>
  static constexpr bool has_tied_weight(...) {
    return false;
  }

  Index vocab_ = 0, dim_ = 0;
  bool tied_ = false;
  LmHeadType type_ = LmHeadType::Linear;
  Cache cache_;        // the roberta head's forward
  Tensor<T> logits_;   // [B, N, V]
  Tensor<T> dlogits_;  // [B, N, V] dLoss/dlogits of the last loss()
  Tensor<T> dz_;       // [B, N, D] roberta: dLoss/d(the projection's input), then back to dense's output
};

// Pooling, head and loss of a classifier: features x [B, N, D] -> pooled [B, D] -> logits
// [B, K]; the loss is the mean over the batch of -log softmax(logits)[label]. Checkpoint names
// head.weight [K, D], head.bias [K].
template <class T>
class ClassifierHead : public Visits<ClassifierHead<T>> {
 public:
  using Target = Tensor<std::int32_t>;  // [B] labels in [0, K)

  ClassifierHead() = default;
  ClassifierHead(Index dim, Index num_classes, Pooling pooling)
      : head(dim, num_classes, /*bias=*/true), pooling_(pooling) {}
  explicit ClassifierHead(const TnnConfig& c) : ClassifierHead(c.dim, c.num_classes, c.pooling) {}

  Linear<T> head;  // D -> K

  static bool accepts(Task t) { return t == Task::Classify || t == Task::Image; }
  Index dim() const { return head.in_features(); }
  Index num_classes() const { return head.out_features(); }
  Pooling pooling() const { return pooling_; }

  // PyTorch Linear default: weight then bias uniform in [-1/sqrt(D), 1/sqrt(D)).
  void init_weights(Rng& rng) { head.init_uniform(rng); }

  template <class Data>
  void check_target(const Target& labels, const Data& data) const {
    if (data.rank() >= 1) check_labels(labels, data.dim(0), num_classes());
  }

  // x [B, N, D]; lengths I32 [B] in [1, N], or null for "every row has length N".
  // Returns logits [B, K] (valid until the next forward).
  template <class Input>
  const Tensor<T>& forward(const Tensor<T>& x, const Tensor<std::int32_t>* lengths, Input&) {
    return forward(x, lengths);
  }
  const Tensor<T>& forward(const Tensor<T>& x, const Tensor<std::int32_t>* lengths) {
    if (x.rank() != 3 || x.dim(2) != dim() || x.dim(0) < 1 || x.dim(1) < 1)
      fail<ShapeError>("ClassifierHead x: expected shape [B, N, ", dim(), "] with B, N >= 1, got ", shape_str(x.shape()));
    const Index B = x.dim(0), N = x.dim(1), D = dim();
    lengths_.resize(static_cast<std::size_t>(B));
    if (lengths) check_lengths(*lengths, B, N);
    for (Index b = 0; b < B; ++b) lengths_[static_cast<std::size_t>(b)] = lengths ? Index((*lengths)[b]) : N;
    x_shape_ = x.shape();
    pooled_.resize({B, D});
    if (pooling_ == Pooling::Max) argmax_.resize(static_cast<std::size_t>(B * D));
    for (Index b = 0; b < B; ++b) {
      T* p = pooled_.data() + b * D;
      const T* xb = x.data() + b * N * D;
      if (pooling_ == Pooling::First) {
        for (Index d = 0; d < D; ++d) p[d] = xb[d];
        continue;
      }
      const Index len = lengths_[static_cast<std::size_t>(b)];
      if (pooling_ == Pooling::Max) {
        for (Index d = 0; d < D; ++d) {
          Index best = 0;
          for (Index n = 1; n < len; ++n)
            if (xb[n * D + d] > xb[best * D + d]) best = n;
          p[d] = xb[best * D + d];
          argmax_[static_cast<std::size_t>(b * D + d)] = best;
        }
        continue;
      }
      for (Index d = 0; d < D; ++d) p[d] = T(0);
      for (Index n = 0; n < len; ++n)
        for (Index d = 0; d < D; ++d) p[d] += xb[n * D + d];
      const T inv = T(1) / static_cast<T>(len);
      for (Index d = 0; d < D; ++d) p[d] *= inv;
    }
    head.forward(pooled_, logits_);
    return logits_;
  }
  const Tensor<T>& output() const { return logits_; }  // [B, K]
  const Tensor<T>& pooled() const { return pooled_; }  // [B, D]

  // After forward: mean cross-entropy against labels I32 [B] in [0, K); keeps dLoss/dlogits.
  T loss(const Target& labels) {
    check_labels(labels, logits_.dim(0), num_classes());
    return cross_entropy(logits_, labels, &dlogits_);
  }
  static Index count(const Target& labels, const Tensor<std::int32_t>* = nullptr) { return labels.size(); }
  void scale_loss_grad(T s) {
    for (T& g : dlogits_) g *= s;
  }

  // Accumulates head.weight/bias grads; dx [B, N, D] overwritten with dLoss/dx (zero at
  // positions pooling does not read).
  template <class Input>
  void backward(const Tensor<T>&, Tensor<T>& dx, Input&) {
    backward(dx);
  }
  void backward(Tensor<T>& dx) {
    head.backward(pooled_, dlogits_, &dpooled_);
    const Index B = x_shape_[0], N = x_shape_[1], D = dim();
    dx.resize(x_shape_);
    dx.set_zero();
    for (Index b = 0; b < B; ++b) {
      const T* g = dpooled_.data() + b * D;
      T* db = dx.data() + b * N * D;
      if (pooling_ == Pooling::Max) {
        for (Index d = 0; d < D; ++d) db[argmax_[static_cast<std::size_t>(b * D + d)] * D + d] = g[d];
        continue;
      }
      const Index len = pooling_ == Pooling::First ? 1 : lengths_[static_cast<std::size_t>(b)];
      const T scale = pooling_ == Pooling::First ? T(1) : T(1) / static_cast<T>(len);
      for (Index n = 0; n < len; ++n)
        for (Index d = 0; d < D; ++d) db[n * D + d] = g[d] * scale;
    }
  }

 private:
  friend Visits<ClassifierHead<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.head.visit(prefix + "head.", f);
  }

  Pooling pooling_ = Pooling::Mean;
  std::vector<Index> lengths_;  // [B] of the last forward
  std::vector<Index> argmax_;   // [B, D] max pooling: the position of each maximum
  Shape x_shape_;               // [B, N, D] of the last forward
  Tensor<T> pooled_;            // [B, D]
  Tensor<T> logits_;            // [B, K]
  Tensor<T> dlogits_;           // [B, K]
  Tensor<T> dpooled_;           // [B, D]
};

// Real values per position: y [B, N, Fo] = x W^T + b, loss = the mean over the valid positions
// (all of them, or those below lengths[b]) and the Fo values of (y - target)^2. Checkpoint names
// head.weight [Fo, D], head.bias [Fo].
template <class T>
class RegressionHead : public Visits<RegressionHead<T>> {
 public:
  using Target = Tensor<T>;  // [B, N, Fo], finite

  RegressionHead() = default;
  RegressionHead(Index dim, Index outputs) : head(dim, outputs, /*bias=*/true) {}
  explicit RegressionHead(const TnnConfig& c) : RegressionHead(c.dim, c.output_features) {}

  Linear<T> head;  // D -> Fo

  static bool accepts(Task t) { return t == Task::Regress; }
  Index outputs() const { return head.out_features(); }

  void init_weights(Rng& rng) { head.init_uniform(rng); }

  template <class Data>
  void check_target(const Target& target, const Data& data) const {
    if (target.rank() != 3 || data.rank() < 2 || target.dim(0) != data.dim(0) || target.dim(1) != data.dim(1) ||
        target.dim(2) != outputs())
      fail<ShapeError>("regression targets: expected shape [B, N, ", outputs(), "] with the data's B and N, got ",
                       shape_str(target.shape()), " for data ", shape_str(data.shape()));
    for (Index i = 0; i < target.size(); ++i)
      if (!std::isfinite(target[i]))
        fail<ValueError>("regression targets: expected finite values, got ", target[i], " at position ",
                         detail::position_str(target.shape(), i));
  }

  template <class Input>
  const Tensor<T>& forward(const Tensor<T>& x, const Tensor<std::int32_t>* lengths, Input&) {
    const Index B = x.dim(0), N = x.dim(1);
    lengths_.assign(static_cast<std::size_t>(B), N);
    if (lengths) {
      check_lengths(*lengths, B, N);
      for (Index b = 0; b < B; ++b) lengths_[static_cast<std::size_t>(b)] = (*lengths)[b];
    }
    head.forward(x, y_);
    return y_;
  }
  const Tensor<T>& output() const { return y_; }  // [B, N, Fo]

  // Mean squared error over the valid positions; keeps dLoss/dy.
  T loss(const Tensor<T>& target) {
    if (target.shape() != y_.shape())
      fail<ShapeError>("regression targets: expected shape ", shape_str(y_.shape()), ", got ", shape_str(target.shape()));
    const Index B = y_.dim(0), N = y_.dim(1), Fo = outputs();
    const Index n = count_valid() * Fo;
    dy_.resize(y_.shape());
    dy_.set_zero();
    double total = 0;
    const T scale = T(2) / static_cast<T>(n);
    for (Index b = 0; b < B; ++b)
      for (Index i = 0; i < lengths_[static_cast<std::size_t>(b)] * Fo; ++i) {
        const Index at = b * N * Fo + i;
        const T d = y_[at] - target[at];
        total += double(d) * double(d);
        dy_[at] = scale * d;
      }
    return static_cast<T>(total / double(n));
  }
  // Values the loss averages: the valid positions times Fo.
  static Index count(const Target& target, const Tensor<std::int32_t>* lengths = nullptr) {
    if (target.rank() != 3) return 0;
    Index positions = target.dim(0) * target.dim(1);
    if (lengths) {
      positions = 0;
      for (Index b = 0; b < lengths->size(); ++b) positions += (*lengths)[b];
    }
    return positions * target.dim(2);
  }
  void scale_loss_grad(T s) {
    for (T& g : dy_) g *= s;
  }

  template <class Input>
  void backward(const Tensor<T>& x, Tensor<T>& dx, Input&) {
    head.backward(x, dy_, &dx);
  }

 private:
  friend Visits<RegressionHead<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.head.visit(prefix + "head.", f);
  }

  Index count_valid() const {
    Index n = 0;
    for (Index l : lengths_) n += l;
    return n;
  }

  std::vector<Index> lengths_;  // [B] of the last forward
  Tensor<T> y_;                 // [B, N, Fo]
  Tensor<T> dy_;                // [B, N, Fo] dLoss/dy of the last loss()
};

}  // namespace tnn
