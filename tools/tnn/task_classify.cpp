// The text classifier (task classify, tnn::TnnClassifier) in every command: train on
// label<TAB>text lines, eval (accuracy and loss), classify (the label of each line of stdin),
// grad (tokens [B, N], lengths [B], labels [B]).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/io/safetensors.hpp>
#include <tnn/io/stream.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/classify.hpp>

#include "common.hpp"
#include "data_record.hpp"
#include "processes.hpp"
#include "session.hpp"
#include "tasks.hpp"

namespace tnncli {
namespace {

// The last `n` examples of `all`, removed from it.
tnn::LabeledTexts take_last(tnn::LabeledTexts& all, std::size_t n) {
  const std::size_t keep = all.texts.size() - n;
  tnn::LabeledTexts tail;
  tail.texts.assign(all.texts.begin() + std::ptrdiff_t(keep), all.texts.end());
  tail.labels.assign(all.labels.begin() + std::ptrdiff_t(keep), all.labels.end());
  all.texts.resize(keep);
  all.labels.resize(keep);
  return tail;
}

}  // namespace

void print_accuracy(const tnn::EvalResult& r, const char* unit, const EvalScope& scope, bool json) {
  const tnn::Index correct = static_cast<tnn::Index>(std::llround(r.accuracy * double(r.tokens)));
  if (json) {
    std::cout << nlohmann::json{{"accuracy", r.accuracy}, {"loss", r.loss}, {"examples", r.tokens},
                                {"correct", correct},   {"scored", scope.scored}}
                     .dump()
              << "\n";
  } else {
    if (!scope.line.empty()) std::printf("%s\n", scope.line.c_str());
    std::printf("accuracy %.4f (%lld of %lld%s), loss %.4f nats\n", r.accuracy, (long long)correct, (long long)r.tokens,
                unit, r.loss);
  }
}

// Shared with task_image.cpp and task_regress.cpp: on the checkpoint's own training file, the
// examples training held out (all of them with --all); on any other file, all of them.
EvalScope eval_scope(const std::string& checkpoint, const std::vector<std::uint8_t>& bytes, std::size_t n,
                     const EvalOptions& o) {
  EvalScope s{n, "all", ""};
  const std::optional<DataRecord> rec = DataRecord::of_checkpoint(checkpoint);
  if (!rec || !rec->is_file(bytes)) return s;
  const std::string file = tnn::quote_path(o.data);
  s.scored = "training";
  if (rec->held_out == "none") {
    s.line = "scoring all of " + file + ", which the model was trained on (nothing was held out)";
  } else if (o.all) {
    s.line = "scoring all of " + file + " (--all), which the model was trained on except " + rec->describe();
  } else {
    s.examples = static_cast<std::size_t>(rec->held_examples(static_cast<std::int64_t>(n)));
    s.scored = "held-out";
    s.line = "scoring only " + rec->describe() + " of " + file + ", the model's training file: " +
             std::to_string(s.examples) + " examples (--all scores all of it)";
  }
  return s;
}

int train_classify(TrainOptions& o) {
  TrainSession session(o);
  session.check_one_process(tnn::Task::Classify);

  // Labels are numbered in the order first seen in --data (a resumed run keeps its own numbering);
  // validation: --valid, or else the last --valid-fraction of --data's lines.
  std::vector<std::string> names;
  if (o.resume) names = tnn::read_label_names(o.out);
  const std::vector<std::uint8_t> bytes = tnn::read_file_bytes(o.data);
  tnn::LabeledTexts train = tnn::parse_labeled_texts(bytes, "data file " + tnn::quote_path(o.data), o.seq_len, names,
                                                     /*allow_new_labels=*/!o.resume);
  tnn::LabeledTexts valid;
  std::string held_out = "none";
  if (!o.valid.empty()) {
    valid = tnn::read_labeled_texts(o.valid, o.seq_len, names, /*allow_new_labels=*/false);
  } else if (o.valid_fraction > 0) {
    held_out = "tail-examples";
    const DataRecord rule = session.data_record(bytes, held_out);
    valid = take_last(train, static_cast<std::size_t>(rule.held_examples(train.size())));
  }
  if (names.size() < 2)
    tnn::fail<tnn::ValueError>("--data ", tnn::quote_path(o.data), ": expected at least 2 distinct labels, got ",
                               names.size());

  const tnn::TnnConfig cfg = session.model_config({{"task", "classify"},
                                                   {"vocab_size", tnn::kByteVocab},
                                                   {"causal", false},
                                                   {"num_classes", names.size()}});
  if (cfg.vocab_size < tnn::kByteVocab)
    tnn::fail<tnn::ConfigError>("--config: vocab_size: expected >= ", tnn::kByteVocab, " (bytes), got ", cfg.vocab_size);
  if (cfg.num_classes != static_cast<tnn::Index>(names.size()))
    tnn::fail<tnn::ConfigError>("--config: num_classes is ", cfg.num_classes, " but --data has ", names.size(),
                                " labels");

  tnn::TnnClassifier<float> model(cfg);
  model.init_weights(o.seed);
  session.prepare(model);
  tnn::ClassifyTask<float> task(model, train, valid, o.batch, o.seed, names, o.seq_len);
  return session.train(
      model, task, cfg, session.data_record(bytes, held_out), {{"task", "classify"}, {"labels", names}},
      TrainSession::Validation::Accuracy, [&] {
        std::fprintf(stderr,
                     "model: %s, classifier, %lld classes, %s pooling); data: %lld train / %lld valid examples; %s\n",
                     model_summary(cfg, model.num_parameters()).c_str(), (long long)cfg.num_classes,
                     tnn::to_string(cfg.pooling), (long long)train.size(), (long long)valid.size(),
                     count_of(current_threads(), "thread").c_str());
      });
}

void eval_classify(const EvalOptions& o) {
  if (o.batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o.batch);
  const std::string& path = o.checkpoints.front();
  tnn::TnnClassifier<float> model = tnn::load_model<tnn::TnnClassifier<float>>(path);
  std::vector<std::string> names = tnn::read_label_names(path);
  // Texts are truncated as in training (the length stored in the checkpoint) unless --seq-len says.
  if (o.was_given("--seq-len") && o.seq_len < 1) tnn::fail<tnn::ValueError>("--seq-len: expected >= 1, got ", o.seq_len);
  const tnn::Index seq_len = o.was_given("--seq-len") ? o.seq_len : tnn::read_train_seq_len(path);
  const tnn::Index max_len = seq_len > 0 ? seq_len : std::numeric_limits<std::int32_t>::max();
  const std::vector<std::uint8_t> bytes = tnn::read_file_bytes(o.data);
  tnn::LabeledTexts texts = tnn::parse_labeled_texts(bytes, "data file " + tnn::quote_path(o.data), max_len, names,
                                                     /*allow_new_labels=*/false);
  const EvalScope scope = eval_scope(path, bytes, texts.texts.size(), o);
  if (scope.examples < texts.texts.size()) texts = take_last(texts, scope.examples);
  print_accuracy(tnn::EvalResult::from(tnn::classify_eval_sums(model, texts, o.batch)), "", scope, o.json);
}

void grad_classify(const GradOptions& o) {
  run_in_dtype(o.dtype, [&](auto tag) {
    using T = decltype(tag);
    tnn::TnnClassifier<T> model = tnn::load_model<tnn::TnnClassifier<T>>(o.checkpoint);
    const tnn::SafetensorsFile f = read_grad_inputs(o.inputs, {"tokens", "lengths", "labels"},
                                                    "a classifier's inputs are tokens [B, N], lengths [B], labels [B]");
    const std::string where = "--inputs " + tnn::quote_path(o.inputs);
    for (const char* name : {"tokens", "lengths", "labels"})
      if (f.dtype(name) != tnn::Dtype::I32)
        tnn::fail<tnn::FormatError>(where, ": tensor '", name, "': expected dtype I32, got ",
                                    tnn::dtype_name(f.dtype(name)));
    if (f.shape("tokens").size() != 2)
      tnn::fail<tnn::FormatError>(where, ": tensor 'tokens': expected shape [B, N], got ",
                                  tnn::shape_str(f.shape("tokens")));
    tnn::Tensor<std::int32_t> tokens, lengths, labels;
    f.get_into("tokens", tokens);
    f.get_into("lengths", lengths);
    f.get_into("labels", labels);
    write_grad_output(o.out, model, tokens, labels, &lengths);  // checks shapes and ranges
  });
}

void classify_text(const ClassifyOptions& o) {
  tnn::TnnClassifier<float> model = tnn::load_model<tnn::TnnClassifier<float>>(o.checkpoint);
  const std::vector<std::string> names = tnn::read_label_names(o.checkpoint);  // one printable line each, distinct
  const tnn::Index seq_len = o.seq_len > 0 ? o.seq_len : tnn::read_train_seq_len(o.checkpoint);
  const tnn::Index K = model.config().num_classes;
  // Lines are read one at a time, each cut to seq_len as it is read (the rest of a long line is
  // read and dropped, never held), in groups of --batch answered in order. An empty line has no
  // bytes to classify and is an error (the output would otherwise lose its line-for-line
  // alignment); so is a line beyond kMaxWholeLine when no length is known to cut it to.
  constexpr tnn::Index kMaxWholeLine = 1 << 20;
  const std::size_t keep = static_cast<std::size_t>(seq_len > 0 ? seq_len : kMaxWholeLine);
  tnn::LineReader in = tnn::LineReader::standard_input();
  std::fflush(stdout);
  tnn::OutputStream out = tnn::OutputStream::standard_output();
  std::vector<std::string> lines;
  tnn::LabeledTexts group;
  tnn::ClassifyBatch b;
  auto flush = [&] {
    if (lines.empty()) return;
    group.texts = lines;
    group.labels.assign(lines.size(), 0);
    std::vector<tnn::Index> idx(lines.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<tnn::Index>(i);
    tnn::make_classify_batch(group, idx.data(), static_cast<tnn::Index>(idx.size()), b);
    const tnn::Tensor<float>& z = model.forward(b.tokens, &b.lengths);
    for (std::size_t r = 0; r < lines.size(); ++r) {
      const float* zr = z.data() + static_cast<tnn::Index>(r) * K;
      const tnn::Index best = std::max_element(zr, zr + K) - zr;
      if (o.json) {
        const float m = zr[best];
        double sum = 0;
        for (tnn::Index k = 0; k < K; ++k) sum += std::exp(double(zr[k] - m));
        nlohmann::json probs = nlohmann::json::object();
        for (tnn::Index k = 0; k < K; ++k) probs[names[static_cast<std::size_t>(k)]] = std::exp(double(zr[k] - m)) / sum;
        out.write(nlohmann::json{{"label", names[static_cast<std::size_t>(best)]}, {"probabilities", probs}}.dump());
      } else {
        out.write(names[static_cast<std::size_t>(best)]);
      }
      out.put('\n');
    }
    out.flush();  // answers as they come, and a closed pipe ends the reading of stdin here
    lines.clear();
  };
  std::string line;
  std::uint64_t length = 0;
  while (in.next(line, keep, &length)) {
    if (length == 0)
      tnn::fail<tnn::ValueError>("standard input line ", in.line_number(), ": expected a text to classify, got an empty line");
    if (seq_len <= 0 && length > static_cast<std::uint64_t>(kMaxWholeLine))
      tnn::fail<tnn::ValueError>("standard input line ", in.line_number(), ": expected at most ", kMaxWholeLine,
                                 " bytes (the checkpoint stores no training length to cut lines to; give --seq-len), got ",
                                 length);
    lines.push_back(line);
    if (static_cast<tnn::Index>(lines.size()) == o.batch) flush();
  }
  flush();
  out.close();
}

}  // namespace tnncli
