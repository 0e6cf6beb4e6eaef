// libFuzzer target: the image-file reader (tnn::image_set_from_safetensors over
// parse_safetensors) and the class names a model would get from it (tnn::image_class_names), on
// arbitrary bytes. A tnn::Error is the expected answer to a bad file; a crash, a sanitizer
// report, an allocation the input does not pay for, any other exception, or an accepted file
// breaking its contract (pixels 0..255, one label >= 0 per image, labels below the names, names
// printable and distinct, at most max(2, M) classes without names) is a finding.
#include <cstdint>
#include <set>
#include <string>

#include "tnn/train/image_file.hpp"

#include "fuzz_common.hpp"

const char tnn_fuzz::kTarget[] = "fuzz_images";
using tnn_fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tnn_fuzz::errors_one_line([&] {
    const tnn::SafetensorsFile f = tnn::parse_safetensors(data, size, "fuzz-images.safetensors");
    const bool require_labels = size % 2 == 0;
    const tnn::ImageSet s = tnn::image_set_from_safetensors(f, "image file 'fuzz'", require_labels);
    check(s.images.rank() == 4 && s.size() >= 1, "images not [M, H, W, Ch]");
    for (tnn::Index i = 0; i < s.images.size(); ++i) check(s.images[i] >= 0 && s.images[i] <= 255, "pixel out of range");
    check(!require_labels || s.has_labels(), "labels required, none read");
    if (s.has_labels()) check(s.labels.rank() == 1 && s.labels.dim(0) == s.size(), "not one label per image");
    for (tnn::Index i = 0; i < s.labels.size(); ++i) {
      check(s.labels[i] >= 0, "negative label accepted");
      check(s.names.empty() || static_cast<std::size_t>(s.labels[i]) < s.names.size(), "label beyond the names");
    }
    std::set<std::string> distinct(s.names.begin(), s.names.end());
    check(distinct.size() == s.names.size(), "a class name twice");
    for (const std::string& n : s.names) check(!n.empty() && tnn::text_problem(n).empty(), "an unprintable class name");
    const auto names = tnn::image_class_names(s, "fuzz");
    check(names.size() >= 2 || !s.names.empty(), "fewer than 2 classes");
    check(!s.names.empty() || static_cast<tnn::Index>(names.size()) <= std::max<tnn::Index>(2, s.size()),
          "more classes than images without names");
  });
  return 0;
}
