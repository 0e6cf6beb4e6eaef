// Dropout (layers/dropout.hpp): masks a pure function of (seed, step, site, row, position), the
// models' training mode, and the trainer's step putting the model in it for that step only.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "test_helpers.hpp"
#include "tiny_configs.hpp"
#include "tnn/layers/dropout.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/trainer.hpp"

using namespace tnn;

namespace {

Tensor<float> mask_of(const DropoutContext& d, std::uint64_t site, const Shape& shape) {
  Tensor<float> m;
  dropout_mask(d, site, shape, m);
  return m;
}

std::vector<float> values(const Tensor<float>& t) { return std::vector<float>(t.begin(), t.end()); }

TnnConfig dropout_config(double p) {
  TnnConfig c = testing_helpers::tiny_lm_config();
  c.layers = 2;
  c.dropout = p;
  c.validate();
  return c;
}

}  // namespace

TEST(Dropout, MasksArePureFunctionsOfSeedStepSiteRowAndPosition) {
  const DropoutContext d{0.4, 7, 3, 0};
  const Shape s{3, 5, 16};
  EXPECT_EQ(values(mask_of(d, 2, s)), values(mask_of(d, 2, s)));
  DropoutContext other_step = d, other_seed = d;
  other_step.step = 4;
  other_seed.seed = 8;
  EXPECT_NE(values(mask_of(d, 2, s)), values(mask_of(other_step, 2, s)));
  EXPECT_NE(values(mask_of(d, 2, s)), values(mask_of(other_seed, 2, s)));
  EXPECT_NE(values(mask_of(d, 2, s)), values(mask_of(d, 3, s)));
  // A longer sequence keeps the masks of the positions both have: rows and positions own streams.
  const Tensor<float> a = mask_of(d, 1, {2, 4, 16}), b = mask_of(d, 1, {2, 7, 16});
  for (Index r = 0; r < 2; ++r)
    for (Index i = 0; i < 4 * 16; ++i) EXPECT_EQ(a[r * 4 * 16 + i], b[r * 7 * 16 + i]);
}

TEST(Dropout, DropsAboutPAndScalesTheRestByOneOverOneMinusP) {
  for (double p : {0.1, 0.5}) {
    const Tensor<double> m = [&] {
      Tensor<double> t;
      dropout_mask(DropoutContext{p, 1, 0, 0}, 0, {8, 64, 64}, t);
      return t;
    }();
    Index zeros = 0;
    for (double v : m) {
      if (v == 0) ++zeros;
      else EXPECT_EQ(v, 1.0 / (1.0 - p));
    }
    EXPECT_NEAR(double(zeros) / double(m.size()), p, 0.01) << "p = " << p;
  }
  Tensor<double> none;
  dropout_mask(DropoutContext{0.0, 1, 0, 0}, 0, {2, 3, 4}, none);
  for (double v : none) EXPECT_EQ(v, 1.0);
  EXPECT_THROW(dropout_mask(DropoutContext{1.0, 1, 0, 0}, 0, {2, 3, 4}, none), ValueError);
}

// A data-parallel shard (rows [first_row, first_row + B)) draws the rows of the global batch's mask.
TEST(Dropout, AShardDrawsItsRowsOfTheGlobalBatch) {
  const Tensor<float> global = mask_of(DropoutContext{0.3, 5, 9, 0}, 4, {4, 6, 8});
  const Tensor<float> second = mask_of(DropoutContext{0.3, 5, 9, 2}, 4, {2, 6, 8});
  for (Index i = 0; i < second.size(); ++i) EXPECT_EQ(second[i], global[2 * 6 * 8 + i]);
}

// Evaluation is the default and is unchanged by a config's dropout; training mode applies it,
// the same way for the same step, until set_evaluation().
TEST(Dropout, OnlyATrainingStepDropsAndEachStepTheSameWay) {
  const TnnConfig c = dropout_config(0.3);
  TnnConfig no = c;
  no.dropout = 0;
  TnnLM<double> m(c), plain(no);
  m.init_weights(4);
  plain.init_weights(4);
  Tensor<std::int32_t> tokens, targets;
  testing_helpers::lm_batch(c, 2, 9, 6, tokens, targets);
  const double eval = m.forward(tokens, targets);
  EXPECT_FALSE(m.training());
  EXPECT_EQ(eval, plain.forward(tokens, targets));  // dropout is a training setting only
  m.set_training(11, 2);
  EXPECT_TRUE(m.training());
  const double step2 = m.forward(tokens, targets);
  EXPECT_NE(step2, eval);
  EXPECT_EQ(m.forward(tokens, targets), step2);
  m.set_training(11, 3);
  EXPECT_NE(m.forward(tokens, targets), step2);
  m.set_evaluation();
  EXPECT_EQ(m.forward(tokens, targets), eval);
  plain.set_training(11, 2);  // no dropout: training mode changes nothing
  EXPECT_FALSE(plain.training());
  EXPECT_EQ(plain.forward(tokens, targets), eval);
}

// The trainer's step (SupervisedTask) computes the step's dropout from (seed, step) and leaves
// the model in evaluation mode, for validation and saving.
TEST(Dropout, ATrainingStepUsesItsSeedAndStepAndEndsInEvaluation) {
  const TnnConfig c = dropout_config(0.25);
  std::vector<std::uint8_t> bytes(500);
  Rng rng(2);
  for (auto& b : bytes) b = static_cast<std::uint8_t>('a' + rng.below(5));
  const ByteCorpus train(std::move(bytes), "train"), valid(std::vector<std::uint8_t>{}, "valid");
  TnnConfig bc = c;
  bc.vocab_size = kByteVocab;
  TnnLM<double> model(bc);
  model.init_weights(1);
  LmTask<double> task(model, train, valid, 2, 8, LmObjective::Clm, /*seed=*/21);
  const StepStats s5 = task.forward_backward(5);
  EXPECT_FALSE(model.training());
  EXPECT_EQ(task.forward_backward(5).loss, s5.loss);  // the same masks again
  // The same batch in evaluation mode gives another loss: the step did drop.
  BatchSampler sampler(train, 2, 8, LmObjective::Clm, 21);
  Batch b;
  sampler.sample(5, b);
  EXPECT_NE(model.forward(b.tokens, b.targets), s5.loss);
  model.set_training(21, 5);
  EXPECT_EQ(model.forward(b.tokens, b.targets), s5.loss);
}

// Recomputation (Backbone::set_recompute) runs each layer's forward again in backward: with
// dropout it draws the same masks, so the gradients stay bit-identical.
TEST(Dropout, RecomputationDrawsTheSameMasks) {
  const TnnConfig c = dropout_config(0.3);
  Tensor<std::int32_t> tokens, targets;
  testing_helpers::lm_batch(c, 2, 7, 5, tokens, targets);
  testing_helpers::expect_recompute_bit_identical(
      [&] {
        TnnLM<float> m(c);
        m.init_weights(3);
        m.set_training(2, 8);
        return m;
      },
      [&](TnnLM<float>& m) { return m.forward(tokens, targets); });
}
