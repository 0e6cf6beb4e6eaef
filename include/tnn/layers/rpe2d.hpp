// The 2-D relative position encoder's inputs: the 1-D Rpe's MLP (same blocks, same names,
// Rpe(options, width, /*offset_dims=*/2)) fed the offset pair (di, dj) through a 2-wide
// pos_proj gives the coefficients of every offset of an H x W grid.
#pragma once

#include "tnn/core/tensor.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/rpe.hpp"

namespace tnn {

// The offsets of an H x W grid as 2-D RPE inputs: row p * (2W-1) + q holds
// (di, dj) = (p - (H-1), q - (W-1)), the row order of the [2H-1, 2W-1, C]
// coefficients flattened to [(2H-1)(2W-1), C].
template <class T>
void rpe2d_offsets(Index H, Index W, Tensor<T>& pos) {
  if (H < 1 || W < 1) fail<ShapeError>("rpe2d grid: expected H, W >= 1, got ", H, " x ", W);
  const Index tw = 2 * W - 1;
  pos.resize({(2 * H - 1) * tw, 2});  // [K, 2]
  for (Index p = 0; p < 2 * H - 1; ++p)
    for (Index q = 0; q < tw; ++q) {
      pos[2 * (p * tw + q)] = static_cast<T>(p - (H - 1));
      pos[2 * (p * tw + q) + 1] = static_cast<T>(q - (W - 1));
    }
}

}  // namespace tnn
