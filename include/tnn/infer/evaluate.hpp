// The evaluation loop: the mean loss (and argmax accuracy) of a model over every scored position
// of a sequence of windows, batch by batch, at one or several sequence lengths (the length-
// extrapolation table). `tnn eval`, the trainer's validation and tests all run this code.
//
// A window source W is anything with
//   using batch_type = ...;                 // has .tokens and .targets [b, N] (target -1: not scored)
//   Index num_batches() const;
//   void batch(Index i, batch_type& out) const;
//   double bytes_per_token() const;         // optional: text bytes per token (default 1), for bits per byte
// tnn::EvalWindows (train/data.hpp) cuts a token corpus into such windows; a model M has
//   loss = M.forward(tokens, targets) (mean over scored targets), M.logits() [b, N, V] and
//   M.config().vocab_size, as TnnLM does.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/infer/sampling.hpp"
#include "tnn/model/loss.hpp"

namespace tnn {

// Sums over scored positions: parts (batches, processes) add up, so a validation split over
// several processes is reduced by adding their sums.
struct EvalSums {
  double loss_sum = 0;  // sum over scored positions of the cross-entropy (nats)
  Index tokens = 0;     // scored positions
  Index correct = 0;    // scored positions whose argmax is the target
  // The text bytes the scored positions stand for (scored positions x the corpus's bytes per
  // token; NaN when unknown). 0 when the source has no text (classifiers): tokens count as bytes.
  double bytes = 0;

  EvalSums& operator+=(const EvalSums& o) {
    loss_sum += o.loss_sum;
    tokens += o.tokens;
    correct += o.correct;
    bytes += o.bytes;
    return *this;
  }
};

struct EvalResult {
  double loss = 0;        // nats per scored token
  double accuracy = 0;    // fraction of scored tokens whose argmax is the target
  Index tokens = 0;       // scored tokens
  double bytes = 0;       // text bytes they stand for (EvalSums::bytes)
  // Bits per byte of text: the nats of the scored tokens over the bytes they stand for, in bits.
  // For a byte model, loss / ln 2; for a subword model, comparable with it (the same text costs
  // the same bits whatever the vocabulary). NaN when the bytes are unknown (token files).
  double bpb() const {
    if (std::isnan(bytes)) return bytes;
    const double per_token = bytes > 0 && tokens > 0 ? static_cast<double>(tokens) / bytes : 1.0;
    return loss * per_token / std::log(2.0);
  }
  // Perplexity per token (per byte for a byte model).
  double ppl() const { return std::exp(loss); }

  static EvalResult from(const EvalSums& s) {
    EvalResult r;
    r.tokens = s.tokens;
    r.bytes = s.bytes;
    r.loss = s.tokens ? s.loss_sum / static_cast<double>(s.tokens) : 0.0;
    r.accuracy = s.tokens ? static_cast<double>(s.correct) / static_cast<double>(s.tokens) : 0.0;
    return r;
  }
};

namespace detail {
template <class W, class = void>
struct has_bytes_per_token : std::false_type {};
template <class W>
struct has_bytes_per_token<W, std::void_t<decltype(std::declval<const W&>().bytes_per_token())>> : std::true_type {};
// Text bytes per token of a window source: its bytes_per_token(), or 1 (a byte source).
template <class W>
double bytes_per_token_of(const W& w) {
  if constexpr (has_bytes_per_token<W>::value) return w.bytes_per_token();
  else return 1.0;
}
}  // namespace detail

// Adds to `s` every row of logits [rows, K] whose label is >= 0 (-1: not scored): correct when
// its argmax (the first maximum) is the label. predictions[r] (when given) gets row r's argmax.
template <class T>
void add_argmax_hits(EvalSums& s, const T* logits, const std::int32_t* labels, Index rows, Index K,
                     std::int32_t* predictions = nullptr) {
  for (Index r = 0; r < rows; ++r) {
    const std::int32_t best = argmax_token(logits + r * K, K);
    if (predictions) predictions[r] = best;
    if (labels[r] >= 0 && best == labels[r]) ++s.correct;
  }
}

// Sums over batches first, first + stride, first + 2 stride, ... of `windows` (all of them by
// default; part r of R processes passes first = r, stride = R). The per-batch mean loss is
// weighted back by the batch's scored count, in double.
template <class Model, class Windows>
EvalSums eval_sums(Model& model, const Windows& windows, Index first = 0, Index stride = 1) {
  if (first < 0 || stride < 1)
    fail<ValueError>("eval_sums: expected first >= 0 and stride >= 1, got first ", first, ", stride ", stride);
  typename Windows::batch_type b;
  EvalSums s;
  const Index V = model.config().vocab_size;
  const double bytes_per_token = detail::bytes_per_token_of(windows);
  for (Index i = first; i < windows.num_batches(); i += stride) {
    windows.batch(i, b);
    const Index n = count_targets(b.targets);
    const auto loss = model.forward(b.tokens, b.targets);
    s.loss_sum += static_cast<double>(loss) * static_cast<double>(n);
    s.tokens += n;
    s.bytes += static_cast<double>(n) * bytes_per_token;
    add_argmax_hits(s, model.logits().data(), b.targets.data(), b.targets.size(), V);
  }
  return s;
}

template <class Model, class Windows>
EvalResult evaluate(Model& model, const Windows& windows) {
  return EvalResult::from(eval_sums(model, windows));
}

// One row of the length-extrapolation table.
struct LengthResult {
  Index length = 0;
  EvalResult result;
};

// The same data at several sequence lengths: make_windows(length) gives the window source of
// one length (e.g. [&](Index n) { return EvalWindows(corpus, batch, n, objective, seed); }).
// on_row(const LengthResult&), if given, sees each row as soon as it is done (a long table
// prints as it goes).
// evaluate_lengths_by(eval, ...) scores each length's windows with eval(windows) (dist/evaluate.hpp
// splits them over processes).
template <class Eval, class MakeWindows, class OnRow>
std::vector<LengthResult> evaluate_lengths_by(Eval&& eval, const std::vector<Index>& lengths,
                                              MakeWindows&& make_windows, OnRow&& on_row) {
  if (lengths.empty()) fail<ValueError>("evaluate_lengths: expected at least one length, got none");
  std::vector<LengthResult> rows;
  rows.reserve(lengths.size());
  for (Index n : lengths) {
    if (n < 1) fail<ValueError>("evaluate_lengths: expected lengths >= 1, got ", n);
    const auto windows = make_windows(n);
    rows.push_back(LengthResult{n, eval(windows)});
    on_row(rows.back());
  }
  return rows;
}
template <class Model, class MakeWindows, class OnRow>
std::vector<LengthResult> evaluate_lengths(Model& model, const std::vector<Index>& lengths, MakeWindows&& make_windows,
                                           OnRow&& on_row) {
  return evaluate_lengths_by([&](const auto& windows) { return evaluate(model, windows); }, lengths, make_windows,
                             on_row);
}
template <class Model, class MakeWindows>
std::vector<LengthResult> evaluate_lengths(Model& model, const std::vector<Index>& lengths,
                                           MakeWindows&& make_windows) {
  return evaluate_lengths(model, lengths, make_windows, [](const LengthResult&) {});
}

}  // namespace tnn
