// Relative position encoder: checkpoint names, the offset row order, the forward
// against a per-offset MLP written out by hand (tests/reference.hpp), length
// independence, errors. Central-difference gradients, accumulation and float vs
// double for every norm, activation, depth and length: the op-check harness
// (test_ops.cpp, Rpe_*).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "reference.hpp"
#include "test_helpers.hpp"
#include "tnn/layers/rpe.hpp"
#include "tnn/model/config.hpp"

using namespace tnn;

namespace {

using Params = std::vector<std::pair<std::string, Param<double>*>>;

Params params_of(Rpe<double>& r) { return testing_helpers::params_of(r, "rpe."); }

// Every parameter drawn at random, norms included, so a mix-up between any two
// of them (or a norm parameter ignored) changes the output.
void randomize(Rpe<double>& r, std::uint64_t seed) {
  Rng rng(seed);
  for (auto& [name, p] : params_of(r))
    for (auto& v : p->value) v = rng.normal(0.0, 0.7);
}

const NormType kNorms[] = {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm};
const Activation kActs[] = {Activation::Relu, Activation::Silu, Activation::Gelu, Activation::None};

}  // namespace

TEST(Rpe, NamesAndShapesFollowTheCheckpointLayout) {
  TnnConfig cfg;
  cfg.dim = 4;
  cfg.heads = 2;
  cfg.expand_ratio = 1.5;  // E = 6
  cfg.rpe_dim = 5;
  cfg.rpe_layers = 2;
  cfg.norm_type = NormType::LayerNorm;
  Rpe<double> r = make_rpe<double>(cfg);
  const auto params = params_of(r);
  const std::vector<std::string> names = testing_helpers::names_of(params);
  const std::vector<Shape> shapes = testing_helpers::shapes_of(params);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "rpe.pos_proj.weight", "rpe.pos_proj.bias",                      //
                       "rpe.layers.0.0.weight", "rpe.layers.0.0.bias",                  //
                       "rpe.layers.0.2.weight", "rpe.layers.0.2.bias",                  //
                       "rpe.layers.1.0.weight", "rpe.layers.1.0.bias",                  //
                       "rpe.layers.1.2.weight", "rpe.layers.1.2.bias",                  //
                       "rpe.out.0.weight", "rpe.out.0.bias", "rpe.out.2.weight", "rpe.out.2.bias"}));
  EXPECT_EQ(shapes, (std::vector<Shape>{{5, 1}, {5}, {5}, {5}, {5, 5}, {5}, {5}, {5}, {5, 5}, {5}, {5}, {5}, {6, 5}, {6}}));

  // rmsnorm: one "scale" per norm; simplermsnorm and no hidden layers: linears only.
  Rpe<double> rms(RpeOptions{5, 1, NormType::RMSNorm, Activation::Relu}, 6);
  EXPECT_EQ(testing_helpers::names_of(params_of(rms)),
            (std::vector<std::string>{"rpe.pos_proj.weight", "rpe.pos_proj.bias", "rpe.layers.0.0.scale",
                                      "rpe.layers.0.2.weight", "rpe.layers.0.2.bias", "rpe.out.0.scale",
                                      "rpe.out.2.weight", "rpe.out.2.bias"}));
  Rpe<double> simple(RpeOptions{5, 0, NormType::SimpleRMSNorm, Activation::Relu}, 6);
  EXPECT_EQ(testing_helpers::names_of(params_of(simple)),
            (std::vector<std::string>{"rpe.pos_proj.weight", "rpe.pos_proj.bias", "rpe.out.2.weight", "rpe.out.2.bias"}));
}

TEST(Rpe, OffsetsFollowTheCoefficientRowOrder) {
  Tensor<double> pos;
  rpe_offsets(4, true, pos);
  EXPECT_EQ(pos.shape(), (Shape{4, 1}));
  EXPECT_EQ(std::vector<double>(pos.begin(), pos.end()), (std::vector<double>{0, 1, 2, 3}));
  rpe_offsets(4, false, pos);
  EXPECT_EQ(pos.shape(), (Shape{7, 1}));
  EXPECT_EQ(std::vector<double>(pos.begin(), pos.end()), (std::vector<double>{-3, -2, -1, 0, 1, 2, 3}));
  rpe_offsets(1, false, pos);
  EXPECT_EQ(std::vector<double>(pos.begin(), pos.end()), (std::vector<double>{0}));
  EXPECT_THROW(rpe_offsets(0, true, pos), ShapeError);
}

TEST(Rpe, ForwardMatchesHandWrittenMlpPerOffset) {
  for (NormType norm : kNorms)
    for (Activation act : kActs)
      for (Index hidden : {0, 2})
        for (bool causal : {true, false}) {
          SCOPED_TRACE(testing::Message() << to_string(norm) << " " << to_string(act) << " hidden=" << hidden
                                          << " causal=" << causal);
          Rpe<double> r(RpeOptions{4, hidden, norm, act}, 6);
          randomize(r, 11 + std::uint64_t(hidden));
          const Index n = 9;
          Tensor<double> y;
          Rpe<double>::Cache c;
          r.forward(n, causal, y, c);
          ASSERT_EQ(y.shape(), (Shape{toeplitz_num_coeffs(n, causal), 6}));
          for (Index row = 0; row < y.dim(0); ++row) {
            const double k = causal ? double(row) : double(row - (n - 1));
            const std::vector<double> ref = reference::rpe(r, k);
            for (Index e = 0; e < 6; ++e) EXPECT_NEAR(y[row * 6 + e], ref[std::size_t(e)], 1e-12) << "k=" << k;
          }
        }
}

TEST(Rpe, ArbitraryOffsetsGiveTheSameRowsAsTheSequenceForm) {
  Rpe<double> r(RpeOptions{4, 1, NormType::SimpleRMSNorm, Activation::Silu}, 3);
  randomize(r, 3);
  Tensor<double> all, some;
  Rpe<double>::Cache c;
  r.forward(6, false, all, c);  // k = -5..5
  Tensor<double> pos({2, 1});
  pos[0] = 4;
  pos[1] = -2;
  r.forward(pos, some, c);
  for (Index e = 0; e < 3; ++e) {
    EXPECT_NEAR(some[0 * 3 + e], all[(4 + 5) * 3 + e], 1e-13);
    EXPECT_NEAR(some[1 * 3 + e], all[(-2 + 5) * 3 + e], 1e-13);
  }
  EXPECT_THROW(r.forward(Tensor<double>({2, 2}), some, c), ShapeError);
}

TEST(Rpe, ParameterCountDoesNotDependOnLength) {
  Rpe<double> r(RpeOptions{4, 2, NormType::LayerNorm, Activation::Relu}, 6);
  randomize(r, 9);
  const Index before = testing_helpers::value_count(params_of(r));
  Tensor<double> a, b;
  Rpe<double>::Cache c;
  r.forward(3, true, a, c);
  r.forward(50, true, b, c);
  EXPECT_EQ(testing_helpers::value_count(params_of(r)), before);
  for (Index i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-13 * (1 + std::abs(b[i])));  // rows k = 0..2
}

TEST(Rpe, Errors) {
  Rpe<double> r(RpeOptions{3, 1, NormType::SimpleRMSNorm, Activation::Relu}, 2);
  Rpe<double>::Cache c;
  EXPECT_THROW(r.backward(Tensor<double>({2, 2}), c), Error);  // no forward yet
  Tensor<double> y;
  r.forward(2, true, y, c);
  EXPECT_THROW(r.backward(Tensor<double>({3, 2}), c), ShapeError);
  EXPECT_THROW(r.backward(Tensor<double>({2, 3}), c), ShapeError);
  EXPECT_THROW(Rpe<double>(RpeOptions{3, -1, NormType::SimpleRMSNorm, Activation::Relu}, 2), ConfigError);
}
