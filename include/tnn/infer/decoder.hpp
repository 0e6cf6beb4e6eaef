// Exact incremental decoding for a causal TNN language model (spec section 11).
// Every TNO channel at step t needs y_t = sum_{j<=t} t_{t-j} v_j, so the decoder
// keeps, per layer, the history of v and the coefficients t_k (computed once for
// the capacity): a token costs O(t * E) per layer plus the dense projections,
// instead of re-running the O(N log N) forward on the whole prefix.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

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
      Tensor<T> hist({capacity, E});
      std::copy(s.v_hist.data(), s.v_hist.data() + pos_ * E, hist.data());
      s.v_hist = std::move(hist);  // [capacity, E]
    }
    cap_ = capacity;
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
  };

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
    for (Index c = 0; c < E; ++c) v_row[c] = act_forward(act, v_pre_[c]);
    // y[c] = sum_{j=0..t} coef[t-j][c] * v[j][c], channel blocks across threads.
    y_.resize({1, E});
    const T* coef = s.coef.data();
    const T* v = s.v_hist.data();
    T* y = y_.data();
    constexpr Index kChunk = 256;
    const Index chunks = (E + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (t * E > 65536)
    for (Index ch = 0; ch < chunks; ++ch) {
      const Index c0 = ch * kChunk, c1 = std::min(E, c0 + kChunk);
      T acc[kChunk] = {};
      for (Index j = 0; j <= t; ++j) {
        const T* cr = coef + (t - j) * E;
        const T* vr = v + j * E;
        for (Index c = c0; c < c1; ++c) acc[c - c0] += cr[c] * vr[c];
      }
      for (Index c = c0; c < c1; ++c) y[c] = acc[c - c0];
    }
    y_.vec().array() *= u_.vec().array();
    g.o.forward(y_, out);
  }

  TnnLM<T>* model_;
  std::vector<LayerState> layers_;
  Index pos_ = 0, cap_ = 0;
  // one-position workspaces, reused every step
  Tensor<T> x_, a_, b_;                     // [1, D]
  Tensor<T> u_pre_, u_, v_pre_, y_;         // [1, E]
  Tensor<T> logits_;                        // [V]
  typename Norm<T>::Cache norm_cache_;
  typename Glu<T>::Cache glu_cache_;
};

}  // namespace tnn
