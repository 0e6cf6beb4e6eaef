// Labelled texts for sequence classification, read from `label<TAB>text` lines as a stream:
// each line cut to what is kept as it is read, labels numbered in the order first seen through a
// hash map, every new label checked as a class name (model/class_names.hpp) where it is read.
// The batches and the training step are in classify.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/io/stream.hpp"
#include "tnn/model/class_names.hpp"

namespace tnn {

struct LabeledTexts {
  std::vector<std::string> texts;    // bytes, each 1..max_len long
  std::vector<std::int32_t> labels;  // class ids, indices into the names the reader was given
  Index size() const { return static_cast<Index>(texts.size()); }
  bool empty() const { return texts.empty(); }
};

// Reads `label<TAB>text` lines (a final '\r' of CRLF files is dropped; empty lines are skipped)
// from `in`, streaming: each line is cut to what is kept (its label and max_len bytes of text)
// as it is read, so memory follows the examples kept, not the longest line. Class names are
// looked up in `names` (through a hash map: any number of distinct labels costs linear time);
// an unseen one is checked (check_one_class_name: printable UTF-8, one line, at most
// kMaxClassNameBytes) and appended when allow_new_labels (the training file), and is a
// ValueError naming it and its line otherwise (validation and evaluation files must use the
// training file's labels). Texts longer than max_len bytes are truncated.
inline LabeledTexts read_labeled_texts(LineReader& in, Index max_len, std::vector<std::string>& names,
                                       bool allow_new_labels) {
  const std::string& where = in.where();
  if (max_len < 1) fail<ValueError>(where, ": maximum text length: expected >= 1, got ", max_len);
  std::unordered_map<std::string, std::int32_t> ids;
  ids.reserve(names.size());
  for (std::size_t k = 0; k < names.size(); ++k) ids.emplace(names[k], static_cast<std::int32_t>(k));
  // A label, its tab, and max_len bytes of text (saturating: max_len may be "no limit").
  const std::size_t text_keep = static_cast<std::uint64_t>(max_len) > SIZE_MAX / 2 ? SIZE_MAX / 2 : static_cast<std::size_t>(max_len);
  const std::size_t keep = kMaxClassNameBytes + 1 + text_keep;
  LabeledTexts out;
  std::string line;
  std::uint64_t length = 0;
  while (in.next(line, keep, &length)) {
    const std::int64_t line_no = in.line_number();
    if (length == 0) continue;  // empty line
    const std::size_t tab = line.find('\t');
    if (tab == std::string::npos || tab > kMaxClassNameBytes) {
      if (length > line.size() || tab != std::string::npos)
        fail<FormatError>(where, " line ", line_no, ": expected label<TAB>text with a label of at most ",
                          kMaxClassNameBytes, " bytes, got no tab in the first ", kMaxClassNameBytes + 1, " bytes");
      fail<FormatError>(where, " line ", line_no, ": expected label<TAB>text, got a line without a tab");
    }
    if (tab == 0) fail<FormatError>(where, " line ", line_no, ": expected a label before the tab, got none");
    if (tab + 1 == length) fail<FormatError>(where, " line ", line_no, ": expected a text after the tab, got none");
    std::string label = line.substr(0, tab);
    auto it = ids.find(label);
    std::int32_t id;
    if (it != ids.end()) {
      id = it->second;
    } else if (allow_new_labels) {
      check_one_class_name<FormatError>(label, detail::concat(where, " line ", line_no, ": label"));
      if (names.size() >= static_cast<std::size_t>(kMaxClasses))
        fail<ValueError>(where, " line ", line_no, ": expected at most ", kMaxClasses, " distinct labels");
      id = static_cast<std::int32_t>(names.size());
      names.push_back(label);
      ids.emplace(std::move(label), id);
    } else {
      fail<ValueError>(where, " line ", line_no, ": expected one of the ", names.size(),
                       " labels of the training data, got ", quote(label, 60));
    }
    const std::size_t len = std::min<std::size_t>(line.size() - tab - 1, text_keep);
    out.texts.emplace_back(line, tab + 1, len);
    out.labels.push_back(id);
  }
  if (out.empty()) fail<FormatError>(where, ": expected at least one label<TAB>text line, got none");
  return out;
}

// The same over bytes in memory.
inline LabeledTexts parse_labeled_texts(const std::vector<std::uint8_t>& bytes, const std::string& where,
                                        Index max_len, std::vector<std::string>& names, bool allow_new_labels) {
  LineReader in = LineReader::from_memory(bytes.data(), bytes.size(), where);
  return read_labeled_texts(in, max_len, names, allow_new_labels);
}

// The file `path`: a regular file or a pipe (io/stream.hpp), read line by line.
inline LabeledTexts read_labeled_texts(const std::string& path, Index max_len, std::vector<std::string>& names,
                                       bool allow_new_labels) {
  LineReader in = LineReader::open(path, "data file " + quote_path(path));
  return read_labeled_texts(in, max_len, names, allow_new_labels);
}

}  // namespace tnn
