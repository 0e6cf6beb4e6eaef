// libFuzzer target: the classification TSV reader (tnn::read_labeled_texts over a LineReader on
// arbitrary bytes, with a maximum text length and a label policy taken from the first bytes). A
// tnn::Error is the expected answer to a bad file; a crash, a sanitizer report, any other
// exception, or an accepted file breaking the reader's contract is a finding: every text 1..max_len
// bytes, every label a valid index, every class name printable one-line UTF-8 and distinct.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tnn/train/labeled_texts.hpp"

#include "fuzz_common.hpp"

const char tnn_fuzz::kTarget[] = "fuzz_tsv";
using tnn_fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const tnn::Index max_len = 1 + data[0] % 64;
  const bool allow_new = (data[1] & 1) == 0;
  std::vector<std::string> names;
  if (!allow_new) names = {"a", "b", "pos"};
  const std::size_t given = names.size();
  const std::vector<std::uint8_t> bytes(data + 2, data + size);
  tnn_fuzz::errors_one_line([&] {
    const tnn::LabeledTexts t = tnn::parse_labeled_texts(bytes, "data file 'fuzz'", max_len, names, allow_new);
    check(!t.empty() && t.texts.size() == t.labels.size(), "texts and labels differ in number");
    for (std::size_t i = 0; i < t.texts.size(); ++i) {
      check(!t.texts[i].empty() && static_cast<tnn::Index>(t.texts[i].size()) <= max_len, "text length out of range");
      check(t.labels[i] >= 0 && static_cast<std::size_t>(t.labels[i]) < names.size(), "label id out of range");
    }
    if (!allow_new) check(names.size() == given, "a new label accepted");
    std::set<std::string> distinct(names.begin(), names.end());
    check(distinct.size() == names.size(), "a class name twice");
    for (const std::string& n : names) check(tnn::text_problem(n).empty() && !n.empty(), "an unprintable class name");
    (void)tnn::class_names_json(names, "fuzz");  // what a checkpoint stores: never throws for accepted names
  });
  return 0;
}
