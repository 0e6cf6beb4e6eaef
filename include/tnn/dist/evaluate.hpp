// Evaluation split over processes: rank r of R evaluates batches r, r + R, ... of every window
// source and the sums are added over ranks, so every rank gets the numbers one process computes
// (up to the order of the double sums). Same signature as tnn::evaluate_lengths plus the
// communicator; with one process it is that function.
#pragma once

#include <vector>

#include "tnn/dist/communicator.hpp"
#include "tnn/infer/evaluate.hpp"

namespace tnn::dist {

inline void allreduce_sums(Communicator& comm, EvalSums& s) {
  double v[4] = {s.loss_sum, double(s.tokens), double(s.correct), s.bytes};  // counts stay exact below 2^53
  comm.allreduce_sum(v, 4);
  s.loss_sum = v[0];
  s.tokens = static_cast<Index>(v[1]);
  s.correct = static_cast<Index>(v[2]);
  s.bytes = v[3];
}

template <class Model, class Windows>
EvalResult evaluate(Communicator& comm, Model& model, const Windows& windows) {
  EvalSums s = eval_sums(model, windows, comm.rank(), comm.size());
  allreduce_sums(comm, s);
  return EvalResult::from(s);
}

template <class Model, class MakeWindows, class OnRow>
std::vector<LengthResult> evaluate_lengths(Communicator& comm, Model& model, const std::vector<Index>& lengths,
                                           MakeWindows&& make_windows, OnRow&& on_row) {
  if (comm.size() == 1) return tnn::evaluate_lengths(model, lengths, make_windows, on_row);
  return evaluate_lengths_by([&](const auto& windows) { return evaluate(comm, model, windows); }, lengths, make_windows,
                             on_row);
}

}  // namespace tnn::dist
