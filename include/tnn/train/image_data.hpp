// Image classification data and the trainer's step for it: labelled images read from a
// safetensors file (the format below), batches scaled to [0, 1], and ImageTask, the TrainTask
// that `tnn train --task image` runs on a TnnImageClassifier.
//
// Image file format (a safetensors file, e.g. written by examples/digits_to_safetensors.py):
//   images  U8 [M, H, W, Ch]   pixel values 0..255 (rows top to bottom, channels last); I32 or
//                              I64 with values 0..255 are accepted too
//   labels  I32 [M]            class ids 0..K-1 (any integer dtype; optional for `tnn classify`);
//                              without class names K is at most the number of images
//   metadata "tnn.labels" (optional): a JSON array of the K class names (model/class_names.hpp)
// M, H, W, Ch >= 1. A model takes the file's images when H, W, Ch equal its config's
// image_height, image_width, image_channels (check_image_set_fits).
#pragma once

#include <algorithm>
#include <map>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tnn/core/error.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/infer/evaluate.hpp"
#include "tnn/io/safetensors.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/image_file.hpp"
#include "tnn/train/data.hpp"
#include "tnn/train/trainer.hpp"

namespace tnn {

// ShapeError unless a model of `cfg` (task image) takes the images of `set` (height, width and
// channels equal the config's) and ValueError unless every label is below its num_classes.
// `where` names the file for the message.
inline void check_image_set_fits(const ImageSet& set, const TnnConfig& cfg, const std::string& where) {
  if (set.height() != cfg.image_height || set.width() != cfg.image_width || set.channels() != cfg.image_channels)
    fail<ShapeError>(where, ": expected images of ", cfg.image_height, " x ", cfg.image_width, " pixels x ",
                     cfg.image_channels, " channels (the model's image_height, image_width, image_channels), got ",
                     set.height(), " x ", set.width(), " x ", set.channels());
  for (Index i = 0; i < set.labels.size(); ++i)
    if (set.labels[i] >= cfg.num_classes)
      fail<ValueError>(where, ": tensor 'labels': expected class ids 0..", cfg.num_classes - 1,
                       " (the model's num_classes ", cfg.num_classes, "), got ", set.labels[i], " at ", i);
}

// Removes the last n images of `set` (and their labels) and returns them, with the same names.
inline ImageSet take_last_images(ImageSet& set, Index n) {
  if (n < 0 || n > set.size()) fail<ValueError>("take_last_images: expected 0..", set.size(), " images, got ", n);
  const Index keep = set.size() - n, per = set.height() * set.width() * set.channels();
  ImageSet tail;
  tail.names = set.names;
  Tensor<std::int32_t> head({keep, set.height(), set.width(), set.channels()});
  tail.images.resize({n, set.height(), set.width(), set.channels()});
  std::copy(set.images.data(), set.images.data() + keep * per, head.data());
  std::copy(set.images.data() + keep * per, set.images.data() + set.size() * per, tail.images.data());
  if (set.has_labels()) {
    Tensor<std::int32_t> head_labels({keep});
    tail.labels.resize({n});
    std::copy(set.labels.data(), set.labels.data() + keep, head_labels.data());
    std::copy(set.labels.data() + keep, set.labels.data() + set.size(), tail.labels.data());
    set.labels = std::move(head_labels);
  }
  set.images = std::move(head);
  return tail;
}

// images idx[0..n) of `set` as floats in [0, 1] [n, H, W, Ch], and their labels [n] (0 for a
// set without labels).
template <class T>
void make_image_batch(const ImageSet& set, const Index* idx, Index n, Tensor<T>& images, Tensor<std::int32_t>& labels) {
  const Index H = set.height(), W = set.width(), Ch = set.channels(), per = H * W * Ch;
  images.resize({n, H, W, Ch});
  labels.resize({n});
  for (Index i = 0; i < n; ++i) {
    const std::int32_t* src = set.images.data() + idx[i] * per;
    T* dst = images.data() + i * per;
    for (Index k = 0; k < per; ++k) dst[k] = static_cast<T>(src[k]) / T(255);
    labels[i] = set.has_labels() ? set.labels[idx[i]] : 0;
  }
}

// Training batches as a pure function of (seed, step): epoch e is a seeded permutation of the
// images cut into batches (the last M % B of a permutation are skipped that epoch).
class ImageSampler {
 public:
  ImageSampler(const ImageSet& set, Index batch, std::uint64_t seed) : set_(&set), batch_(batch), seed_(seed) {
    if (batch < 1) fail<ValueError>("batch: expected >= 1, got ", batch);
    if (set.size() < batch) fail<ValueError>("image data: expected at least --batch = ", batch, " images, got ", set.size());
  }
  ImageSampler(ImageSet&&, Index, std::uint64_t) = delete;

  template <class T>
  void sample(std::int64_t step, Tensor<T>& images, Tensor<std::int32_t>& labels) {
    if (step < 0) fail<ValueError>("image sampler step: expected >= 0, got ", step);
    const Index per_epoch = set_->size() / batch_;
    const std::int64_t epoch = step / per_epoch;
    if (epoch != epoch_) {
      Rng rng(detail::stream_seed(seed_, detail::kTrainStream, static_cast<std::uint64_t>(epoch)));
      perm_.resize(static_cast<std::size_t>(set_->size()));
      std::iota(perm_.begin(), perm_.end(), Index(0));
      for (Index i = set_->size() - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.below(std::uint64_t(i + 1))]);
      epoch_ = epoch;
    }
    make_image_batch(*set_, perm_.data() + (step % per_epoch) * batch_, batch_, images, labels);
  }

 private:
  const ImageSet* set_;
  Index batch_;
  std::uint64_t seed_;
  std::int64_t epoch_ = -1;
  std::vector<Index> perm_;  // [M] this epoch's order
};

// Loss sums and argmax accuracy of `model` over images first, first + stride, ... in batches
// of `batch`: EvalSums with tokens = images. predictions (if given) [M] gets each argmax.
template <class T>
EvalSums image_eval_sums(TnnImageClassifier<T>& model, const ImageSet& set, Index batch, Index first = 0,
                         Index stride = 1, std::vector<std::int32_t>* predictions = nullptr) {
  if (batch < 1) fail<ValueError>("batch: expected >= 1, got ", batch);
  std::vector<Index> idx;
  for (Index i = first; i < set.size(); i += stride) idx.push_back(i);
  if (predictions) predictions->assign(static_cast<std::size_t>(set.size()), -1);
  EvalSums s;
  Tensor<T> images;
  Tensor<std::int32_t> labels;
  std::vector<std::int32_t> pred;  // [n] argmax of each row of a batch
  for (std::size_t i = 0; i < idx.size(); i += static_cast<std::size_t>(batch)) {
    const Index n = std::min<Index>(batch, static_cast<Index>(idx.size() - i));
    make_image_batch(set, idx.data() + i, n, images, labels);
    const T loss = model.forward(images, labels);
    s.loss_sum += static_cast<double>(loss) * static_cast<double>(n);
    s.tokens += n;
    pred.resize(static_cast<std::size_t>(n));
    add_argmax_hits(s, model.logits().data(), labels.data(), n, model.logits().dim(1), pred.data());
    if (predictions)
      for (Index r = 0; r < n; ++r) (*predictions)[static_cast<std::size_t>(idx[i + static_cast<std::size_t>(r)])] = pred[r];
  }
  return s;
}

// The image classifier's training step for tnn::Trainer: loss = mean cross-entropy over the
// batch, targets = B (images), tokens = B * patches.
template <class T>
class ImageTask : public SupervisedTask<TnnImageClassifier<T>> {
 public:
  ImageTask(TnnImageClassifier<T>& model, const ImageSet& train, const ImageSet& valid, Index batch,
            std::uint64_t seed, std::vector<std::string> label_names)
      : SupervisedTask<TnnImageClassifier<T>>(model, seed), sampler_(train, batch, seed), valid_(&valid), batch_(batch),
        names_(std::move(label_names)) {
    if (static_cast<Index>(names_.size()) != model.config().num_classes)
      fail<ValueError>("image task: expected ", model.config().num_classes, " label names (the model's classes), got ",
                       names_.size());
    labels_json_ = class_names_json(names_, "image task: label names");  // refused now, not at the first save
  }
  ImageTask(TnnImageClassifier<T>&, ImageSet&&, const ImageSet&, Index, std::uint64_t, std::vector<std::string>) = delete;
  ImageTask(TnnImageClassifier<T>&, const ImageSet&, ImageSet&&, Index, std::uint64_t, std::vector<std::string>) = delete;

  bool has_validation() const override { return valid_->size() > 0; }
  EvalSums validate(Index part, Index parts) override {
    if (valid_->size() == 0) return {};
    return image_eval_sums(this->model(), *valid_, batch_, part, parts);
  }

 protected:
  using typename SupervisedTask<TnnImageClassifier<T>>::Batch;
  void sample(std::int64_t step, Batch& out) override {
    sampler_.sample(step, out.data, out.target);
    out.tokens = out.target.size() * this->model().input.tokens();
  }
  std::map<std::string, std::string> metadata() const override {
    return {{kLabelsMetadataKey, labels_json_}};
  }

 private:
  ImageSampler sampler_;
  const ImageSet* valid_;
  Index batch_;
  std::vector<std::string> names_;
  std::string labels_json_;  // names_ as the tnn.labels metadata
};

}  // namespace tnn
