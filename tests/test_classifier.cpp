// TnnClassifier and ClassifierHead: the ragged-batch contract (each row's logits in a padded
// batch equal that row run alone, f64 within 1e-12), central-difference gradients of every
// parameter across norms, pooling kinds, pre/post-norm, decays, heads and ragged lengths,
// names, the config keys, checkpoints, accumulation and errors; with attention as the token
// mixer too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "temp_files.hpp"
#include "test_helpers.hpp"
#include "tiny_configs.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/models.hpp"

using namespace tnn;

namespace {

TnnConfig base() {  // the LM tests' tiny model, bidirectional, 2 layers, V 9, 4 classes
  TnnConfig c = testing_helpers::tiny_lm_config();
  c.vocab_size = 9;
  c.layers = 2;
  c.causal = false;
  c.task = Task::Classify;
  c.num_classes = 4;
  return c;
}

TnnClassifier<double> make_model(const TnnConfig& cfg, std::uint64_t seed) {
  TnnClassifier<double> m(cfg);
  m.init_weights(seed);
  Rng rng(seed + 100);  // move every trainable entry off its init so norm scales and biases carry gradient
  m.visit([&](const std::string&, Param<double>& p) {
    if (p.trainable)
      for (auto& v : p.value) v += rng.normal(0.0, 0.1);
  });
  return m;
}

Tensor<std::int32_t> random_tokens(Index B, Index N, Index V, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<std::int32_t> t({B, N});
  for (auto& v : t) v = static_cast<std::int32_t>(rng.below(std::uint64_t(V)));
  return t;
}

Tensor<std::int32_t> ints(std::initializer_list<std::int32_t> v) {
  Tensor<std::int32_t> t({static_cast<Index>(v.size())});
  Index i = 0;
  for (std::int32_t x : v) t[i++] = x;
  return t;
}

// A labelled ragged batch: one row per length, of N random ids below the vocabulary (seeded).
struct Batch {
  Tensor<std::int32_t> tokens, lengths, labels;
};
Batch ragged_batch(const TnnConfig& cfg, Index N, std::uint64_t seed, std::initializer_list<std::int32_t> lengths,
                   std::initializer_list<std::int32_t> labels) {
  return {random_tokens(static_cast<Index>(lengths.size()), N, cfg.vocab_size, seed), ints(lengths), ints(labels)};
}

// Every parameter's gradient, in visit order.
std::vector<Tensor<double>> grads_of(TnnClassifier<double>& m) {
  std::vector<Tensor<double>> g;
  m.visit([&](const std::string&, Param<double>& p) { g.push_back(p.grad); });
  return g;
}

// Row b of tokens, its first n positions, as a [1, n] batch.
Tensor<std::int32_t> row(const Tensor<std::int32_t>& tokens, Index b, Index n) {
  Tensor<std::int32_t> r({1, n});
  for (Index j = 0; j < n; ++j) r[j] = tokens[b * tokens.dim(1) + j];
  return r;
}

std::vector<TnnConfig> variants() {
  std::vector<TnnConfig> out;
  TnnConfig c = base();
  out.push_back(c);  // simplermsnorm, mean pooling, fixed decay
  c.pooling = Pooling::First;
  c.norm_type = NormType::LayerNorm;
  out.push_back(c);
  c = base();
  c.norm_type = NormType::RMSNorm;
  c.prenorm = false;
  c.decay = TnoDecay::Learned;
  c.heads = 2;
  out.push_back(c);
  c = base();
  c.decay = TnoDecay::None;  // no decay at all
  c.layers = 1;
  c.rpe_layers = 0;
  c.gtu_act = Activation::Gelu;
  out.push_back(c);
  // attention as the token mixer: a ragged row's padded keys are masked
  c = base();
  c.token_mixer = TokenMixerKind::Attention;
  c.positions = PositionScheme::Sinusoidal;
  c.heads = 2;
  out.push_back(c);
  c.pooling = Pooling::First;
  c.norm_type = NormType::LayerNorm;
  c.prenorm = false;
  c.heads = 4;
  out.push_back(c);
  return out;
}

}  // namespace

TEST(TnnClassifier, RaggedBatchRowsEqualEachRowAlone) {
  for (const TnnConfig& cfg : variants()) {
    SCOPED_TRACE(cfg.to_json().dump());
    auto m = make_model(cfg, 5);
    const Index B = 4, N = 37;
    const Tensor<std::int32_t> tokens = random_tokens(B, N, cfg.vocab_size, 7);
    const Tensor<std::int32_t> lengths = ints({37, 20, 1, 33});
    const Tensor<double> batch = m.forward(tokens, &lengths);  // copied: the next forward reuses the buffer
    ASSERT_EQ(batch.shape(), (Shape{B, cfg.num_classes}));
    for (Index b = 0; b < B; ++b) {
      const Tensor<double>& alone = m.forward(row(tokens, b, lengths[b]));
      for (Index k = 0; k < cfg.num_classes; ++k)
        EXPECT_NEAR(batch[b * cfg.num_classes + k], alone[k], 1e-12) << "row " << b << " class " << k;
    }
  }
}

TEST(TnnClassifier, PaddingTokensChangeNothing) {
  // Different ids past each length: same loss, logits and gradients, bit for bit.
  for (const TnnConfig& cfg : variants()) {
    SCOPED_TRACE(cfg.to_json().dump());
    auto m = make_model(cfg, 2);
    const Index B = 3, N = 16;
    Batch batch = ragged_batch(cfg, N, 3, {16, 9, 4}, {0, 3, 1});
    Tensor<std::int32_t>& tokens = batch.tokens;
    m.zero_grad();
    const double l1 = m.forward(tokens, batch.labels, &batch.lengths);
    m.backward();
    const std::vector<Tensor<double>> g1 = grads_of(m);
    for (Index b = 0; b < B; ++b)
      for (Index n = batch.lengths[b]; n < N; ++n)
        tokens[b * N + n] = static_cast<std::int32_t>((tokens[b * N + n] + 5) % 9);
    m.zero_grad();
    const double l2 = m.forward(tokens, batch.labels, &batch.lengths);
    m.backward();
    EXPECT_EQ(l1, l2);
    std::size_t i = 0;
    m.visit([&](const std::string& name, Param<double>& p) {
      EXPECT_EQ(gradcheck::max_rel_diff(p.grad, g1[i]), 0.0) << name;
      ++i;
    });
  }
}

TEST(TnnClassifier, GradientsMatchCentralDifferencesRagged) {
  for (const TnnConfig& cfg : variants()) {
    SCOPED_TRACE(cfg.to_json().dump());
    auto m = make_model(cfg, 11);
    const Batch batch = ragged_batch(cfg, /*N=*/9, 12, {9, 4, 6}, {1, 3, 0});
    const Tensor<std::int32_t>&tokens = batch.tokens, &lengths = batch.lengths, &labels = batch.labels;
    m.zero_grad();
    const double l0 = m.forward(tokens, labels, &lengths);
    ASSERT_TRUE(std::isfinite(l0));
    m.backward();
    auto loss = [&] { return m.forward(tokens, labels, &lengths); };
    Index checked = 0;
    // (attention's key bias has no effect, its gradient is rounding noise: test_helpers.hpp)
    for (const auto& r : gradcheck::check_params(testing_helpers::without_key_bias(m.named_parameters()), loss)) {
      EXPECT_TRUE(gradcheck::ok(r));
      ++checked;
    }
    EXPECT_GT(checked, 10);
    EXPECT_EQ(m.forward(tokens, labels, &lengths), l0);
  }
}

TEST(TnnClassifier, NoLengthsMeansFullLength) {
  const TnnConfig cfg = base();
  auto m = make_model(cfg, 4);
  const Tensor<std::int32_t> tokens = random_tokens(2, 10, cfg.vocab_size, 5);
  const Tensor<std::int32_t> full = ints({10, 10});
  const Tensor<double> a = m.forward(tokens);
  const Tensor<double>& b = m.forward(tokens, &full);
  EXPECT_EQ(gradcheck::max_rel_diff(a, b), 0.0);
}

TEST(ClassifierHead, MeanFirstAndMaxPoolingMatchTheirDefinitions) {
  // Dense reference: pooled = mean of the first len rows (or row 0, or each channel's maximum over
  // the first len rows), logits = pooled W^T + b,
  // loss = mean -log softmax; dx by the chain rule written out.
  const Index B = 2, N = 5, D = 3, K = 4;
  Rng rng(9);
  const Tensor<double> x = gradcheck::random_tensor({B, N, D}, rng);
  const Tensor<std::int32_t> lengths = ints({5, 2}), labels = ints({3, 0});
  for (Pooling pool : {Pooling::Mean, Pooling::First, Pooling::Max}) {
    SCOPED_TRACE(to_string(pool));
    ClassifierHead<double> h(D, K, pool);
    h.init_weights(rng);
    const Tensor<double>& logits = h.forward(x, &lengths);
    double expect_loss = 0;
    Tensor<double> expect_dx({B, N, D});
    expect_dx.set_zero();
    for (Index b = 0; b < B; ++b) {
      const Index len = pool == Pooling::First ? 1 : lengths[b];
      std::vector<double> p(D, 0.0), z(K, 0.0);
      std::vector<Index> at(D, 0);  // max: the row of each channel's maximum
      for (Index n = 0; n < len; ++n)
        for (Index d = 0; d < D; ++d) {
          const double v = x[(b * N + n) * D + d];
          if (pool != Pooling::Max) {
            p[d] += v / double(len);
          } else if (n == 0 || v > p[d]) {
            p[d] = v;
            at[d] = n;
          }
        }
      double zmax = -1e300, sum = 0;
      for (Index k = 0; k < K; ++k) {
        z[k] = h.head.bias.value[k];
        for (Index d = 0; d < D; ++d) z[k] += h.head.weight.value[k * D + d] * p[d];
        EXPECT_NEAR(logits[b * K + k], z[k], 1e-14);
        zmax = std::max(zmax, z[k]);
      }
      for (Index k = 0; k < K; ++k) sum += std::exp(z[k] - zmax);
      expect_loss += (zmax + std::log(sum) - z[labels[b]]) / double(B);
      for (Index k = 0; k < K; ++k) {
        const double g = (std::exp(z[k] - zmax) / sum - (k == labels[b] ? 1.0 : 0.0)) / double(B);
        for (Index n = 0; n < len; ++n)
          for (Index d = 0; d < D; ++d) {
            if (pool != Pooling::Max)
              expect_dx[(b * N + n) * D + d] += g * h.head.weight.value[k * D + d] / double(len);
            else if (n == at[d])
              expect_dx[(b * N + n) * D + d] += g * h.head.weight.value[k * D + d];
          }
      }
    }
    EXPECT_NEAR(h.loss(labels), expect_loss, 1e-14);
    Tensor<double> dx;
    h.backward(dx);
    EXPECT_LT(gradcheck::max_rel_diff(dx, expect_dx), 1e-14);
  }
}

TEST(TnnClassifier, NamesAreTheLmsWithHeadInsteadOfLmHead) {
  TnnConfig c = base();
  c.norm_type = NormType::RMSNorm;
  TnnClassifier<float> m(c);
  TnnConfig lc = c;
  lc.task = Task::Lm;
  lc.num_classes = 0;
  lc.pooling = Pooling::Mean;
  TnnLM<float> lm(lc);
  std::vector<std::string> names, lm_names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  for (auto& [n, p] : lm.named_parameters()) lm_names.push_back(n);
  ASSERT_EQ(lm_names.back(), "lm_head.weight");
  lm_names.pop_back();
  lm_names.push_back("head.weight");
  lm_names.push_back("head.bias");
  EXPECT_EQ(names, lm_names);
  for (auto& [n, p] : m.named_parameters()) {
    if (n == "head.weight") {
      EXPECT_EQ(p->shape(), (Shape{4, 8}));
    }
    if (n == "head.bias") {
      EXPECT_EQ(p->shape(), (Shape{4}));
    }
  }
}

TEST(TnnClassifier, BackwardAccumulates) {
  const TnnConfig cfg = base();
  auto m = make_model(cfg, 6);
  const Batch batch = ragged_batch(cfg, /*N=*/7, 1, {7, 3}, {2, 1});
  const Tensor<std::int32_t>&tokens = batch.tokens, &lengths = batch.lengths, &labels = batch.labels;
  m.zero_grad();
  m.forward(tokens, labels, &lengths);
  m.backward();
  const std::vector<Tensor<double>> once = grads_of(m);
  m.forward(tokens, labels, &lengths);
  m.backward();
  std::size_t i = 0;
  m.visit([&](const std::string& name, Param<double>& p) {
    Tensor<double> twice = once[i++];
    twice.vec() *= 2.0;
    EXPECT_LT(gradcheck::max_rel_diff(p.grad, twice), 1e-14) << name;
  });
}

TEST(TnnClassifier, FloatMatchesDouble) {
  const TnnConfig cfg = base();
  auto md = make_model(cfg, 8);
  TnnClassifier<float> mf(cfg);
  md.visit([&](const std::string& name, Param<double>& p) {
    mf.visit([&](const std::string& n2, Param<float>& q) {
      if (n2 == name)
        for (Index i = 0; i < p.value.size(); ++i) q.value[i] = static_cast<float>(p.value[i]);
    });
  });
  const Batch batch = ragged_batch(cfg, /*N=*/30, 2, {30, 11, 2}, {0, 1, 2});
  const double ld = md.forward(batch.tokens, batch.labels, &batch.lengths);
  const float lf = mf.forward(batch.tokens, batch.labels, &batch.lengths);
  EXPECT_NEAR(lf, ld, 1e-5 * std::max(1.0, std::abs(ld)));
}

TEST(TnnClassifier, CheckpointRoundTripKeepsConfigAndLogits) {
  const TnnConfig cfg = base();
  auto m = make_model(cfg, 3);
  tnn_test::TempDir dir("classifier_");
  const std::string f = dir.file("c.safetensors");
  save_model(f, m, Dtype::F64);
  const TnnConfig back = read_config(f);
  EXPECT_EQ(back.task, Task::Classify);
  EXPECT_EQ(back.num_classes, 4);
  EXPECT_EQ(back.pooling, Pooling::Mean);
  auto m2 = load_model<TnnClassifier<double>>(f);
  const Tensor<std::int32_t> tokens = random_tokens(2, 6, cfg.vocab_size, 4);
  const Tensor<double> a = m.forward(tokens);
  EXPECT_EQ(gradcheck::max_rel_diff(m2.forward(tokens), a), 0.0);
  // An LM cannot load it, nor load_classifier an LM.
  TnnConfig lc = cfg;
  lc.task = Task::Lm;
  lc.num_classes = 0;
  TnnLM<double> lm(lc);
  lm.init_weights(1);
  const std::string g = dir.file("lm.safetensors");
  save_model(g, lm);
  EXPECT_THROW(load_model<TnnClassifier<double>>(g), ConfigError);
}

TEST(TnnConfig, ClassifyKeysParseValidateAndStayOutOfLmConfigs) {
  const std::string lm_json = R"({"vocab_size": 5, "dim": 4, "layers": 1})";
  EXPECT_FALSE(TnnConfig::parse(lm_json).to_json().contains("task"));
  const TnnConfig c = TnnConfig::parse(
      R"({"vocab_size": 5, "dim": 4, "layers": 1, "causal": false, "task": "classify", "num_classes": 10, "pooling": "first"})");
  EXPECT_EQ(c.task, Task::Classify);
  EXPECT_EQ(c.num_classes, 10);
  EXPECT_EQ(c.pooling, Pooling::First);
  EXPECT_EQ(TnnConfig::from_json(c.to_json()).to_json(), c.to_json());
  auto bad = [](const std::string& extra, const std::string& needle) {
    const std::string j = R"({"vocab_size": 5, "dim": 4, "layers": 1)" + extra + "}";
    try {
      TnnConfig::parse(j);
      ADD_FAILURE() << "accepted " << j;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  bad(R"(, "causal": false, "task": "classify")", "num_classes");             // K missing
  bad(R"(, "causal": false, "task": "classify", "num_classes": 1)", "num_classes");
  bad(R"(, "task": "classify", "num_classes": 3)", "causal");                  // causal classifier
  bad(R"(, "task": "regress")", "tasks lm and classify");
  bad(R"(, "num_classes": 3)", "tasks classify and image");                               // K without the task
  bad(R"(, "causal": false, "task": "classify", "num_classes": 3, "pooling": "sum")", "mean, first, max");
}

TEST(TnnClassifier, ErrorsSayWhatWasExpected) {
  const TnnConfig cfg = base();
  TnnClassifier<double> m(cfg);
  m.init_weights(1);
  const Tensor<std::int32_t> tokens = random_tokens(2, 5, cfg.vocab_size, 1);
  const Tensor<std::int32_t> good_len = ints({5, 2}), labels = ints({0, 3});
  EXPECT_THROW(m.forward(tokens, ints({0}), &good_len), ShapeError);
  EXPECT_THROW(m.forward(tokens, ints({0, 4}), &good_len), ValueError);
  const Tensor<std::int32_t> zero_len = ints({5, 0}), long_len = ints({6, 1}), short_len = ints({5});
  EXPECT_THROW(m.forward(tokens, labels, &zero_len), ValueError);
  EXPECT_THROW(m.forward(tokens, labels, &long_len), ValueError);
  EXPECT_THROW(m.forward(tokens, labels, &short_len), ShapeError);
  m.forward(tokens);
  EXPECT_THROW(m.backward(), Error);
  TnnConfig lm = cfg;
  lm.task = Task::Lm;
  lm.num_classes = 0;
  EXPECT_THROW(TnnClassifier<double>{lm}, ConfigError);
}

// ---- train/classify.hpp: the TSV reader, the sampler, the task under tnn::Trainer ----
#include "tnn/train/classify.hpp"

namespace {
std::vector<std::uint8_t> bytes_of(const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); }
}  // namespace

TEST(LabeledTexts, LabelsInFirstSeenOrderTextsTruncated) {
  std::vector<std::string> names;
  const LabeledTexts d =
      parse_labeled_texts(bytes_of("pos\thello world\r\nneg\tbad\n\npos\tx\ty\n"), "t", 5, names, true);
  EXPECT_EQ(names, (std::vector<std::string>{"pos", "neg"}));
  EXPECT_EQ(d.texts, (std::vector<std::string>{"hello", "bad", "x\ty"}));
  EXPECT_EQ(d.labels, (std::vector<std::int32_t>{0, 1, 0}));
  // A later file keeps the numbering and refuses labels it has not seen.
  const LabeledTexts v = parse_labeled_texts(bytes_of("neg\tzz\n"), "v", 5, names, false);
  EXPECT_EQ(v.labels, (std::vector<std::int32_t>{1}));
  EXPECT_THROW(parse_labeled_texts(bytes_of("other\tzz\n"), "v", 5, names, false), ValueError);
  EXPECT_THROW(parse_labeled_texts(bytes_of("no tab here\n"), "v", 5, names, true), FormatError);
  EXPECT_THROW(parse_labeled_texts(bytes_of("pos\t\n"), "v", 5, names, true), FormatError);
  EXPECT_THROW(parse_labeled_texts(bytes_of("\tabc\n"), "v", 5, names, true), FormatError);
  EXPECT_THROW(parse_labeled_texts(bytes_of("\n\n"), "v", 5, names, true), FormatError);
}

// Labels live in a hash map: 200,000 distinct labels take a fraction of a second (a list
// scanned per line took minutes; ctest's timeout fails the test then).
TEST(LabeledTexts, ManyDistinctLabelsReadInLinearTime) {
  std::string text;
  for (int i = 0; i < 200000; ++i) text += "label" + std::to_string(i) + "\tt\n";
  text += "label7\tagain\n";
  std::vector<std::string> names;
  const LabeledTexts d = parse_labeled_texts(bytes_of(text), "t", 8, names, true);
  EXPECT_EQ(names.size(), 200000u);
  EXPECT_EQ(d.labels.back(), 7);
  EXPECT_EQ(names[199999], "label199999");
}

// A label that could not be printed as one line of UTF-8 (nor stored as JSON) is refused where
// it is read, naming its line; never at the first save.
TEST(LabeledTexts, LabelsThatCannotBePrintedAreRefusedAtReadTime) {
  auto message = [](const std::string& text) {
    std::vector<std::string> names;
    try {
      parse_labeled_texts(bytes_of(text), "data file 'd'", 100, names, true);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("<accepted>");
  };
  EXPECT_NE(message("ok\ta\nbad\xff\tb\n").find("line 2: label: expected a class name of printable UTF-8"),
            std::string::npos);
  EXPECT_NE(message("a\rb\ttext\n").find("control character U+000D"), std::string::npos);
  EXPECT_NE(message("\x1b[31mred\ttext\n").find("control character U+001B"), std::string::npos);
  EXPECT_NE(message(std::string(2000, 'L') + "\ttext\n").find("a label of at most 1024 bytes"), std::string::npos);
  EXPECT_EQ(message("caf\xc3\xa9\ttext\n"), "<accepted>");
}

// Each line is cut to the label and max_len bytes of text as it is read.
TEST(LabeledTexts, LongLinesAreCutWhileReading) {
  const std::string text = "a\t" + std::string(3000000, 'x') + "\r\nb\tshort\r\n";
  std::vector<std::string> names;
  const LabeledTexts d = parse_labeled_texts(bytes_of(text), "t", 16, names, true);
  EXPECT_EQ(d.texts, (std::vector<std::string>{std::string(16, 'x'), "short"}));
}

TEST(ClassNames, MetadataNamesAreCheckedOneLinePrintableAndDistinct) {
  EXPECT_EQ(parse_class_names(R"(["pos","neg"])", "m"), (std::vector<std::string>{"pos", "neg"}));
  EXPECT_THROW(parse_class_names(R"(["pos","pos"])", "m"), FormatError);         // --json would merge them
  EXPECT_THROW(parse_class_names(R"(["two\nlines","x"])", "m"), FormatError);    // two output lines
  EXPECT_THROW(parse_class_names(R"(["","x"])", "m"), FormatError);
  EXPECT_THROW(parse_class_names(R"(["a",1])", "m"), FormatError);
  EXPECT_THROW(parse_class_names(R"({"a":1})", "m"), FormatError);
  EXPECT_THROW(parse_class_names("[\"a\xff\"]", "m"), FormatError);
  try {
    parse_class_names(R"(["a","b","a"])", "checkpoint 'c': metadata 'tnn.labels'");
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("distinct class names, got \"a\" for classes 0 and 2"), std::string::npos)
        << e.what();
  }
  // A task given names that cannot be stored refuses at construction, before any training.
  EXPECT_THROW(class_names_json({"ok", "bad\xff"}, "task"), ValueError);
}

TEST(ClassifySampler, BatchesArePureFunctionsOfTheStepAndCoverAnEpoch) {
  std::vector<std::string> names;
  std::string tsv;
  for (int i = 0; i < 40; ++i) tsv += std::to_string(i % 3) + "\t" + std::string(1 + (i * 7) % 50, char('a' + i % 26)) + "\n";
  const LabeledTexts d = parse_labeled_texts(bytes_of(tsv), "t", 100, names, true);
  ClassifySampler a(d, 8, 3), b(d, 8, 3);
  ClassifyBatch x, y;
  std::multiset<std::int32_t> lens_epoch;
  for (std::int64_t s = 0; s < 5; ++s) {
    a.sample(s, x);
    for (Index i = 0; i < 8; ++i) {
      lens_epoch.insert(x.lengths[i]);
      EXPECT_LE(x.lengths[i], x.tokens.dim(1));
      for (Index n = x.lengths[i]; n < x.tokens.dim(1); ++n) EXPECT_EQ(x.tokens[i * x.tokens.dim(1) + n], 0);
    }
  }
  std::multiset<std::int32_t> all;
  for (const auto& t : d.texts) all.insert(static_cast<std::int32_t>(t.size()));
  EXPECT_EQ(lens_epoch, all);  // 5 batches of 8 = every example once
  b.sample(7, y);            // out of order: same as a's step 7
  a.sample(7, x);
  EXPECT_EQ(x.tokens.vec(), y.tokens.vec());
  EXPECT_EQ(x.labels.vec(), y.labels.vec());
}

TEST(ClassifyTask, TrainerResumeIsBitIdentical) {
  TnnConfig cfg = base();
  cfg.vocab_size = 256;
  cfg.num_classes = 3;
  std::vector<std::string> names;
  std::string tsv;
  for (int i = 0; i < 48; ++i) tsv += std::string(1, char('a' + i % 3)) + "\t" + std::string(3 + (i * 5) % 40, char('a' + (i % 3) * 5)) + "\n";
  const LabeledTexts train = parse_labeled_texts(bytes_of(tsv), "t", 64, names, true);
  const LabeledTexts valid = parse_labeled_texts(bytes_of(tsv.substr(0, 200)), "v", 64, names, false);
  tnn_test::TempDir dir("classify_task_");
  auto run = [&](const std::string& out, std::int64_t stop_after, bool resume) {
    TnnClassifier<float> m(cfg);
    m.init_weights(1);
    ClassifyTask<float> task(m, train, valid, 6, 9, names);
    TrainerConfig tc;
    tc.steps = 12;
    tc.eval_every = 4;
    tc.stop_after = stop_after;
    tc.out = out;
    tc.schedule = LrSchedule{ScheduleKind::Cosine, 3e-3, 1e-4, 2, 12};
    Trainer<float> tr(task, tc);
    if (resume) tr.resume();
    tr.run();
    std::vector<float> flat;
    m.visit([&](const std::string&, Param<float>& p) { flat.insert(flat.end(), p.value.begin(), p.value.end()); });
    return flat;
  };
  const auto whole = run(dir.file("a.safetensors"), 0, false);
  run(dir.file("b.safetensors"), 5, false);
  const auto resumed = run(dir.file("b.safetensors"), 0, true);
  EXPECT_EQ(whole, resumed);
  EXPECT_EQ(read_label_names(dir.file("b.safetensors")), names);
  // Training moved the weights, and the validation accuracy is an EvalSums over sequences.
  TnnClassifier<float> fresh(cfg);
  fresh.init_weights(1);
  std::vector<float> init;
  fresh.visit([&](const std::string&, Param<float>& p) { init.insert(init.end(), p.value.begin(), p.value.end()); });
  EXPECT_NE(init, whole);
  const EvalSums s = classify_eval_sums(fresh, valid, 4);
  EXPECT_EQ(s.tokens, valid.size());
}

TEST(TnnClassifier, HeaderCheckNamesExactlyTheClassifiersTensors) {
  for (const TnnConfig& cfg : variants()) {
    TnnClassifier<float> m(cfg);
    std::vector<std::pair<std::string, Shape>> visited, implied;
    m.visit([&](const std::string& n, Param<float>& p) { visited.emplace_back(n, p.shape()); });
    implied = model_tensor_shapes<TnnClassifier<float>>(cfg);  // built under ShapesOnlyScope
    EXPECT_EQ(visited, implied);
  }
}
