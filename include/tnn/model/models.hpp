// The built-in models: an input module, the shared backbone and a head (model/sequence_model.hpp),
// one per task of the config (model/config.hpp). Checkpoint names are the modules' own
// (model.md §9): embed.weight or patch_embed.* or input_proj.*, layers.i.*, final_norm.*, then
// lm_head.weight or head.*.
//   TnnLM               token ids -> next-token (causal) or masked-token logits        task lm
//   TnnClassifier       token ids (ragged batches) -> one label per sequence           task classify
//   TnnImageClassifier  images -> a 2-D TNN over a grid of patches -> one label         task image
//   TnnRegressor        float features [B, N, F] -> values [B, N, Fo], squared error   task regress
// Backend chooses the FFT library of every TNO in the model (core/fft.hpp).
#pragma once

#include "tnn/model/heads.hpp"
#include "tnn/model/inputs.hpp"
#include "tnn/model/sequence_model.hpp"

namespace tnn {

template <class T, class Backend = DefaultFftBackend>
using TnnLM = SequenceModel<T, TokenInput<T>, LmHead<T>, Backend>;
template <class T, class Backend = DefaultFftBackend>
using TnnClassifier = SequenceModel<T, TokenInput<T>, ClassifierHead<T>, Backend>;
template <class T, class Backend = DefaultFftBackend>
using TnnImageClassifier = SequenceModel<T, PatchInput<T>, ClassifierHead<T>, Backend>;
template <class T, class Backend = DefaultFftBackend>
using TnnRegressor = SequenceModel<T, FeatureInput<T>, RegressionHead<T>, Backend>;

// Calls f(ModelType<TheModel>{}) with the built-in model type of `task`, e.g. to check a
// checkpoint against the model it describes before building it.
template <class Model>
struct ModelType {
  using type = Model;
};
template <class T, class Backend = DefaultFftBackend, class F>
decltype(auto) with_model_type(Task task, F&& f) {
  switch (task) {
    case Task::Classify: return f(ModelType<TnnClassifier<T, Backend>>{});
    case Task::Image: return f(ModelType<TnnImageClassifier<T, Backend>>{});
    case Task::Regress: return f(ModelType<TnnRegressor<T, Backend>>{});
    case Task::Lm: break;
  }
  return f(ModelType<TnnLM<T, Backend>>{});
}

}  // namespace tnn
