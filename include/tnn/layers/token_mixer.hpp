// The token mixer of a TNN layer, chosen at run time: the GTU over a sequence (1-D TNO) or
// over a grid (2-D TNO). One type for every model, so the blocks, the backbone and the models
// are written once whatever mixes their tokens. Checkpoint names are the chosen mixer's own
// (u_proj, v_proj, o, toep.*).
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
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/gtu2d.hpp"
#include "tnn/layers/param.hpp"

namespace tnn {

// The kind of token mixer a model's layers use (config key token_mixer): the GTU over a TNO, on a
// sequence or a grid. The official code's other mixer, softmax attention, has a layer
// (layers/attention.hpp) but no row here until the models can build it, so a config asking for it
// is refused by name.
enum class TokenMixerKind { Tno };
template <>
struct EnumTable<TokenMixerKind> {
  static constexpr EnumRow<TokenMixerKind> rows[] = {{TokenMixerKind::Tno, "tno"}};
};

template <class T, class Backend = DefaultFftBackend>
class TokenMixer : public Visits<TokenMixer<T, Backend>> {
 public:
  using Gtu1d = Gtu<T, Backend>;
  using Gtu2 = Gtu2d<T, Backend>;

  TokenMixer() = default;
  TokenMixer(Gtu1d g) : m_(std::move(g)) {}  // NOLINT: a mixer is one of its kinds
  TokenMixer(Gtu2 g) : m_(std::move(g)) {}   // NOLINT

  // Every kind's cache; only the chosen kind's is used.
  struct Cache {
    typename Gtu1d::Cache gtu;    // the 1-D GTU (its TNO input v is the decoder's history)
    typename Gtu2::Cache gtu2d;   // the 2-D GTU
  };

  // The 1-D GTU, or null for another kind (the decoder's and the tests' access).
  Gtu1d* gtu() { return std::get_if<Gtu1d>(&m_); }
  const Gtu1d* gtu() const { return std::get_if<Gtu1d>(&m_); }
  Gtu2* gtu2d() { return std::get_if<Gtu2>(&m_); }
  const Gtu2* gtu2d() const { return std::get_if<Gtu2>(&m_); }

  void init_weights(Rng& rng) {
    std::visit([&](auto& m) { m.init_weights(rng); }, m_);
  }
  // x, y: [B, N, D]; lengths as Gtu::forward.
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c, const Tensor<std::int32_t>* lengths = nullptr) const {
    std::visit([&](const auto& m) { m.forward(x, y, cache_of(m, c), lengths); }, m_);
  }
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Cache& c, Tensor<T>* dx) {
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

  std::variant<Gtu1d, Gtu2> m_;
};

}  // namespace tnn
