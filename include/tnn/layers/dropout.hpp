// Dropout for training (config key `dropout`, docs/official.md §2.11): each element of a
// [B, N, D] activation is zeroed with probability p and the others scaled by 1 / (1 - p)
// (inverted dropout, as torch's F.dropout), so evaluation is the identity. The masks are a pure
// function of (seed, step, site, row, position): a resumed run, a run on any number of threads
// and a data-parallel run (rows numbered in the global batch) all draw the same ones.
#pragma once

#include <cstdint>

#include "tnn/core/parallel.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

// What a training step's dropout draws from. Null where a forward takes a `const
// DropoutContext*` (evaluation, `tnn grad`, decoding): no dropout.
struct DropoutContext {
  double p = 0;             // drop probability in [0, 1)
  std::uint64_t seed = 0;   // the run's seed
  std::int64_t step = 0;    // the training step
  Index first_row = 0;      // index of this batch's row 0 in the global batch (data-parallel shards)
};

namespace detail {
// The seed of the stream of one (site, row, position): the elements along D are its draws in order.
inline std::uint64_t dropout_stream(const DropoutContext& d, std::uint64_t site, Index row, Index pos) {
  std::uint64_t z = mix64(d.seed + 0x9E3779B97F4A7C15ull * 3);  // 3: apart from data.hpp's streams 1 and 2
  z = mix64(z ^ (static_cast<std::uint64_t>(d.step) + 0xD1B54A32D192ED03ull));
  z = mix64(z ^ (site + 0x8CB92BA72F3D8DD7ull));
  z = mix64(z ^ (static_cast<std::uint64_t>(row) + 0xABC98388FB8FAC03ull));
  return mix64(z ^ (static_cast<std::uint64_t>(pos) + 0x9FB21C651E98DF25ull));
}
}  // namespace detail

// mask [B, N, D] (the shape given): 0 with probability d.p, else 1 / (1 - d.p). `site` tells
// apart the places dropout is applied in one step (the backbone numbers them).
template <class T>
void dropout_mask(const DropoutContext& d, std::uint64_t site, const Shape& shape, Tensor<T>& mask) {
  if (shape.size() != 3) fail<ShapeError>("dropout mask: expected a shape [B, N, D], got ", shape_str(shape));
  if (!(d.p >= 0 && d.p < 1)) fail<ValueError>("dropout: expected a probability in [0, 1), got ", d.p);
  mask.resize(shape);
  const Index B = shape[0], N = shape[1], D = shape[2];
  const T keep = static_cast<T>(1.0 / (1.0 - d.p));
  const double p = d.p;
  ::tnn::parallel_for(B * N, B * N * D >= grain::kElementwiseBlock, [&](Index r) {
    Rng rng(detail::dropout_stream(d, site, d.first_row + r / N, r % N));
    T* m = mask.data() + r * D;
    for (Index j = 0; j < D; ++j) m[j] = rng.uniform() < p ? T(0) : keep;
  });
}

// x *= mask elementwise (x and mask of the same shape): the forward and the backward of dropout.
template <class T>
void apply_mask(const Tensor<T>& mask, Tensor<T>& x) {
  if (mask.shape() != x.shape())
    fail<ShapeError>("dropout: expected the mask's shape ", shape_str(mask.shape()), ", got ", shape_str(x.shape()));
  x.vec().array() *= mask.vec().array();
}

}  // namespace tnn
