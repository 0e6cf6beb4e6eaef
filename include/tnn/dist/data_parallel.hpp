// Data-parallel training over a Communicator (one process: LocalCommunicator; several:
// MpiCommunicator from tnn/dist/mpi.hpp). Every rank holds the whole model and samples the same
// global batch of B rows; rank r runs forward and backward on rows [r*B/R, (r+1)*B/R) with the
// loss normalized by the global batch's target count, and the gradients are summed over ranks.
// So R processes compute the gradient of the global batch's mean loss, as one process would,
// up to the order of the floating-point sums. The optimizer then runs the same update on every
// rank; parameters stay identical without re-broadcasting (check_parameters_agree verifies).
//
// The sum overlaps the backward pass, as PyTorch's DDP does: gradients are grouped in buckets
// (the head and final norm, then one per layer, then the embedding: the order in which backward
// finishes them); TnnLM::backward_hook starts a bucket's non-blocking sum as soon as it is
// final, while the layers below still run; finish() waits before anything (clipping) reads a
// gradient. The bucket buffer is allocated once.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/dist/communicator.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/model/models.hpp"
#include "tnn/model/loss.hpp"
#include "tnn/train/data.hpp"

namespace tnn::dist {

// Throws ValueError unless the global batch splits evenly over `ranks` processes.
inline void check_global_batch(Index global_batch, int ranks) {
  if (ranks < 1) fail<ValueError>("data-parallel ranks: expected >= 1, got ", ranks);
  if (global_batch < ranks || global_batch % ranks != 0)
    fail<ValueError>("--batch ", global_batch, ": expected a multiple of the number of processes (", ranks,
                     "), since each process takes batch/processes rows of every global batch; got ", global_batch,
                     " for ", ranks, " processes (use e.g. --batch ", (global_batch / ranks + 1) * ranks, ")");
}

// Rows [rank*B/R, (rank+1)*B/R) of global's [B, N] tokens and targets into local.
inline void shard_batch(const Batch& global, int rank, int ranks, Batch& local) {
  const Index B = global.tokens.dim(0), N = global.tokens.dim(1);
  check_global_batch(B, ranks);
  if (rank < 0 || rank >= ranks) fail<ValueError>("shard rank: expected a rank in [0, ", ranks, "), got ", rank);
  const Index rows = B / ranks, first = rank * rows;
  local.tokens.resize({rows, N});
  local.targets.resize({rows, N});
  std::memcpy(local.tokens.data(), global.tokens.data() + first * N, sizeof(std::int32_t) * std::size_t(rows * N));
  std::memcpy(local.targets.data(), global.targets.data() + first * N, sizeof(std::int32_t) * std::size_t(rows * N));
}

// Sums gradients over ranks in buckets. Buckets are lists of trainable Params in the order the
// backward pass finishes them; ready(k) starts bucket k's sum, finish() completes all of them.
template <class T>
class GradientReducer {
 public:
  GradientReducer(Communicator& comm, std::vector<std::vector<Param<T>*>> buckets)
      : comm_(&comm), buckets_(std::move(buckets)) {
    Index total = 0;
    for (const auto& b : buckets_) {
      offsets_.push_back(total);
      for (const Param<T>* p : b) total += p->grad.size();
    }
    offsets_.push_back(total);
    if (comm_->size() > 1) buffer_.resize({total});  // [all bucketed gradient scalars], once
    started_.assign(buckets_.size(), false);
  }

  std::size_t num_buckets() const { return buckets_.size(); }
  Index num_scalars() const { return offsets_.back(); }

  // Bucket k's gradients are final: copy them into its slice and start their sum.
  void ready(std::size_t k) {
    if (k >= buckets_.size()) fail<ValueError>("gradient bucket: expected an index below ", buckets_.size(), ", got ", k);
    if (started_[k]) fail<Error>("gradient bucket ", k, ": expected to be started once per step, got a second start");
    started_[k] = true;
    if (comm_->size() == 1) return;
    const auto t0 = Clock::now();
    T* dst = buffer_.data() + offsets_[k];
    for (const Param<T>* p : buckets_[k]) {
      std::memcpy(dst, p->grad.data(), sizeof(T) * std::size_t(p->grad.size()));
      dst += p->grad.size();
    }
    comm_->start_allreduce_sum(buffer_.data() + offsets_[k], offsets_[k + 1] - offsets_[k]);
    comm_->progress();  // lets the earlier buckets move on while this rank keeps computing
    exposed_s_ += seconds_since(t0);
  }

  // Starts any bucket not started yet, waits for every sum, copies the sums into the grads.
  void finish() {
    for (std::size_t k = 0; k < buckets_.size(); ++k)
      if (!started_[k]) ready(k);
    started_.assign(buckets_.size(), false);
    if (comm_->size() == 1) return;
    const auto t0 = Clock::now();
    comm_->wait_all();
    const T* src = buffer_.data();
    for (const auto& b : buckets_)
      for (Param<T>* p : b) {
        std::memcpy(p->grad.data(), src, sizeof(T) * std::size_t(p->grad.size()));
        src += p->grad.size();
      }
    exposed_s_ += seconds_since(t0);
    ++steps_;
  }

  // Seconds this rank spent in reduction calls (copies, starts, progress, the final wait) that
  // did not overlap its own computation, summed over steps; and the number of steps.
  double exposed_seconds() const { return exposed_s_; }
  std::int64_t steps() const { return steps_; }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  Communicator* comm_;
  std::vector<std::vector<Param<T>*>> buckets_;
  std::vector<Index> offsets_;  // [buckets + 1] start of each bucket in buffer_
  Tensor<T> buffer_;            // [total scalars] reduced in place
  std::vector<bool> started_;
  double exposed_s_ = 0;
  std::int64_t steps_ = 0;
};

// The buckets of a model (any SequenceModel) in the order its backward finishes them: head and
// final norm, layers from last to first, the input module (a tied embedding, which the head also
// feeds, is final only then). Only trainable parameters (the fixed decay has no gradient to share).
template <class Model, class T = typename Model::Scalar>
std::vector<std::vector<Param<T>*>> gradient_buckets(Model& model) {
  std::vector<std::vector<Param<T>*>> buckets;
  auto add = [&](std::vector<Param<T>*>& b) {
    return [&b](const std::string&, Param<T>& p) {
      if (p.trainable) b.push_back(&p);
    };
  };
  buckets.emplace_back();
  model.backbone.final_norm.visit("", add(buckets.back()));
  model.head.visit("", add(buckets.back()));
  for (std::size_t i = model.backbone.layers.size(); i-- > 0;) {
    buckets.emplace_back();
    model.backbone.layers[i].visit("", add(buckets.back()));
  }
  buckets.emplace_back();
  model.input.visit("", add(buckets.back()));
  return buckets;
}

// One data-parallel training step's forward and backward for a TnnLM: shard, loss normalized by
// the global target count, backward with the bucketed reduction overlapped, finish. While this
// object lives it owns model.backward_hook.
template <class T>
class DataParallelLM {
 public:
  DataParallelLM(Communicator& comm, TnnLM<T>& model)
      : comm_(&comm), model_(&model), reducer_(comm, gradient_buckets(model)) {
    const Index L = static_cast<Index>(model.backbone.layers.size());
    model.backward_hook = [this, L](Index stage) {
      // stage L -> bucket 0, layer i -> bucket L - i, embedding (-1) -> bucket L + 1
      reducer_.ready(static_cast<std::size_t>(stage < 0 ? L + 1 : L - stage));
    };
  }
  ~DataParallelLM() { model_->backward_hook = nullptr; }
  DataParallelLM(const DataParallelLM&) = delete;
  DataParallelLM& operator=(const DataParallelLM&) = delete;

  Communicator& comm() { return *comm_; }
  GradientReducer<T>& reducer() { return reducer_; }

  // This rank's rows of the global batch (every rank samples the same global batch).
  const Batch& shard(const Batch& global) {
    if (comm_->size() == 1) return global;
    shard_batch(global, comm_->rank(), comm_->size(), local_);
    return local_;
  }

  // Forward and backward of this rank's rows; on return every rank's gradients (accumulated on
  // top of what they held, as backward() does: zero them first) hold the gradient of the global
  // batch's mean loss, and the return value is that loss (0 when the batch has no targets).
  T forward_backward(const Batch& global) {
    const Index count = count_targets(global.targets);
    const Batch& mine = shard(global);
    T loss = count > 0 ? model_->forward(mine.tokens, mine.targets, count) : model_->forward(mine.tokens, mine.targets);
    model_->backward();
    reducer_.finish();
    if (comm_->size() > 1) {
      double l = double(loss);
      comm_->allreduce_sum(&l, 1);
      loss = T(l);
    }
    return loss;
  }

 private:
  Communicator* comm_;
  TnnLM<T>* model_;
  GradientReducer<T> reducer_;
  Batch local_;
};

}  // namespace tnn::dist
