// `tnn classify`: the predicted label of each line on stdin (one text per line, as bytes), by a
// classifier trained with `tnn train --task classify`; with --json one object per line with the
// class probabilities. Also the classifier branches of `tnn eval` (accuracy and loss on a
// label<TAB>text file) and `tnn grad` (loss, logits [B, K], every gradient).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/io/safetensors.hpp>
#include <tnn/io/stream.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/classify.hpp>

#include "classify_cli.hpp"
#include "common.hpp"
#include "image_cli.hpp"

namespace tnncli {

tnn::Task checkpoint_task(const std::string& path) { return tnn::read_config(path).task; }
bool is_classifier_checkpoint(const std::string& path) { return checkpoint_task(path) == tnn::Task::Classify; }

void eval_classifier(const std::string& checkpoint, const std::string& data, long long seq_len, long long batch,
                     bool json) {
  if (batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", batch);
  tnn::TnnClassifier<float> model = tnn::load_model<tnn::TnnClassifier<float>>(checkpoint);
  std::vector<std::string> names = tnn::read_label_names(checkpoint);
  if (seq_len <= 0) seq_len = tnn::read_train_seq_len(checkpoint);  // the training truncation, if stored
  const tnn::Index max_len = seq_len > 0 ? seq_len : std::numeric_limits<std::int32_t>::max();
  const tnn::LabeledTexts texts = tnn::read_labeled_texts(data, max_len, names, /*allow_new_labels=*/false);
  const tnn::EvalResult r = tnn::EvalResult::from(tnn::classify_eval_sums(model, texts, batch));
  const tnn::Index correct = static_cast<tnn::Index>(std::llround(r.accuracy * double(r.tokens)));
  if (json) {
    nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss}, {"examples", r.tokens}, {"correct", correct}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("accuracy %.4f (%lld of %lld), loss %.4f nats\n", r.accuracy, (long long)correct, (long long)r.tokens,
                r.loss);
  }
}

void grad_classifier(const std::string& checkpoint, const std::string& batch_path, const std::string& out, bool f64) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    tnn::TnnClassifier<T> model = tnn::load_model<tnn::TnnClassifier<T>>(checkpoint);
    const tnn::SafetensorsFile f = tnn::read_safetensors(batch_path);
    const std::string where = "batch '" + batch_path + "'";
    for (const char* name : {"tokens", "lengths", "labels"}) {
      if (!f.has(name))
        tnn::fail<tnn::FormatError>(where, ": expected a tensor named '", name,
                                    "' (a classifier's batch holds tokens [B, N], lengths [B], labels [B]), it is missing");
      if (f.dtype(name) != tnn::Dtype::I32)
        tnn::fail<tnn::FormatError>(where, ": tensor '", name, "': expected dtype I32, got ",
                                    tnn::dtype_name(f.dtype(name)));
    }
    tnn::Tensor<std::int32_t> tokens, lengths, labels;
    if (f.shape("tokens").size() != 2)
      tnn::fail<tnn::FormatError>(where, ": tensor 'tokens': expected shape [B, N], got ", tnn::shape_str(f.shape("tokens")));
    f.get_into("tokens", tokens);
    f.get_into("lengths", lengths);
    f.get_into("labels", labels);
    model.zero_grad();
    const T loss = model.forward(tokens, labels, &lengths);  // checks shapes and ranges
    model.backward();
    write_grad_output(out, loss, model);
  };
  if (f64)
    run(double{});
  else
    run(float{});
}

namespace {

struct ClassifyOptions {
  std::string checkpoint, images;
  tnn::Index batch = 16, seq_len = 0;
  int threads = 0;
  bool json = false;
};

void run_classify(const ClassifyOptions& o) {
  if (o.batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o.batch);
  if (o.seq_len < 0) tnn::fail<tnn::ValueError>("--seq-len: expected >= 0 (0: whole lines), got ", o.seq_len);
  set_threads(o.threads);
  // An image classifier labels the images of --images; a text classifier the lines of stdin.
  const bool image = checkpoint_task(o.checkpoint) == tnn::Task::Image;
  if (image && o.images.empty())
    tnn::fail<tnn::ValueError>("--checkpoint ", tnn::quote_path(o.checkpoint),
                               " is an image classifier: expected --images FILE (a safetensors image file)");
  if (!image && !o.images.empty())
    tnn::fail<tnn::ValueError>("--images: expected an image classifier checkpoint (task 'image'), got task '",
                               tnn::to_string(checkpoint_task(o.checkpoint)), "' in ", tnn::quote_path(o.checkpoint));
  if (image) {
    if (o.seq_len > 0) tnn::fail<tnn::ValueError>("--seq-len: applies to text classifiers only, got ", o.seq_len);
    return classify_images(o.checkpoint, o.images, o.batch, o.json);
  }
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

}  // namespace

void add_classify_command(CLI::App& app) {
  auto o = std::make_shared<ClassifyOptions>();
  CLI::App* cmd = app.add_subcommand(
      "classify", "Label each line of stdin with a classifier checkpoint (tnn train --task classify), or each image "
                  "of --images with an image classifier (tnn train --task image)");
  cmd->add_option("--checkpoint", o->checkpoint, "Classifier checkpoint (.safetensors)")->required();
  cmd->add_option("--images", o->images,
                  "Image classifier: the safetensors image file to label (images U8 or I32 [M, H, W, Ch]; labels not needed)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", o->json, "One JSON object per line (or image): {\"label\": ..., \"probabilities\": {name: p, ...}}");
  cmd->add_option("--batch", o->batch, "Lines per forward pass")->capture_default_str();
  cmd->add_option("--seq-len", o->seq_len, "Truncate each line to this many bytes (0: the training --seq-len stored in the checkpoint)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)");
  cmd->callback([o] { run_classify(*o); });
}

}  // namespace tnncli
