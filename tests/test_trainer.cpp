// tnn::Trainer (train/trainer.hpp): resume is bit-identical, non-finite steps are skipped and
// counted, every hook runs where its contract says, files are written only when asked.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "temp_files.hpp"
#include "tnn/train/trainer.hpp"

using tnn::Index;

namespace {

tnn::ByteCorpus corpus(Index size, std::uint64_t seed, const std::string& name) {
  tnn::Rng rng(seed);
  std::vector<std::uint8_t> b(static_cast<std::size_t>(size));
  // Text-like: a small alphabet, so a few steps visibly lower the loss.
  for (auto& c : b) c = static_cast<std::uint8_t>('a' + rng.below(6));
  return tnn::ByteCorpus(std::move(b), name);
}

tnn::TnnConfig small_config(double dropout = 0) {
  tnn::TnnConfig c;
  c.vocab_size = tnn::kByteVocab;
  c.dim = 8;
  c.layers = 1;
  c.expand_ratio = 2;
  c.rpe_dim = 4;
  c.dropout = dropout;
  c.validate();
  return c;
}

// A model, its data and a task, built the same way every time (a "process" of the run).
template <class T>
struct LmRun {
  explicit LmRun(double dropout = 0) : model(small_config(dropout)) { model.init_weights(3); }
  tnn::TnnLM<T> model;
  tnn::ByteCorpus train = corpus(3000, 1, "train");
  tnn::ByteCorpus valid = corpus(400, 2, "valid");
  tnn::LmTask<T> task{model, train, valid, /*batch=*/2, /*seq_len=*/16, tnn::LmObjective::Clm, /*seed=*/5};
};

tnn::TrainerConfig config(const std::string& out, std::int64_t steps) {
  tnn::TrainerConfig c;
  c.steps = steps;
  c.schedule.kind = tnn::ScheduleKind::Cosine;
  c.schedule.peak_lr = 3e-3;
  c.schedule.min_lr = 1e-4;
  c.schedule.warmup_steps = 2;
  c.schedule.total_steps = steps;
  c.eval_every = 4;
  c.log_every = 2;
  c.out = out;
  c.log_path = out.empty() ? "" : out + ".csv";
  c.identity = {{"seed", 5}, {"steps", steps}};
  return c;
}

// `c` that saves and returns Stopped after step `stop` (0: runs to the end).
tnn::TrainerConfig stopping(tnn::TrainerConfig c, std::int64_t stop) {
  c.stop_after = stop;
  return c;
}

// A fresh process (a new LmRun) training with `c`; with `resume`, from the state saved at c.out.
tnn::TrainResult train_process(const tnn::TrainerConfig& c, bool resume = false, double dropout = 0) {
  LmRun<float> r(dropout);
  tnn::Trainer<float> t(r.task, c);
  if (resume) t.resume();
  return t.run();
}

// The message of the ResumeMismatch that resuming with `c` in a fresh process throws; none if it
// resumes.
std::optional<std::string> resume_mismatch(const tnn::TrainerConfig& c) {
  LmRun<float> r;
  tnn::Trainer<float> t(r.task, c);
  try {
    t.resume();
  } catch (const tnn::ResumeMismatch& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

template <class T>
std::vector<T> flat_params(tnn::TnnLM<T>& m) {
  std::vector<T> v;
  m.visit([&](const std::string&, tnn::Param<T>& p) { v.insert(v.end(), p.value.begin(), p.value.end()); });
  return v;
}

}  // namespace

TEST(Trainer, ResumeAfterStopIsBitIdenticalToAnUninterruptedRun) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string full = dir.file("full.safetensors"), part = dir.file("part.safetensors");
  LmRun<float> a;
  tnn::Trainer<float> ta(a.task, config(full, 12));
  EXPECT_EQ(ta.run().outcome, tnn::TrainResult::Outcome::Finished);

  {
    const tnn::TrainResult r = train_process(stopping(config(part, 12), 5));
    EXPECT_EQ(r.outcome, tnn::TrainResult::Outcome::Stopped);
    EXPECT_EQ(r.step, 5);
  }
  LmRun<float> c;  // a fresh process: new model, new optimizer, everything from the file
  tnn::Trainer<float> tc(c.task, config(part, 12));
  tc.resume();
  EXPECT_EQ(tc.step(), 5);
  EXPECT_EQ(tc.run().step, 12);

  EXPECT_EQ(flat_params(a.model), flat_params(c.model));
  EXPECT_EQ(tnn_test::read_bytes(full), tnn_test::read_bytes(part));
  EXPECT_EQ(tnn_test::read_bytes(tnn::optimizer_state_path(full)), tnn_test::read_bytes(tnn::optimizer_state_path(part)));
  // The resumed log continues the first one: the same lines but the timing column.
  auto lines = [](const std::string& path) {  // every column but tokens_per_s (the 6th)
    std::vector<std::string> out;
    std::ifstream f(path);
    for (std::string l; std::getline(f, l);) {
      std::size_t a = 0;
      for (int i = 0; i < 5; ++i) a = l.find(',', a) + 1;
      out.push_back(l.substr(0, a) + l.substr(l.find(',', a)));
    }
    return out;
  };
  EXPECT_EQ(lines(full + ".csv"), lines(part + ".csv"));
  EXPECT_EQ(lines(full + ".csv").size(), 1u + 6u + 3u);  // header, every 2nd step, validation at 4, 8, 12
  const std::vector<std::string> log = lines(full + ".csv");
  EXPECT_EQ(log[0], "step,kind,loss,grad_norm,lr,,bpb,accuracy");  // (the timing column cut)
  EXPECT_EQ(log[1].rfind("2,train,", 0), 0u) << log[1];
  EXPECT_EQ(log[3].rfind("4,valid,", 0), 0u) << log[3];  // validation rows are told apart by their kind
}

namespace {
// Identity without the length: what a program gives so that --steps may change on resume.
tnn::TrainerConfig extendable(const std::string& out, std::int64_t steps) {
  tnn::TrainerConfig c = config(out, steps);
  c.identity.erase("steps");
  return c;
}
// extendable(out, steps) logging every step, stopped after `stop` (0: not).
tnn::TrainerConfig extendable_logged(const std::string& out, std::int64_t steps, std::int64_t stop = 0) {
  tnn::TrainerConfig c = stopping(extendable(out, steps), stop);
  c.log_every = 1;
  return c;
}
std::vector<double> logged_lrs(const std::string& csv) {  // the lr of every training row, in order
  std::vector<double> out;
  std::ifstream f(csv);
  for (std::string l; std::getline(f, l);) {
    if (l.find(",train,") == std::string::npos) continue;
    std::size_t a = 0;
    for (int i = 0; i < 4; ++i) a = l.find(',', a) + 1;
    out.push_back(std::stod(l.substr(a)));
  }
  return out;
}
}  // namespace

TEST(Trainer, ResumeWithMoreStepsRestretchesTheScheduleFromWhereItWas) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string a_out = dir.file("a.safetensors"), b_out = dir.file("b.safetensors");
  train_process(extendable_logged(a_out, 12, 6));  // 12 steps planned, stopped after 6
  LmRun<float> r;
  tnn::TrainerConfig c = extendable_logged(a_out, 20);
  std::vector<tnn::TrainEvent> resumed;
  tnn::TrainHooks<float> hooks;
  hooks.on_event = [&](const tnn::TrainEvent& e) {
    if (e.kind == tnn::TrainEvent::Kind::Resumed) resumed.push_back(e);
  };
  tnn::Trainer<float> t(r.task, c, hooks);
  t.resume();
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].previous_steps, 12);
  // The next update's lr is the one the 12-step schedule had reached: no jump.
  tnn::LrSchedule planned = c.schedule;
  planned.total_steps = 12;
  EXPECT_DOUBLE_EQ(resumed[0].lr, planned.lr(6));
  EXPECT_EQ(t.run().step, 20);
  const std::vector<double> lr = logged_lrs(a_out + ".csv");
  ASSERT_EQ(lr.size(), 20u);
  EXPECT_DOUBLE_EQ(lr[6], planned.lr(6));                  // step 7, the first after the resume
  EXPECT_GT(lr[10], planned.lr(10));                        // decaying more slowly than planned
  EXPECT_NEAR(lr[19], c.schedule.min_lr, 1e-12);            // down to min_lr at the new end
  for (std::size_t i = 7; i < lr.size(); ++i) EXPECT_LE(lr[i], lr[i - 1]) << i;

  // Stopped again part-way through the extended run and resumed with the same length: the
  // re-stretched schedule was saved, so the result is the same as the run above, byte for byte.
  train_process(extendable_logged(b_out, 12, 6));
  train_process(extendable_logged(b_out, 20, 9), /*resume=*/true);
  train_process(extendable_logged(b_out, 20), /*resume=*/true);
  EXPECT_EQ(tnn_test::read_bytes(a_out), tnn_test::read_bytes(b_out));
  EXPECT_EQ(logged_lrs(a_out + ".csv"), logged_lrs(b_out + ".csv"));
}

TEST(Trainer, ResumeRefusesFewerStepsThanDoneAndReadsOlderStates) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string out = dir.file("m.safetensors");
  train_process(extendable(out, 6));
  const std::optional<std::string> fewer = resume_mismatch(extendable(out, 4));
  ASSERT_TRUE(fewer) << "expected ResumeMismatch";
  EXPECT_NE(fewer->find("steps: expected at least the 6 steps the saved run has done, got 4"), std::string::npos)
      << *fewer;
  // A state written before the length left the identity (identity.steps, no "steps" key) resumes
  // under an identity without it, the saved length read from there.
  tnn::TrainingStateJson old = tnn::parse_training_state(
      R"({"identity": {"seed": 5, "steps": 6}, "adamw_step": 6, "bad_steps": 0})", "test");
  EXPECT_EQ(old.steps, 0);
  EXPECT_EQ(old.restart_step, -1);
  LmRun<float> c;
  const std::string legacy = dir.file("legacy.safetensors");
  train_process(config(legacy, 6));  // identity {"seed", "steps"}: as the older program wrote it
  tnn::Trainer<float> tl(c.task, extendable(legacy, 8));
  EXPECT_NO_THROW(tl.resume());
  EXPECT_EQ(tl.run().step, 8);
}

// Dropout masks are a function of (seed, step): a resumed run draws the ones the uninterrupted
// run drew, and both differ from a run without dropout.
TEST(Trainer, ResumeWithDropoutIsBitIdentical) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string full = dir.file("full.safetensors"), part = dir.file("part.safetensors");
  LmRun<float> a(0.2);
  tnn::Trainer<float>(a.task, config(full, 8)).run();
  train_process(stopping(config(part, 8), 3), /*resume=*/false, /*dropout=*/0.2);
  LmRun<float> c(0.2);
  tnn::Trainer<float> tc(c.task, config(part, 8));
  tc.resume();
  tc.run();
  EXPECT_EQ(flat_params(a.model), flat_params(c.model));
  EXPECT_EQ(tnn_test::read_bytes(full), tnn_test::read_bytes(part));
  LmRun<float> plain;
  tnn::Trainer<float>(plain.task, config("", 8)).run();
  EXPECT_NE(flat_params(a.model), flat_params(plain.model));
}

TEST(Trainer, ResumeRefusesDifferentSettings) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string out = dir.file("m.safetensors");
  train_process(config(out, 3));
  tnn::TrainerConfig c = config(out, 3);
  c.identity["seed"] = 6;
  const std::optional<std::string> seed = resume_mismatch(c);
  ASSERT_TRUE(seed) << "expected ResumeMismatch";
  EXPECT_NE(seed->find("seed: saved 5, now 6"), std::string::npos) << *seed;  // names the key
}

TEST(Trainer, NonFiniteStepsAreSkippedAndCounted) {
  LmRun<float> r;
  tnn::TrainHooks<float> hooks;
  std::vector<tnn::TrainEvent> bad;
  hooks.on_event = [&](const tnn::TrainEvent& e) {
    if (e.kind == tnn::TrainEvent::Kind::BadStep) bad.push_back(e);
  };
  auto params = r.model.named_parameters();
  hooks.after_backward = [&](std::int64_t step, tnn::StepStats& st) {
    if (step == 2) st.loss = std::numeric_limits<double>::quiet_NaN();
    if (step == 4) params.back().second->grad[0] = std::numeric_limits<float>::infinity();
  };
  std::vector<std::vector<float>> before(7);
  tnn::Trainer<float> t(r.task, config("", 7), hooks);
  for (int s = 0; s < 7; ++s) {
    before[s] = flat_params(r.model);
    t.train_step();
    const bool skipped = s == 2 || s == 4;
    EXPECT_EQ(flat_params(r.model) == before[s], skipped) << "step " << s;
  }
  EXPECT_EQ(t.bad_steps(), 2);
  EXPECT_EQ(t.optimizer().step_count(), 5);  // the schedule advances only with real updates
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_EQ(bad[0].step, 3);  // 1-based, as progress counts
  EXPECT_TRUE(bad[0].bad_loss);
  EXPECT_EQ(bad[1].step, 5);
  EXPECT_FALSE(bad[1].bad_loss);
  EXPECT_EQ(bad[1].bad_steps, 2);
}

TEST(Trainer, TooManyBadStepsThrowTrainingDiverged) {
  LmRun<float> r;
  tnn::TrainHooks<float> hooks;
  hooks.after_backward = [](std::int64_t step, tnn::StepStats& st) {
    if (step >= 1) st.loss = std::numeric_limits<double>::infinity();
  };
  tnn::TrainerConfig c = config("", 10);
  c.max_bad_steps = 2;
  tnn::Trainer<float> t(r.task, c, hooks);
  try {
    t.run();
    FAIL() << "expected TrainingDiverged";
  } catch (const tnn::TrainingDiverged& e) {
    EXPECT_EQ(e.bad_steps, 3);
    EXPECT_EQ(e.max_bad_steps, 2);
    EXPECT_EQ(t.step(), 3);  // steps 2 and 3 skipped and counted; the third bad one (step 4) throws
  }
}

TEST(Trainer, HooksRunInTheirPlaceAndReduceGradientsControlsTheUpdate) {
  LmRun<float> r;
  tnn::TrainHooks<float> hooks;
  std::vector<std::string> calls;
  auto params = r.model.named_parameters();
  hooks.after_backward = [&](std::int64_t step, tnn::StepStats& st) {
    calls.push_back("after_backward " + std::to_string(step));
    EXPECT_GT(st.targets, 0);
    EXPECT_EQ(st.tokens, 2 * 16);
  };
  hooks.reduce_gradients = [&](tnn::StepStats&) {
    calls.push_back("reduce");
    double sum = 0;
    for (auto& [name, p] : params) {
      for (float& g : p->grad) sum += std::abs(g), g = 0;  // a reduction that cancels everything
    }
    EXPECT_GT(sum, 0);  // it sees the backward's gradients
  };
  hooks.after_step = [&](std::int64_t step) { calls.push_back("after_step " + std::to_string(step)); };
  int validations = 0;
  hooks.on_event = [&](const tnn::TrainEvent& e) {
    if (e.kind == tnn::TrainEvent::Kind::Validation) ++validations;
  };
  tnn::TrainerConfig c = config("", 4);
  c.adamw.weight_decay = 0;  // zero gradients then mean no change at all
  const std::vector<float> start = flat_params(r.model);
  tnn::Trainer<float> t(r.task, c, hooks);
  EXPECT_EQ(t.run().outcome, tnn::TrainResult::Outcome::Finished);
  EXPECT_EQ(flat_params(r.model), start);
  EXPECT_EQ(t.optimizer().step_count(), 4);
  const std::vector<std::string> want = {"after_backward 0", "reduce", "after_step 1", "after_backward 1", "reduce",
                                         "after_step 2",     "after_backward 2", "reduce", "after_step 3",
                                         "after_backward 3", "reduce", "after_step 4"};
  EXPECT_EQ(calls, want);
  EXPECT_EQ(validations, 1);  // eval_every 4 and the end coincide
}

TEST(Trainer, StopRequestSavesAndReturnsInterrupted) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string out = dir.file("m.safetensors");
  LmRun<float> r;
  tnn::TrainHooks<float> hooks;
  tnn::Trainer<float>* tp = nullptr;
  hooks.stop_requested = [&] { return tp->step() == 3 ? 15 : 0; };
  tnn::TrainerConfig c = config(out, 10);
  c.save_every = 0;  // only at the end, or when stopping
  tnn::Trainer<float> t(r.task, c, hooks);
  tp = &t;
  const tnn::TrainResult res = t.run();
  EXPECT_EQ(res.outcome, tnn::TrainResult::Outcome::Interrupted);
  EXPECT_EQ(res.signal, 15);
  EXPECT_EQ(res.step, 3);
  LmRun<float> again;
  tnn::Trainer<float> t2(again.task, config(out, 10));
  t2.resume();
  EXPECT_EQ(t2.step(), 3);
  EXPECT_EQ(flat_params(again.model), flat_params(r.model));
}

TEST(Trainer, WritesNoFilesWhenNotTheWriter) {
  tnn_test::TempDir dir("tnn_trainer_");
  LmRun<float> r;
  tnn::TrainHooks<float> hooks;
  hooks.writes_files = false;
  tnn::Trainer<float>(r.task, config(dir.file("m.safetensors"), 4), hooks).run();
  EXPECT_TRUE(dir.entries().empty());
}

TEST(Trainer, ValidationPartsReducedEqualTheWholeValidation) {
  LmRun<double> r;
  const tnn::EvalResult whole = tnn::EvalResult::from(r.task.validate(0, 1));
  tnn::TrainHooks<double> hooks;
  hooks.validation_part = 0;
  hooks.validation_parts = 2;
  hooks.reduce_validation = [&](tnn::EvalSums& s) { s += r.task.validate(1, 2); };  // "the other rank"
  tnn::Trainer<double> t(r.task, config("", 3), hooks);
  const tnn::EvalResult split = t.validate();
  EXPECT_EQ(split.tokens, whole.tokens);
  EXPECT_NEAR(split.loss, whole.loss, 1e-12);
  EXPECT_DOUBLE_EQ(split.accuracy, whole.accuracy);
  EXPECT_EQ(whole.tokens, 400 - 1);  // every byte of the validation text but the first
}

// Two shards of one global batch: each one's loss and gradient are its share of the global
// batch's mean (normalized by the global target count), so their sums are the gradient of the
// whole batch (what a data-parallel reduction adds up). With dropout too: a shard draws the
// masks of its rows of the global batch.
TEST(Trainer, ShardLossesAndGradientsSumToTheGlobalOnes) {
  auto grads = [](LmRun<double>& r) {
    std::vector<double> g;
    r.model.visit([&](const std::string&, tnn::Param<double>& p) { g.insert(g.end(), p.grad.begin(), p.grad.end()); });
    return g;
  };
  for (double dropout : {0.0, 0.3}) {
    SCOPED_TRACE(dropout);
    LmRun<double> whole(dropout), s0(dropout), s1(dropout);
    const tnn::StepStats w = whole.task.forward_backward(7);
    s0.task.set_shard(0, 2);
    s1.task.set_shard(1, 2);
    const tnn::StepStats a = s0.task.forward_backward(7), b = s1.task.forward_backward(7);
    EXPECT_EQ(a.targets + b.targets, w.targets);
    EXPECT_EQ(a.tokens, 16);
    EXPECT_NEAR(a.loss + b.loss, w.loss, 1e-12);
    const std::vector<double> gw = grads(whole), ga = grads(s0), gb = grads(s1);
    double worst = 0;
    for (std::size_t i = 0; i < gw.size(); ++i)
      worst = std::max(worst, std::abs(ga[i] + gb[i] - gw[i]));
    EXPECT_LT(worst, 1e-12);
    EXPECT_THROW(whole.task.set_shard(0, 3), tnn::ValueError);  // batch 2 does not split 3 ways
  }
}

TEST(Trainer, InvalidSettingsAreRefused) {
  LmRun<float> r;
  tnn::TrainerConfig c = config("", 0);
  EXPECT_THROW(tnn::Trainer<float>(r.task, c), tnn::ValueError);
  c = config("", 3);
  c.clip = 0;
  EXPECT_THROW(tnn::Trainer<float>(r.task, c), tnn::ValueError);
  tnn::TrainHooks<float> h;
  h.validation_part = 2;
  h.validation_parts = 2;
  EXPECT_THROW(tnn::Trainer<float>(r.task, config("", 3), h), tnn::ValueError);
  tnn::Trainer<float> t(r.task, config("", 3));
  EXPECT_THROW(t.resume(), tnn::ValueError);  // nothing to resume from without a path
}

namespace {
std::vector<std::string> file_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}
}  // namespace

// A run that fails before its first save leaves no file behind (so the same command is not then
// refused as "already exists"), and the log's lines reach the disk at the saves, with them.
TEST(Trainer, ARunThatFailsBeforeItsFirstSaveLeavesNothing) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string out = dir.file("m.safetensors");
  LmRun<float> r;
  tnn::TrainHooks<float> hooks;
  hooks.after_backward = [](std::int64_t step, tnn::StepStats&) {
    if (step == 2) throw tnn::ValueError("a failure at step 3");
  };
  tnn::TrainerConfig c = config(out, 8);
  c.log_every = 1;
  tnn::Trainer<float> t(r.task, c, hooks);
  EXPECT_THROW(t.run(), tnn::ValueError);
  // The locks on the model and the log are held until the trainer goes.
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"m.safetensors.csv.lock", "m.safetensors.lock"}));
}

// The first save failing part-way (here: the model file) removes what it wrote before (the log,
// the training state), and an existing run is never removed.
TEST(Trainer, AFailedFirstSaveRemovesWhatItCreated) {
  struct FailingSave : tnn::LmTask<float> {
    using tnn::LmTask<float>::LmTask;
    void save_model(const std::string&, std::int64_t) override { throw tnn::IoError("disk full"); }
  };
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string out = dir.file("m.safetensors");
  {
    LmRun<float> r;
    FailingSave task(r.model, r.train, r.valid, 2, 16, tnn::LmObjective::Clm, 5);
    tnn::Trainer<float> t(task, config(out, 4));
    EXPECT_THROW(t.run(), tnn::IoError);
  }
  EXPECT_TRUE(dir.entries().empty()) << dir.entries().size();
}

// Resume keeps the log lines up to the saved step: lines a killed run wrote past its last save
// (between the log and the training state) are dropped, so the log reads as one run's.
TEST(Trainer, ResumeDropsLogLinesPastTheSavedStep) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string out = dir.file("m.safetensors");
  train_process(stopping(config(out, 12), 4));
  const std::vector<std::string> saved = file_lines(out + ".csv");
  ASSERT_EQ(saved.size(), 1u + 2u + 1u);  // header, steps 2 and 4, validation at 4
  {
    std::ofstream log(out + ".csv", std::ios::app);
    log << "6,1.0,1.0,0.001,100,,\n7,1.0,1.0,0.001,100,,\n8,1.";  // a later step, and a line cut by a crash
  }
  train_process(stopping(config(out, 12), 6), /*resume=*/true);
  const std::vector<std::string> now = file_lines(out + ".csv");
  ASSERT_EQ(now.size(), saved.size() + 1u);  // + step 6
  EXPECT_TRUE(std::equal(saved.begin(), saved.end(), now.begin()));
  EXPECT_EQ(now.back().rfind("6,", 0), 0u) << now.back();
  EXPECT_EQ(std::count_if(now.begin(), now.end(), [](const std::string& l) { return l.rfind("7,", 0) == 0; }), 0);
}

// A second trainer on the same out in another process is refused at begin(); the lock goes with
// the trainer.
TEST(Trainer, AnotherProcessOnTheSameOutIsRefused) {
  tnn_test::TempDir dir("tnn_trainer_");
  const std::string out = dir.file("m.safetensors");
  LmRun<float> r;
  tnn::Trainer<float> t(r.task, config(out, 4));
  t.begin();
  const pid_t child = ::fork();
  if (child == 0) {
    LmRun<float> r2;
    tnn::Trainer<float> t2(r2.task, config(out, 4));
    try {
      t2.begin();
    } catch (const tnn::IoError& e) {
      ::_exit(std::string(e.what()).find("is in use by another run") != std::string::npos ? 0 : 2);
    }
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(t.run().step, 4);
}
