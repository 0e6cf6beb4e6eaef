// The FFT Toeplitz/circulant kernels against their direct O(N^2) twins at many
// sizes, on the default backend (FFTW, or kissfft with -DTNN_USE_FFTW=OFF) and on
// EigenBackend; plan reuse, threads and errors. Central-difference gradients of
// the kernels are in the op-check harness (test_ops.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "op_check.hpp"
#include "tnn/core/toeplitz.hpp"

using namespace tnn;

namespace {

template <class T>
Tensor<T> random_tensor(const Shape& s, unsigned seed) {
  return opcheck::random<T>(s, seed);
}

template <class T>
double rel_err(const Tensor<T>& a, const Tensor<T>& b) {
  return gradcheck::max_rel_diff(a, b);
}

struct Case {
  Index n, channels, batch;
};

template <class T, class Backend>
void check_fft_matches_direct(Index N, Index C, Index B, bool causal, double tol) {
  SCOPED_TRACE(testing::Message() << "N=" << N << " C=" << C << " B=" << B << " causal=" << causal
                                  << " backend=" << Backend::name);
  auto t = random_tensor<T>({toeplitz_num_coeffs(N, causal), C}, 1 + unsigned(N));
  auto x = random_tensor<T>({B, N, C}, 2 + unsigned(N));
  auto g = random_tensor<T>({B, N, C}, 3 + unsigned(N));

  Tensor<T> y_ref, dx_ref, dt_ref;
  toeplitz_forward_direct(t, x, y_ref, causal);
  toeplitz_backward_direct(t, x, g, &dx_ref, &dt_ref, causal);

  ToeplitzOp<T, Backend> op;
  op.prepare(t, N, causal, ToeplitzMethod::FFT);
  ASSERT_TRUE(op.uses_fft());
  Tensor<T> y, dx, dt;
  op.forward(x, y);
  op.backward(g, &dx, &dt);
  EXPECT_LT(rel_err(y, y_ref), tol);
  EXPECT_LT(rel_err(dx, dx_ref), tol);
  EXPECT_LT(rel_err(dt, dt_ref), tol);
}

const Index kSizes[] = {1, 2, 3, 7, 64, 127, 1000, 4099};

}  // namespace

// The default backend: FFTW, or Eigen's kissfft in the FFTW-free build.
TEST(Toeplitz, FftMatchesDirectDouble) {
  for (Index N : kSizes)
    for (bool causal : {true, false}) {
      check_fft_matches_direct<double, DefaultFftBackend>(N, 3, 2, causal, 1e-10);
      if (N <= 1000) check_fft_matches_direct<double, DefaultFftBackend>(N, 37, 1, causal, 1e-10);
    }
}

TEST(Toeplitz, FftMatchesDirectFloat) {
  for (Index N : kSizes)
    for (bool causal : {true, false}) check_fft_matches_direct<float, DefaultFftBackend>(N, 5, 2, causal, 2e-4);
}

TEST(Toeplitz, EigenBackendMatchesDirect) {
  for (Index N : kSizes)
    for (bool causal : {true, false}) {
      check_fft_matches_direct<double, EigenBackend>(N, 3, 2, causal, 1e-10);
      check_fft_matches_direct<float, EigenBackend>(N, 3, 1, causal, 2e-4);
    }
}

TEST(Toeplitz, DirectMatchesDenseMatrix) {
  // The reference itself, against an explicitly built dense T.
  const Index N = 9, C = 2;
  for (bool causal : {true, false}) {
    auto t = random_tensor<double>({toeplitz_num_coeffs(N, causal), C}, 7);
    auto x = random_tensor<double>({1, N, C}, 8);
    Tensor<double> y;
    toeplitz_forward_direct(t, x, y, causal);
    for (Index c = 0; c < C; ++c)
      for (Index i = 0; i < N; ++i) {
        double acc = 0;
        for (Index j = 0; j < N; ++j) {
          const Index k = i - j;
          double tk = 0;
          if (causal)
            tk = k >= 0 ? t[k * C + c] : 0.0;
          else
            tk = t[(k + N - 1) * C + c];
          acc += tk * x[j * C + c];
        }
        EXPECT_NEAR(y[i * C + c], acc, 1e-12);
      }
  }
}

TEST(Toeplitz, PreparedSpectrumIsReusedAcrossCalls) {
  const Index N = 300, C = 8;
  auto t = random_tensor<float>({N, C}, 21);
  ToeplitzOp<float> op;
  op.prepare(t, N, true, ToeplitzMethod::FFT);
  for (unsigned s = 0; s < 3; ++s) {
    auto x = random_tensor<float>({2, N, C}, 30 + s);
    Tensor<float> y, y_ref;
    op.forward(x, y, false);
    toeplitz_forward_direct(t, x, y_ref, true);
    EXPECT_LT(rel_err(y, y_ref), 2e-4);
  }
}

TEST(Toeplitz, AutoUsesDirectBelowCrossover) {
  ToeplitzOp<double> small, large;
  small.prepare(Tensor<double>({kToeplitzDirectMaxN, 1}), kToeplitzDirectMaxN, true);
  large.prepare(Tensor<double>({kToeplitzDirectMaxN + 1, 1}), kToeplitzDirectMaxN + 1, true);
  EXPECT_FALSE(small.uses_fft());
  EXPECT_TRUE(large.uses_fft());
}

TEST(Toeplitz, ConcurrentCallsGiveIdenticalResults) {
  const Index N = 777, C = 20, B = 2;
  auto t = random_tensor<float>({2 * N - 1, C}, 41);
  auto x = random_tensor<float>({B, N, C}, 42);
  auto g = random_tensor<float>({B, N, C}, 43);
  auto run = [&](Tensor<float>& y, Tensor<float>& dx, Tensor<float>& dt) {
    ToeplitzOp<float> op;  // each thread plans (through the shared, serialized cache) and runs
    op.prepare(t, N, false, ToeplitzMethod::FFT);
    op.forward(x, y);
    op.backward(g, &dx, &dt);
  };
  Tensor<float> y0, dx0, dt0;
  run(y0, dx0, dt0);
  std::vector<Tensor<float>> y(4), dx(4), dt(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) threads.emplace_back([&, k] { run(y[k], dx[k], dt[k]); });
  for (auto& th : threads) th.join();
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(std::vector<float>(y[k].begin(), y[k].end()), std::vector<float>(y0.begin(), y0.end()));
    EXPECT_EQ(std::vector<float>(dx[k].begin(), dx[k].end()), std::vector<float>(dx0.begin(), dx0.end()));
    EXPECT_EQ(std::vector<float>(dt[k].begin(), dt[k].end()), std::vector<float>(dt0.begin(), dt0.end()));
  }
}

TEST(Circulant, FftMatchesDirect) {
  for (Index L : {Index(1), Index(2), Index(5), Index(64), Index(99)})
    for (int backend = 0; backend < 2; ++backend) {
      SCOPED_TRACE(testing::Message() << "L=" << L << " backend=" << backend);
      auto c = random_tensor<double>({L, 3}, 51);
      auto x = random_tensor<double>({2, L, 3}, 52);
      auto g = random_tensor<double>({2, L, 3}, 53);
      Tensor<double> y_ref, dx_ref, dc_ref, y, dx, dc;
      circulant_forward_direct(c, x, y_ref);
      circulant_backward_direct(c, x, g, &dx_ref, &dc_ref);
      if (backend == 0) {
        CirculantOp<double, DefaultFftBackend> op;
        op.prepare(c);
        op.forward(x, y);
        op.backward(g, &dx, &dc);
      } else {
        CirculantOp<double, EigenBackend> op;
        op.prepare(c);
        op.forward(x, y);
        op.backward(g, &dx, &dc);
      }
      EXPECT_LT(rel_err(y, y_ref), 1e-10);
      EXPECT_LT(rel_err(dx, dx_ref), 1e-10);
      EXPECT_LT(rel_err(dc, dc_ref), 1e-10);
    }
}

TEST(Toeplitz, WrongShapesThrowWithTheArgumentNamed) {
  ToeplitzOp<float> op;
  EXPECT_THROW(op.prepare(Tensor<float>({5, 2}), 4, true), ShapeError);
  EXPECT_THROW(op.prepare(Tensor<float>({0, 2}), 0, true), ShapeError);
  op.prepare(Tensor<float>({4, 2}), 4, true);
  Tensor<float> y;
  try {
    op.forward(Tensor<float>({1, 4, 3}), y);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("toeplitz x"), std::string::npos);
  }
}

TEST(Toeplitz, BackwardBeforeForwardIsAnError) {
  ToeplitzOp<float> op;
  op.prepare(Tensor<float>({100, 2}), 100, true, ToeplitzMethod::FFT);
  Tensor<float> dx, dt;
  EXPECT_THROW(op.backward(Tensor<float>({1, 100, 2}), &dx, &dt), Error);
}
