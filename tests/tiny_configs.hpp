// The tiny configs (and the LM batch) that the layer and model tests share, so a test of a
// layer and the op harness's case of it run the same shapes.
#pragma once

#include <cstdint>

#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/model/config.hpp"

namespace tnn::testing_helpers {

// V 11, D 8, one layer, E 12 (expand 1.5), GLU 10, RPE 6 x 1, gamma 0.9; `heads` heads.
inline TnnConfig tiny_config(Index heads = 1) {
  TnnConfig c = TnnConfig::parse(R"({"vocab_size": 11, "dim": 8, "layers": 1, "expand_ratio": 1.5, "glu_dim": 10,
                                     "rpe_dim": 6, "rpe_layers": 1, "gamma": 0.9})");
  c.heads = heads;
  return c;
}

// A block of the tiny config with 2 heads (Dh = 6), validated.
inline TnnConfig tiny_block_config(NormType norm, bool prenorm, bool causal) {
  TnnConfig c = tiny_config(2);
  c.norm_type = norm;
  c.prenorm = prenorm;
  c.causal = causal;
  c.validate();
  return c;
}

// The LM tests' model: the tiny config with a SiLU RPE.
inline TnnConfig tiny_lm_config() {
  TnnConfig c = tiny_config();
  c.rpe_act = Activation::Silu;
  return c;
}

// The GTU tests' config: D 4, E 6 (expand 1.5), RPE 4 x 1, gamma 0.9.
inline TnnConfig tiny_gtu_config(Index heads, bool causal) {
  TnnConfig c = TnnConfig::parse(
      R"({"vocab_size": 11, "dim": 4, "layers": 1, "expand_ratio": 1.5, "rpe_dim": 4, "rpe_layers": 1, "gamma": 0.9})");
  c.heads = heads;
  c.causal = causal;
  return c;
}

// Random ids [B, N]; targets: the next token (causal) or a masked-LM pattern, some -1 either
// way: position 0 is always ignored and the last one always counted.
inline void lm_batch(const TnnConfig& c, Index B, Index N, std::uint64_t seed, Tensor<std::int32_t>& tokens,
                     Tensor<std::int32_t>& targets) {
  Rng rng(seed);
  tokens = Tensor<std::int32_t>({B, N});
  targets = Tensor<std::int32_t>({B, N});
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng.below(std::uint64_t(c.vocab_size)));
  for (Index b = 0; b < B; ++b)
    for (Index n = 0; n < N; ++n) {
      const Index i = b * N + n;
      if (c.causal)
        targets[i] = n + 1 < N ? tokens[i + 1] : static_cast<std::int32_t>(rng.below(std::uint64_t(c.vocab_size)));
      else
        targets[i] = rng.uniform() < 0.5 ? tokens[i] : -1;
    }
  targets[0] = -1;
  if (B * N > 1) targets[B * N - 1] = static_cast<std::int32_t>(c.vocab_size - 1);
}

}  // namespace tnn::testing_helpers
