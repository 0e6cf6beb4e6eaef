// Train a 2-D TNN image classifier on an image file, then report test accuracy.
//   train_images TRAIN TEST [STEPS] [PATCH] [DIM] [LAYERS]  ->  writes train_images.safetensors
// TRAIN, TEST: safetensors image files (images U8 [M, H, W, Ch] 0..255, labels I32 [M];
// the format is described in tnn/train/image_data.hpp; examples/digits_to_safetensors.py
// writes the UCI digits in it).
#include <algorithm>
#include <cstdio>
#include <string>

#include <tnn/tnn.hpp>
#include <tnn/train/image_data.hpp>

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TRAIN TEST [STEPS] [PATCH] [DIM] [LAYERS]\n", argv[0]);
    return 2;
  }
  const tnn::ImageSet train = tnn::read_image_set(argv[1]);
  const tnn::ImageSet test = tnn::read_image_set(argv[2]);
  const std::int64_t steps = argc > 3 ? std::stoll(argv[3]) : 600;

  tnn::TnnConfig cfg;
  cfg.task = tnn::Task::Image;
  cfg.vocab_size = 0;
  cfg.causal = false;  // image tokens see each other in every direction
  cfg.image_height = train.height();
  cfg.image_width = train.width();
  cfg.image_channels = train.channels();
  cfg.patch_size = argc > 4 ? std::stoll(argv[4]) : 1;
  cfg.dim = argc > 5 ? std::stoll(argv[5]) : 64;
  cfg.layers = argc > 6 ? std::stoll(argv[6]) : 2;
  cfg.expand_ratio = 2;
  cfg.rpe_dim = 32;
  cfg.num_classes = train.num_classes();

  tnn::TnnImageClassifier<float> model(cfg);
  model.init_weights(/*seed=*/1);
  auto params = model.named_parameters();
  tnn::AdamW<float> opt(params);
  tnn::LrSchedule lr{tnn::ScheduleKind::Cosine, /*peak=*/3e-3, /*min=*/1e-4, /*warmup=*/std::min<std::int64_t>(30, steps / 10), /*total=*/steps};
  tnn::ImageSampler sampler(train, /*batch=*/32, /*seed=*/1);
  tnn::Tensor<float> images;                 // [32, H, W, Ch] in [0, 1]
  tnn::Tensor<std::int32_t> labels;          // [32]
  for (std::int64_t step = 0; step < steps; ++step) {
    sampler.sample(step, images, labels);
    model.zero_grad();
    const float loss = model.forward(images, labels);
    model.backward();
    tnn::clip_grad_norm(params, 1.0);
    opt.step(lr(step));
    if (step % 100 == 0) std::printf("step %4lld  loss %.3f\n", (long long)step, loss);
  }
  const tnn::EvalSums s = tnn::image_eval_sums(model, test, /*batch=*/64);
  std::printf("test accuracy %.2f%% (%lld of %lld images), loss %.4f\n", 100.0 * double(s.correct) / double(s.tokens),
              (long long)s.correct, (long long)s.tokens, s.loss_sum / double(s.tokens));
  tnn::save_model("train_images.safetensors", model);
  std::printf("saved train_images.safetensors (%lld parameters)\n", (long long)model.num_parameters());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_images: %s\n", e.what());
  return 1;
}
