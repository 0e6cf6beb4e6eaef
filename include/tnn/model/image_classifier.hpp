// Image classification with the 2-D TNN (the paper's image setting): each P x P patch
// of an image [Hi, Wi, Ch] is one token, embedded by a linear map of its P*P*Ch values;
// TNN layers whose token mixer is the 2-D GTU mix the (Hi/P) x (Wi/P) grid with relative
// positions in both directions; then the final norm, mean pooling and the classification
// head (ClassifierHead of model/classifier.hpp). Config: task "image" (model/config.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/gtu2d.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/layers/param.hpp"
#include "tnn/model/block.hpp"
#include "tnn/model/checkpoint.hpp"
#include "tnn/model/classifier.hpp"
#include "tnn/model/config.hpp"

namespace tnn {

// images [B, Hi, Wi, Ch] -> patches [B, (Hi/P) (Wi/P), P*P*Ch]: token gi * (Wi/P) + gj holds
// patch (gi, gj), its values in (row in patch, column in patch, channel) order.
template <class T>
void image_to_patches(const Tensor<T>& images, Index P, Tensor<T>& patches) {
  if (images.rank() != 4 || P < 1 || images.dim(1) % P != 0 || images.dim(2) % P != 0)
    fail<ShapeError>("images: expected shape [B, Hi, Wi, Ch] with Hi and Wi multiples of the patch size ", P,
                     ", got ", shape_str(images.shape()));
  const Index B = images.dim(0), Hi = images.dim(1), Wi = images.dim(2), Ch = images.dim(3);
  const Index gh = Hi / P, gw = Wi / P, F = P * P * Ch;
  patches.resize({B, gh * gw, F});
  for (Index b = 0; b < B; ++b)
    for (Index gi = 0; gi < gh; ++gi)
      for (Index gj = 0; gj < gw; ++gj) {
        T* dst = patches.data() + ((b * gh + gi) * gw + gj) * F;
        for (Index pi = 0; pi < P; ++pi) {
          const T* src = images.data() + ((b * Hi + gi * P + pi) * Wi + gj * P) * Ch;
          std::copy(src, src + P * Ch, dst + pi * P * Ch);
        }
      }
}

// The 2-D TNO and GTU of a layer of an image config.
template <class T, class Backend = DefaultFftBackend>
Tno2d<T, Backend> make_tno2d(const TnnConfig& cfg) {
  return Tno2d<T, Backend>(cfg.heads, cfg.head_dim(), cfg.rpe_dim, cfg.rpe_layers, cfg.norm_type, cfg.rpe_act,
                           cfg.grid_h(), cfg.grid_w(), tno_decay(cfg), cfg.gamma);
}
template <class T, class Backend = DefaultFftBackend>
Gtu2d<T, Backend> make_gtu2d(const TnnConfig& cfg) {
  return Gtu2d<T, Backend>(cfg.dim, cfg.gtu_act, make_tno2d<T, Backend>(cfg));
}

// Checkpoint names: patch_embed.{weight [D, P*P*Ch], bias [D]}, layers.i.* as the LM's (the
// RPE's pos_proj.weight is [R, 2]), final_norm.*, head.{weight [K, D], bias [K]}.
template <class T>
class TnnImageClassifier : public ParameterSet<TnnImageClassifier<T>, T> {
 public:
  using Block = TnnBlock<T, Gtu2d<T>>;

  explicit TnnImageClassifier(const TnnConfig& cfg) : cfg_((cfg.validate(), cfg)) {
    if (cfg_.task != Task::Image)
      fail<ConfigError>("TnnImageClassifier: expected a config with task 'image', got task '", to_string(cfg_.task), "'");
    patch_embed = Linear<T>(patch_features(), cfg_.dim);
    layers.reserve(static_cast<std::size_t>(cfg_.layers));
    for (Index i = 0; i < cfg_.layers; ++i) layers.emplace_back(cfg_, make_gtu2d<T>(cfg_));
    final_norm = Norm<T>(cfg_.norm_type, cfg_.dim);
    head = ClassifierHead<T>(cfg_.dim, cfg_.num_classes, cfg_.pooling);
    caches_.resize(static_cast<std::size_t>(cfg_.layers));
    xs_.resize(static_cast<std::size_t>(cfg_.layers + 1));
  }

  Linear<T> patch_embed;  // P*P*Ch -> D
  std::vector<Block> layers;
  Norm<T> final_norm;
  ClassifierHead<T> head;  // pooling, D -> K, loss

  const TnnConfig& config() const { return cfg_; }
  Index num_classes() const { return cfg_.num_classes; }
  Index patch_features() const { return cfg_.patch_size * cfg_.patch_size * cfg_.image_channels; }
  Index tokens() const { return cfg_.grid_h() * cfg_.grid_w(); }

  // One Rng stream: patch_embed (PyTorch Linear default), the layers, final_norm reset, the head.
  void init_weights(std::uint64_t seed) {
    Rng rng(seed);
    patch_embed.init_uniform(rng);
    for (auto& l : layers) l.init_weights(rng);
    final_norm.reset_parameters();
    head.init_weights(rng);
  }

  // f(name, Param&) in checkpoint order; ParameterSet derives the rest from it.
  template <class F>
  void visit(F&& f) {
    visit_all(*this, f);
  }
  template <class F>
  void visit(F&& f) const {
    visit_all(*this, f);
  }

  // images [B, Hi, Wi, Ch] (the config's sizes; pixel values as the caller scales them, e.g.
  // u8 / 255), labels I32 [B] in [0, K). Returns the mean cross-entropy; keeps what backward needs.
  T forward(const Tensor<T>& images, const Tensor<std::int32_t>& labels) {
    check_images(images);
    check_labels(labels, images.dim(0), cfg_.num_classes);
    run_forward(images);
    const T l = head.loss(labels);
    has_loss_ = true;
    return l;
  }
  // Logits [B, K] only (evaluation); a following backward() is an error.
  const Tensor<T>& forward(const Tensor<T>& images) {
    check_images(images);
    run_forward(images);
    return head.logits();
  }
  const Tensor<T>& logits() const { return head.logits(); }  // [B, K]

  // Accumulates every parameter's grad (call zero_grad() once per step).
  void backward() {
    if (!has_loss_)
      fail<Error>("TnnImageClassifier::backward: expected a preceding forward(images, labels), got none (or a logits-only forward)");
    const std::size_t L = layers.size();
    head.backward(dxf_);
    final_norm.backward(xs_[L], dxf_, final_cache_, dres_[0]);
    int cur = 0;
    for (std::size_t i = L; i-- > 0;) {
      layers[i].backward(xs_[i], dres_[cur], caches_[i], dres_[1 - cur]);
      cur = 1 - cur;
    }
    patch_embed.backward(patches_, dres_[cur], nullptr);
  }

 private:
  template <class Self, class F>
  static void visit_all(Self& m, F& f) {  // Self: TnnImageClassifier or its const
    m.patch_embed.visit("patch_embed.", f);
    for (std::size_t i = 0; i < m.layers.size(); ++i) m.layers[i].visit("layers." + std::to_string(i) + ".", f);
    m.final_norm.visit("final_norm.", f);
    m.head.visit("head.", f);
  }

  void check_images(const Tensor<T>& images) const {
    if (images.rank() != 4 || images.dim(0) < 1 || images.dim(1) != cfg_.image_height ||
        images.dim(2) != cfg_.image_width || images.dim(3) != cfg_.image_channels)
      fail<ShapeError>("images: expected shape [B >= 1, ", cfg_.image_height, ", ", cfg_.image_width, ", ",
                       cfg_.image_channels, "], got ", shape_str(images.shape()));
  }
  void run_forward(const Tensor<T>& images) {
    has_loss_ = false;
    image_to_patches(images, cfg_.patch_size, patches_);
    patch_embed.forward(patches_, xs_[0]);
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i].forward(xs_[i], xs_[i + 1], caches_[i]);
    final_norm.forward(xs_[layers.size()], xf_, final_cache_);
    head.forward(xf_, nullptr);
  }

  TnnConfig cfg_;
  Tensor<T> patches_;                           // [B, N, P*P*Ch], N = grid_h * grid_w
  std::vector<Tensor<T>> xs_;                   // [layers + 1] x [B, N, D] residual stream
  std::vector<typename Block::Cache> caches_;   // [layers]
  Tensor<T> xf_;                                // [B, N, D] final_norm(xs_.back())
  typename Norm<T>::Cache final_cache_;
  bool has_loss_ = false;
  Tensor<T> dxf_;      // [B, N, D]
  Tensor<T> dres_[2];  // [B, N, D] residual-stream gradient, ping-pong over layers
};

// An image classifier from a checkpoint: its config (task image) and weights; the header's
// tensor shapes are checked against the config before the model is allocated.
template <class T>
TnnImageClassifier<T> load_image_classifier(const std::string& path) {
  const TnnConfig cfg = read_config(path);
  if (cfg.task != Task::Image)
    fail<ConfigError>("checkpoint '", path, "': expected an image classifier (config task 'image'), got task '",
                      to_string(cfg.task), "'");
  TnnImageClassifier<T> model(cfg);
  load_weights(path, model);
  return model;
}

}  // namespace tnn
