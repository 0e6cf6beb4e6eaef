// Umbrella header: everything the tnn library offers.
//   core/   tensor, FFT backends, Toeplitz and circulant kernels, GEMM, parallel loops
//   layers/ linear, embedding, activations, norms, RPE, TNO, GTU, GLU
//   model/  config, TNN layer, backbone, inputs, heads, the models, loss, checkpoints
//   train/  optimizer, schedules, data, checkpoints (safetensors), RNG
//   infer/  sampling, incremental decoding
#pragma once

#include "tnn/core/error.hpp"
#include "tnn/core/fft.hpp"
#include "tnn/core/gemm.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz.hpp"
#include "tnn/core/toeplitz2d.hpp"

#include "tnn/layers/activation.hpp"
#include "tnn/layers/dropout.hpp"
#include "tnn/layers/embedding.hpp"
#include "tnn/layers/glu.hpp"
#include "tnn/layers/gtu.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/layers/gtu2d.hpp"
#include "tnn/layers/rpe2d.hpp"
#include "tnn/layers/tno2d.hpp"
#include "tnn/layers/token_mixer.hpp"

#include "tnn/model/backbone.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/loss.hpp"
#include "tnn/model/models.hpp"

#include "tnn/model/checkpoint.hpp"
#include "tnn/train/data.hpp"
#include "tnn/train/optimizer.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/io/safetensors.hpp"
#include "tnn/train/schedule.hpp"
#include "tnn/train/trainer.hpp"

#include "tnn/infer/decoder.hpp"
#include "tnn/infer/evaluate.hpp"
#include "tnn/infer/sampling.hpp"

// With TNN_COMPILED_LIB (CMake: tnn::compiled), the float language-model stack comes from the
// compiled library instead of being generated here.
#include "tnn/compiled.hpp"
