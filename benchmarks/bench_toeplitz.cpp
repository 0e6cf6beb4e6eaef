// Toeplitz kernel benchmarks: the FFT product beside its direct O(N^2) twin, and
// the bare FFT round trip of the same transform length and channel count, the
// floor the FFT kernel is held against. One family per channel count C, so each
// family's complexity fit runs over N alone (names: BM_<Op>_<Variant>/C:<C>/N:<N>).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_util.hpp"
#include "tnn/core/toeplitz.hpp"

using namespace tnn;
using namespace tnn_bench;

namespace {

void set_counters(benchmark::State& state, Index n, Index c) {
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n * c);  // items = positions x channels
  state.counters["L"] = static_cast<double>(fft_fast_size(2 * n - 1));
}

// Forward y = T x, causal, batch 1, coefficient spectrum prepared once (inference
// at a fixed length): what a layer pays per call.
void BM_Toeplitz_FFT(benchmark::State& state, Index C) {
  const Index N = state.range(0);
  auto t = random_tensor({N, C}, 1);
  auto x = random_tensor({1, N, C}, 2);
  time_fft_forward<ToeplitzOp<Scalar>>(state, t, x, N, true);  // causal
  set_counters(state, N, C);
}

// Backward (dx and dt) after a forward that saved rfft(x).
void BM_Toeplitz_FFT_Backward(benchmark::State& state, Index C) {
  const Index N = state.range(0);
  auto t = random_tensor({N, C}, 1);
  auto x = random_tensor({1, N, C}, 2);
  auto g = random_tensor({1, N, C}, 3);
  time_fft_backward<ToeplitzOp<Scalar>>(state, Kept::DxDt, t, x, g, N, true);  // causal
  set_counters(state, N, C);
}

// prepare(): the coefficient spectrum, paid once per training step (coefficients
// change every step) or once for inference at a fixed length.
void BM_Toeplitz_Prepare(benchmark::State& state, Index C) {
  const Index N = state.range(0);
  auto t = random_tensor({N, C}, 1);
  ToeplitzOp<Scalar> op;
  const auto prepare = [&] { op.prepare(t, N, true, ToeplitzMethod::FFT); };
  prepare();  // warm-up
  time_calls(state, prepare);
  set_counters(state, N, C);
}

void run_direct(benchmark::State& state, Index C, bool causal) {
  const Index N = state.range(0);
  auto t = random_tensor({toeplitz_num_coeffs(N, causal), C}, 1);
  auto x = random_tensor({1, N, C}, 2);
  Tensor<Scalar> y;
  time_calls(state, [&] { toeplitz_forward_direct(t, x, y, causal); }, y);
  set_counters(state, N, C);
}
void BM_Toeplitz_Direct(benchmark::State& state, Index C) { run_direct(state, C, true); }
// Twice the multiply-adds of the causal product, for the same FFT cost.
void BM_Toeplitz_Direct_NonCausal(benchmark::State& state, Index C) { run_direct(state, C, false); }

// The floor: per channel one forward and one inverse real transform of length
// L = fft_fast_size(2N-1) on contiguous 64-byte aligned rows (input zero-padded
// from N to L like the kernel's), spread over threads like the kernel. No
// transposes, no spectrum product, no scaling. DefaultFftBackend: FFTW, or Eigen without it.
void BM_FFT_RoundTrip(benchmark::State& state, Index C) {
  using Complex = std::complex<Scalar>;
  const Index N = state.range(0), L = fft_fast_size(2 * N - 1), Lh = L / 2 + 1;
  const Index rs = fft_row_stride<Scalar>(L), cs = fft_row_stride<Complex>(Lh);
  AlignedVector<Scalar> in(static_cast<std::size_t>(C * rs), Scalar(0));   // [C, rs]
  AlignedVector<Scalar> out(static_cast<std::size_t>(C * rs), Scalar(0));  // [C, rs]
  {
    auto x = random_tensor({C, N}, 2);
    for (Index c = 0; c < C; ++c) std::copy(x.data() + c * N, x.data() + (c + 1) * N, in.data() + c * rs);
  }
  const DefaultFftBackend::Plan<Scalar> plan(L);  // planned outside the timed loop, as the kernel's
  time_round_trips(state, plan, C, rs, cs, in, out);
  set_counters(state, N, C);
}

// Lengths 16 .. max: half-octave steps up to 512 (where the FFT/direct crossover
// lies), octaves beyond.
std::vector<int64_t> lengths(int64_t max_n) {
  std::vector<int64_t> out;
  for (int64_t n = 16; n <= max_n; n *= 2) {
    out.push_back(n);
    if (n < 512 && n + n / 2 <= max_n) out.push_back(n + n / 2);
  }
  return out;
}

// 512 channels is the bench model's width, up to N = 65536 (FFT) and
// 4096 (direct: about 4e9 multiply-adds per call there). 8 and 64 channels locate
// the crossover for narrow layers.
void add(const char* op, void (*fn)(benchmark::State&, Index), Index C, int64_t max_n) {
  add_family(op, fn, C, "N", lengths(max_n));
}

const bool registered = [] {
  for (Index C : {Index(512), Index(64), Index(8)}) {
    const bool wide = C == 512;
    add("BM_Toeplitz_FFT", BM_Toeplitz_FFT, C, wide ? 65536 : 4096);
    add("BM_Toeplitz_Direct", BM_Toeplitz_Direct, C, wide ? 4096 : 2048);
    add("BM_FFT_RoundTrip", BM_FFT_RoundTrip, C, wide ? 65536 : 4096);
    if (wide) {
      add("BM_Toeplitz_FFT_Backward", BM_Toeplitz_FFT_Backward, C, 65536);
      add("BM_Toeplitz_Prepare", BM_Toeplitz_Prepare, C, 65536);
      add("BM_Toeplitz_Direct_NonCausal", BM_Toeplitz_Direct_NonCausal, C, 1024);
    }
  }
  benchmark::AddCustomContext("tnn_omp_threads", std::to_string(omp_threads()));
  benchmark::AddCustomContext("tnn_scalar", "float");
#ifdef TNN_BENCH_BUILD_TYPE
  benchmark::AddCustomContext("tnn_build_type", TNN_BENCH_BUILD_TYPE);
#endif
  benchmark::AddCustomContext("tnn_fft_backend", DefaultFftBackend::name);
  return true;
}();

}  // namespace
