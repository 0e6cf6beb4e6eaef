// Data-parallel training with the library's Trainer (train/trainer.hpp): fills its TrainHooks so
// that R processes train one model on one global batch. With the task sharded
// (LmTask::set_shard(rank, R): rows [r B / R, (r+1) B / R), loss normalized by the global target
// count) and these hooks:
//   - gradients are summed over ranks in buckets while backward still runs (GradientReducer
//     through TnnLM::backward_hook), waited for before clipping, so clipping sees the global norm;
//   - the step's loss, target and token counts are summed (tokens/s is the job's);
//   - validation is split over ranks (batches r, r + R, ...) and its sums added;
//   - only rank 0 writes the checkpoint and the CSV log, and only rank 0 reports events;
//   - a stop request (a signal seen by any rank) is agreed on by all, so all save-and-stop at
//     the same step;
//   - every `check_every` steps (and at every stop), the parameters' checksums are compared:
//     AgreementError if the ranks have diverged.
// The optimizer step is the same on every rank, so nothing else needs sending. With one process
// install() changes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

#include "tnn/dist/communicator.hpp"
#include "tnn/dist/data_parallel.hpp"
#include "tnn/dist/evaluate.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/trainer.hpp"

namespace tnn::dist {

template <class T, class Model = TnnLM<T>>
class DataParallelHooks {
 public:
  // The model must outlive this object; while it lives it owns model.backward_hook.
  // overlap false: every bucket is summed after backward instead (to measure what overlapping
  // hides; the results are the same bit for bit).
  DataParallelHooks(Communicator& comm, Model& model, std::int64_t check_every = 100, bool overlap = true)
      : comm_(&comm), model_(&model), reducer_(comm, gradient_buckets(model)), check_every_(check_every) {
    if (check_every < 0) fail<ValueError>("parameter check period: expected >= 0 steps, got ", check_every);
    if (comm.size() == 1 || !overlap) return;
    const Index L = static_cast<Index>(model.backbone.layers.size());
    model.backward_hook = [this, L](Index stage) {
      // stage L (head, final norm) -> bucket 0, layer i -> bucket L - i, embedding (-1) -> L + 1
      reducer_.ready(static_cast<std::size_t>(stage < 0 ? L + 1 : L - stage));
    };
  }
  ~DataParallelHooks() {
    if (comm_->size() > 1) model_->backward_hook = nullptr;
  }
  DataParallelHooks(const DataParallelHooks&) = delete;
  DataParallelHooks& operator=(const DataParallelHooks&) = delete;

  GradientReducer<T>& reducer() { return reducer_; }

  // Sets the data-parallel hooks; keeps on_event (rank 0 only), after_backward, stop_requested
  // and after_step, wrapping the last two.
  void install(TrainHooks<T>& hooks) {
    if (comm_->size() == 1) return;
    Communicator& c = *comm_;
    hooks.reduce_gradients = [this, &c](StepStats& st) {
      reducer_.finish();
      double v[3] = {st.loss, double(st.targets), double(st.tokens)};
      c.allreduce_sum(v, 3);
      st.loss = v[0];  // the ranks' shares of the global mean add up to it
      st.targets = static_cast<Index>(v[1]);
      st.tokens = static_cast<Index>(v[2]);
    };
    hooks.validation_part = c.rank();
    hooks.validation_parts = c.size();
    hooks.reduce_validation = [&c](EvalSums& s) { allreduce_sums(c, s); };
    hooks.writes_files = hooks.writes_files && c.is_root();
    if (!c.is_root()) hooks.on_event = nullptr;
    std::function<int()> local_stop = std::move(hooks.stop_requested);
    hooks.stop_requested = [this, &c, local_stop] {
      std::uint64_t sig = local_stop ? static_cast<std::uint64_t>(local_stop()) : 0;
      c.allreduce_max(&sig, 1);
      stopping_ = sig != 0;
      return static_cast<int>(sig);
    };
    std::function<void(std::int64_t)> after = std::move(hooks.after_step);
    hooks.after_step = [this, &c, after](std::int64_t step) {
      if (stopping_ || (check_every_ > 0 && step % check_every_ == 0))
        check_parameters_agree<T>(c, model_->named_parameters(), step);
      if (after) after(step);
    };
  }

 private:
  Communicator* comm_;
  Model* model_;
  GradientReducer<T> reducer_;
  std::int64_t check_every_;
  bool stopping_ = false;
};

}  // namespace tnn::dist
