// The 2-D Toeplitz kernel: the 2-D real FFTs against a naive DFT, the FFT product
// against its direct O((HW)^2) twin (odd, even and degenerate grids, both FFT
// backends), the direct twin against a dense matrix, H = 1 / W = 1 against the 1-D
// operator, and central-difference gradients of the backward pass.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <vector>

#include "gradcheck.hpp"
#include "tnn/core/toeplitz2d.hpp"

using namespace tnn;

namespace {

template <class T>
Tensor<T> random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<T> t(s);
  for (auto& v : t) v = static_cast<T>(rng.normal(0.0, 1.0));
  return t;
}

template <class A, class B>
double rel_err(const Tensor<A>& a, const Tensor<B>& b) {
  return gradcheck::max_rel_diff(a, b);
}

struct Grid {
  Index h, w;
};
// Odd and even sides, squares and strips, and the degenerate H = 1 / W = 1 grids.
const std::vector<Grid> kGrids = {{1, 1}, {1, 6}, {1, 7}, {5, 1}, {6, 1}, {2, 2}, {3, 4},
                                  {4, 3}, {5, 5}, {6, 8}, {7, 10}, {8, 8}, {13, 6}};

// The direct twin's product y = T x and its gradients dx, dt for the cotangent g.
template <class T>
struct Direct {
  Tensor<T> y, dx, dt;
};
template <class T>
Direct<T> direct(const Tensor<T>& t, const Tensor<T>& x, const Tensor<T>& g) {
  Direct<T> d;
  toeplitz2d_forward_direct(t, x, d.y);
  toeplitz2d_backward_direct(t, x, g, &d.dx, &d.dt);
  return d;
}

// A prepared op's forward on x and backward of g against the direct twin's, each within tol.
template <class Op, class T>
void expect_matches_direct(Op& op, const Tensor<T>& x, const Tensor<T>& g, const Direct<T>& want, double tol) {
  Tensor<T> y, dx, dt;
  op.forward(x, y);
  op.backward(g, &dx, &dt);
  EXPECT_LT(rel_err(y, want.y), tol);
  EXPECT_LT(rel_err(dx, want.dx), tol);
  EXPECT_LT(rel_err(dt, want.dt), tol);
}

template <class Backend, class T>
void check_fft_matches_direct(Index H, Index W, Index C, Index B, double tol) {
  SCOPED_TRACE(testing::Message() << "H=" << H << " W=" << W << " C=" << C << " B=" << B << " backend=" << Backend::name);
  const auto seed = std::uint64_t(100 * H + W);
  auto t = random_tensor<T>({2 * H - 1, 2 * W - 1, C}, seed);
  auto x = random_tensor<T>({B, H, W, C}, seed + 1);
  auto g = random_tensor<T>({B, H, W, C}, seed + 2);
  const Direct<T> want = direct(t, x, g);

  Toeplitz2dOp<T, Backend> op;
  op.prepare(t, H, W, ToeplitzMethod::FFT);
  ASSERT_TRUE(op.uses_fft());
  EXPECT_GE(op.grid_rows(), 2 * H - 1);
  EXPECT_GE(op.grid_cols(), 2 * W - 1);
  expect_matches_direct(op, x, g, want, tol);
}

// X[k0, k1] = sum_{r, c} x[r, c] e^{-2 pi i (k0 r / n0 + k1 c / n1)}, the first n1/2+1 columns.
std::vector<std::complex<double>> naive_rfft2(const std::vector<double>& x, Index n0, Index n1) {
  const Index h = n1 / 2 + 1;
  std::vector<std::complex<double>> out(static_cast<std::size_t>(n0 * h));
  const double pi = std::acos(-1.0);
  for (Index k0 = 0; k0 < n0; ++k0)
    for (Index k1 = 0; k1 < h; ++k1) {
      std::complex<double> s = 0;
      for (Index r = 0; r < n0; ++r)
        for (Index c = 0; c < n1; ++c) {
          const double a = -2 * pi * (double(k0 * r) / double(n0) + double(k1 * c) / double(n1));
          s += x[std::size_t(r * n1 + c)] * std::complex<double>(std::cos(a), std::sin(a));
        }
      out[std::size_t(k0 * h + k1)] = s;
    }
  return out;
}

template <class Backend>
void check_plan2d(Index n0, Index n1) {
  SCOPED_TRACE(testing::Message() << n0 << " x " << n1 << " backend=" << Backend::name);
  Rng rng(std::uint64_t(n0 * 31 + n1));
  AlignedVector<double> x(static_cast<std::size_t>(n0 * n1)), back(x.size());
  for (auto& v : x) v = rng.normal(0.0, 1.0);
  const Index bins = n0 * (n1 / 2 + 1);
  AlignedVector<std::complex<double>> X(static_cast<std::size_t>(bins));
  typename Backend::template Plan2d<double> plan(n0, n1);
  plan.r2c(x.data(), X.data());
  const auto ref = naive_rfft2(std::vector<double>(x.begin(), x.end()), n0, n1);
  double err = 0, scale = 0;
  for (Index k = 0; k < bins; ++k) {
    err = std::max(err, std::abs(X[std::size_t(k)] - ref[std::size_t(k)]));
    scale = std::max(scale, std::abs(ref[std::size_t(k)]));
  }
  EXPECT_LT(err / scale, 1e-12);
  plan.c2r(X.data(), back.data());  // unscaled: n0 * n1 * x
  double rt = 0;
  for (std::size_t i = 0; i < x.size(); ++i) rt = std::max(rt, std::abs(back[i] / double(n0 * n1) - x[i]));
  EXPECT_LT(rt, 1e-12);
}

}  // namespace

TEST(Fft2d, RealTransformMatchesNaiveDftAndInverts) {
  for (auto [n0, n1] : std::vector<std::pair<Index, Index>>{{1, 2}, {2, 2}, {4, 6}, {6, 4}, {5, 8}, {8, 10}, {3, 7}}) {
#ifndef TNN_NO_FFTW
    check_plan2d<FftwBackend>(n0, n1);
#endif
    check_plan2d<EigenBackend>(n0, n1);
  }
}

TEST(Toeplitz2d, FftMatchesDirectDouble) {
  for (const auto& gr : kGrids) {
    check_fft_matches_direct<DefaultFftBackend, double>(gr.h, gr.w, 3, 2, 1e-10);
    check_fft_matches_direct<DefaultFftBackend, double>(gr.h, gr.w, 37, 1, 1e-10);  // blocks of 16 + a partial one
  }
}

TEST(Toeplitz2d, EigenBackendMatchesDirect) {
  for (const auto& gr : kGrids) {
    check_fft_matches_direct<EigenBackend, double>(gr.h, gr.w, 19, 2, 1e-10);
    check_fft_matches_direct<EigenBackend, float>(gr.h, gr.w, 5, 1, 2e-4);
  }
}

TEST(Toeplitz2d, FftMatchesDirectFloat) {
  for (const auto& gr : kGrids) check_fft_matches_direct<DefaultFftBackend, float>(gr.h, gr.w, 17, 2, 2e-4);
  check_fft_matches_direct<DefaultFftBackend, float>(32, 32, 16, 1, 2e-4);
}

// The direct form against the dense (HW x HW) block-Toeplitz matrix, built entry by entry.
TEST(Toeplitz2d, DirectMatchesDenseMatrix) {
  const Index H = 3, W = 4, C = 2, B = 2, P = H * W;
  auto t = random_tensor<double>({2 * H - 1, 2 * W - 1, C}, 7);
  auto x = random_tensor<double>({B, H, W, C}, 8);
  Tensor<double> y;
  toeplitz2d_forward_direct(t, x, y);
  for (Index c = 0; c < C; ++c)
    for (Index b = 0; b < B; ++b)
      for (Index p = 0; p < P; ++p) {
        double s = 0;
        for (Index q = 0; q < P; ++q) {
          const Index di = p / W - q / W, dj = p % W - q % W;
          s += t[((di + H - 1) * (2 * W - 1) + dj + W - 1) * C + c] * x[(b * P + q) * C + c];
        }
        EXPECT_NEAR(y[(b * P + p) * C + c], s, 1e-12);
      }
}

// With one row (or one column) the 2-D product is the 1-D non-causal one.
TEST(Toeplitz2d, SingleRowOrColumnEqualsTheOneDimensionalOp) {
  for (Index n : {1, 5, 8, 70}) {
    const Index C = 6, B = 2;
    auto t1 = random_tensor<double>({2 * n - 1, C}, 11 + std::uint64_t(n));
    auto x1 = random_tensor<double>({B, n, C}, 12 + std::uint64_t(n));
    auto g1 = random_tensor<double>({B, n, C}, 13 + std::uint64_t(n));
    ToeplitzOp<double> op1;
    op1.prepare(t1, n, /*causal=*/false, ToeplitzMethod::FFT);
    Tensor<double> y1, dx1, dt1;
    op1.forward(x1, y1);
    op1.backward(g1, &dx1, &dt1);
    for (bool row : {true, false}) {
      SCOPED_TRACE(testing::Message() << "n=" << n << (row ? " H=1" : " W=1"));
      const Index H = row ? 1 : n, W = row ? n : 1;
      // Same numbers, reshaped: [2n-1, C] -> [1, 2n-1, C] or [2n-1, 1, C].
      Tensor<double> t2({2 * H - 1, 2 * W - 1, C}), x2({B, H, W, C}), g2({B, H, W, C});
      std::copy(t1.begin(), t1.end(), t2.begin());
      std::copy(x1.begin(), x1.end(), x2.begin());
      std::copy(g1.begin(), g1.end(), g2.begin());
      for (auto method : {ToeplitzMethod::FFT, ToeplitzMethod::Direct}) {
        Toeplitz2dOp<double> op2;
        op2.prepare(t2, H, W, method);
        Tensor<double> y2, dx2, dt2;
        op2.forward(x2, y2);
        op2.backward(g2, &dx2, &dt2);
        ASSERT_EQ(y2.size(), y1.size());
        ASSERT_EQ(dt2.size(), dt1.size());
        for (Index i = 0; i < y1.size(); ++i) {
          EXPECT_NEAR(y2[i], y1[i], 1e-10 * (1 + std::abs(y1[i])));
          EXPECT_NEAR(dx2[i], dx1[i], 1e-10 * (1 + std::abs(dx1[i])));
        }
        for (Index i = 0; i < dt1.size(); ++i) EXPECT_NEAR(dt2[i], dt1[i], 1e-10 * (1 + std::abs(dt1[i])));
      }
    }
  }
}

// L = <T x, w>: dL/dx = T^T w and dL/dt by central differences, on both paths.
TEST(Toeplitz2d, GradientsMatchCentralDifferences) {
  for (auto method : {ToeplitzMethod::FFT, ToeplitzMethod::Direct})
    for (auto [grid_h, grid_w] : std::vector<std::pair<Index, Index>>{{3, 4}, {4, 4}, {1, 5}, {5, 2}}) {
      const Index H = grid_h, W = grid_w;  // plain copies: clang 14 cannot capture structured bindings
      SCOPED_TRACE(testing::Message() << "H=" << H << " W=" << W << " fft=" << (method == ToeplitzMethod::FFT));
      const Index C = 3, B = 2;
      auto t = gradcheck::random_tensor({2 * H - 1, 2 * W - 1, C}, 21);
      auto x = gradcheck::random_tensor({B, H, W, C}, 22);
      auto w = gradcheck::random_tensor({B, H, W, C}, 23);
      auto loss = [&] {
        Toeplitz2dOp<double> op;
        op.prepare(t, H, W, method);
        Tensor<double> y;
        op.forward(x, y, false);
        return gradcheck::dot(y, w);
      };
      Toeplitz2dOp<double> op;
      op.prepare(t, H, W, method);
      EXPECT_EQ(op.uses_fft(), method == ToeplitzMethod::FFT);
      Tensor<double> y, dx, dt;
      op.forward(x, y);
      op.backward(w, &dx, &dt);
      EXPECT_TRUE(gradcheck::ok(gradcheck::check_gradient("x", x, dx, loss), 1e-8));
      EXPECT_TRUE(gradcheck::ok(gradcheck::check_gradient("t", t, dt, loss), 1e-8));
    }
}

// One prepare serves many forwards and backwards, each as a freshly prepared op would give.
TEST(Toeplitz2d, PreparedSpectrumIsReusedAcrossCalls) {
  const Index H = 6, W = 5, C = 20;
  auto t = random_tensor<double>({2 * H - 1, 2 * W - 1, C}, 31);
  Toeplitz2dOp<double> op;
  op.prepare(t, H, W, ToeplitzMethod::FFT);
  for (std::uint64_t k = 0; k < 3; ++k) {
    const Index B = Index(k) + 1;
    auto x = random_tensor<double>({B, H, W, C}, 40 + k);
    auto g = random_tensor<double>({B, H, W, C}, 50 + k);
    const Direct<double> want = direct(t, x, g);
    expect_matches_direct(op, x, g, want, 1e-10);
    // dx alone needs no saved input; dt alone gives the same dt.
    Tensor<double> dx_only, dt_only;
    op.backward(g, &dx_only, nullptr);
    op.backward(g, nullptr, &dt_only);
    EXPECT_LT(rel_err(dx_only, want.dx), 1e-10);
    EXPECT_LT(rel_err(dt_only, want.dt), 1e-10);
  }
}

TEST(Toeplitz2d, AutoUsesDirectOnlyForSmallGrids) {
  Toeplitz2dOp<float> small, large;
  small.prepare(Tensor<float>({3, 3, 4}), 2, 2);
  EXPECT_FALSE(small.uses_fft());
  large.prepare(Tensor<float>({63, 63, 4}), 32, 32);
  EXPECT_TRUE(large.uses_fft());
  EXPECT_EQ(large.grid_rows(), 64);
  EXPECT_EQ(large.grid_cols(), 64);
}

TEST(Toeplitz2d, WrongShapesThrowWithWhatWasExpected) {
  Toeplitz2dOp<double> op;
  try {
    op.prepare(Tensor<double>({5, 5, 3}), 3, 4);
    FAIL() << "no exception";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[5, 7, C]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[5, 5, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(op.prepare(Tensor<double>({1, 1, 3}), 0, 1), ShapeError);
  op.prepare(Tensor<double>({5, 7, 3}), 3, 4, ToeplitzMethod::FFT);
  Tensor<double> y;
  try {
    op.forward(Tensor<double>({2, 4, 3, 3}), y);
    FAIL() << "no exception";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[B, 3, 4, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 4, 3, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(op.forward(Tensor<double>({2, 3, 4, 2}), y), ShapeError);
  EXPECT_THROW(op.backward(Tensor<double>({3, 4, 3}), &y, nullptr), ShapeError);
}

TEST(Toeplitz2d, BackwardWithoutSavedForwardIsAnError) {
  for (auto method : {ToeplitzMethod::FFT, ToeplitzMethod::Direct}) {
    Toeplitz2dOp<double> op;
    Tensor<double> dx, dt;
    EXPECT_THROW(op.backward(Tensor<double>({1, 3, 4, 2}), &dx, &dt), Error);  // not prepared
    op.prepare(Tensor<double>({5, 7, 2}), 3, 4, method);
    EXPECT_THROW(op.backward(Tensor<double>({1, 3, 4, 2}), &dx, &dt), Error);  // no forward
    Tensor<double> x({2, 3, 4, 2}), y;
    op.forward(x, y, /*save_for_backward=*/false);
    EXPECT_THROW(op.backward(Tensor<double>({2, 3, 4, 2}), &dx, &dt), Error);
    op.forward(x, y);
    EXPECT_THROW(op.backward(Tensor<double>({1, 3, 4, 2}), &dx, &dt), Error);  // other batch
    EXPECT_NO_THROW(op.backward(Tensor<double>({1, 3, 4, 2}), &dx, nullptr));  // dx needs no saved input
  }
}
