// Exact incremental decoding for a causal language model (docs/model.md, decoding), whatever
// its token mixer. The layers run as they are (TnnBlock::forward on [B, 1, D], the mixer's own
// projections, norms and GLU; the input adds the position's encoding); only the part that reads
// the past is fed from a history the decoder keeps:
//   the GTU: every TNO channel at step t needs y_t = sum_{j<=t} t_{t-j} v_j (divided by
//     sum_{k<=t} t_k with normalize), so the TNO is replaced, through Gtu::Cache::mixer, by the
//     decoder's causal sum over its history of v. This needs coefficients that do not depend on
//     the sequence length: par_type 1;
//   attention: the step attends to the keys and values of every position so far, held in the
//     layer's KV cache (Attention::step, through TokenMixer::Cache::kv), O(t D) per token.
// Two ways to take the GTU's sum, the same up to rounding:
//   Direct  the sum over the whole history, O(t E) per token per layer (the reference);
//   Fft     core/online_conv.hpp's tiling, amortized O(E log^2 t) per token per layer;
//   Auto    Direct below kAutoCrossover positions, Fft from there on (measured, README).
// B sequences decode together (one token each per step, all at the same position): the
// projections are GEMMs over B rows. Coefficients t_k come from the RPE in blocks: the
// whole capacity at once, recomputed when the capacity doubles (amortized O(1) RPE rows
// per token), never one MLP call per token. The method does not concern attention layers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tnn/core/gemm.hpp"
#include "tnn/core/online_conv.hpp"
#include "tnn/model/models.hpp"

namespace tnn {

enum class DecoderMethod { Auto, Direct, Fft };
template <>
struct EnumTable<DecoderMethod> {
  static constexpr EnumRow<DecoderMethod> rows[] = {
      {DecoderMethod::Auto, "auto"}, {DecoderMethod::Direct, "direct"}, {DecoderMethod::Fft, "fft"}};
};

template <class T, class Backend = DefaultFftBackend>
class IncrementalDecoder {
 public:
  // Auto uses the direct sum for positions below this, the tiled FFT sum from there
  // on (bench model, 1 thread: the direct sum's O(t E) passes the tiling's amortized
  // cost near here; see README "Decoding").
  static constexpr Index kAutoCrossover = 256;

  // `model` must outlive the decoder and stay unchanged while it is used.
  // capacity: positions held before the buffers grow (growing recomputes the
  // coefficients and keeps the state: amortized, exact either way). batch: sequences
  // decoded together.
  explicit IncrementalDecoder(TnnLM<T, Backend>& model, Index capacity = 1024, Index batch = 1,
                              DecoderMethod method = DecoderMethod::Auto)
      : model_(&model), method_(method), B_(batch) {
    const TnnConfig& cfg = model.config();
    if (!cfg.causal)
      fail<ConfigError>("IncrementalDecoder: expected a causal model (config 'causal': true), got a bidirectional one");
    if (capacity < 1) fail<ValueError>("IncrementalDecoder capacity: expected >= 1, got ", capacity);
    if (batch < 1) fail<ValueError>("IncrementalDecoder batch: expected >= 1, got ", batch);
    if (cfg.par_type != 1)
      fail<ConfigError>("IncrementalDecoder: expected config 'par_type' 1 (coefficients independent of the sequence "
                        "length), got ", cfg.par_type, ": each position's output depends on the full length");
    const std::size_t L = model.backbone.layers.size();
    for (const auto& layer : model.backbone.layers)
      if (!layer.token_mixer.gtu() && !layer.token_mixer.attention())
        fail<ConfigError>("IncrementalDecoder: expected a model whose token mixer is the 1-D GTU or attention, got another");
    layers_.resize(L);
    caches_.resize(L);
    for (std::size_t l = 0; l < L; ++l) {
      layers_[l].owner = this;
      layers_[l].index = l;
      layers_[l].attention = model.backbone.layers[l].token_mixer.attention();
    }
    reserve(capacity);
  }
  IncrementalDecoder(const IncrementalDecoder&) = delete;  // the layers' mixers point back here
  IncrementalDecoder& operator=(const IncrementalDecoder&) = delete;

  Index position() const { return pos_; }  // tokens fed so far (per sequence)
  Index capacity() const { return cap_; }
  Index batch() const { return B_; }
  DecoderMethod method() const { return method_; }
  // Takes effect from the next step; switching is exact (Fft recomputes its partial sums).
  void set_method(DecoderMethod m) { method_ = m; }

  void reset() { rewind(0); }
  // Forgets every token after the first n (n <= position()): the history is kept and
  // the Fft partial sums are recomputed from it, so this is exact.
  void rewind(Index n) {
    if (n < 0 || n > pos_) fail<ValueError>("decoder rewind: expected a position in [0, ", pos_, "], got ", n);
    for (auto& s : layers_) {
      if (s.attention)
        s.kv.rewind(n);
      else
        s.conv.rewind(n);
    }
    pos_ = n;
  }

  // Makes room for `capacity` positions without growing later.
  void reserve(Index capacity) {
    if (capacity <= cap_) return;
    model_->input.reserve_positions(capacity);
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      if (const Attention<T>* a = layers_[l].attention) {
        a->reserve(layers_[l].kv, B_, capacity);
        continue;
      }
      const auto& tno = model_->backbone.layers[l].token_mixer.gtu()->toep;
      const Tensor<T> coef = tno.coefficients(capacity);  // [capacity, E] row k = t_k
      if (cap_ == 0)
        layers_[l].conv.prepare(coef, B_);
      else
        layers_[l].conv.grow(coef);
      if (tno.options().normalize) {
        // normalize: position t divides by sum_{k<=t} t_k, the TNO applied to ones.
        Tensor<T>& den = layers_[l].den;  // [capacity, E]
        const Index E = coef.dim(1);
        den = coef;
        for (Index k = 1; k < capacity; ++k)
          for (Index e = 0; e < E; ++e) den[k * E + e] += den[(k - 1) * E + e];
      }
    }
    cap_ = capacity;
  }

  // Feeds whole prompts at once (position() must be 0): tokens [n] (the same prompt
  // for every sequence) or [B, n]. One full forward of the model, O(n log n) (attention:
  // O(n^2)), whose TNO inputs (attention: keys and values) become the history; the Fft
  // partial sums of the positions after it come from O(log n) block products, never an
  // O(n) sum per later token. Returns the
  // logits after the last token as step() does (equal up to rounding). Overwrites the
  // model's forward cache.
  const Tensor<T>& prefill(const Tensor<std::int32_t>& tokens) {
    if (pos_ != 0) fail<ValueError>("decoder prefill: expected position 0 (after reset()), got ", pos_);
    const bool one = tokens.rank() == 1;
    if (!(one || tokens.rank() == 2) || tokens.dim(-1) < 1 || (!one && tokens.dim(0) != B_ && tokens.dim(0) != 1))
      fail<ShapeError>("decoder prefill tokens: expected shape [n >= 1] or [", B_, ", n >= 1], got ",
                       shape_str(tokens.shape()));
    const Index n = tokens.dim(-1), rows = one ? 1 : tokens.dim(0), V = model_->config().vocab_size;
    reserve(n + 1);
    prompt_.resize({rows, n});
    std::copy(tokens.begin(), tokens.end(), prompt_.begin());
    const Tensor<T>& logits = model_->forward(prompt_);  // [rows, n, V]
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const auto& mixer = model_->backbone.cache(Index(l)).mixer;
      if (const Attention<T>* a = layers_[l].attention)
        a->assign(layers_[l].kv, mixer.attention, B_);  // [rows, n, D] keys and values
      else
        layers_[l].conv.assign(mixer.gtu.v);  // [rows, n, E]
    }
    resize_logits();
    for (Index b = 0; b < B_; ++b) {
      const T* src = logits.data() + ((rows == 1 ? 0 : b) * n + n - 1) * V;
      std::copy(src, src + V, logits_.data() + b * V);
    }
    pos_ = n;
    return logits_;
  }

  // Feeds the next token of the one sequence (batch() == 1) and returns the logits [V]
  // predicting the one after it (valid until the next call). Equal to row position()
  // of a full forward, up to rounding.
  const Tensor<T>& step(std::int32_t token) {
    if (B_ != 1) fail<ShapeError>("decoder step: expected one token per sequence (", B_, "), got one token");
    tokens_.resize({1, 1});
    tokens_[0] = token;
    return run_step();
  }
  // tokens [B]: the next token of every sequence -> logits [B, V] (batch 1: [V]).
  const Tensor<T>& step(const Tensor<std::int32_t>& tokens) {
    if (tokens.rank() != 1 || tokens.dim(0) != B_)
      fail<ShapeError>("decoder step tokens: expected shape [", B_, "], got ", shape_str(tokens.shape()));
    tokens_.resize({B_, 1});
    std::copy(tokens.begin(), tokens.end(), tokens_.begin());
    return run_step();
  }

 private:
  // The history of layer `index`: a GTU's TNO for one position (v, y [B, 1, E]), or an
  // attention layer's keys and values.
  struct LayerState final : GtuSequenceMixer<T> {
    IncrementalDecoder* owner = nullptr;
    std::size_t index = 0;
    const Attention<T>* attention = nullptr;  // the layer's mixer when it is attention
    OnlineConv<T> conv;  // GTU: coefficients, history, partial sums
    Tensor<T> den;       // [capacity, E] normalize: row t = sum_{k<=t} t_k (else empty)
    typename Attention<T>::KvCache kv;  // attention: keys and values [B, capacity, D]
    void mix(const Tensor<T>& v, Tensor<T>& y) override {
      y.resize(v.shape());
      if (owner->use_direct())
        conv.step_direct(v.data(), y.data());
      else
        conv.step(v.data(), y.data());
      if (den.size() == 0) return;
      const Index E = v.dim(2);
      const T* d = den.data() + owner->pos_ * E;
      for (Index b = 0; b < v.dim(0); ++b)
        for (Index e = 0; e < E; ++e) y[b * E + e] /= d[e];
    }
  };

  bool use_direct() const {
    return method_ == DecoderMethod::Direct || (method_ == DecoderMethod::Auto && pos_ < kAutoCrossover);
  }

  void resize_logits() {
    const Index V = model_->config().vocab_size;
    if (B_ == 1)
      logits_.resize({V});
    else
      logits_.resize({B_, V});
  }

  const Tensor<T>& run_step() {
    const TnnConfig& cfg = model_->config();
    const Index V = cfg.vocab_size;
    for (Index b = 0; b < B_; ++b)
      if (tokens_[b] < 0 || tokens_[b] >= V)
        fail<ValueError>("decoder token: expected an id in [0, ", V, "), got ", tokens_[b],
                         B_ > 1 ? " for sequence " + std::to_string(b) : std::string());
    if (pos_ == cap_) reserve(std::max<Index>(2 * cap_, 16));
    model_->input.embed_into(tokens_, pos_, x_[0], input_cache_);  // [B, 1, D]
    int cur = 0;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      if (layers_[l].attention)
        caches_[l].mixer.kv = &layers_[l].kv;
      else
        caches_[l].mixer.gtu.mixer = &layers_[l];
      model_->backbone.layers[l].forward(x_[cur], x_[1 - cur], caches_[l]);
      cur = 1 - cur;
    }
    model_->backbone.final_norm.forward(x_[cur], xf_, norm_cache_);
    model_->head.logits_into(xf_, model_->input, logits_, head_cache_);  // [B, 1, V]
    resize_logits();  // the same numbers as [V] or [B, V]
    ++pos_;
    return logits_;
  }

  TnnLM<T, Backend>* model_;
  DecoderMethod method_;
  Index B_;
  std::vector<LayerState> layers_;
  std::vector<typename TnnBlock<T, Backend>::Cache> caches_;  // [layers] the blocks' one-position caches
  Index pos_ = 0, cap_ = 0;
  // one-position workspaces, reused every step
  Tensor<std::int32_t> tokens_;  // [B, 1]
  Tensor<T> x_[2];               // [B, 1, D] residual stream, ping-pong over layers
  Tensor<T> xf_;                 // [B, 1, D] final_norm
  Tensor<T> logits_;             // [V] or [B, V]
  Tensor<std::int32_t> prompt_;  // [B or 1, n] prefill's tokens
  typename Norm<T>::Cache norm_cache_;
  typename TokenInput<T>::Cache input_cache_;  // the embedding's norm, one position
  typename LmHead<T>::Cache head_cache_;       // the roberta head, one position
};

}  // namespace tnn
