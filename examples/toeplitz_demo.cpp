// The first program to run: a Toeplitz matrix-vector product for a few channels,
// computed by tnn's FFT kernel and checked against the dense matrix built
// explicitly. Prints the largest error and the time of both.
//   toeplitz_demo [N] [channels]      (defaults: N = 2000, 4 channels)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <random>
#include <string>

#include <tnn/tnn.hpp>

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

tnn::Index parse_positive(const char* arg, const char* what) {
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(arg, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || arg[used] != '\0' || v < 1)
    tnn::fail<tnn::ValueError>(what, ": expected a positive integer, got '", arg, "'");
  return static_cast<tnn::Index>(v);
}

int run(int argc, char** argv) {
  using tnn::Index;
  if (argc > 3) tnn::fail<tnn::ValueError>("usage: toeplitz_demo [N] [channels]");
  const Index N = argc > 1 ? parse_positive(argv[1], "N") : 2000;
  const Index C = argc > 2 ? parse_positive(argv[2], "channels") : 4;
  const bool causal = false;  // the general case: every t_k, k = -(N-1) .. N-1, is used

  // Coefficients t [2N-1, C] (row k + N-1 holds t_k) and one sequence x [1, N, C].
  std::mt19937 rng(42);
  std::normal_distribution<double> normal(0.0, 1.0);
  tnn::Tensor<double> t({tnn::toeplitz_num_coeffs(N, causal), C}), x({1, N, C}), y;
  for (auto& v : t) v = normal(rng) / std::sqrt(double(N));
  for (auto& v : x) v = normal(rng);

  // FFT product. prepare() takes the spectrum of the coefficients once; forward()
  // is what a layer pays per call.
  tnn::ToeplitzOp<double> op;
  auto t0 = std::chrono::steady_clock::now();
  op.prepare(t, N, causal, tnn::ToeplitzMethod::FFT);
  const double t_prepare = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  op.forward(x, y, /*save_for_backward=*/false);
  const double t_fft = seconds_since(t0);

  // Dense reference, one channel at a time: T[i][j] = t_{i-j}.
  Eigen::MatrixXd dense(N, N);  // column-major: the product below runs down columns
  tnn::Vec<double> xc(N), yc(N);
  double t_dense = 0, max_err = 0, max_abs = 0;
  for (Index c = 0; c < C; ++c) {
    for (Index i = 0; i < N; ++i) {
      xc[i] = x[i * C + c];
      for (Index j = 0; j < N; ++j) dense(i, j) = t[(i - j + N - 1) * C + c];
    }
    t0 = std::chrono::steady_clock::now();
    yc.setZero();
    for (Index j = 0; j < N; ++j) yc += dense.col(j) * xc[j];
    t_dense += seconds_since(t0);
    for (Index i = 0; i < N; ++i) {
      max_err = std::max(max_err, std::abs(y[i * C + c] - yc[i]));
      max_abs = std::max(max_abs, std::abs(yc[i]));
    }
  }

  const double rel = max_abs > 0 ? max_err / max_abs : max_err;
  std::printf("Toeplitz product y = T x: N = %ld, channels = %ld, double, FFT length %ld\n", long(N), long(C),
              long(tnn::fft_fast_size(2 * N - 1)));
  std::printf("  max |y_fft - y_dense|   %.3e  (relative %.3e)\n", max_err, rel);
  std::printf("  FFT kernel forward      %10.3f ms  (+ %.3f ms to prepare the coefficient spectrum)\n",
              1e3 * t_fft, 1e3 * t_prepare);
  std::printf("  dense matrix product    %10.3f ms  (matrix built outside the timing)\n", 1e3 * t_dense);
  const double tol = 1e-10;
  if (!(rel < tol)) {
    std::printf("FAILED: relative error above %.0e\n", tol);
    return 1;
  }
  std::printf("OK\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "toeplitz_demo: error: %s\n", e.what());
    return 1;
  }
}
