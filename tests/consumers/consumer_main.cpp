// The program both consumer projects build (find_package of the installed tnn, and
// add_subdirectory of the source tree): includes the umbrella header, runs the Toeplitz
// kernel and checks it against a product written out by hand. Returns non-zero on any mismatch.
#include <tnn/tnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

int main() {
  using tnn::Index;
  const Index N = 300, C = 3;  // long enough for the FFT path
  int failures = 0;
  for (bool causal : {false, true}) {
    tnn::Tensor<double> t({tnn::toeplitz_num_coeffs(N, causal), C}), x({1, N, C}), y;
    for (Index i = 0; i < t.size(); ++i) t[i] = std::sin(0.37 * double(i));
    for (Index i = 0; i < x.size(); ++i) x[i] = std::cos(0.11 * double(i));
    tnn::ToeplitzOp<double> op;
    op.prepare(t, N, causal);
    op.forward(x, y);
    const Index off = causal ? 0 : N - 1;
    double err = 0;
    for (Index c = 0; c < C; ++c)
      for (Index i = 0; i < N; ++i) {
        double acc = 0;
        for (Index j = 0; j <= (causal ? i : N - 1); ++j) acc += t[(i - j + off) * C + c] * x[j * C + c];
        err = std::max(err, std::abs(acc - y[i * C + c]));
      }
    std::printf("causal=%d fft=%d max error %.3e\n", int(causal), int(op.uses_fft()), err);
    if (!op.uses_fft() || !(err < 1e-9)) ++failures;
  }
  return failures == 0 ? 0 : 1;
}
