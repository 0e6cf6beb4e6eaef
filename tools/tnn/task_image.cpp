// The image classifier (task image, tnn::TnnImageClassifier: a 2-D TNN over a grid of patches) in
// every command: train on an image file (train/image_data.hpp: images U8 or I32 [M, H, W, Ch],
// labels I32 [M], optional class names), eval (accuracy and loss), classify --images, grad
// (images F32/F64 [B, H, W, Ch], labels [B]).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/io/safetensors.hpp>
#include <tnn/io/stream.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/classify.hpp>
#include <tnn/train/image_data.hpp>
#include <tnn/train/image_file.hpp>

#include "common.hpp"
#include "data_record.hpp"
#include "processes.hpp"
#include "session.hpp"
#include "tasks.hpp"

namespace tnncli {
namespace {

// The image file `path` for `model`: read, and checked to fit it.
tnn::ImageSet read_images_for(const tnn::TnnImageClassifier<float>& model, const std::string& path, const char* flag,
                              bool require_labels) {
  tnn::ImageSet set = tnn::read_image_set(path, require_labels);
  tnn::check_image_set_fits(set, model.config(), std::string(flag) + " " + tnn::quote_path(path));
  return set;
}

}  // namespace

int train_image(TrainOptions& o) {
  TrainSession session(o);
  session.check_one_process(tnn::Task::Image);

  // Class names: the saved run's, or the file's, or "0".."K-1". Validation: --valid, or else the
  // last --valid-fraction of --data's images.
  tnn::ImageSet train = tnn::read_image_set(o.data);
  std::vector<std::string> names = train.names;
  if (o.resume) {
    names = tnn::read_label_names(o.out);
  } else {
    names = tnn::image_class_names(train, "--data " + tnn::quote_path(o.data));  // bounded by the file
  }
  const auto classes = static_cast<tnn::Index>(names.size());
  const std::vector<std::uint8_t> bytes = tnn::read_file_bytes(o.data);  // for the checkpoint's data record
  tnn::ImageSet valid;
  std::string held_out = "none";
  if (!o.valid.empty()) {
    valid = tnn::read_image_set(o.valid);
  } else if (o.valid_fraction > 0) {
    held_out = "tail-examples";
    valid = tnn::take_last_images(train, session.data_record(bytes, held_out).held_examples(train.size()));
  }

  const tnn::TnnConfig cfg = session.model_config({{"task", "image"},
                                                   {"vocab_size", 0},
                                                   {"causal", false},
                                                   {"image_height", train.height()},
                                                   {"image_width", train.width()},
                                                   {"image_channels", train.channels()},
                                                   {"num_classes", classes}});
  tnn::check_image_set_fits(train, cfg, "--data " + tnn::quote_path(o.data));
  if (cfg.num_classes != classes)
    tnn::fail<tnn::ConfigError>("--config: num_classes is ", cfg.num_classes, " but --data has ", classes, " classes");
  if (valid.size() > 0)
    tnn::check_image_set_fits(valid, cfg, "--valid " + tnn::quote_path(o.valid.empty() ? o.data : o.valid));

  tnn::TnnImageClassifier<float> model(cfg);
  model.init_weights(o.seed);
  session.prepare(model);
  tnn::ImageTask<float> task(model, train, valid, o.batch, o.seed, names);
  return session.train(
      model, task, cfg, session.data_record(bytes, held_out), {{"task", "image"}, {"labels", names}},
      TrainSession::Validation::Accuracy, [&] {
        std::fprintf(stderr,
                     "model: %s, image classifier, %lldx%lldx%lld images, %lldx%lld patches (a %lldx%lld grid), "
                     "%lld classes, %s pooling); data: %lld train / %lld valid images; %s\n",
                     model_summary(cfg, model.num_parameters()).c_str(), (long long)cfg.image_height,
                     (long long)cfg.image_width, (long long)cfg.image_channels, (long long)cfg.patch_size,
                     (long long)cfg.patch_size, (long long)cfg.grid_h(), (long long)cfg.grid_w(),
                     (long long)cfg.num_classes, tnn::to_string(cfg.pooling), (long long)train.size(),
                     (long long)valid.size(), count_of(current_threads(), "thread").c_str());
      });
}

void eval_image(const EvalOptions& o) {
  if (o.batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o.batch);
  const std::string& path = o.checkpoints.front();
  tnn::TnnImageClassifier<float> model = tnn::load_model<tnn::TnnImageClassifier<float>>(path);
  tnn::ImageSet set = read_images_for(model, o.data, "--data", /*require_labels=*/true);
  const EvalScope scope =
      eval_scope(path, tnn::read_file_bytes(o.data), static_cast<std::size_t>(set.size()), o);
  if (static_cast<tnn::Index>(scope.examples) < set.size())
    set = tnn::take_last_images(set, static_cast<tnn::Index>(scope.examples));
  print_accuracy(tnn::EvalResult::from(tnn::image_eval_sums(model, set, o.batch)), " images", scope, o.json);
}

void classify_images(const ClassifyOptions& o) {
  if (o.images.empty())
    tnn::fail<tnn::ValueError>("--checkpoint ", tnn::quote_path(o.checkpoint),
                               " is an image classifier: expected --images FILE (a safetensors image file)");
  tnn::TnnImageClassifier<float> model = tnn::load_model<tnn::TnnImageClassifier<float>>(o.checkpoint);
  const std::vector<std::string> names = tnn::read_label_names(o.checkpoint);
  const tnn::ImageSet set = read_images_for(model, o.images, "--images", /*require_labels=*/false);
  const tnn::Index K = model.config().num_classes;
  std::vector<tnn::Index> idx(static_cast<std::size_t>(set.size()));
  std::iota(idx.begin(), idx.end(), tnn::Index(0));
  std::fflush(stdout);
  tnn::OutputStream out = tnn::OutputStream::standard_output();  // a closed pipe stops the work at the next batch
  tnn::Tensor<float> x;
  tnn::Tensor<std::int32_t> unused;
  for (tnn::Index i = 0; i < set.size(); i += o.batch) {
    const tnn::Index n = std::min<tnn::Index>(o.batch, set.size() - i);
    tnn::make_image_batch(set, idx.data() + i, n, x, unused);
    const tnn::Tensor<float>& z = model.forward(x);
    for (tnn::Index r = 0; r < n; ++r) {
      const float* zr = z.data() + r * K;
      const tnn::Index best = std::max_element(zr, zr + K) - zr;
      if (o.json) {
        double sum = 0;
        for (tnn::Index k = 0; k < K; ++k) sum += std::exp(double(zr[k] - zr[best]));
        nlohmann::json probs = nlohmann::json::object();
        for (tnn::Index k = 0; k < K; ++k)
          probs[names[static_cast<std::size_t>(k)]] = std::exp(double(zr[k] - zr[best])) / sum;
        out.write(nlohmann::json{{"label", names[static_cast<std::size_t>(best)]}, {"probabilities", probs}}.dump());
      } else {
        out.write(names[static_cast<std::size_t>(best)]);
      }
      out.put('\n');
    }
    out.flush();
  }
  out.close();
}

void grad_image(const GradOptions& o) {
  run_in_dtype(o.dtype, [&](auto tag) {
    using T = decltype(tag);
    tnn::TnnImageClassifier<T> model = tnn::load_model<tnn::TnnImageClassifier<T>>(o.checkpoint);
    const tnn::SafetensorsFile f = read_grad_inputs(o.inputs, {"images", "labels"},
                                                    "an image classifier's inputs are images [B, H, W, Ch], labels [B]");
    const std::string where = "--inputs " + tnn::quote_path(o.inputs);
    if (!tnn::dtype_is_float(f.dtype("images")))
      tnn::fail<tnn::FormatError>(where, ": tensor 'images': expected dtype F32 or F64 (the values the model sees), got ",
                                  tnn::dtype_name(f.dtype("images")));
    if (f.dtype("labels") != tnn::Dtype::I32)
      tnn::fail<tnn::FormatError>(where, ": tensor 'labels': expected dtype I32, got ", tnn::dtype_name(f.dtype("labels")));
    const tnn::TnnConfig& c = model.config();
    const tnn::Shape& shape = f.shape("images");
    if (shape.size() != 4 || shape[0] < 1 || shape[1] != c.image_height || shape[2] != c.image_width ||
        shape[3] != c.image_channels)
      tnn::fail<tnn::ShapeError>(where, ": tensor 'images': expected shape [B >= 1, ", c.image_height, ", ",
                                 c.image_width, ", ", c.image_channels, "] (the model's images), got ",
                                 tnn::shape_str(shape));
    tnn::Tensor<T> images;
    tnn::Tensor<std::int32_t> labels;
    f.get_into("images", images);
    f.get_into("labels", labels);
    for (tnn::Index i = 0; i < images.size(); ++i)
      if (!std::isfinite(images[i]))
        tnn::fail<tnn::ValueError>(where, ": tensor 'images': element ", i, " is ", images[i], "; expected finite values");
    write_grad_output(o.out, model, images, labels);  // checks shapes and label ranges
  });
}

}  // namespace tnncli
