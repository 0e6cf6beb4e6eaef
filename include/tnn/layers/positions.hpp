// Sinusoidal absolute positions, the input-side position scheme of the Transformer baseline
// (fairseq's transformer_lm: x = sqrt(D) * embed(tokens) + PE(positions)); attention itself is
// position-free. No parameters; the backward is the identity (dx = dy).
//
// PE(p)[i] = sin(p w_i), PE(p)[half + i] = cos(p w_i), w_i = 10000^(-i / (half - 1)), i < half =
// D / 2; an odd D leaves its last channel 0. This is fairseq's
// SinusoidalPositionalEmbedding.get_embedding, with three deviations: positions count from
// `offset` (0 by default) where fairseq's count from padding_idx + 1 (2 with its dictionary's
// pad 1: pass offset 2 to reproduce a fairseq model); the angles are computed in double, not
// float32; and D = 2 or 3 (half = 1, where fairseq divides by zero) takes w_0 = 1, the value
// every other D gives w_0.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn {

// Absolute positions an input module adds to the vectors it writes (config key `positions`):
// none (the TNN, whose token mixer carries relative position itself), or sinusoidal (the
// Transformer baseline's, which attention needs: attention alone is blind to order).
enum class PositionScheme { None, Sinusoidal };
template <>
struct EnumTable<PositionScheme> {
  static constexpr EnumRow<PositionScheme> rows[] = {{PositionScheme::None, "none"},
                                                     {PositionScheme::Sinusoidal, "sinusoidal"}};
};

// out[0 .. dim-1] = PE(pos).
template <class T>
void sinusoidal_position(double pos, Index dim, T* out) {
  const Index half = dim / 2;
  const double step = half > 1 ? std::log(10000.0) / double(half - 1) : 0.0;
  for (Index i = 0; i < half; ++i) {
    const double a = pos * std::exp(-double(i) * step);
    out[i] = static_cast<T>(std::sin(a));
    out[half + i] = static_cast<T>(std::cos(a));
  }
  if (dim % 2 == 1) out[dim - 1] = T(0);
}

// x [B, N, D]: x[b, n] += PE(offset + n) for every row b. Computes the sines afresh: N D / 2
// sin-cos pairs per call (SinusoidalPositions below keeps a table).
template <class T>
void add_sinusoidal_positions(Tensor<T>& x, Index offset = 0) {
  if (x.rank() != 3) fail<ShapeError>("sinusoidal positions x: expected shape [B, N, D], got ", shape_str(x.shape()));
  if (offset < 0) fail<ValueError>("sinusoidal positions: expected offset >= 0, got ", offset);
  const Index B = x.dim(0), N = x.dim(1), D = x.dim(2);
  std::vector<T> pe(static_cast<std::size_t>(D));
  for (Index n = 0; n < N; ++n) {
    sinusoidal_position(double(offset + n), D, pe.data());
    for (Index b = 0; b < B; ++b) {
      T* row = x.data() + (b * N + n) * D;
      for (Index d = 0; d < D; ++d) row[d] += pe[static_cast<std::size_t>(d)];
    }
  }
}

// The same sum from a table of PE rows, grown (doubling) as positions beyond it are asked for:
// a training loop or decoder adds positions without recomputing a sine. Equal to
// add_sinusoidal_positions bit for bit.
template <class T>
class SinusoidalPositions {
 public:
  SinusoidalPositions() = default;  // dim 0: assign a real one before use
  explicit SinusoidalPositions(Index dim, Index capacity = 0) : dim_(dim) {
    if (dim < 1) fail<ValueError>("sinusoidal positions: expected dim >= 1, got ", dim);
    reserve(capacity);
  }

  Index dim() const { return dim_; }
  Index capacity() const { return table_.rows(); }

  void reserve(Index positions) {
    const Index old = capacity();
    if (positions <= old) return;
    Tensor<T> t({positions, dim_});
    std::copy(table_.begin(), table_.end(), t.begin());
    for (Index p = old; p < positions; ++p) sinusoidal_position(double(p), dim_, t.data() + p * dim_);
    table_ = std::move(t);
  }

  // x [B, N, D]: x[b, n] += PE(offset + n).
  void add(Tensor<T>& x, Index offset = 0) {
    if (x.rank() != 3 || x.dim(2) != dim_)
      fail<ShapeError>("sinusoidal positions x: expected shape [B, N, ", dim_, "], got ", shape_str(x.shape()));
    if (offset < 0) fail<ValueError>("sinusoidal positions: expected offset >= 0, got ", offset);
    const Index B = x.dim(0), N = x.dim(1), D = dim_;
    if (offset + N > capacity()) reserve(std::max(offset + N, 2 * capacity()));
    for (Index b = 0; b < B; ++b)
      for (Index n = 0; n < N; ++n) {
        const T* pe = table_.data() + (offset + n) * D;
        T* row = x.data() + (b * N + n) * D;
        for (Index d = 0; d < D; ++d) row[d] += pe[d];
      }
  }

 private:
  Index dim_ = 0;
  Tensor<T> table_;  // [capacity, D] row p = PE(p)
};

// What an input module adds under a PositionScheme: nothing, or PE(offset + n) to row n
// (SinusoidalPositions' table, so a training step at a repeated length allocates nothing).
template <class T>
class InputPositions {
 public:
  InputPositions() = default;
  InputPositions(PositionScheme scheme, Index dim) : scheme_(scheme) {
    if (scheme == PositionScheme::Sinusoidal) table_ = SinusoidalPositions<T>(dim);
  }

  PositionScheme scheme() const { return scheme_; }

  // Room for positions 0 .. positions-1 without growing later (an incremental decoder's capacity).
  void reserve(Index positions) {
    if (scheme_ == PositionScheme::Sinusoidal) table_.reserve(positions);
  }

  // x [B, N, D]: x[b, n] += PE(offset + n), or unchanged for none. The backward is the identity.
  void add(Tensor<T>& x, Index offset = 0) {
    if (scheme_ == PositionScheme::Sinusoidal) table_.add(x, offset);
  }

 private:
  PositionScheme scheme_ = PositionScheme::None;
  SinusoidalPositions<T> table_;
};

}  // namespace tnn
