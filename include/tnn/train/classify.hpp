// Sequence classification data and the trainer's step for it : labelled texts read
// from `label<TAB>text` lines (the text as bytes, truncated to a maximum length; labels are
// names, numbered in the order first seen), ragged batches padded to a multiple of 64 within the
// batch (lengths [B] keep the padding out of every valid position), and ClassifyTask, the
// TrainTask that `tnn train --task classify` runs on a TnnClassifier.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/infer/evaluate.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/models.hpp"
#include "tnn/model/loss.hpp"
#include "tnn/train/data.hpp"
#include "tnn/train/labeled_texts.hpp"
#include "tnn/train/trainer.hpp"

namespace tnn {

static_assert(kMaxClasses == TnnConfig::kMaxWidth, "one limit on the number of classes");

// One ragged batch: row b holds lengths[b] bytes, then padding (byte 0) up to N.
struct ClassifyBatch {
  Tensor<std::int32_t> tokens;   // [B, N]
  Tensor<std::int32_t> lengths;  // [B]
  Tensor<std::int32_t> labels;   // [B]
};

// Padded width of a batch: the longest text rounded up to a multiple of 64 (fewer distinct FFT
// sizes), at most max_len's rounding.
inline Index classify_pad_width(Index longest) { return (longest + 63) / 64 * 64; }

// Fills `out` with examples idx[0..n) of `data`.
inline void make_classify_batch(const LabeledTexts& data, const Index* idx, Index n, ClassifyBatch& out) {
  Index longest = 1;
  for (Index i = 0; i < n; ++i) longest = std::max<Index>(longest, static_cast<Index>(data.texts[idx[i]].size()));
  const Index N = classify_pad_width(longest);
  out.tokens.resize({n, N});
  out.lengths.resize({n});
  out.labels.resize({n});
  out.tokens.set_zero();
  for (Index i = 0; i < n; ++i) {
    const std::string& t = data.texts[static_cast<std::size_t>(idx[i])];
    for (std::size_t j = 0; j < t.size(); ++j)
      out.tokens[i * N + static_cast<Index>(j)] = static_cast<std::uint8_t>(t[j]);
    out.lengths[i] = static_cast<std::int32_t>(t.size());
    out.labels[i] = data.labels[static_cast<std::size_t>(idx[i])];
  }
}

// Training batches as a pure function of (seed, step): epoch e = a seeded permutation of the
// examples; within each pool of 32 batches the examples are sorted by length (less padding)
// before being cut into batches, and the batches of an epoch are taken in a seeded order.
class ClassifySampler {
 public:
  ClassifySampler(const LabeledTexts& data, Index batch, std::uint64_t seed) : data_(&data), batch_(batch), seed_(seed) {
    if (batch < 1) fail<ValueError>("batch: expected >= 1, got ", batch);
    if (data.size() < batch)
      fail<ValueError>("classification data: expected at least --batch = ", batch, " examples, got ", data.size());
  }
  ClassifySampler(LabeledTexts&&, Index, std::uint64_t) = delete;

  Index batches_per_epoch() const { return data_->size() / batch_; }

  void sample(std::int64_t step, ClassifyBatch& out) {
    if (step < 0) fail<ValueError>("classify sampler step: expected >= 0, got ", step);
    const Index per_epoch = batches_per_epoch();
    const std::int64_t epoch = step / per_epoch;
    if (epoch != epoch_) build_epoch(epoch);
    const Index b = order_[static_cast<std::size_t>(step % per_epoch)];
    make_classify_batch(*data_, perm_.data() + b * batch_, batch_, out);
  }

 private:
  void build_epoch(std::int64_t epoch) {
    const Index M = data_->size(), per_epoch = batches_per_epoch();
    Rng rng(detail::stream_seed(seed_, detail::kTrainStream, static_cast<std::uint64_t>(epoch)));
    perm_.resize(static_cast<std::size_t>(M));
    std::iota(perm_.begin(), perm_.end(), Index(0));
    for (Index i = M - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.below(std::uint64_t(i + 1))]);
    const Index pool = 32 * batch_;
    const Index used = per_epoch * batch_;  // the last M % B examples of this permutation wait for the next epoch
    for (Index p = 0; p < used; p += pool) {
      const Index q = std::min(used, p + pool);
      std::stable_sort(perm_.begin() + p, perm_.begin() + q, [&](Index a, Index b) {
        return data_->texts[static_cast<std::size_t>(a)].size() < data_->texts[static_cast<std::size_t>(b)].size();
      });
    }
    order_.resize(static_cast<std::size_t>(per_epoch));
    std::iota(order_.begin(), order_.end(), Index(0));
    for (Index i = per_epoch - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(std::uint64_t(i + 1))]);
    epoch_ = epoch;
  }

  const LabeledTexts* data_;
  Index batch_;
  std::uint64_t seed_;
  std::int64_t epoch_ = -1;
  std::vector<Index> perm_;   // [M] this epoch's example order
  std::vector<Index> order_;  // [M / B] this epoch's batch order
};

// Loss sums and argmax accuracy of `model` over examples first, first + stride, ... (in batches
// of `batch`, sorted by length so padding stays small): EvalSums with tokens = examples.
template <class T>
EvalSums classify_eval_sums(TnnClassifier<T>& model, const LabeledTexts& data, Index batch, Index first = 0,
                            Index stride = 1, std::vector<std::int32_t>* predictions = nullptr) {
  if (batch < 1) fail<ValueError>("batch: expected >= 1, got ", batch);
  std::vector<Index> idx;
  for (Index i = first; i < data.size(); i += stride) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(), [&](Index a, Index b) {
    return data.texts[static_cast<std::size_t>(a)].size() < data.texts[static_cast<std::size_t>(b)].size();
  });
  if (predictions) predictions->assign(static_cast<std::size_t>(data.size()), -1);
  EvalSums s;
  ClassifyBatch b;
  std::vector<std::int32_t> pred;  // [n] argmax of each row of a batch
  for (std::size_t i = 0; i < idx.size(); i += static_cast<std::size_t>(batch)) {
    const Index n = std::min<Index>(batch, static_cast<Index>(idx.size() - i));
    make_classify_batch(data, idx.data() + i, n, b);
    const T loss = model.forward(b.tokens, b.labels, &b.lengths);
    s.loss_sum += static_cast<double>(loss) * static_cast<double>(n);
    s.tokens += n;
    pred.resize(static_cast<std::size_t>(n));
    add_argmax_hits(s, model.logits().data(), b.labels.data(), n, model.logits().dim(1), pred.data());
    if (predictions)
      for (Index r = 0; r < n; ++r) (*predictions)[static_cast<std::size_t>(idx[i + static_cast<std::size_t>(r)])] = pred[r];
  }
  return s;
}

// Checkpoint metadata key of the length texts were truncated to in training (decimal); eval and
// classify truncate the same way by default.
inline constexpr const char* kSeqLenMetadataKey = "tnn.seq_len";

// The classifier's training step for tnn::Trainer. StepStats: loss = mean cross-entropy over the
// batch, targets = B (sequences), tokens = valid bytes.
template <class T>
class ClassifyTask : public SupervisedTask<TnnClassifier<T>> {
 public:
  ClassifyTask(TnnClassifier<T>& model, const LabeledTexts& train, const LabeledTexts& valid, Index batch,
               std::uint64_t seed, std::vector<std::string> label_names, Index seq_len = 0)
      : SupervisedTask<TnnClassifier<T>>(model, seed), sampler_(train, batch, seed), valid_(&valid), batch_(batch),
        names_(std::move(label_names)), seq_len_(seq_len) {
    if (static_cast<Index>(names_.size()) != model.config().num_classes)
      fail<ValueError>("classify task: expected ", model.config().num_classes,
                       " label names (the model's classes), got ", names_.size());
    labels_json_ = class_names_json(names_, "classify task: label names");  // refused now, not at the first save
  }
  ClassifyTask(TnnClassifier<T>&, LabeledTexts&&, const LabeledTexts&, Index, std::uint64_t, std::vector<std::string>,
               Index = 0) = delete;
  ClassifyTask(TnnClassifier<T>&, const LabeledTexts&, LabeledTexts&&, Index, std::uint64_t, std::vector<std::string>,
               Index = 0) = delete;

  bool has_validation() const override { return !valid_->empty(); }
  EvalSums validate(Index part, Index parts) override {
    if (valid_->empty()) return {};
    return classify_eval_sums(this->model(), *valid_, batch_, part, parts);
  }

 protected:
  using typename SupervisedTask<TnnClassifier<T>>::Batch;
  void sample(std::int64_t step, Batch& out) override {
    sampler_.sample(step, batch_data_);
    out.data = batch_data_.tokens;
    out.target = batch_data_.labels;
    out.lengths = batch_data_.lengths;
    out.tokens = 0;
    for (Index i = 0; i < batch_data_.lengths.size(); ++i) out.tokens += batch_data_.lengths[i];
  }
  std::map<std::string, std::string> metadata() const override {
    std::map<std::string, std::string> meta = {{kLabelsMetadataKey, labels_json_}};
    if (seq_len_ > 0) meta[kSeqLenMetadataKey] = std::to_string(seq_len_);
    return meta;
  }

 private:
  ClassifySampler sampler_;
  const LabeledTexts* valid_;
  Index batch_;
  std::vector<std::string> names_;
  std::string labels_json_;  // names_ as the tnn.labels metadata
  Index seq_len_;
  ClassifyBatch batch_data_;
};

// The label names stored in a classifier checkpoint (kLabelsMetadataKey): checked by
// parse_class_names (printable one-line UTF-8, distinct) and against its number of classes;
// FormatError when absent or malformed.
inline std::vector<std::string> read_label_names(const std::string& path) {
  const SafetensorsHeader h = read_safetensors_header(path);
  const TnnConfig cfg = read_config(path);
  const std::string where = "checkpoint " + quote_path(path) + ": metadata '" + kLabelsMetadataKey + "'";
  auto it = h.metadata.find(kLabelsMetadataKey);
  if (it == h.metadata.end())
    fail<FormatError>("checkpoint ", quote_path(path), ": expected the metadata key '", kLabelsMetadataKey,
                      "' (the class names), it is missing");
  std::vector<std::string> names = parse_class_names(it->second, where);
  if (static_cast<Index>(names.size()) != cfg.num_classes)
    fail<FormatError>(where, ": expected ", cfg.num_classes, " names (num_classes), got ", names.size());
  return names;
}

// The training truncation length stored in a classifier checkpoint (kSeqLenMetadataKey), or 0.
inline Index read_train_seq_len(const std::string& path) {
  const SafetensorsHeader h = read_safetensors_header(path);
  auto it = h.metadata.find(kSeqLenMetadataKey);
  if (it == h.metadata.end()) return 0;
  Index v = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9' || v > (Index(1) << 40))
      fail<FormatError>("checkpoint ", quote_path(path), ": metadata '", kSeqLenMetadataKey,
                        "': expected a decimal length, got ", quote(it->second, 40));
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace tnn
