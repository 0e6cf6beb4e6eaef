// The image classifier: patch layout, the image config (JSON round trip, validation),
// central-difference gradients of the whole model (input patches through every layer to
// the loss) on both Toeplitz paths, and a checkpoint round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "gradcheck.hpp"
#include "temp_files.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/models.hpp"

using namespace tnn;

namespace {

TnnConfig image_config(Index hi = 4, Index wi = 6, Index ch = 2, Index p = 2) {
  return TnnConfig::from_json({{"task", "image"}, {"dim", 4}, {"layers", 2}, {"heads", 2}, {"expand_ratio", 1},
                               {"rpe_dim", 4}, {"rpe_layers", 1}, {"causal", false}, {"decay", "learned"},
                               {"gamma", 0.9}, {"norm_type", "layernorm"}, {"num_classes", 3}, {"image_height", hi},
                               {"image_width", wi}, {"image_channels", ch}, {"patch_size", p}});
}

template <class T>
void randomize(TnnImageClassifier<T>& m, std::uint64_t seed) {
  Rng rng(seed);
  for (auto& [n, p] : m.named_parameters())
    if (p->trainable)
      for (auto& v : p->value) v = static_cast<T>(rng.normal(0.0, 0.5));
}

Tensor<std::int32_t> labels_of(std::initializer_list<std::int32_t> v) {
  Tensor<std::int32_t> t({Index(v.size())});
  Index i = 0;
  for (auto x : v) t[i++] = x;
  return t;
}

}  // namespace

TEST(ImageClassifier, PatchesAreRowMajorGridsOfRowMajorPatches) {
  Tensor<double> img({1, 4, 6, 2});
  for (Index i = 0; i < img.size(); ++i) img[i] = double(i);
  Tensor<double> p;
  image_to_patches(img, 2, p);
  ASSERT_EQ(p.shape(), (Shape{1, 6, 8}));
  // token gi * 3 + gj, feature (pi * 2 + pj) * 2 + ch = pixel (2 gi + pi, 2 gj + pj, ch)
  for (Index gi = 0; gi < 2; ++gi)
    for (Index gj = 0; gj < 3; ++gj)
      for (Index pi = 0; pi < 2; ++pi)
        for (Index pj = 0; pj < 2; ++pj)
          for (Index ch = 0; ch < 2; ++ch)
            EXPECT_EQ(p[(gi * 3 + gj) * 8 + (pi * 2 + pj) * 2 + ch], img[((2 * gi + pi) * 6 + 2 * gj + pj) * 2 + ch]);
  EXPECT_THROW(image_to_patches(Tensor<double>({1, 5, 6, 2}), 2, p), ShapeError);
}

TEST(ImageClassifier, ConfigRoundTripsAndRejectsImpossibleSizes) {
  const TnnConfig c = image_config();
  const TnnConfig back = TnnConfig::parse(c.to_json().dump());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.grid_h(), 2);
  EXPECT_EQ(back.grid_w(), 3);
  EXPECT_FALSE(c.to_json().contains("image_height") && TnnConfig{}.to_json().contains("image_height"));
  auto bad = c;
  bad.patch_size = 4;  // does not divide 6
  EXPECT_THROW(bad.validate(), ConfigError);
  bad = c;
  bad.vocab_size = 10;
  EXPECT_THROW(bad.validate(), ConfigError);
  bad = c;
  bad.causal = true;
  EXPECT_THROW(bad.validate(), ConfigError);
  TnnConfig lm = TnnConfig::parse(R"({"vocab_size": 5, "dim": 4, "layers": 1})");
  lm.patch_size = 2;  // an image key on an LM config
  EXPECT_THROW(lm.validate(), ConfigError);
  EXPECT_THROW(TnnImageClassifier<double>{lm}, ConfigError);
}

TEST(ImageClassifier, GradientsMatchCentralDifferences) {
  for (auto method : {ToeplitzMethod::Direct, ToeplitzMethod::FFT}) {
    SCOPED_TRACE(method == ToeplitzMethod::FFT ? "fft" : "direct");
    TnnImageClassifier<double> m(image_config());
    m.init_weights(1);
    randomize(m, 2);
    for (auto& l : m.backbone.layers) l.token_mixer.gtu2d()->toep.method = method;
    auto images = gradcheck::random_tensor({2, 4, 6, 2}, 3);
    const auto labels = labels_of({2, 0});
    m.zero_grad();
    m.forward(images, labels);
    m.backward();
    auto loss = [&] {
      TnnImageClassifier<double>& mm = m;
      return double(mm.forward(images, labels));
    };
    gradcheck::Options opt;
    opt.max_entries = 24;
    for (const auto& r : gradcheck::check_params(m.named_parameters(), loss, opt)) EXPECT_TRUE(gradcheck::ok(r, 1e-6));
  }
}

TEST(ImageClassifier, LogitsDoNotDependOnTheToeplitzPath) {
  TnnImageClassifier<double> m(image_config(8, 8, 1, 2));
  m.init_weights(4);
  auto images = gradcheck::random_tensor({3, 8, 8, 1}, 5);
  for (auto& l : m.backbone.layers) l.token_mixer.gtu2d()->toep.method = ToeplitzMethod::Direct;
  const Tensor<double> direct = m.forward(images);
  for (auto& l : m.backbone.layers) l.token_mixer.gtu2d()->toep.method = ToeplitzMethod::FFT;
  EXPECT_LT(gradcheck::max_rel_diff(m.forward(images), direct), 1e-12);
}

TEST(ImageClassifier, CheckpointRoundTripGivesTheSameLogits) {
  TnnImageClassifier<float> m(image_config());
  m.init_weights(6);
  auto images = gradcheck::random_tensor({2, 4, 6, 2}, 7);
  Tensor<float> img(images.shape());
  for (Index i = 0; i < img.size(); ++i) img[i] = float(images[i]);
  const Tensor<float> before = m.forward(img);
  tnn_test::TempDir dir("img_");
  const std::string path = dir.file("img.safetensors");
  save_model(path, m);
  auto loaded = load_model<TnnImageClassifier<float>>(path);
  EXPECT_EQ(loaded.config().to_json(), m.config().to_json());
  const Tensor<float> after = loaded.forward(img);
  ASSERT_EQ(after.shape(), before.shape());
  for (Index i = 0; i < after.size(); ++i) EXPECT_EQ(after[i], before[i]);
  EXPECT_THROW(loaded.forward(Tensor<float>({2, 4, 4, 2})), ShapeError);
  EXPECT_THROW(loaded.backward(), Error);  // logits-only forward
}

// ---- the image file format and the training step (tnn/train/image_data.hpp) ----
#include "tnn/train/image_data.hpp"

namespace {
void write_image_file(const std::string& path, const Tensor<std::int32_t>& images, const Tensor<std::int32_t>& labels,
                      const std::string& names_json = "") {
  SafetensorsWriter w;
  w.add("images", images);
  w.add("labels", labels);
  if (!names_json.empty()) w.set_metadata(kLabelsMetadataKey, names_json);
  w.write(path);
}
Tensor<std::int32_t> pixel_images(Index M, Index H, Index W) {
  Tensor<std::int32_t> t({M, H, W, 1});
  for (Index i = 0; i < t.size(); ++i) t[i] = std::int32_t((i * 37) % 256);
  return t;
}
}  // namespace

TEST(ImageData, ReadsTheDocumentedFormatAndScalesPixelsToUnitRange) {
  tnn_test::TempDir dir("imgdata_");
  const auto images = pixel_images(5, 2, 3);
  write_image_file(dir.file("a.safetensors"), images, labels_of({0, 2, 1, 2, 0}), R"(["x","y","z"])");
  const ImageSet s = read_image_set(dir.file("a.safetensors"));
  EXPECT_EQ(s.size(), 5);
  EXPECT_EQ(s.num_classes(), 3);
  EXPECT_EQ(s.names, (std::vector<std::string>{"x", "y", "z"}));
  Tensor<float> batch;
  Tensor<std::int32_t> lab;
  const Index idx[] = {3, 1};
  make_image_batch(s, idx, 2, batch, lab);
  ASSERT_EQ(batch.shape(), (Shape{2, 2, 3, 1}));
  EXPECT_EQ(lab[0], 2);
  EXPECT_EQ(lab[1], 2);
  for (Index k = 0; k < 6; ++k) EXPECT_FLOAT_EQ(batch[k], float(images[3 * 6 + k]) / 255.0f);
}

TEST(ImageData, RejectsFilesThatBreakTheFormat) {
  tnn_test::TempDir dir("imgdata_");
  auto bad_pixel = pixel_images(2, 2, 2);
  bad_pixel[3] = 256;
  write_image_file(dir.file("p.safetensors"), bad_pixel, labels_of({0, 1}));
  EXPECT_THROW(read_image_set(dir.file("p.safetensors")), ValueError);
  write_image_file(dir.file("l.safetensors"), pixel_images(2, 2, 2), labels_of({0, 1, 1}));
  try {
    read_image_set(dir.file("l.safetensors"));
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("expected shape [2]"), std::string::npos) << e.what();
  }
  write_image_file(dir.file("n.safetensors"), pixel_images(2, 2, 2), labels_of({0, 1}), R"(["only one"])");
  EXPECT_THROW(read_image_set(dir.file("n.safetensors")), FormatError);
}

// Pixels are checked whether or not the file has labels (tnn classify --images reads files without).
TEST(ImageData, PixelRangeIsCheckedWithoutLabelsToo) {
  tnn_test::TempDir dir("imgdata_");
  auto bad = pixel_images(2, 2, 2);
  bad[5] = 300;
  SafetensorsWriter w;
  w.add("images", bad);
  w.write(dir.file("nolabels.safetensors"));
  EXPECT_THROW(read_image_set(dir.file("nolabels.safetensors"), /*require_labels=*/false), ValueError);
}

// The classes of a file without names come from its labels, bounded by its number of images
// before anything is allocated: a tiny file whose one label is 2^31 - 1 is refused at once.
TEST(ImageData, ClassesFromLabelsAreBoundedByTheFile) {
  tnn_test::TempDir dir("imgdata_");
  write_image_file(dir.file("huge.safetensors"), pixel_images(1, 2, 2), labels_of({2147483647}));
  const ImageSet huge = read_image_set(dir.file("huge.safetensors"));
  try {
    image_class_names(huge, "--data 'huge'");
    FAIL() << "no exception";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("expected class ids below 2 (the number of images)"), std::string::npos)
        << e.what();
  }
  write_image_file(dir.file("three.safetensors"), pixel_images(4, 2, 2), labels_of({0, 2, 1, 2}));
  EXPECT_EQ(image_class_names(read_image_set(dir.file("three.safetensors")), "t"),
            (std::vector<std::string>{"0", "1", "2"}));
  // Named classes may outnumber the images; labels must then be below the number of names.
  write_image_file(dir.file("named.safetensors"), pixel_images(1, 2, 2), labels_of({4}), R"(["a","b","c","d","e"])");
  EXPECT_EQ(image_class_names(read_image_set(dir.file("named.safetensors")), "t").size(), 5u);
  write_image_file(dir.file("dup.safetensors"), pixel_images(2, 2, 2), labels_of({0, 1}), R"(["a","a"])");
  EXPECT_THROW(read_image_set(dir.file("dup.safetensors")), FormatError);
  write_image_file(dir.file("nl.safetensors"), pixel_images(2, 2, 2), labels_of({0, 1}), R"(["a","b\nc"])");
  EXPECT_THROW(read_image_set(dir.file("nl.safetensors")), FormatError);
}

TEST(ImageData, TrainingLowersTheLossAndSamplingIsAFunctionOfTheStep) {
  tnn_test::TempDir dir("imgdata_");
  // Two classes a model can tell apart: bright top half (label 1) or bright bottom half (0).
  const Index M = 16;
  Tensor<std::int32_t> images({M, 4, 4, 1}), labels({M});
  Rng rng(9);
  for (Index m = 0; m < M; ++m) {
    labels[m] = std::int32_t(m % 2);
    for (Index i = 0; i < 4; ++i)
      for (Index j = 0; j < 4; ++j)
        images[(m * 4 + i) * 4 + j] = std::int32_t(((i < 2) == (m % 2 == 1) ? 200 : 20) + rng.below(30));
  }
  write_image_file(dir.file("t.safetensors"), images, labels);
  const ImageSet set = read_image_set(dir.file("t.safetensors"));
  ImageSampler a(set, 4, 3), b(set, 4, 3);
  Tensor<float> ia, ib;
  Tensor<std::int32_t> la, lb;
  a.sample(7, ia, la);
  b.sample(2, ib, lb);
  b.sample(7, ib, lb);
  EXPECT_EQ(gradcheck::max_rel_diff(ia, ib), 0.0);

  auto cfg = image_config(4, 4, 1, 2);
  cfg.num_classes = 2;
  TnnImageClassifier<float> model(cfg);
  model.init_weights(1);
  ImageTask<float> task(model, set, set, 8, 1, {"bottom", "top"});
  TrainerConfig tc;
  tc.steps = 60;
  tc.schedule = LrSchedule{ScheduleKind::Cosine, 1e-2, 1e-3, 5, 60};
  tc.eval_every = 0;
  const double before = image_eval_sums(model, set, 8).loss_sum / double(M);
  Trainer<float> trainer(task, tc);
  trainer.run();
  const EvalSums after = image_eval_sums(model, set, 8);
  EXPECT_LT(after.loss_sum / double(M), 0.5 * before);
  EXPECT_EQ(after.correct, M);
}
