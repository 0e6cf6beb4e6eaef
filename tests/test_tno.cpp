// Toeplitz neural operator: the output against a naive O(N^2) loop over
// coefficients computed by hand (RPE one offset at a time, lambda^|k| by pow),
// central-difference gradients of v, theta and every RPE parameter, and the
// length independence that lets a model run at lengths it was not trained at.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "tnn/layers/tno.hpp"
#include "tnn/model/config.hpp"

using namespace tnn;

namespace {

using Params = std::vector<std::pair<std::string, Param<double>*>>;

Params params_of(Tno<double>& t) {
  Params v;
  t.visit("toep.", [&](const std::string& name, Param<double>& p) { v.emplace_back(name, &p); });
  return v;
}

const NormType kNorms[] = {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm};
const Activation kActs[] = {Activation::Relu, Activation::Silu, Activation::Gelu, Activation::None};
const TnoDecay kDecays[] = {TnoDecay::None, TnoDecay::Fixed, TnoDecay::Learned};
const char* name(TnoDecay d) { return d == TnoDecay::None ? "none" : d == TnoDecay::Fixed ? "fixed" : "learned"; }

// heads H, Dh = 2 for H = 3 and 3 for H = 1; RPE width 4.
Tno<double> make(Index heads, bool causal, TnoDecay decay, NormType norm = NormType::SimpleRMSNorm,
                 Activation act = Activation::Silu, Index rpe_layers = 1, double gamma = 0.9) {
  return Tno<double>(heads, heads == 1 ? 3 : 2, 4, rpe_layers, norm, act, causal, decay, gamma);
}

// Every trainable value drawn at random (norm parameters and theta included).
void randomize(Tno<double>& t, std::uint64_t seed) {
  Rng rng(seed);
  for (auto& [n, p] : params_of(t))
    if (p->trainable)
      for (auto& v : p->value) v = rng.normal(0.0, 0.7);
}

// t_k for k = -(N-1)..N-1 at index k + N-1, written without Tno: the RPE of each
// offset alone, lambda from the "gamma" tensor, lambda^|k| by std::pow.
std::vector<std::vector<double>> naive_coefficients(const Tno<double>& tno, Index n) {
  const Index E = tno.channels();
  std::vector<std::vector<double>> t(static_cast<std::size_t>(2 * n - 1), std::vector<double>(std::size_t(E), 0.0));
  for (Index k = -(n - 1); k < n; ++k) {
    if (tno.causal() && k < 0) continue;
    Tensor<double> pos({1, 1}), r;
    pos[0] = double(k);
    Rpe<double>::Cache c;
    tno.rpe.forward(pos, r, c);
    for (Index e = 0; e < E; ++e) {
      double lam = 1;
      if (tno.decay() == TnoDecay::Fixed) lam = tno.gamma.value[e];
      if (tno.decay() == TnoDecay::Learned) {
        const double g = tno.gamma_bound();
        lam = g + (1 - g) / (1 + std::exp(-tno.gamma.value[e]));
      }
      t[std::size_t(k + n - 1)][std::size_t(e)] = r[e] * std::pow(lam, double(std::abs(k)));
    }
  }
  return t;
}

Tensor<double> naive_tno(const Tno<double>& tno, const Tensor<double>& v) {
  const Index B = v.dim(0), N = v.dim(1), E = v.dim(2);
  const auto t = naive_coefficients(tno, N);
  Tensor<double> y({B, N, E});
  for (Index b = 0; b < B; ++b)
    for (Index i = 0; i < N; ++i)
      for (Index e = 0; e < E; ++e) {
        double s = 0;
        for (Index j = 0; j < N; ++j) s += t[std::size_t(i - j + N - 1)][std::size_t(e)] * v[(b * N + j) * E + e];
        y[(b * N + i) * E + e] = s;
      }
  return y;
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
    cfg.use_decay = d == TnoDecay::Fixed;
    cfg.use_multi_decay = d == TnoDecay::Learned;
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
  cfg.use_decay = cfg.use_multi_decay = true;
  EXPECT_THROW(make_tno<double>(cfg), ConfigError);
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
            EXPECT_LT(gradcheck::max_rel_diff(y, naive_tno(tno, v)), 1e-12);
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
      const auto ref = naive_coefficients(tno, n);
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

TEST(Tno, GradcheckEveryDecayNormActivationHeadsAndLength) {
  int combo = 0;
  for (bool causal : {true, false})
    for (Index heads : {1, 3})
      for (TnoDecay decay : kDecays)
        for (NormType norm : kNorms)
          for (Index n : {1, 2, 17, 300}) {
            const Activation act = kActs[combo % 4];
            const Index rpe_layers = (combo / 4) % 2 == 0 ? 0 : 2;
            ++combo;
            SCOPED_TRACE(testing::Message() << "causal=" << causal << " heads=" << heads << " decay=" << name(decay)
                                            << " norm=" << to_string(norm) << " act=" << to_string(act)
                                            << " rpe_layers=" << rpe_layers << " N=" << n);
            Tno<double> tno = make(heads, causal, decay, norm, act, rpe_layers);
            randomize(tno, 50 + std::uint64_t(combo));
            Tensor<double> v = gradcheck::random_tensor({2, n, tno.channels()}, 60 + std::uint64_t(combo));
            const Tensor<double> w = gradcheck::random_tensor(v.shape(), 70 + std::uint64_t(combo));
            Tno<double>::Cache c, c2;
            Tensor<double> y, y2, dv;
            tno.forward(v, y, c);
            tno.backward(v, w, c, &dv);
            auto loss = [&] {
              tno.forward(v, y2, c2);
              return gradcheck::dot(y2, w);
            };
            gradcheck::Options opt;
            if (n >= 17) opt.max_entries = n == 300 ? 12 : 30;
            const bool relu = act == Activation::Relu;
            EXPECT_TRUE(gradcheck::check_kinked("dv", v, dv, loss, opt, relu));
            for (auto& [nm, p] : params_of(tno)) {
              if (!p->trainable) {
                for (double g : p->grad) EXPECT_EQ(g, 0.0) << nm << " is frozen: no gradient";
                continue;
              }
              const Tensor<double> analytic = p->grad;
              EXPECT_TRUE(gradcheck::check_kinked(nm, p->value, analytic, loss, opt, relu));
            }
          }
}

TEST(Tno, GradcheckDirectAndFftPathsAtTheCrossover) {
  // Auto switches path at kToeplitzDirectMaxN: check both paths at one length.
  for (ToeplitzMethod m : {ToeplitzMethod::Direct, ToeplitzMethod::FFT})
    for (bool causal : {true, false}) {
      SCOPED_TRACE(testing::Message() << "method=" << int(m) << " causal=" << causal);
      Tno<double> tno = make(3, causal, TnoDecay::Learned, NormType::RMSNorm, Activation::Silu, 2);
      randomize(tno, 5);
      tno.method = m;
      Tensor<double> v = gradcheck::random_tensor({3, kToeplitzDirectMaxN, 6}, 6);
      const Tensor<double> w = gradcheck::random_tensor(v.shape(), 7);
      Tno<double>::Cache c, c2;
      Tensor<double> y, y2, dv;
      tno.forward(v, y, c);
      tno.backward(v, w, c, &dv);
      auto loss = [&] {
        tno.forward(v, y2, c2);
        return gradcheck::dot(y2, w);
      };
      gradcheck::Options opt;
      opt.max_entries = 40;
      EXPECT_TRUE(gradcheck::ok(gradcheck::check_gradient("dv", v, dv, loss, opt)));
      for (const auto& r : gradcheck::check_params(params_of(tno), loss, opt)) EXPECT_TRUE(gradcheck::ok(r));
    }
}

TEST(Tno, SameLayerRunsAtTwoLengthsWithTheSameCoefficients) {
  for (bool causal : {true, false}) {
    Tno<double> tno = make(3, causal, TnoDecay::Learned, NormType::LayerNorm, Activation::Relu, 2);
    randomize(tno, 12);
    Index count = 0;
    for (auto& [n, p] : params_of(tno)) count += p->value.size();
    const Tensor<double> a = tno.coefficients(5), b = tno.coefficients(40);
    // Offset k sits at row k (causal) or k + n-1: rows of the same k agree (up to
    // rounding: the RPE's GEMMs may take other kernels for another row count).
    for (Index k = causal ? 0 : -4; k < 5; ++k)
      for (Index e = 0; e < 6; ++e) {
        const Index ra = causal ? k : k + 4, rb = causal ? k : k + 39;
        EXPECT_NEAR(a[ra * 6 + e], b[rb * 6 + e], 1e-13 * (1 + std::abs(b[rb * 6 + e]))) << "k=" << k;
      }
    Tno<double>::Cache c;  // one cache reused across lengths, as a trainer would
    Tensor<double> y, dv;
    for (Index n : {5, 40, 5}) {
      const Tensor<double> v = gradcheck::random_tensor({1, n, 6}, 13 + std::uint64_t(n));
      tno.forward(v, y, c);
      EXPECT_LT(gradcheck::max_rel_diff(y, naive_tno(tno, v)), 1e-12) << "N=" << n;
      tno.backward(v, v, c, &dv);
      EXPECT_EQ(dv.shape(), v.shape());
    }
    Index after = 0;
    for (auto& [n, p] : params_of(tno)) after += p->value.size();
    EXPECT_EQ(after, count);
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

TEST(Tno, BackwardAccumulatesAndOverwritesDv) {
  Tno<double> tno = make(3, false, TnoDecay::Learned, NormType::RMSNorm, Activation::Gelu, 1);
  randomize(tno, 31);
  const Tensor<double> v = gradcheck::random_tensor({2, 40, 6}, 32);
  const Tensor<double> w = gradcheck::random_tensor(v.shape(), 33);
  Tno<double>::Cache c;
  Tensor<double> y, dv1, dv2;
  tno.forward(v, y, c);
  tno.backward(v, w, c, &dv1);
  std::vector<Tensor<double>> first;
  for (auto& [n, p] : params_of(tno)) first.push_back(p->grad);
  dv2 = gradcheck::random_tensor(v.shape(), 34);  // stale content must not leak in
  tno.backward(v, w, c, &dv2);
  EXPECT_LT(gradcheck::max_rel_diff(dv2, dv1), 1e-15);
  std::size_t k = 0;
  for (auto& [n, p] : params_of(tno)) {
    for (Index i = 0; i < p->grad.size(); ++i) EXPECT_NEAR(p->grad[i], 2 * first[k][i], 1e-12) << n;
    ++k;
  }
  tno.backward(v, w, c, nullptr);  // parameter grads only
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

TEST(Tno, FloatMatchesDouble) {
  for (Index n : {9, 100}) {
    Tno<double> td = make(3, false, TnoDecay::Learned, NormType::LayerNorm, Activation::Silu, 1);
    randomize(td, 41);
    Tno<float> tf(3, 2, 4, 1, NormType::LayerNorm, Activation::Silu, false, TnoDecay::Learned, 0.9);
    auto pd = params_of(td);
    std::size_t k = 0;
    tf.visit("toep.", [&](const std::string&, Param<float>& p) {
      for (Index i = 0; i < p.value.size(); ++i) p.value[i] = static_cast<float>(pd[k].second->value[i]);
      ++k;
    });
    const Tensor<double> vd = gradcheck::random_tensor({2, n, 6}, 42);
    Tensor<float> vf(vd.shape());
    for (Index i = 0; i < vd.size(); ++i) vf[i] = static_cast<float>(vd[i]);
    Tensor<double> yd;
    Tensor<float> yf;
    Tno<double>::Cache cd;
    Tno<float>::Cache cf;
    td.forward(vd, yd, cd);
    tf.forward(vf, yf, cf);
    double d = 0, s = 0;
    for (Index i = 0; i < yd.size(); ++i) {
      d = std::max(d, std::abs(double(yf[i]) - yd[i]));
      s = std::max(s, std::abs(yd[i]));
    }
    EXPECT_LT(d / s, 1e-4) << "N=" << n;
  }
}
