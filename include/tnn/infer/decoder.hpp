// Exact incremental decoding for a causal TNN language model (spec section 11).
// Every TNO channel at step t needs y_t = sum_{j<=t} t_{t-j} v_j, so the decoder
// keeps, per layer, the history of v and the coefficients t_k (computed once for
// the capacity): a token costs O(t * E) per layer plus the dense projections,
// instead of re-running the O(N log N) forward on the whole prefix.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tnn/core/parallel.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/model/lm.hpp"

namespace tnn {

template <class T>
class IncrementalDecoder {
 public:
  // `model` must outlive the decoder and stay unchanged while it is used.
  // capacity: positions held before the buffers grow (growing recomputes the
  // coefficients and copies the history: amortized, exact either way).
  explicit IncrementalDecoder(TnnLM<T>& model, Index capacity = 1024) : model_(&model) {
    const TnnConfig& cfg = model.config();
    if (!cfg.causal)
      fail<ConfigError>("IncrementalDecoder: expected a causal model (config 'causal': true), got a bidirectional one");
    if (capacity < 1) fail<ValueError>("IncrementalDecoder capacity: expected >= 1, got ", capacity);
    layers_.resize(model.layers.size());
    reserve(capacity);
  }

  Index position() const { return pos_; }  // tokens fed so far
  Index capacity() const { return cap_; }
  void reset() { pos_ = 0; }
  // Forgets every token after the first n (n <= position()): the state is only the
  // history, so this is exact (backtracking in search; the decode benchmark).
  void rewind(Index n) {
    if (n < 0 || n > pos_) fail<ValueError>("decoder rewind: expected a position in [0, ", pos_, "], got ", n);
    pos_ = n;
  }

  // Makes room for `capacity` positions without growing later.
  void reserve(Index capacity) {
    if (capacity <= cap_) return;
    const Index E = model_->config().inner_dim();
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      LayerState& s = layers_[l];
      s.coef = model_->layers[l].token_mixer.toep.coefficients(capacity);  // [capacity, E], row k = t_k
      // Rows past the last nonzero one (a decay that underflowed to exactly 0) add
      // exact zeros: the sum over the history skips them.
      s.span = capacity;
      while (s.span > 1 && row_is_zero(s.coef, s.span - 1)) --s.span;
      Tensor<T> hist({capacity, E});
      std::copy(s.v_hist.data(), s.v_hist.data() + pos_ * E, hist.data());
      s.v_hist = std::move(hist);  // [capacity, E]
    }
    cap_ = capacity;
  }

  // Feeds a whole prompt at once (position() must be 0): one full forward of the
  // model, O(n log n), whose TNO inputs become the history, instead of n steps of
  // O(t) each. Returns the logits [V] after the last token, as step() would (equal
  // up to rounding: the forward sums in another order). Overwrites the model's
  // forward cache.
  const Tensor<T>& prefill(const Tensor<std::int32_t>& tokens) {
    if (pos_ != 0) fail<ValueError>("decoder prefill: expected position 0 (after reset()), got ", pos_);
    if (tokens.rank() != 1 || tokens.dim(0) < 1)
      fail<ShapeError>("decoder prefill tokens: expected shape [n >= 1], got ", shape_str(tokens.shape()));
    const Index n = tokens.dim(0), V = model_->config().vocab_size, E = model_->config().inner_dim();
    reserve(n);
    prompt_.resize({1, n});
    std::copy(tokens.begin(), tokens.end(), prompt_.begin());
    const Tensor<T>& logits = model_->forward(prompt_);  // [1, n, V]
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const Tensor<T>& v = model_->tno_input(static_cast<Index>(l));  // [1, n, E]
      std::copy(v.data(), v.data() + n * E, layers_[l].v_hist.data());
    }
    logits_.resize({V});
    std::copy(logits.data() + (n - 1) * V, logits.data() + n * V, logits_.data());
    pos_ = n;
    return logits_;
  }

  // Feeds the next token and returns the logits [V] predicting the one after it
  // (valid until the next call). Equal to row `position()` of a full forward.
  const Tensor<T>& step(std::int32_t token) {
    const TnnConfig& cfg = model_->config();
    const Index D = cfg.dim, V = cfg.vocab_size;
    if (token < 0 || token >= V) fail<ValueError>("decoder token: expected an id in [0, ", V, "), got ", token);
    if (pos_ == cap_) reserve(std::max<Index>(2 * cap_, 16));
    x_.resize({1, D});
    const T* e = model_->embed.weight.value.data() + Index(token) * D;
    std::copy(e, e + D, x_.data());
    for (std::size_t l = 0; l < layers_.size(); ++l) layer_step(model_->layers[l], layers_[l]);
    model_->final_norm.forward(x_, a_, norm_cache_);
    const Param<T>& head = cfg.tie_embeddings ? model_->embed.weight : model_->lm_head.weight;
    logits_.resize({V});
    logits_.vec().noalias() = head.value.matrix() * a_.vec();
    ++pos_;
    return logits_;
  }

 private:
  struct LayerState {
    Tensor<T> coef;    // [cap, E] t_k, k = 0..cap-1
    Tensor<T> v_hist;  // [cap, E] v_j of every fed position
    Index span = 0;    // rows 0..span-1 of coef hold every nonzero t_k
  };

  static bool row_is_zero(const Tensor<T>& m, Index r) {
    const T* p = m.data() + r * m.cols();
    return std::all_of(p, p + m.cols(), [](T v) { return v == T(0); });
  }

  // x_ [1, D] -> x_ after one TNN layer at position pos_.
  void layer_step(TnnBlock<T>& blk, LayerState& s) {
    if (blk.prenorm()) {
      blk.token_norm.forward(x_, a_, norm_cache_);
      gtu_step(blk.token_mixer, s, a_, b_);
      x_.vec() += b_.vec();
      blk.feature_norm.forward(x_, a_, norm_cache_);
      blk.feature_mixer.forward(a_, b_, glu_cache_);
      x_.vec() += b_.vec();
    } else {
      gtu_step(blk.token_mixer, s, x_, a_);
      blk.token_norm.forward(a_, b_, norm_cache_);
      x_.vec() += b_.vec();
      blk.feature_mixer.forward(x_, a_, glu_cache_);
      blk.feature_norm.forward(a_, b_, norm_cache_);
      x_.vec() += b_.vec();
    }
  }

  // GTU on one position: u, v projections, the Toeplitz sum over the history, o.
  void gtu_step(const Gtu<T>& g, LayerState& s, const Tensor<T>& in, Tensor<T>& out) {
    const Activation act = model_->config().gtu_act;
    const Index E = g.inner_dim(), t = pos_;
    g.u_proj.forward(in, u_pre_);
    activation_forward(act, u_pre_, u_);
    g.v_proj.forward(in, v_pre_);
    T* v_row = s.v_hist.data() + t * E;
    detail::act_forward_n(act, v_pre_.data(), v_row, E);
    // y[c] = sum_{j=t-span+1..t} coef[t-j][c] * v[j][c]: rows streamed in order, the
    // channels split into contiguous halves over threads for long histories.
    y_.resize({1, E});
    const T* coef = s.coef.data();
    const T* v = s.v_hist.data();
    T* y = y_.data();
    const Index j0 = std::max<Index>(0, t - s.span + 1);
    const bool parallel = (t - j0 + 1) * E >= kParallelMinWork;
    const Index parts = parallel ? parallel_threads() : 1;
    const Index width = ((E + parts - 1) / parts + 15) / 16 * 16;  // channels per thread
    ::tnn::parallel_for(parts, parallel, [&](Index p) {
      const Index c0 = std::min(E, p * width), c1 = std::min(E, c0 + width);
      std::fill(y + c0, y + c1, T(0));
      for (Index j = j0; j <= t; ++j) {
        const T* cr = coef + (t - j) * E;
        const T* vr = v + j * E;
        for (Index c = c0; c < c1; ++c) y[c] += cr[c] * vr[c];
      }
    });
    y_.vec().array() *= u_.vec().array();
    g.o.forward(y_, out);
  }

  // Below this many multiply-adds the history sum runs on one thread: between two
  // decoding steps the other threads go to sleep, and waking them costs more than
  // they save (bench model, 2 threads: DecodeToken/512, 0.8 M multiply-adds a layer,
  // was 0.74 ms split vs 0.63 ms serial; at 4096, 6.3 M, the split wins 3.58 vs 4.51 ms).
  static constexpr Index kParallelMinWork = Index(1) << 21;

  TnnLM<T>* model_;
  std::vector<LayerState> layers_;
  Index pos_ = 0, cap_ = 0;
  // one-position workspaces, reused every step
  Tensor<T> x_, a_, b_;                     // [1, D]
  Tensor<T> u_pre_, u_, v_pre_, y_;         // [1, E]
  Tensor<T> logits_;                        // [V]
  Tensor<std::int32_t> prompt_;             // [1, n] prefill's tokens as a batch
  typename Norm<T>::Cache norm_cache_;
  typename Glu<T>::Cache glu_cache_;
};

}  // namespace tnn
