// tnn/dist: data-parallel training. Run alone (one process, LocalCommunicator) or under
// `mpirun -np R` (MpiCommunicator; ctest runs R = 2 and 3). Every rank also trains a reference
// model on the whole global batch by itself, so each check compares R processes against one
// process in the same run: the double gradient within 1e-10, 30 float training steps within 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <tnn/dist/communicator.hpp>
#include <tnn/dist/data_parallel.hpp>
#include <tnn/dist/trainer_hooks.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/data.hpp>
#include <tnn/train/optimizer.hpp>
#include <tnn/train/trainer.hpp>
#ifdef TNN_USE_MPI
#include <tnn/dist/mpi.hpp>
#endif

namespace {

tnn::dist::Communicator* g_comm = nullptr;
tnn::dist::Communicator& comm() { return *g_comm; }

tnn::TnnConfig small_config(bool tie = false) {
  tnn::TnnConfig c =
      tnn::TnnConfig::parse(R"({"vocab_size": 256, "dim": 16, "layers": 2, "expand_ratio": 2, "rpe_dim": 8})");
  c.tie_embeddings = tie;
  return c;
}

// The small model for `obj`: a causal byte model, or a bidirectional one over bytes + the mask.
tnn::TnnConfig small_config(tnn::LmObjective obj) {
  tnn::TnnConfig c = small_config();
  if (obj == tnn::LmObjective::Mlm) {
    c.vocab_size = tnn::kMlmVocab;
    c.causal = false;
  }
  return c;
}

// The same pseudo-text on every rank.
tnn::ByteCorpus corpus() {
  std::vector<std::uint8_t> bytes(20000);
  std::uint64_t x = 12345;
  for (auto& b : bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<std::uint8_t>('a' + (x >> 59) % 20);
  }
  return tnn::ByteCorpus(std::move(bytes), "test corpus");
}

template <class T>
double max_abs(const tnn::Tensor<T>& t) {
  double m = 0;
  for (T v : t) m = std::max(m, std::abs(double(v)));
  return m;
}
template <class T>
double max_abs_diff(const tnn::Tensor<T>& a, const tnn::Tensor<T>& b) {
  double m = 0;
  for (tnn::Index i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

TEST(Dist, GlobalBatchNotDivisibleIsOneLineError) {
  try {
    tnn::dist::check_global_batch(8, 3);
    FAIL() << "expected a ValueError";
  } catch (const tnn::ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--batch 8"), std::string::npos) << m;
    EXPECT_NE(m.find("multiple of the number of processes (3)"), std::string::npos) << m;
    EXPECT_NE(m.find("--batch 9"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  EXPECT_NO_THROW(tnn::dist::check_global_batch(9, 3));
  EXPECT_THROW(tnn::dist::check_global_batch(2, 3), tnn::ValueError);
}

TEST(Dist, ShardsConcatenateToTheGlobalBatch) {
  const tnn::ByteCorpus data = corpus();
  tnn::BatchSampler sampler(data, 6, 10, tnn::LmObjective::Clm, 3);
  tnn::Batch global, local;
  sampler.sample(4, global);
  for (int ranks : {1, 2, 3, 6}) {
    std::vector<std::int32_t> tokens, targets;
    for (int r = 0; r < ranks; ++r) {
      tnn::dist::shard_batch(global, r, ranks, local);
      ASSERT_EQ(local.tokens.dim(0), 6 / ranks);
      tokens.insert(tokens.end(), local.tokens.begin(), local.tokens.end());
      targets.insert(targets.end(), local.targets.begin(), local.targets.end());
    }
    EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), global.tokens.begin(), global.tokens.end())) << ranks;
    EXPECT_TRUE(std::equal(targets.begin(), targets.end(), global.targets.begin(), global.targets.end())) << ranks;
  }
}

TEST(Dist, BucketsHoldEveryTrainableParameterOnce) {
  for (bool tie : {false, true}) {
    tnn::TnnLM<float> model(small_config(tie));
    const auto buckets = tnn::dist::gradient_buckets(model);
    ASSERT_EQ(buckets.size(), model.backbone.layers.size() + 2);
    std::vector<const tnn::Param<float>*> seen;
    for (const auto& b : buckets) seen.insert(seen.end(), b.begin(), b.end());
    std::vector<const tnn::Param<float>*> trainable;
    model.visit([&](const std::string&, tnn::Param<float>& p) {
      if (p.trainable) trainable.push_back(&p);
    });
    std::sort(seen.begin(), seen.end());
    std::sort(trainable.begin(), trainable.end());
    EXPECT_EQ(seen, trainable) << "tie " << tie;
  }
}

TEST(Dist, BackwardHookRunsAfterEachGroupInOrder) {
  tnn::TnnLM<float> model(small_config());
  model.init_weights(1);
  const tnn::ByteCorpus data = corpus();
  tnn::Batch b;
  tnn::BatchSampler(data, 2, 8, tnn::LmObjective::Clm, 1).sample(0, b);
  // At each call: which buckets already hold a gradient (any non-zero entry).
  const auto buckets = tnn::dist::gradient_buckets(model);
  auto done = [&] {
    std::vector<bool> d;
    for (const auto& bucket : buckets) {
      bool any = false;
      for (const tnn::Param<float>* p : bucket)
        for (float g : p->grad) any = any || g != 0;
      d.push_back(any);
    }
    return d;
  };
  std::vector<tnn::Index> stages;
  std::vector<std::vector<bool>> filled;
  model.backward_hook = [&](tnn::Index s) {
    stages.push_back(s);
    filled.push_back(done());
  };
  model.zero_grad();
  model.forward(b.tokens, b.targets);
  model.backward();
  EXPECT_EQ(stages, (std::vector<tnn::Index>{2, 1, 0, -1}));
  ASSERT_EQ(filled.size(), 4u);  // buckets: head, layer 1, layer 0, embedding
  EXPECT_EQ(filled[0], (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(filled[1], (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(filled[2], (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(filled[3], (std::vector<bool>{true, true, true, true}));
}

TEST(Dist, ReducerSumsOverRanks) {
  tnn::Param<double> a, b;
  a.init({3});
  b.init({2, 2});
  const int R = comm().size(), r = comm().rank();
  for (double& g : a.grad) g = r + 1;
  for (tnn::Index i = 0; i < b.grad.size(); ++i) b.grad[i] = (r + 1) * (i + 1);
  tnn::dist::GradientReducer<double> red(comm(), {{&a}, {&b}});
  red.ready(1);
  red.finish();  // starts bucket 0 itself
  const double s = R * (R + 1) / 2.0;
  for (double g : a.grad) EXPECT_EQ(g, s);
  for (tnn::Index i = 0; i < b.grad.size(); ++i) EXPECT_EQ(b.grad[i], s * (i + 1));
  EXPECT_THROW(
      {
        red.ready(0);
        red.ready(0);
      },
      tnn::Error);
  red.finish();
}

TEST(Dist, AgreementCheckSeesADifferenceOnAnyRank) {
  EXPECT_NO_THROW(comm().require_agreement("same everywhere", "settings"));
  const std::string mine = comm().rank() == comm().size() - 1 ? "different" : "same";
  if (comm().size() > 1)
    EXPECT_THROW(comm().require_agreement(mine, "settings"), tnn::dist::AgreementError);
  else
    EXPECT_NO_THROW(comm().require_agreement(mine, "settings"));
}

TEST(Dist, BroadcastGivesEveryRankTheRootsParameters) {
  tnn::TnnLM<float> model(small_config());
  model.init_weights(100 + comm().rank());  // different on every rank
  auto params = model.named_parameters();
  tnn::dist::broadcast_parameters<float>(comm(), params);
  tnn::TnnLM<float> root(small_config());
  root.init_weights(100);
  EXPECT_EQ(tnn::dist::parameter_checksum<float>(params),
            tnn::dist::parameter_checksum<float>(root.named_parameters()));
  EXPECT_NO_THROW(tnn::dist::check_parameters_agree<float>(comm(), params, 0));
}

// R processes' summed gradient of the global batch equals one process's, in double.
TEST(Dist, GradientEqualsOneProcessInDouble) {
  for (tnn::LmObjective obj : {tnn::LmObjective::Clm, tnn::LmObjective::Mlm}) {
    const tnn::TnnConfig cfg = small_config(obj);
    tnn::TnnLM<double> dist_model(cfg), ref(cfg);
    dist_model.init_weights(7);
    ref.init_weights(7);
    const tnn::ByteCorpus data = corpus();
    tnn::BatchSampler sampler(data, 6, 24, obj, 5);
    tnn::Batch global;
    sampler.sample(0, global);

    tnn::dist::DataParallelLM<double> dp(comm(), dist_model);
    dist_model.zero_grad();
    const double loss = dp.forward_backward(global);
    ref.zero_grad();
    const double ref_loss = ref.forward(global.tokens, global.targets);
    ref.backward();

    EXPECT_NEAR(loss, ref_loss, 1e-10 * std::abs(ref_loss));
    auto a = dist_model.named_parameters(), b = ref.named_parameters();
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!a[i].second->trainable) continue;
      const double scale = std::max(max_abs(b[i].second->grad), 1e-30);
      EXPECT_LE(max_abs_diff(a[i].second->grad, b[i].second->grad), 1e-10 * scale)
          << a[i].first << " objective " << int(obj) << " ranks " << comm().size();
    }
  }
}

// 30 steps of float AdamW with clipping: R processes against one process, same global batch.
TEST(Dist, FloatTrainingMatchesOneProcessFor30Steps) {
  const tnn::TnnConfig cfg = small_config();
  tnn::TnnLM<float> dist_model(cfg), ref(cfg);
  dist_model.init_weights(3);
  ref.init_weights(3);
  auto dparams = dist_model.named_parameters();
  auto rparams = ref.named_parameters();
  tnn::AdamW<float> dopt(dparams), ropt(rparams);
  const tnn::ByteCorpus data = corpus();
  tnn::BatchSampler sampler(data, 6, 32, tnn::LmObjective::Clm, 11);
  tnn::dist::DataParallelLM<float> dp(comm(), dist_model);
  tnn::Batch global;
  for (int step = 0; step < 30; ++step) {
    sampler.sample(step, global);
    dist_model.zero_grad();
    const float loss = dp.forward_backward(global);
    const double norm = tnn::clip_grad_norm(dparams, 0.5);
    dopt.step(3e-3);
    ref.zero_grad();
    const float ref_loss = ref.forward(global.tokens, global.targets);
    ref.backward();
    const double ref_norm = tnn::clip_grad_norm(rparams, 0.5);
    ropt.step(3e-3);
    EXPECT_NEAR(loss, ref_loss, 1e-4 * std::abs(ref_loss)) << "step " << step;
    EXPECT_NEAR(norm, ref_norm, 1e-4 * ref_norm) << "step " << step;
    if (step % 10 == 9) tnn::dist::check_parameters_agree<float>(comm(), dparams, step + 1);
  }
  for (std::size_t i = 0; i < dparams.size(); ++i) {
    const double scale = std::max(max_abs(rparams[i].second->value), 1e-30);
    EXPECT_LE(max_abs_diff(dparams[i].second->value, rparams[i].second->value), 1e-4 * scale) << dparams[i].first;
  }
  EXPECT_EQ(dp.reducer().steps(), comm().size() > 1 ? 30 : 0);
}

// The library's Trainer with DataParallelHooks and a sharded LmTask against a one-process
// Trainer: the same losses (rank 0 reports them), validation and final parameters.
TEST(Dist, TrainerWithDataParallelHooksMatchesOneProcess) {
  for (tnn::LmObjective obj : {tnn::LmObjective::Clm, tnn::LmObjective::Mlm}) {
    const tnn::TnnConfig cfg = small_config(obj);
    const tnn::ByteCorpus data = corpus();
    const tnn::ByteCorpus valid(std::vector<std::uint8_t>(data.bytes().begin(), data.bytes().begin() + 3000), "valid");
    tnn::TrainerConfig tc;
    tc.steps = 12;
    tc.eval_every = 6;
    tc.schedule = tnn::LrSchedule{tnn::ScheduleKind::Cosine, 3e-3, 1e-4, 2, tc.steps};

    struct Run {
      std::vector<double> losses, val;
      std::vector<float> params;
    };
    auto train = [&](bool parallel) {
      tnn::TnnLM<float> model(cfg);
      model.init_weights(5);
      tnn::LmTask<float> task(model, data, valid, 6, 16, obj, 9);
      tnn::dist::LocalCommunicator local;
      tnn::dist::Communicator& c = parallel ? comm() : local;
      if (parallel) task.set_shard(c.rank(), c.size());
      tnn::dist::DataParallelHooks<float> dp(c, model, /*check_every=*/4);
      Run run;
      tnn::TrainHooks<float> hooks;
      hooks.on_event = [&](const tnn::TrainEvent& e) {
        if (e.kind == tnn::TrainEvent::Kind::Step) run.losses.push_back(e.loss);
        if (e.kind == tnn::TrainEvent::Kind::Validation) run.val.push_back(e.eval.loss);
      };
      dp.install(hooks);
      tnn::Trainer<float> trainer(task, tc, hooks);
      const tnn::TrainResult r = trainer.run();
      EXPECT_EQ(r.step, tc.steps);
      model.visit([&](const std::string&, tnn::Param<float>& p) { run.params.insert(run.params.end(), p.value.begin(), p.value.end()); });
      return run;
    };
    const Run ref = train(false), dist = train(true);
    ASSERT_EQ(ref.losses.size(), std::size_t(tc.steps));
    if (comm().is_root()) {
      ASSERT_EQ(dist.losses.size(), ref.losses.size());
      for (std::size_t i = 0; i < ref.losses.size(); ++i)
        EXPECT_NEAR(dist.losses[i], ref.losses[i], 1e-4 * std::abs(ref.losses[i])) << "step " << i + 1;
      ASSERT_EQ(dist.val.size(), 2u);
      for (std::size_t i = 0; i < ref.val.size(); ++i) EXPECT_NEAR(dist.val[i], ref.val[i], 1e-4 * ref.val[i]);
    } else {
      EXPECT_TRUE(dist.losses.empty());  // only rank 0 reports
    }
    ASSERT_EQ(dist.params.size(), ref.params.size());
    double scale = 0, diff = 0;
    for (std::size_t i = 0; i < ref.params.size(); ++i) {
      scale = std::max(scale, std::abs(double(ref.params[i])));
      diff = std::max(diff, std::abs(double(dist.params[i]) - double(ref.params[i])));
    }
    EXPECT_LE(diff, 1e-4 * scale) << "objective " << int(obj);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<tnn::dist::Communicator> c;
#ifdef TNN_USE_MPI
  if (tnn::dist::MpiCommunicator::launched_by_mpirun()) c = std::make_unique<tnn::dist::MpiCommunicator>();
#endif
  if (!c) c = std::make_unique<tnn::dist::LocalCommunicator>();
  g_comm = c.get();
  if (c->rank() != 0) {  // one report for the job; a failure on any rank still fails the exit code
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  // Every rank's verdict decides the job's: a rank that failed quietly fails them all.
  std::int64_t failed = rc != 0;
  c->allreduce_sum(&failed, 1);
  if (c->rank() == 0 && failed > 0 && rc == 0)
    std::fprintf(stderr, "test_dist: %lld other rank(s) failed\n", static_cast<long long>(failed));
  return failed > 0 ? 1 : 0;
}
