// 2-D Toeplitz kernel benchmarks on square S x S grids: the FFT product beside its
// direct O((S^2)^2) twin, and the bare 2-D FFT round trip on the same padded grid
// and channel count, the floor the FFT kernel is held against
// (names: BM_<Op>/C:<C>/S:<S>, complexity over the positions S^2).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_util.hpp"
#include "tnn/core/toeplitz2d.hpp"

using namespace tnn;
using namespace tnn_bench;

namespace {

void set_counters_2d(benchmark::State& state, Index S, Index C) {
  state.SetComplexityN(static_cast<int64_t>(S * S));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * S * S * C);  // positions x channels
  state.counters["L"] = static_cast<double>(toeplitz2d_grid_size(S));
}

// Forward y = T x, batch 1, coefficient spectrum prepared once: what a layer pays per call.
void BM_Toeplitz2d_FFT(benchmark::State& state, Index C) {
  const Index S = state.range(0);
  auto t = random_tensor({2 * S - 1, 2 * S - 1, C}, 1);
  auto x = random_tensor({1, S, S, C}, 2);
  time_fft_forward<Toeplitz2dOp<Scalar>>(state, t, x, S, S);
  set_counters_2d(state, S, C);
}

// Backward (dx and dt) after a forward that saved rfft2(x).
void BM_Toeplitz2d_FFT_Backward(benchmark::State& state, Index C) {
  const Index S = state.range(0);
  auto t = random_tensor({2 * S - 1, 2 * S - 1, C}, 1);
  auto x = random_tensor({1, S, S, C}, 2);
  auto g = random_tensor({1, S, S, C}, 3);
  time_fft_backward<Toeplitz2dOp<Scalar>>(state, Kept::Dt, t, x, g, S, S);
  set_counters_2d(state, S, C);
}

void BM_Toeplitz2d_Direct(benchmark::State& state, Index C) {
  const Index S = state.range(0);
  auto t = random_tensor({2 * S - 1, 2 * S - 1, C}, 1);
  auto x = random_tensor({1, S, S, C}, 2);
  Tensor<Scalar> y;
  const auto direct = [&] { toeplitz2d_forward_direct(t, x, y); };
  direct();  // warm-up
  time_calls(state, direct, y);
  set_counters_2d(state, S, C);
}

// The floor: per channel one forward and one inverse 2-D real transform of the
// padded Lh x Lw grid on contiguous 64-byte aligned grids (input zero-padded like
// the kernel's), spread over threads like the kernel. No transposes, no spectrum
// product, no scaling.
void BM_FFT2d_RoundTrip(benchmark::State& state, Index C) {
  using Complex = std::complex<Scalar>;
  const Index S = state.range(0), L = toeplitz2d_grid_size(S);
  const Index gs = fft_row_stride<Scalar>(L * L), cs = fft_row_stride<Complex>(L * (L / 2 + 1));
  AlignedVector<Scalar> in(static_cast<std::size_t>(C * gs), Scalar(0));   // [C, gs]
  AlignedVector<Scalar> out(static_cast<std::size_t>(C * gs), Scalar(0));  // [C, gs]
  {
    auto x = random_tensor({C, S, S}, 2);
    for (Index c = 0; c < C; ++c)
      for (Index i = 0; i < S; ++i)
        std::copy(x.data() + (c * S + i) * S, x.data() + (c * S + i + 1) * S, in.data() + c * gs + i * L);
  }
  const DefaultFftBackend::Plan2d<Scalar> plan(L, L);  // planned outside the timed loop, as the kernel's
  time_round_trips(state, plan, C, gs, cs, in, out);
  set_counters_2d(state, S, C);
}

// 14x14 (a 224-pixel image in 16-pixel patches), 32x32 and 64x64 at 192 channels,
// the widths measured in the docs; the small grids locate the direct/FFT crossover
// (kToeplitz2dDirectMaxPositions).
const bool registered_2d = [] {
  const std::vector<int64_t> main_sides = {14, 32, 64}, small_sides = {2, 4, 6, 8, 10, 12, 16};
  std::vector<int64_t> all = small_sides;
  all.insert(all.end(), main_sides.begin(), main_sides.end());
  add_family("BM_Toeplitz2d_FFT", BM_Toeplitz2d_FFT, 192, "S", all);
  add_family("BM_Toeplitz2d_Direct", BM_Toeplitz2d_Direct, 192, "S", all);
  add_family("BM_FFT2d_RoundTrip", BM_FFT2d_RoundTrip, 192, "S", main_sides);
  add_family("BM_Toeplitz2d_FFT_Backward", BM_Toeplitz2d_FFT_Backward, 192, "S", main_sides);
  return true;
}();

}  // namespace
