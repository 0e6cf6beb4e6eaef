// The token mixer of a layer, chosen at run time (config key `token_mixer`): the GTU over a
// sequence (1-D TNO) or over a grid (2-D TNO), or multi-head softmax attention, the
// Transformer's. One type for every model, so the blocks, the backbone and the models are
// written once whatever mixes their tokens, and a TNN and a Transformer differ in this one
// choice. Checkpoint names are the chosen mixer's own (u_proj, v_proj, o, toep.*; or q_proj,
// k_proj, v_proj, out_proj).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/error.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/attention.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/gtu2d.hpp"
#include "tnn/layers/param.hpp"

namespace tnn {

// What mixes the tokens: the GTU around a Toeplitz neural operator (1-D over a sequence, 2-D
// over a model's grid), or softmax attention.
enum class TokenMixerKind { Tno, Attention };
template <>
struct EnumTable<TokenMixerKind> {
  static constexpr EnumRow<TokenMixerKind> rows[] = {{TokenMixerKind::Tno, "tno"},
                                                     {TokenMixerKind::Attention, "attention"}};
};

template <class T, class Backend = DefaultFftBackend>
class TokenMixer : public Visits<TokenMixer<T, Backend>> {
 public:
  using Gtu1d = Gtu<T, Backend>;
  using Gtu2 = Gtu2d<T, Backend>;
  using Attn = Attention<T>;

  TokenMixer() = default;
  TokenMixer(Gtu1d g) : m_(std::move(g)) {}  // NOLINT: a mixer is one of its kinds
  TokenMixer(Gtu2 g) : m_(std::move(g)) {}   // NOLINT
  TokenMixer(Attn a) : m_(std::move(a)) {}   // NOLINT

  // Every kind's cache; only the chosen kind's is used.
  struct Cache {
    typename Gtu1d::Cache gtu;    // the 1-D GTU (its TNO input v is the decoder's history)
    typename Gtu2::Cache gtu2d;   // the 2-D GTU
    typename Attn::Cache attention;
    // Attention only: when set (not owned), forward feeds its positions through this KV cache
    // (Attention::step) instead of running the full forward: an incremental decoder's next
    // token (infer/decoder.hpp). Null: the full forward.
    typename Attn::KvCache* kv = nullptr;
  };

  TokenMixerKind kind() const { return attention() ? TokenMixerKind::Attention : TokenMixerKind::Tno; }

  // The 1-D GTU, or null for another kind (the decoder's and the tests' access).
  Gtu1d* gtu() { return std::get_if<Gtu1d>(&m_); }
  const Gtu1d* gtu() const { return std::get_if<Gtu1d>(&m_); }
  Gtu2* gtu2d() { return std::get_if<Gtu2>(&m_); }
  const Gtu2* gtu2d() const { return std::get_if<Gtu2>(&m_); }
  Attn* attention() { return std::get_if<Attn>(&m_); }
  const Attn* attention() const { return std::get_if<Attn>(&m_); }

  void init_weights(Rng& rng) {
    std::visit([&](auto& m) { m.init_weights(rng); }, m_);
  }
  // x, y: [B, N, D]; lengths as Gtu::forward (Attention::forward masks the same keys).
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c, const Tensor<std::int32_t>* lengths = nullptr) const {
    if (const Attn* a = attention(); a && c.kv) {
      if (lengths) fail<ValueError>("token mixer: a KV-cache step takes no lengths (every sequence is at the same position)");
      a->step(x, y, *c.kv);
      return;
    }
    std::visit([&](const auto& m) { m.forward(x, y, cache_of(m, c), lengths); }, m_);
  }
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Cache& c, Tensor<T>* dx) {
    if (attention() && c.kv)
      fail<Error>("token mixer backward: expected a preceding full forward, got a KV-cache step (decoding has no backward)");
    std::visit([&](auto& m) { m.backward(x, dy, cache_of(m, c), dx); }, m_);
  }

 private:
  friend Visits<TokenMixer<T, Backend>>;
  template <class Self, class F>
  static void visit_all(Self& self, const std::string& prefix, F& f) {
    std::visit([&](auto& m) { m.visit(prefix, f); }, self.m_);
  }

  static typename Gtu1d::Cache& cache_of(const Gtu1d&, Cache& c) { return c.gtu; }
  static typename Gtu2::Cache& cache_of(const Gtu2&, Cache& c) { return c.gtu2d; }
  static typename Attn::Cache& cache_of(const Attn&, Cache& c) { return c.attention; }

  std::variant<Gtu1d, Gtu2, Attn> m_;
};

}  // namespace tnn
