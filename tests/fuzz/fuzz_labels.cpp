// libFuzzer target: the class-name metadata ("tnn.labels" of a checkpoint or an image file,
// tnn::parse_class_names) on arbitrary text. A tnn::Error is the expected answer; a crash, a
// sanitizer report, any other exception, or accepted names that `tnn classify` could not print
// one per line (or that --json would merge) is a finding. Accepted names survive the round trip
// through the JSON a checkpoint stores.
#include <cstdint>
#include <set>
#include <string>

#include "tnn/model/class_names.hpp"

#include "fuzz_common.hpp"

const char tnn_fuzz::kTarget[] = "fuzz_labels";
using tnn_fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tnn_fuzz::errors_one_line([&] {
    const std::vector<std::string> names = tnn::parse_class_names(text, "metadata 'tnn.labels'");
    std::set<std::string> distinct(names.begin(), names.end());
    check(distinct.size() == names.size(), "a class name twice");
    for (const std::string& n : names) {
      check(!n.empty() && n.size() <= tnn::kMaxClassNameBytes, "class name length out of range");
      check(tnn::text_problem(n).empty(), "an unprintable class name");
    }
    check(tnn::parse_class_names(tnn::class_names_json(names, "fuzz"), "again") == names, "round trip differs");
  });
  return 0;
}
