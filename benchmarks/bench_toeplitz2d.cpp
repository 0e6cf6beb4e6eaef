// 2-D Toeplitz kernel benchmarks on square S x S grids: the FFT product beside its
// direct O((S^2)^2) twin, and the bare 2-D FFT round trip on the same padded grid
// and channel count, the floor the FFT kernel is held against
// (names: BM_<Op>/C:<C>/S:<S>, complexity over the positions S^2).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tnn/core/toeplitz2d.hpp"

using namespace tnn;

namespace {

using Scalar = float;  // the precision models train in

Tensor<Scalar> random_grid_tensor(const Shape& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor<Scalar> t(s);
  for (auto& v : t) v = nd(rng);
  return t;
}

void set_counters_2d(benchmark::State& state, Index S, Index C) {
  state.SetComplexityN(static_cast<int64_t>(S * S));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * S * S * C);  // positions x channels
  state.counters["L"] = static_cast<double>(toeplitz2d_grid_size(S));
}

// Forward y = T x, batch 1, coefficient spectrum prepared once: what a layer pays per call.
void BM_Toeplitz2d_FFT(benchmark::State& state, Index C) {
  const Index S = state.range(0);
  auto t = random_grid_tensor({2 * S - 1, 2 * S - 1, C}, 1);
  auto x = random_grid_tensor({1, S, S, C}, 2);
  Tensor<Scalar> y;
  Toeplitz2dOp<Scalar> op;
  op.prepare(t, S, S, ToeplitzMethod::FFT);
  op.forward(x, y, false);  // warm-up: workspaces
  for (auto _ : state) {
    op.forward(x, y, false);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters_2d(state, S, C);
}

// Backward (dx and dt) after a forward that saved rfft2(x).
void BM_Toeplitz2d_FFT_Backward(benchmark::State& state, Index C) {
  const Index S = state.range(0);
  auto t = random_grid_tensor({2 * S - 1, 2 * S - 1, C}, 1);
  auto x = random_grid_tensor({1, S, S, C}, 2);
  auto g = random_grid_tensor({1, S, S, C}, 3);
  Tensor<Scalar> y, dx, dt;
  Toeplitz2dOp<Scalar> op;
  op.prepare(t, S, S, ToeplitzMethod::FFT);
  op.forward(x, y, true);
  op.backward(g, &dx, &dt);
  for (auto _ : state) {
    op.backward(g, &dx, &dt);
    benchmark::DoNotOptimize(dt.data());
    benchmark::ClobberMemory();
  }
  set_counters_2d(state, S, C);
}

void BM_Toeplitz2d_Direct(benchmark::State& state, Index C) {
  const Index S = state.range(0);
  auto t = random_grid_tensor({2 * S - 1, 2 * S - 1, C}, 1);
  auto x = random_grid_tensor({1, S, S, C}, 2);
  Tensor<Scalar> y;
  toeplitz2d_forward_direct(t, x, y);
  for (auto _ : state) {
    toeplitz2d_forward_direct(t, x, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
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
    auto x = random_grid_tensor({C, S, S}, 2);
    for (Index c = 0; c < C; ++c)
      for (Index i = 0; i < S; ++i)
        std::copy(x.data() + (c * S + i) * S, x.data() + (c * S + i + 1) * S, in.data() + c * gs + i * L);
  }
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  std::vector<AlignedVector<Complex>> spec(static_cast<std::size_t>(threads),
                                           AlignedVector<Complex>(static_cast<std::size_t>(cs)));  // [cs] per thread
  const DefaultFftBackend::Plan2d<Scalar> plan(L, L);  // planned outside the timed loop, as the kernel's
  for (auto _ : state) {
    TNN_OMP(parallel for schedule(dynamic, 16))
    for (Index c = 0; c < C; ++c) {
      int tid = 0;
#ifdef _OPENMP
      tid = omp_get_thread_num();
#endif
      Complex* s = spec[static_cast<std::size_t>(tid)].data();
      plan.r2c(in.data() + c * gs, s);
      plan.c2r(s, out.data() + c * gs);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters_2d(state, S, C);
}

void add_2d(const char* op, void (*fn)(benchmark::State&, Index), Index C, const std::vector<int64_t>& sides) {
  const std::string name = std::string(op) + "/C:" + std::to_string(C);
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn, C);
  b->ArgName("S")->Unit(benchmark::kMicrosecond)->UseRealTime()->Complexity();
  for (int64_t s : sides) b->Arg(s);
}

// 14x14 (a 224-pixel image in 16-pixel patches), 32x32 and 64x64 at 192 channels,
// the widths the issue measures at; the small grids locate the direct/FFT crossover
// (kToeplitz2dDirectMaxPositions).
const bool registered_2d = [] {
  const std::vector<int64_t> main_sides = {14, 32, 64}, small_sides = {2, 4, 6, 8, 10, 12, 16};
  std::vector<int64_t> all = small_sides;
  all.insert(all.end(), main_sides.begin(), main_sides.end());
  add_2d("BM_Toeplitz2d_FFT", BM_Toeplitz2d_FFT, 192, all);
  add_2d("BM_Toeplitz2d_Direct", BM_Toeplitz2d_Direct, 192, all);
  add_2d("BM_FFT2d_RoundTrip", BM_FFT2d_RoundTrip, 192, main_sides);
  add_2d("BM_Toeplitz2d_FFT_Backward", BM_Toeplitz2d_FFT_Backward, 192, main_sides);
  return true;
}();

}  // namespace
