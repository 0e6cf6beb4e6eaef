// The optional compiled mode: with TNN_COMPILED_LIB defined (CMake: link tnn::compiled instead of
// tnn::tnn), a translation unit that includes <tnn/tnn.hpp> takes the float language-model stack
// -- TnnLM<float>, its layers and mixers, LmTask<float>, Trainer<float>, AdamW<float> -- from the
// static library tnn::compiled (src/tnn_compiled.cpp, which instantiates this same list once)
// instead of generating its code again. A file that trains or runs a float language model then
// compiles about three times faster (docs/building.md). Without the macro this header declares
// nothing and tnn is header-only; every other instance (double, the classifiers, another FFT
// backend) is instantiated where it is used, in either mode.
//
// How: `extern template class X<float>;` tells the compiler that every member of X<float> is
// instantiated in another translation unit. Members defined in the class body are inline, so the
// compiler may still instantiate the ones a file calls, to inline them; the large entry points
// (a model's forward and backward, Trainer::run) are not inlined, so their call trees are not
// compiled in the user's file. The library must be built with the user's TNN_* switches, which
// the CMake target carries, so both see the same classes.
#pragma once

#if defined(TNN_COMPILED_LIB)

#include "tnn/core/fft.hpp"
#include "tnn/layers/attention.hpp"
#include "tnn/layers/embedding.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/gtu2d.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/layers/tno2d.hpp"
#include "tnn/layers/token_mixer.hpp"
#include "tnn/model/backbone.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/optimizer.hpp"
#include "tnn/train/trainer.hpp"

// `extern` for the library's users; empty in src/tnn_compiled.cpp, where the same list becomes
// the explicit instantiation definitions.
#ifndef TNN_COMPILED_EXTERN
#define TNN_COMPILED_EXTERN extern
#endif

namespace tnn {
// layers and token mixers
TNN_COMPILED_EXTERN template class Linear<float>;
TNN_COMPILED_EXTERN template class Embedding<float>;
TNN_COMPILED_EXTERN template class Norm<float>;
TNN_COMPILED_EXTERN template class Glu<float>;
TNN_COMPILED_EXTERN template class Rpe<float>;
TNN_COMPILED_EXTERN template class Tno<float, DefaultFftBackend>;
TNN_COMPILED_EXTERN template class Tno2d<float, DefaultFftBackend>;
TNN_COMPILED_EXTERN template class Gtu<float, DefaultFftBackend, Tno<float, DefaultFftBackend>>;
TNN_COMPILED_EXTERN template class Gtu<float, DefaultFftBackend, Tno2d<float, DefaultFftBackend>>;
TNN_COMPILED_EXTERN template class Attention<float>;
TNN_COMPILED_EXTERN template class TokenMixer<float, DefaultFftBackend>;
// the backbone and the language model
TNN_COMPILED_EXTERN template class TnnBlock<float, DefaultFftBackend>;
TNN_COMPILED_EXTERN template class Backbone<float, DefaultFftBackend>;
TNN_COMPILED_EXTERN template class TokenInput<float>;
TNN_COMPILED_EXTERN template class LmHead<float>;
TNN_COMPILED_EXTERN template class ParameterSet<TnnLM<float, DefaultFftBackend>, float>;
TNN_COMPILED_EXTERN template class SequenceModel<float, TokenInput<float>, LmHead<float>, DefaultFftBackend>;
// training
TNN_COMPILED_EXTERN template class AdamW<float>;
TNN_COMPILED_EXTERN template class TrainTask<float>;
TNN_COMPILED_EXTERN template class SupervisedTask<TnnLM<float, DefaultFftBackend>>;
TNN_COMPILED_EXTERN template class LmTask<float>;
TNN_COMPILED_EXTERN template class Trainer<float>;
}  // namespace tnn

#endif  // TNN_COMPILED_LIB
