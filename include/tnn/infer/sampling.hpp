// Picking the next token from one row of logits: greedy, or a draw from the
// softmax at a temperature restricted to the top-k and/or the top-p nucleus.
// Every draw comes from a tnn::Rng, so a seed fixes the generated text.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

struct SamplingConfig {
  double temperature = 1.0;  // 0: greedy (argmax, no random draw)
  Index top_k = 0;           // keep the k most probable tokens; 0: all
  double top_p = 1.0;        // keep the smallest most-probable set with mass >= top_p; 1: all

  void validate() const {
    if (!(std::isfinite(temperature) && temperature >= 0))
      fail<ConfigError>("sampling temperature: expected a finite value >= 0, got ", temperature);
    if (top_k < 0) fail<ConfigError>("sampling top_k: expected >= 0 (0 = no limit), got ", top_k);
    if (!(top_p > 0 && top_p <= 1)) fail<ConfigError>("sampling top_p: expected 0 < top_p <= 1, got ", top_p);
  }
};

namespace detail {
// Logits may hold -inf (a banned token) but not NaN or +inf; at least one must be finite.
template <class T>
void check_logits(const T* logits, Index vocab) {
  if (vocab < 1) fail<ShapeError>("logits: expected a row of >= 1 values, got ", vocab);
  if (logits == nullptr) fail<ValueError>("logits: expected data, got a null pointer");
  bool any_finite = false;
  for (Index i = 0; i < vocab; ++i) {
    const double x = static_cast<double>(logits[i]);
    if (std::isnan(x) || x == std::numeric_limits<double>::infinity())
      fail<ValueError>("logits[", i, "]: expected a finite value or -inf, got ", x);
    any_finite = any_finite || std::isfinite(x);
  }
  if (!any_finite) fail<ValueError>("logits: every one of the ", vocab, " values is -inf");
}
}  // namespace detail

// Index of the largest logit; ties go to the lowest index.
template <class T>
std::int32_t argmax_token(const T* logits, Index vocab) {
  detail::check_logits(logits, vocab);
  Index best = 0;
  for (Index i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<std::int32_t>(best);
}

// Holds the workspace so that sampling many tokens of one vocabulary size does not allocate
// after the first call.
class TokenSampler {
 public:
  explicit TokenSampler(SamplingConfig cfg = {}) : cfg_(cfg) { cfg_.validate(); }
  const SamplingConfig& config() const { return cfg_; }

  // Greedy when temperature == 0 or top_k == 1 (consumes nothing from rng). Otherwise, with
  // p_i proportional to exp(logit_i / temperature): sort by p descending (ties: lower index
  // first), keep the first top_k, then the shortest prefix of those whose mass reaches top_p of
  // their total (a relative tolerance of 1e-12 absorbs rounding in the cumulative sum), and draw
  // one token proportionally to p among the kept ones with a single rng.uniform().
  template <class T>
  std::int32_t sample(const T* logits, Index vocab, Rng& rng) {
    if (cfg_.temperature == 0 || cfg_.top_k == 1) return argmax_token(logits, vocab);
    detail::check_logits(logits, vocab);
    double mx = -std::numeric_limits<double>::infinity();
    for (Index i = 0; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
    const auto V = static_cast<std::size_t>(vocab);
    prob_.resize(V);  // [V] unnormalized probabilities
    for (std::size_t i = 0; i < V; ++i) prob_[i] = std::exp((static_cast<double>(logits[i]) - mx) / cfg_.temperature);

    const bool truncate = (cfg_.top_k > 0 && cfg_.top_k < vocab) || cfg_.top_p < 1;
    if (!truncate) {
      double total = 0;
      for (double p : prob_) total += p;
      const double u = rng.uniform() * total;
      double cum = 0;
      std::size_t last = 0;
      for (std::size_t i = 0; i < V; ++i) {
        if (prob_[i] <= 0) continue;
        cum += prob_[i];
        last = i;
        if (cum > u) return static_cast<std::int32_t>(i);
      }
      return static_cast<std::int32_t>(last);
    }

    order_.resize(V);  // [V] token ids, most probable first
    for (std::size_t i = 0; i < V; ++i) order_[i] = static_cast<std::int32_t>(i);
    const std::size_t k = cfg_.top_k > 0 ? std::min(V, static_cast<std::size_t>(cfg_.top_k)) : V;
    auto more_probable = [this](std::int32_t a, std::int32_t b) {
      const double pa = prob_[static_cast<std::size_t>(a)], pb = prob_[static_cast<std::size_t>(b)];
      return pa > pb || (pa == pb && a < b);
    };
    std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(k), order_.end(), more_probable);

    std::size_t kept = k;
    if (cfg_.top_p < 1) {
      double total_k = 0;
      for (std::size_t j = 0; j < k; ++j) total_k += prob_[static_cast<std::size_t>(order_[j])];
      const double need = cfg_.top_p * total_k * (1 - 1e-12);
      double cum = 0;
      for (std::size_t j = 0; j < k; ++j) {
        cum += prob_[static_cast<std::size_t>(order_[j])];
        if (cum >= need) {
          kept = j + 1;
          break;
        }
      }
    }
    double total = 0;
    for (std::size_t j = 0; j < kept; ++j) total += prob_[static_cast<std::size_t>(order_[j])];
    const double u = rng.uniform() * total;
    double cum = 0;
    for (std::size_t j = 0; j < kept; ++j) {
      cum += prob_[static_cast<std::size_t>(order_[j])];
      if (cum > u) return order_[j];
    }
    return order_[0];  // unreachable: cum reaches total > u
  }

  // A row of a logits tensor [..., V]: row r of its matrix() view.
  template <class T>
  std::int32_t sample_row(const Tensor<T>& logits, Index row, Rng& rng) {
    if (row < 0 || row >= logits.rows())
      fail<ValueError>("logits row: expected 0 <= row < ", logits.rows(), ", got ", row);
    return sample(logits.data() + row * logits.cols(), logits.cols(), rng);
  }

 private:
  SamplingConfig cfg_;
  std::vector<double> prob_;
  std::vector<std::int32_t> order_;
};

// One-off convenience (allocates its workspace each call).
template <class T>
std::int32_t sample_token(const T* logits, Index vocab, const SamplingConfig& cfg, Rng& rng) {
  TokenSampler s(cfg);
  return s.sample(logits, vocab, rng);
}

}  // namespace tnn
