// Relative position encoder (model.md §2): a small MLP from a relative offset
// k (fed as the float p = k) to the H*Dh Toeplitz coefficients of that offset.
// It runs once per forward over all K offsets a sequence needs, never per batch row.
#pragma once

#include <string>
#include <vector>

#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

// The offsets of a length-n sequence as RPE inputs, in the row order of the [K, C]
// coefficient layout of toeplitz.hpp: causal row k holds p = k (k = 0..n-1);
// otherwise row r holds p = r - (n-1) (k = -(n-1)..n-1).
template <class T>
void rpe_offsets(Index n, bool causal, Tensor<T>& pos) {
  if (n < 1) fail<ShapeError>("rpe sequence length: expected >= 1, got ", n);
  const Index K = toeplitz_num_coeffs(n, causal), first = causal ? 0 : -(n - 1);
  pos.resize({K, 1});  // [K, 1]
  for (Index r = 0; r < K; ++r) pos[r] = static_cast<T>(first + r);
}

// The RPE's shape and choices (config keys rpe_dim, rpe_layers, norm_type, rpe_act).
struct RpeOptions {
  Index dim = 64;                           // R
  Index layers = 1;                         // hidden R -> R blocks
  NormType norm = NormType::SimpleRMSNorm;  // the norm of every block
  Activation act = Activation::Relu;
};

template <class T>
class Rpe : public Visits<Rpe<T>> {
 public:
  // One `Linear(act(norm(h)))` step; in PyTorch a Sequential(norm, act, linear),
  // hence the checkpoint names `.0.` (norm) and `.2.` (linear).
  struct Block {
    Norm<T> norm;
    Linear<T> linear;
  };

  Rpe() = default;
  // out_width = H*Dh coefficients per offset; an offset has `offset_dims` coordinates (1; 2 for
  // the 2-D TNO's (di, dj), layers/tno2d.hpp).
  Rpe(const RpeOptions& o, Index out_width, Index offset_dims = 1) : pos_proj(offset_dims, o.dim), act_(o.act) {
    if (o.layers < 0) fail<ConfigError>("Rpe: expected rpe_layers >= 0, got ", o.layers);
    layers.reserve(static_cast<std::size_t>(o.layers));
    for (Index l = 0; l < o.layers; ++l) layers.push_back(Block{Norm<T>(o.norm, o.dim), Linear<T>(o.dim, o.dim)});
    out = Block{Norm<T>(o.norm, o.dim), Linear<T>(o.dim, out_width)};
    pos_proj.set_fp32_only(true);  // a bf16 step rounds the products of large layers, never these
    for (auto& b : layers) b.linear.set_fp32_only(true);
    out.linear.set_fp32_only(true);
  }

  Linear<T> pos_proj;         // offset_dims (1) -> R
  std::vector<Block> layers;  // rpe_layers blocks, R -> R
  Block out;                  // R -> H*Dh

  Index width() const { return pos_proj.out_features(); }
  Index out_features() const { return out.linear.out_features(); }
  Index hidden_layers() const { return static_cast<Index>(layers.size()); }
  Activation activation() const { return act_; }

  // PyTorch's Linear default (uniform +-1/sqrt(in) for weight and bias) for
  // pos_proj, each hidden linear, then the output linear; norms keep their
  // constructor values (scale = weight = 1, bias = 0), as in PyTorch.
  void init_weights(Rng& rng) {
    pos_proj.init_uniform(rng);
    for (auto& b : layers) b.linear.init_uniform(rng);
    out.linear.init_uniform(rng);
  }

  struct Cache {
    Tensor<T> pos;                                // [K, 1] offsets p = k
    std::vector<Tensor<T>> h;                     // [hidden+1] x [K, R] input of block l (last: of out)
    std::vector<Tensor<T>> z;                     // [hidden+1] x [K, R] norm(h[l]), the activation's input
    std::vector<Tensor<T>> a;                     // [hidden+1] x [K, R] act(z[l]), the linear's input
    std::vector<typename Norm<T>::Cache> norm;    // [hidden+1]
    // backward workspaces, kept so a training step reuses them
    Tensor<T> da;  // [K, R]
    Tensor<T> dh;  // [K, R]
  };

  // Coefficients of every offset of a length-n sequence: out [K, H*Dh], rows as rpe_offsets.
  void forward(Index n, bool causal, Tensor<T>& y, Cache& c) const {
    rpe_offsets(n, causal, c.pos);
    run_forward(y, c);
  }
  // Coefficients of arbitrary offsets: pos [K, offset_dims] -> y [K, H*Dh]. pos is copied into the cache.
  void forward(const Tensor<T>& pos, Tensor<T>& y, Cache& c) const {
    if (pos.rank() != 2 || pos.dim(1) != pos_proj.in_features())
      fail<ShapeError>("rpe offsets: expected shape [K, ", pos_proj.in_features(), "], got ", shape_str(pos.shape()));
    if (&pos != &c.pos) c.pos = pos;
    run_forward(y, c);
  }

  // dy [K, H*Dh] = dLoss/dy of the last forward with this cache. Accumulates every grad.
  void backward(const Tensor<T>& dy, Cache& c) {
    const Index L = hidden_layers();
    if (c.a.size() != static_cast<std::size_t>(L + 1) || c.pos.rank() != 2)
      fail<Error>("rpe backward: expected a forward with this cache first, got an empty cache");
    const Index K = c.pos.dim(0);
    if (dy.rank() != 2 || dy.dim(0) != K || dy.dim(1) != out_features())
      fail<ShapeError>("rpe grad_output: expected shape [", K, ", ", out_features(), "], got ",
                       shape_str(dy.shape()));
    const auto Ls = static_cast<std::size_t>(L);
    out.linear.backward(c.a[Ls], dy, &c.da);
    for (Index l = L; l >= 0; --l) {
      const auto ls = static_cast<std::size_t>(l);
      Block& blk = l == L ? out : layers[ls];
      activation_backward(act_, c.z[ls], c.da, c.da);  // da now holds dLoss/dz[l]
      blk.norm.backward(c.h[ls], c.da, c.norm[ls], c.dh);
      if (l > 0) layers[ls - 1].linear.backward(c.a[ls - 1], c.dh, &c.da);
    }
    pos_proj.backward(c.pos, c.dh, nullptr);
  }

 private:
  friend Visits<Rpe<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.pos_proj.visit(prefix + "pos_proj.", f);
    for (std::size_t l = 0; l < m.layers.size(); ++l) {
      const std::string p = prefix + "layers." + std::to_string(l) + ".";
      m.layers[l].norm.visit(p + "0.", f);
      m.layers[l].linear.visit(p + "2.", f);
    }
    m.out.norm.visit(prefix + "out.0.", f);
    m.out.linear.visit(prefix + "out.2.", f);
  }

  void run_forward(Tensor<T>& y, Cache& c) const {
    const auto n = static_cast<std::size_t>(hidden_layers() + 1);
    c.h.resize(n);
    c.z.resize(n);
    c.a.resize(n);
    c.norm.resize(n);
    pos_proj.forward(c.pos, c.h[0]);
    for (std::size_t l = 0; l < n; ++l) {
      const Block& blk = l + 1 == n ? out : layers[l];
      blk.norm.forward(c.h[l], c.z[l], c.norm[l]);
      activation_forward(act_, c.z[l], c.a[l]);
      blk.linear.forward(c.a[l], l + 1 == n ? y : c.h[l + 1]);
    }
  }

  Activation act_ = Activation::Relu;
};

}  // namespace tnn
