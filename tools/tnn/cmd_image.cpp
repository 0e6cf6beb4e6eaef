// The image classifier in `tnn eval`, `tnn classify --images` and `tnn grad` (image_cli.hpp).
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

#include "common.hpp"
#include "image_cli.hpp"

namespace tnncli {
namespace {

// The checkpoint's image classifier (its config checked against the file's tensors before it
// is allocated) and class names; a one-line error for any other checkpoint.
template <class T>
tnn::TnnImageClassifier<T> load_image_model(const std::string& checkpoint) {
  const tnn::TnnConfig cfg = tnn::read_config(checkpoint);
  if (cfg.task != tnn::Task::Image)
    tnn::fail<tnn::ConfigError>("--checkpoint ", tnn::quote_path(checkpoint),
                                ": expected an image classifier (config task 'image'), got task '",
                                tnn::to_string(cfg.task), "'");
  return tnn::load_model<tnn::TnnImageClassifier<T>>(checkpoint);
}

// The image file `path` for `model`: read, and checked to fit it.
tnn::ImageSet read_images_for(const tnn::TnnImageClassifier<float>& model, const std::string& path, const char* flag,
                              bool require_labels) {
  tnn::ImageSet set = tnn::read_image_set(path, require_labels);
  tnn::check_image_set_fits(set, model.config(), std::string(flag) + " " + tnn::quote_path(path));
  return set;
}

}  // namespace

void eval_image(const std::string& checkpoint, const std::string& data, long long batch, bool json) {
  if (batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", batch);
  tnn::TnnImageClassifier<float> model = load_image_model<float>(checkpoint);
  const tnn::ImageSet set = read_images_for(model, data, "--data", /*require_labels=*/true);
  const tnn::EvalResult r = tnn::EvalResult::from(tnn::image_eval_sums(model, set, batch));
  const tnn::Index correct = static_cast<tnn::Index>(std::llround(r.accuracy * double(r.tokens)));
  if (json) {
    nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss}, {"examples", r.tokens}, {"correct", correct}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("accuracy %.4f (%lld of %lld images), loss %.4f nats\n", r.accuracy, (long long)correct,
                (long long)r.tokens, r.loss);
  }
}

void classify_images(const std::string& checkpoint, const std::string& images, long long batch, bool json) {
  if (batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", batch);
  tnn::TnnImageClassifier<float> model = load_image_model<float>(checkpoint);
  const std::vector<std::string> names = tnn::read_label_names(checkpoint);
  const tnn::ImageSet set = read_images_for(model, images, "--images", /*require_labels=*/false);
  const tnn::Index K = model.config().num_classes;
  std::vector<tnn::Index> idx(static_cast<std::size_t>(set.size()));
  std::iota(idx.begin(), idx.end(), tnn::Index(0));
  std::fflush(stdout);
  tnn::OutputStream out = tnn::OutputStream::standard_output();  // a closed pipe stops the work at the next batch
  tnn::Tensor<float> x;
  tnn::Tensor<std::int32_t> unused;
  for (tnn::Index i = 0; i < set.size(); i += batch) {
    const tnn::Index n = std::min<tnn::Index>(batch, set.size() - i);
    tnn::make_image_batch(set, idx.data() + i, n, x, unused);
    const tnn::Tensor<float>& z = model.forward(x);
    for (tnn::Index r = 0; r < n; ++r) {
      const float* zr = z.data() + r * K;
      const tnn::Index best = std::max_element(zr, zr + K) - zr;
      if (json) {
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

void grad_image(const std::string& checkpoint, const std::string& batch_path, const std::string& out, bool f64) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    tnn::TnnImageClassifier<T> model = load_image_model<T>(checkpoint);
    const tnn::SafetensorsFile f = tnn::read_safetensors(batch_path);
    const std::string where = "batch " + tnn::quote_path(batch_path);
    for (const char* name : {"images", "labels"})
      if (!f.has(name))
        tnn::fail<tnn::FormatError>(where, ": expected a tensor named '", name,
                                    "' (an image classifier's batch holds images [B, H, W, Ch], labels [B]), it is missing");
    if (!tnn::dtype_is_float(f.dtype("images")))
      tnn::fail<tnn::FormatError>(where, ": tensor 'images': expected dtype F32 or F64 (the values the model sees), got ",
                                  tnn::dtype_name(f.dtype("images")));
    if (f.dtype("labels") != tnn::Dtype::I32)
      tnn::fail<tnn::FormatError>(where, ": tensor 'labels': expected dtype I32, got ", tnn::dtype_name(f.dtype("labels")));
    tnn::Tensor<T> images;
    tnn::Tensor<std::int32_t> labels;
    const tnn::TnnConfig& c = model.config();
    const tnn::Shape& shape = f.shape("images");
    if (shape.size() != 4 || shape[0] < 1 || shape[1] != c.image_height || shape[2] != c.image_width ||
        shape[3] != c.image_channels)
      tnn::fail<tnn::ShapeError>(where, ": tensor 'images': expected shape [B >= 1, ", c.image_height, ", ",
                                 c.image_width, ", ", c.image_channels, "] (the model's images), got ",
                                 tnn::shape_str(shape));
    f.get_into("images", images);
    f.get_into("labels", labels);
    for (tnn::Index i = 0; i < images.size(); ++i)
      if (!std::isfinite(images[i]))
        tnn::fail<tnn::ValueError>(where, ": tensor 'images': element ", i, " is ", images[i], "; expected finite values");
    model.zero_grad();
    const T loss = model.forward(images, labels);  // checks shapes and label ranges
    model.backward();
    write_grad_output(out, loss, model);
  };
  if (f64)
    run(double{});
  else
    run(float{});
}

}  // namespace tnncli
