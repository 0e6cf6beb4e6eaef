// The image side of the `tnn` program (issue 15), in cmd_image.cpp: what `tnn eval`, `tnn
// classify` and `tnn grad` do when the checkpoint is an image classifier (config task "image",
// a TnnImageClassifier). `tnn train --task image` lives in cmd_train.cpp. Image files are
// safetensors files in the format of tnn/train/image_data.hpp.
#pragma once

#include <string>

namespace tnncli {

// `tnn eval` on an image classifier: accuracy and mean loss over the images of `data`. JSON:
// {"accuracy", "loss", "examples", "correct"}.
void eval_image(const std::string& checkpoint, const std::string& data, long long batch, bool json);

// `tnn classify --images FILE`: one predicted class name per image, in order; with json one
// object per line {"label": name, "probabilities": {name: p, ...}}. The file needs no labels.
void classify_images(const std::string& checkpoint, const std::string& images, long long batch, bool json);

// `tnn grad` on an image classifier: BATCH holds images F32/F64 [B, H, W, Ch] (the values the
// model sees; training feeds pixels / 255) and labels I32 [B]; OUT gets loss (F64 []), logits
// [B, K] and grad.<name> for every trained parameter.
void grad_image(const std::string& checkpoint, const std::string& batch, const std::string& out, bool f64);

}  // namespace tnncli
