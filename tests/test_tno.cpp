// Toeplitz neural operator: the output against a naive O(N^2) loop over
// coefficients computed by hand (tests/reference.hpp: RPE one offset at a time,
// lambda^|k| by pow) on every Toeplitz method, the coefficients' row order, fixed
// decay, and the length independence that lets a model run at lengths it was not
// trained at. Central-difference gradients of v, theta and every RPE parameter,
// accumulation and float vs double: the op-check harness (test_ops.cpp, Tno_*).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "reference.hpp"
#include "test_helpers.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/model/config.hpp"

using namespace tnn;

namespace {

using Params = std::vector<std::pair<std::string, Param<double>*>>;

Params params_of(Tno<double>& t) { return testing_helpers::params_of(t, "toep."); }

const TnoDecay kDecays[] = {TnoDecay::None, TnoDecay::Fixed, TnoDecay::Learned};
const char* name(TnoDecay d) { return d == TnoDecay::None ? "none" : d == TnoDecay::Fixed ? "fixed" : "learned"; }

// heads H, Dh = 2 for H = 3 and 3 for H = 1; RPE width 4.
Tno<double> make(Index heads, bool causal, TnoDecay decay, NormType norm = NormType::SimpleRMSNorm,
                 Activation act = Activation::Silu, Index rpe_layers = 1, double gamma = 0.9) {
  return Tno<double>(TnoOptions{heads, causal, decay, gamma, RpeOptions{4, rpe_layers, norm, act}}, heads == 1 ? 3 : 2);
}

// Every trainable value drawn at random (norm parameters and theta included).
void randomize(Tno<double>& t, std::uint64_t seed) {
  Rng rng(seed);
  for (auto& [n, p] : params_of(t))
    if (p->trainable)
      for (auto& v : p->value) v = rng.normal(0.0, 0.7);
}

}  // namespace

TEST(Tno, NamesShapesAndTrainableFlags) {
  TnnConfig cfg;
  cfg.dim = 4;
  cfg.heads = 2;
  cfg.expand_ratio = 1.5;  // E = 6, Dh = 3
  cfg.rpe_dim = 5;
  cfg.rpe_layers = 1;
  for (TnoDecay d : kDecays) {
    SCOPED_TRACE(name(d));
    cfg.decay = (d == TnoDecay::Learned) ? TnoDecay::Learned : (d == TnoDecay::Fixed) ? TnoDecay::Fixed : TnoDecay::None;
    cfg.gamma = 0.8;
    Tno<double> t = make_tno<double>(cfg);
    EXPECT_EQ(t.decay(), d);
    std::vector<std::string> names;
    for (auto& [n, p] : params_of(t)) names.push_back(n);
    std::vector<std::string> want = {"toep.rpe.pos_proj.weight", "toep.rpe.pos_proj.bias",
                                     "toep.rpe.layers.0.2.weight", "toep.rpe.layers.0.2.bias",
                                     "toep.rpe.out.2.weight", "toep.rpe.out.2.bias"};
    if (d != TnoDecay::None) want.insert(want.begin(), "toep.gamma");
    EXPECT_EQ(names, want);
    if (d != TnoDecay::None) {
      EXPECT_EQ(t.gamma.shape(), (Shape{2, 1, 3}));
      EXPECT_EQ(t.gamma.trainable, d == TnoDecay::Learned);
    }
    if (d == TnoDecay::Fixed) {
      for (double v : t.gamma.value) EXPECT_DOUBLE_EQ(v, 0.8);
    }
    EXPECT_EQ(t.rpe.out.linear.weight.shape(), (Shape{6, 5}));
  }
  EXPECT_THROW(TnnConfig::parse(R"({"vocab_size": 3, "dim": 4, "layers": 1, "use_decay": true, "use_multi_decay": true})"),
               ConfigError);
}

TEST(Tno, MatchesNaiveLoopOverHandComputedCoefficients) {
  for (bool causal : {true, false})
    for (Index heads : {1, 3})
      for (TnoDecay decay : kDecays)
        for (Index n : {1, 2, 17, 300})
          for (ToeplitzMethod m : {ToeplitzMethod::Direct, ToeplitzMethod::FFT, ToeplitzMethod::Auto}) {
            SCOPED_TRACE(testing::Message() << "causal=" << causal << " heads=" << heads << " decay=" << name(decay)
                                            << " N=" << n << " method=" << int(m));
            Tno<double> tno = make(heads, causal, decay, NormType::LayerNorm, Activation::Gelu, 2);
            randomize(tno, 3 + std::uint64_t(n));
            tno.method = m;
            const Tensor<double> v = gradcheck::random_tensor({2, n, tno.channels()}, 4 + std::uint64_t(n));
            Tensor<double> y;
            Tno<double>::Cache c;
            tno.forward(v, y, c);
            EXPECT_LT(gradcheck::max_rel_diff(y, reference::tno(tno, v)), 1e-12);
            EXPECT_EQ(c.op.uses_fft(), m == ToeplitzMethod::FFT || (m == ToeplitzMethod::Auto && n > kToeplitzDirectMaxN));
          }
}

TEST(Tno, CoefficientsAreRpeTimesDecayInTheToeplitzRowOrder) {
  for (bool causal : {true, false})
    for (TnoDecay decay : kDecays) {
      SCOPED_TRACE(testing::Message() << "causal=" << causal << " decay=" << name(decay));
      Tno<double> tno = make(3, causal, decay);
      randomize(tno, 8);
      const Index n = 6;
      const Tensor<double> t = tno.coefficients(n);
      ASSERT_EQ(t.shape(), (Shape{toeplitz_num_coeffs(n, causal), 6}));
      const auto ref = reference::tno_coefficients(tno, n);
      for (Index r = 0; r < t.dim(0); ++r) {
        const Index k = causal ? r : r - (n - 1);
        for (Index e = 0; e < 6; ++e) EXPECT_NEAR(t[r * 6 + e], ref[std::size_t(k + n - 1)][std::size_t(e)], 1e-13);
      }
    }
}

TEST(Tno, FixedDecayReadsTheStoredGammaAndUnderflowsToZero) {
  Tno<double> tno = make(1, true, TnoDecay::Fixed, NormType::SimpleRMSNorm, Activation::Silu, 1, 0.5);
  randomize(tno, 2);
  // A checkpoint may hold any lambda per channel: the stored values are what count.
  tno.gamma.value[0] = 0.25;
  tno.gamma.value[1] = 1.0;
  tno.gamma.value[2] = 0.0;
  const Index n = 1500;  // 0.25^1499 underflows to 0 in double
  const Tensor<double> t = tno.coefficients(n);
  Tno<double> plain = make(1, true, TnoDecay::None, NormType::SimpleRMSNorm, Activation::Silu, 1, 0.5);
  auto pp = params_of(plain);
  std::size_t i = 0;
  for (auto& [nm, p] : params_of(tno))
    if (nm != "toep.gamma") pp[i++].second->value = p->value;
  const Tensor<double> r = plain.coefficients(n);  // RPE alone
  for (Index k = 0; k < n; ++k) {
    ASSERT_TRUE(std::isfinite(t[k * 3 + 0]));
    const double ref = r[k * 3 + 0] * std::pow(0.25, double(k));
    EXPECT_NEAR(t[k * 3 + 0], ref, 1e-12 * std::abs(ref) + 1e-300);
    EXPECT_DOUBLE_EQ(t[k * 3 + 1], r[k * 3 + 1]);
    EXPECT_DOUBLE_EQ(t[k * 3 + 2], k == 0 ? r[2] : 0.0);  // 0^0 = 1
  }
  EXPECT_EQ(t[(n - 1) * 3], 0.0);
  tno.gamma.value[0] = -0.5;
  EXPECT_THROW(tno.coefficients(3), ValueError);
}

TEST(Tno, SameLayerRunsAtTwoLengthsWithTheSameCoefficients) {
  for (bool causal : {true, false}) {
    Tno<double> tno = make(3, causal, TnoDecay::Learned, NormType::LayerNorm, Activation::Relu, 2);
    randomize(tno, 12);
    const Index count = testing_helpers::value_count(params_of(tno));
    const Tensor<double> a = tno.coefficients(5), b = tno.coefficients(40);
    // Offset k sits at row k (causal) or k + n-1: rows of the same k agree (up to
    // rounding: the RPE's GEMMs may take other kernels for another row count).
    for (Index k = causal ? 0 : -4; k < 5; ++k)
      for (Index e = 0; e < 6; ++e) {
        const Index ra = causal ? k : k + 4, rb = causal ? k : k + 39;
        EXPECT_NEAR(a[ra * 6 + e], b[rb * 6 + e], 1e-13 * (1 + std::abs(b[rb * 6 + e]))) << "k=" << k;
      }
    // one cache reused across lengths, as a trainer would
    testing_helpers::expect_runs_at_lengths(
        tno, {5, 40, 5}, [](Index n) { return gradcheck::random_tensor({1, n, 6}, 13 + std::uint64_t(n)); },
        [&](Index n, const Tensor<double>& v, const Tensor<double>& y) {
          EXPECT_LT(gradcheck::max_rel_diff(y, reference::tno(tno, v)), 1e-12) << "N=" << n;
        });
    EXPECT_EQ(testing_helpers::value_count(params_of(tno)), count);  // coefficients() kept none either
  }
}

// The decay powers a cache keeps between calls follow the length, the direction and the
// rates: one workspace reused as a trainer reuses it gives the coefficients of a fresh one,
// bit for bit, after each change.
TEST(Tno, DecayPowersKeptInTheCacheFollowLengthAndRates) {
  for (bool causal : {true, false})
    for (TnoDecay decay : {TnoDecay::Fixed, TnoDecay::Learned}) {
      SCOPED_TRACE(testing::Message() << "causal=" << causal << " decay=" << name(decay));
      Tno<double> tno = make(3, causal, decay);
      randomize(tno, 21);
      Tno<double>::Cache ws;
      Tensor<double> t;
      auto expect_fresh = [&](Index n, const char* what) {
        tno.coefficients(n, t, ws);
        const Tensor<double> fresh = tno.coefficients(n);
        EXPECT_EQ(std::vector<double>(t.begin(), t.end()), std::vector<double>(fresh.begin(), fresh.end())) << what;
      };
      expect_fresh(7, "first call");
      expect_fresh(7, "same length again");
      expect_fresh(12, "longer");
      expect_fresh(5, "shorter");
      for (auto& v : tno.gamma.value) v = decay == TnoDecay::Learned ? v + 0.3 : 0.5 * v;  // new rates
      expect_fresh(5, "new rates");
    }
}

TEST(Tno, IncrementalDecodingWithCoefficientsOfTheLongestLengthIsExact) {
  // Spec section 11: y_t = sum_{j<=t} t_{t-j} v_j with t fetched once for the
  // longest length the decoder will reach, against the full forward of the prefix.
  Tno<double> tno = make(3, true, TnoDecay::Fixed, NormType::RMSNorm, Activation::Silu, 2);
  randomize(tno, 77);
  const Index max_len = 64, n = 45, E = 6;
  const Tensor<double> t = tno.coefficients(max_len);  // [max_len, E], row k = t_k
  const Tensor<double> v = gradcheck::random_tensor({1, n, E}, 78);
  Tensor<double> y;
  Tno<double>::Cache c;
  tno.forward(v, y, c);  // FFT path at this length
  for (Index step = 0; step < n; ++step)
    for (Index e = 0; e < E; ++e) {
      double s = 0;
      for (Index j = 0; j <= step; ++j) s += t[(step - j) * E + e] * v[j * E + e];
      EXPECT_NEAR(y[step * E + e], s, 1e-12 * (1 + std::abs(s))) << "t=" << step;
    }
}

TEST(Tno, Errors) {
  Tno<double> tno = make(3, true, TnoDecay::Fixed);
  Tno<double>::Cache c;
  Tensor<double> y, dv;
  EXPECT_THROW(tno.forward(Tensor<double>({2, 5, 5}), y, c), ShapeError);
  EXPECT_THROW(tno.forward(Tensor<double>({5, 6}), y, c), ShapeError);
  EXPECT_THROW(tno.forward(Tensor<double>({1, 0, 6}), y, c), ShapeError);
  const Tensor<double> v({2, 5, 6});
  EXPECT_THROW(tno.backward(v, v, c, &dv), Error);  // no forward yet
  tno.forward(v, y, c);
  EXPECT_THROW(tno.backward(v, Tensor<double>({2, 4, 6}), c, &dv), ShapeError);
  EXPECT_THROW(tno.backward(Tensor<double>({2, 7, 6}), Tensor<double>({2, 7, 6}), c, &dv), Error);
  EXPECT_THROW(tno.coefficients(0), ShapeError);
  EXPECT_THROW(make(0, true, TnoDecay::None), ConfigError);
  EXPECT_THROW(make(1, true, TnoDecay::Fixed, NormType::SimpleRMSNorm, Activation::Relu, 1, 1.5), ConfigError);
}
