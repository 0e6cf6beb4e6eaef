// The image file of image classification (a safetensors file; the format is in image_data.hpp,
// which holds the batches and the training step): ImageSet, its reader, and the class names a
// model trained on it gets. Everything is checked before anything the header claims is
// allocated: pixels in 0..255 (with or without labels), labels bounded by the file.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/io/safetensors.hpp"
#include "tnn/model/class_names.hpp"

namespace tnn {

struct ImageSet {
  Tensor<std::int32_t> images;      // [M, H, W, Ch] values 0..255
  Tensor<std::int32_t> labels;      // [M] class ids >= 0; empty when read without labels
  std::vector<std::string> names;   // class names from the file's "tnn.labels", or empty
  Index size() const { return images.rank() == 4 ? images.dim(0) : 0; }
  bool has_labels() const { return labels.size() > 0; }
  Index height() const { return images.rank() == 4 ? images.dim(1) : 0; }
  Index width() const { return images.rank() == 4 ? images.dim(2) : 0; }
  Index channels() const { return images.rank() == 4 ? images.dim(3) : 0; }
  // 1 + the largest label.
  Index num_classes() const {
    std::int32_t k = -1;
    for (Index i = 0; i < labels.size(); ++i) k = std::max(k, labels[i]);
    return Index(k) + 1;
  }
};

// Checks an image file's tensors and metadata (format at the top of this header), in an order
// that allocates nothing a hostile header claims before the bytes are there: the images (shape,
// dtype, every pixel in 0..255, with or without labels), then the labels if present (one per
// image, ids >= 0, and below the number of names when the file names its classes), then the
// names (parse_class_names: printable one-line UTF-8, distinct). Without require_labels a file
// with no 'labels' tensor is accepted (the set's labels are then empty). `where` names the file.
inline ImageSet image_set_from_safetensors(const SafetensorsFile& f, const std::string& where, bool require_labels = true) {
  ImageSet s;
  for (const char* name : {"images", "labels"})
    if (!f.has(name) && (require_labels || std::string(name) == "images"))
      fail<FormatError>(where, ": expected a tensor '", name, "', it is missing");
  for (const char* name : {"images", "labels"})
    if (f.has(name) && dtype_is_float(f.dtype(name)))
      fail<FormatError>(where, ": tensor '", name, "': expected dtype ", std::string(name) == "images" ? "U8 (or I32)" : "I32",
                        ", got ", dtype_name(f.dtype(name)));
  const Shape& shape = f.shape("images");
  if (shape.size() != 4 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 || shape[3] < 1)
    fail<FormatError>(where, ": tensor 'images': expected shape [M, H, W, Ch] with every size >= 1, got ",
                      shape_str(shape));
  if (f.has("labels")) {
    const Shape& ls = f.shape("labels");
    if (ls.size() != 1 || ls[0] != shape[0])
      fail<FormatError>(where, ": tensor 'labels': expected shape [", shape[0], "] (one per image), got ", shape_str(ls));
  }
  s.images = f.get<std::int32_t>("images");
  for (Index i = 0; i < s.images.size(); ++i)
    if (s.images[i] < 0 || s.images[i] > 255)
      fail<ValueError>(where, ": tensor 'images': expected pixel values 0..255, got ", s.images[i], " at element ", i);
  auto it = f.metadata().find(kLabelsMetadataKey);
  if (it != f.metadata().end())
    s.names = parse_class_names(it->second, where + ": metadata '" + kLabelsMetadataKey + "'");
  if (!f.has("labels")) return s;
  s.labels = f.get<std::int32_t>("labels");
  for (Index i = 0; i < s.labels.size(); ++i) {
    if (s.labels[i] < 0) fail<ValueError>(where, ": tensor 'labels': expected class ids >= 0, got ", s.labels[i], " at ", i);
    if (!s.names.empty() && static_cast<std::size_t>(s.labels[i]) >= s.names.size())
      fail<FormatError>(where, ": tensor 'labels': expected class ids below ", s.names.size(), " (the names in metadata '",
                        kLabelsMetadataKey, "'), got ", s.labels[i], " at ", i);
  }
  return s;
}

// Reads and checks an image file (image_set_from_safetensors).
inline ImageSet read_image_set(const std::string& path, bool require_labels = true) {
  return image_set_from_safetensors(read_safetensors(path), "image file " + quote_path(path), require_labels);
}

// The class names a model trained on `set` gets: the file's own names, or else "0".."K-1" with
// K = max(2, 1 + the largest label). Without names the classes come from the labels alone, so K
// is held to the input: at most max(2, the number of images) (a file whose one label is 2^31 - 1
// would otherwise ask for 2^31 classes); a file with more classes than images names them in its
// metadata. ValueError naming `where` otherwise; nothing is allocated before the check.
inline std::vector<std::string> image_class_names(const ImageSet& set, const std::string& where) {
  if (!set.names.empty()) return set.names;
  const Index K = std::max<Index>(2, set.num_classes());
  const Index bound = std::max<Index>(2, set.size());
  if (K > bound)
    fail<ValueError>(where, ": tensor 'labels': expected class ids below ", bound,
                     " (the number of images) in a file without class names, got ", K - 1,
                     "; name the classes in metadata '", kLabelsMetadataKey, "' for more");
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(K));
  for (Index k = 0; k < K; ++k) names.push_back(std::to_string(k));
  return names;
}

}  // namespace tnn
