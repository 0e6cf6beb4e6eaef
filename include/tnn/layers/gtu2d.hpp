// The 2-D gated Toeplitz unit: the GTU of layers/gtu.hpp with the 2-D TNO as its
// token mixer, on x [B, H*W, D] (an H x W grid flattened row-major). Same widths,
// activations and parameter names (u_proj, v_proj, o, toep) as the 1-D GTU.
#pragma once

#include "tnn/layers/gtu.hpp"
#include "tnn/layers/tno2d.hpp"

namespace tnn {

template <class T, class Backend = DefaultFftBackend>
using Gtu2d = Gtu<T, Backend, Tno2d<T, Backend>>;

}  // namespace tnn
