// A tiny SentencePiece model trained in the test itself (SentencePieceTrainer, from
// libsentencepiece_train, which only the tests link): a few kilobytes of English-like text, a few
// hundred pieces, trained in a fraction of a second with the options that make decoding give the
// text back (identity normalization, no dummy prefix, whitespace kept, byte fallback).
#pragma once

#if defined(TNN_USE_SENTENCEPIECE)
#include <sentencepiece_trainer.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tnn_test {

// Lines of words drawn from a small list: repetitive enough that pieces longer than a
// character are learned, with punctuation, digits and a newline per line.
inline std::string tiny_text(int lines = 300) {
  static const char* const words[] = {"the",  "and", "of",    "light", "water", "earth", "said",  "God",
                                      "was",  "in",  "unto",  "them",  "day",   "night", "form",  "void",
                                      "upon", "face", "deep", "moved", "good",  "there", "be",    "let"};
  std::string s;
  unsigned x = 12345;
  for (int l = 0; l < lines; ++l) {
    const int n = 4 + l % 7;
    for (int w = 0; w < n; ++w) {
      x = x * 1103515245u + 12345u;
      if (w) s += ' ';
      s += words[(x >> 16) % 24];
    }
    s += l % 5 == 0 ? ", 12" : ".";
    s += '\n';
  }
  return s;
}

// The serialized model (a `.model` file's bytes) of `vocab` pieces trained on `text`'s lines.
inline std::string train_tiny_sentencepiece(const std::string& text, int vocab = 320) {
  struct Lines : sentencepiece::SentenceIterator {
    std::vector<std::string> lines;
    std::size_t i = 0;
    bool done() const override { return i >= lines.size(); }
    void Next() override { ++i; }
    const std::string& value() const override { return lines[i]; }
    sentencepiece::util::Status status() const override { return {}; }
  } it;
  std::size_t start = 0;
  for (std::size_t k = 0; k <= text.size(); ++k)
    if (k == text.size() || text[k] == '\n') {
      if (k > start) it.lines.push_back(text.substr(start, k - start));
      start = k + 1;
    }
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--vocab_size=" + std::to_string(vocab) +
          " --model_type=unigram --byte_fallback=true --normalization_rule_name=identity --add_dummy_prefix=false"
          " --remove_extra_whitespaces=false --hard_vocab_limit=false --character_coverage=1.0 --num_threads=1"
          " --minloglevel=2",
      &it, &model);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return model;
}

}  // namespace tnn_test
#endif
