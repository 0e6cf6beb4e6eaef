// Relative position encoder (model.md §2): a small MLP from a relative offset k (fed as
// p = k, or as k / (N - 1) or exp(k / (N - 1)) by `par_type`, docs/official.md §2.4) to the
// H*Dh Toeplitz coefficients of that offset. It runs once per forward over all K offsets a
// sequence needs, never per batch row.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz.hpp"
#include "tnn/layers/activation.hpp"
#include "tnn/layers/linear.hpp"
#include "tnn/layers/norm.hpp"
#include "tnn/core/rng.hpp"

namespace tnn {

// The RPE's input for offset k of a length-n sequence (config key par_type, docs/official.md
// §2.4): 1: k; 2: k / (n - 1); 3: exp(k / (n - 1)). At n = 1 only k = 0 exists, fed 0 (types
// 1, 2) or 1 (type 3). Types 2 and 3 make every coefficient depend on n.
inline double rpe_input(Index k, Index n, Index par_type) {
  if (par_type == 1) return static_cast<double>(k);
  const double s = n > 1 ? static_cast<double>(k) / static_cast<double>(n - 1) : 0.0;
  return par_type == 2 ? s : std::exp(s);
}

// The offsets of a length-n sequence as RPE inputs, in the row order of the [K, C]
// coefficient layout of toeplitz.hpp: causal row k holds offset k (k = 0..n-1); otherwise row
// r holds offset r - (n-1) (k = -(n-1)..n-1); each fed as rpe_input(k, n, par_type).
template <class T>
void rpe_offsets(Index n, bool causal, Tensor<T>& pos, Index par_type = 1) {
  if (n < 1) fail<ShapeError>("rpe sequence length: expected >= 1, got ", n);
  if (par_type < 1 || par_type > 3) fail<ConfigError>("config key 'par_type': expected 1, 2 or 3, got ", par_type);
  const Index K = toeplitz_num_coeffs(n, causal), first = causal ? 0 : -(n - 1);
  pos.resize({K, 1});  // [K, 1]
  for (Index r = 0; r < K; ++r) pos[r] = static_cast<T>(rpe_input(first + r, n, par_type));
}

// The RPE's shape and choices (config keys rpe_dim, rpe_layers, norm_type, rpe_act, residual,
// bias, par_type).
struct RpeOptions {
  Index dim = 64;                           // R
  Index layers = 1;                         // hidden R -> R blocks
  NormType norm = NormType::SimpleRMSNorm;  // the norm of every block
  Activation act = Activation::Relu;
  bool residual = false;  // each hidden block adds its input: h = h + Linear(act(norm(h)))
  bool bias = true;       // false: no Linear of the RPE has a bias
  Index par_type = 1;     // the offset's encoding, rpe_input()
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
  Rpe(const RpeOptions& o, Index out_width, Index offset_dims = 1)
      : pos_proj(offset_dims, o.dim, o.bias), act_(o.act), residual_(o.residual), par_type_(o.par_type) {
    if (o.layers < 0) fail<ConfigError>("Rpe: expected rpe_layers >= 0, got ", o.layers);
    if (o.par_type < 1 || o.par_type > 3) fail<ConfigError>("config key 'par_type': expected 1, 2 or 3, got ", o.par_type);
    layers.reserve(static_cast<std::size_t>(o.layers));
    for (Index l = 0; l < o.layers; ++l)
      layers.push_back(Block{Norm<T>(o.norm, o.dim), Linear<T>(o.dim, o.dim, o.bias)});
    out = Block{Norm<T>(o.norm, o.dim), Linear<T>(o.dim, out_width, o.bias)};
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
  bool residual() const { return residual_; }
  Index par_type() const { return par_type_; }

  // PyTorch's Linear default (uniform +-1/sqrt(in) for weight and bias) for
  // pos_proj, each hidden linear, then the output linear; norms keep their
  // constructor values (scale = weight = 1, bias = 0), as in PyTorch.
  void init_weights(Rng& rng) {
    pos_proj.init_uniform(rng);
    for (auto& b : layers) b.linear.init_uniform(rng);
    out.linear.init_uniform(rng);
  }

  struct Cache {
    Tensor<T> pos;                                // [K, 1] the offsets as inputs (rpe_input)
    std::vector<Tensor<T>> h;                     // [hidden+1] x [K, R] input of block l (last: of out)
    std::vector<Tensor<T>> z;                     // [hidden+1] x [K, R] norm(h[l]), the activation's input
    std::vector<Tensor<T>> a;                     // [hidden+1] x [K, R] act(z[l]), the linear's input
    std::vector<typename Norm<T>::Cache> norm;    // [hidden+1]
    // backward workspaces, kept so a training step reuses them
    Tensor<T> da;  // [K, R]
    Tensor<T> dh;  // [K, R]
    Tensor<T> dn;  // [K, R] the norm's part of dLoss/dh (residual only)
  };

  // Coefficients of every offset of a length-n sequence: out [K, H*Dh], rows as rpe_offsets.
  void forward(Index n, bool causal, Tensor<T>& y, Cache& c) const {
    rpe_offsets(n, causal, c.pos, par_type_);
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
      if (residual_ && l < L) {
        // h[l+1] = h[l] + Linear(act(norm(h[l]))): dh (dLoss/dh[l+1]) reaches h[l] directly too.
        blk.norm.backward(c.h[ls], c.da, c.norm[ls], c.dn);
        c.dh.vec() += c.dn.vec();
      } else {
        blk.norm.backward(c.h[ls], c.da, c.norm[ls], c.dh);
      }
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
      if (residual_ && l + 1 < n) c.h[l + 1].vec() += c.h[l].vec();
    }
  }

  Activation act_ = Activation::Relu;
  bool residual_ = false;
  Index par_type_ = 1;
};

}  // namespace tnn
