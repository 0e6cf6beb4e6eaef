// The bench model, shared by tnn_bench (bench_lm.cpp) and tnn_peak_memory:
// vocab 256, dim 512, 1 layer, 1 head, expand_ratio 3, GLU 512, RPE 64 wide with 6
// layers, causal, exponential decay 0.99. benchmarks/pytorch_tnn_bench.py builds the same.
// bench_attention_config() switches its token mixer to attention.
#pragma once

#include "tnn/model/config.hpp"

namespace tnn_bench {

inline tnn::TnnConfig bench_config() {
  return tnn::TnnConfig::parse(R"({"vocab_size": 256, "dim": 512, "layers": 1, "heads": 1, "expand_ratio": 3,
      "glu_dim": 512, "rpe_dim": 64, "rpe_layers": 6, "causal": true, "decay": "fixed", "gamma": 0.99})");
}

// The same model with attention as its token mixer, the Transformer baseline in the same
// backbone: 8 heads of 64 channels (the Transformer's shape at width 512; the GTU keys unused)
// and sinusoidal positions added to the embedding; the GLU, norms, embedding and head unchanged.
inline tnn::TnnConfig bench_attention_config() {
  tnn::TnnConfig c = bench_config();
  c.token_mixer = tnn::TokenMixerKind::Attention;
  c.positions = tnn::PositionScheme::Sinusoidal;
  c.heads = 8;
  c.validate();
  return c;
}

}  // namespace tnn_bench
