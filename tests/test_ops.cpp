// Every op registered once with the op-check harness (tests/op_check.hpp): its
// seeded inputs and parameters, forward, backward and its direct or dense
// reference (tests/reference.hpp). Each registration runs four checks:
// forward vs reference, central-difference gradients in double, float vs double,
// and backward accumulating into parameter gradients. The harness's own tests at
// the end show each check can fail.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "op_check.hpp"
#include "reference.hpp"
#include "tnn/core/toeplitz.hpp"
#include "tnn/core/toeplitz2d.hpp"
#include "tnn/layers/gtu2d.hpp"
#include "tnn/layers/tno2d.hpp"
#include "tnn/model/models.hpp"
#include "tnn/model/config.hpp"
#include "tnn/model/loss.hpp"
#include "tiny_configs.hpp"

using namespace tnn;
using opcheck::Case;
using opcheck::cat;
using opcheck::OpSpec;
using opcheck::Options;
using opcheck::random;

namespace {

const std::vector<NormType> kNorms = enum_values<NormType>();
const Index kNumNorms = static_cast<Index>(kNorms.size());
// The norms the nested model loops go over (each of kNorms is checked alone in add_norms and in
// the layer combinations, which cycle through all of them).
const NormType kModelNorms[] = {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm};
// Every value of the option tables: a new activation or norm is checked here without editing this file.
const std::vector<Activation> kActs = enum_values<Activation>();
const Index kNumActs = static_cast<Index>(kActs.size());
// An activation whose derivative jumps at 0 (central differences there need gradcheck's kink policy).
bool kinked(Activation a) { return a == Activation::Relu || a == Activation::Leak; }
const TnoDecay kDecays[] = {TnoDecay::None, TnoDecay::Fixed, TnoDecay::Learned};
const char* decay_name(TnoDecay d) { return d == TnoDecay::None ? "none" : d == TnoDecay::Fixed ? "fixed" : "learned"; }
const char* method_name(ToeplitzMethod m) {
  return m == ToeplitzMethod::Direct ? "direct" : m == ToeplitzMethod::FFT ? "fft" : "auto";
}

// ---- the shapes most ops share ----

// The state of a layer op on one differentiable input: the layer, its cache and the input.
template <class T, class Layer>
struct LayerState {
  Layer layer;
  typename Layer::Cache c;
  Tensor<T> x;
};

// A layer op's state holding `layer` and `x`, shared by its Case's functions.
template <class T, class Layer>
std::shared_ptr<LayerState<T, Layer>> layer_state(Layer layer, Tensor<T> x = {}) {
  return std::make_shared<LayerState<T, Layer>>(LayerState<T, Layer>{std::move(layer), {}, std::move(x)});
}

// layer.backward(x, dy, cache, dx) with dx as the layer takes it: by pointer (GLU, GTU, TNO) or
// by reference (norm, block); the int/long argument picks the pointer form where it compiles.
template <class Layer, class T>
auto backward_into(Layer& l, const Tensor<T>& x, const Tensor<T>& dy, typename Layer::Cache& c, Tensor<T>& dx, int)
    -> decltype(l.backward(x, dy, c, &dx)) {
  l.backward(x, dy, c, &dx);
}
template <class Layer, class T>
void backward_into(Layer& l, const Tensor<T>& x, const Tensor<T>& dy, typename Layer::Cache& c, Tensor<T>& dx, long) {
  l.backward(x, dy, c, dx);
}

// The Case of a layer op: y = layer.forward(x, cache), the input named `input`, the given
// parameters and, in double, the reference y = ref(layer, x).
template <class T, class Layer, class Ref>
Case<T> layer_case(const std::shared_ptr<LayerState<T, Layer>>& st, const char* input, opcheck::ParamList<T> params,
                   Ref ref) {
  Case<T> c;
  c.inputs = {{input, &st->x}};
  c.params = std::move(params);
  c.forward = [st](Tensor<T>& y) { st->layer.forward(st->x, y, st->c); };
  c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& dx) {
    backward_into(st->layer, st->x, dy, st->c, dx[0], 0);
  };
  if constexpr (std::is_same_v<T, double>) c.reference = [st, ref](Tensor<T>& y) { y = ref(st->layer, st->x); };
  return c;
}

// The references of the layers, as layer_case takes them.
const auto kGluRef = [](const auto& g, const auto& x) { return reference::glu(g, x); };
const auto kGtuRef = [](const auto& g, const auto& x) { return reference::gtu(g, x); };

// Options for a model whose output is its mean loss: a scalar, whose backward() takes no dy.
Options loss_options(const TnnConfig& cfg, Index max_entries = -1) {
  Options o;
  o.unit_cotangent = true;
  o.max_entries = max_entries;
  o.float_tol = 1e-5;  // the loss, a mean
  o.kinked = kinked(cfg.rpe_act) || kinked(cfg.gtu_act) || kinked(cfg.glu_act);
  return o;
}

// The Case of a model st->m seeded with `seed` and perturbed (seed + 100) whose output is a scalar
// loss: y = loss(*st), in double the reference y = ref(*st); every parameter but attention's key
// biases (testing_helpers::without_key_bias).
template <class T, class St, class Loss, class Ref>
Case<T> loss_case(const std::shared_ptr<St>& st, std::uint64_t seed, Loss loss, Ref ref) {
  st->m.init_weights(seed);
  opcheck::perturb(st->m.named_parameters(), seed + 100);
  Case<T> c;
  c.params = testing_helpers::without_key_bias(st->m.named_parameters());
  c.forward = [st, loss](Tensor<T>& y) {
    y.resize({1});
    y[0] = loss(*st);
  };
  c.backward = [st](const Tensor<T>&, std::vector<Tensor<T>>&) { st->m.backward(); };
  if constexpr (std::is_same_v<T, double>)
    c.reference = [st, ref](Tensor<T>& y) {
      y.resize({1});
      y[0] = ref(*st);
    };
  return c;
}

// ---- kernels: y = T x (Toeplitz), y = C x (circulant); inputs x and the coefficients ----

template <class Backend>
OpSpec toeplitz(const char* backend, Index N, bool causal, ToeplitzMethod m) {
  Options o;
  o.float_tol = 2e-4;
  return opcheck::op(cat("Toeplitz_", backend, "_", method_name(m), causal ? "_causal" : "_bidir", "_N", N), o,
                     [=](auto s) {
                       using T = typename decltype(s)::type;
                       struct St {
                         ToeplitzOp<T, Backend> op;
                         Tensor<T> t, x;
                       };
                       auto st = std::make_shared<St>();
                       const Index C = 2, B = 2;
                       st->t = random<T>({toeplitz_num_coeffs(N, causal), C}, 11);
                       st->x = random<T>({B, N, C}, 12);
                       Case<T> c;
                       c.inputs = {{"x", &st->x}, {"t", &st->t}};
                       c.forward = [st, N, causal, m](Tensor<T>& y) {
                         st->op.prepare(st->t, N, causal, m);
                         st->op.forward(st->x, y);
                       };
                       c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& d) {
                         st->op.backward(dy, &d[0], &d[1]);
                       };
                       c.reference = [st, causal](Tensor<T>& y) { toeplitz_forward_direct(st->t, st->x, y, causal); };
                       return c;
                     });
}

template <class Backend>
OpSpec circulant(const char* backend, Index L) {
  Options o;
  o.float_tol = 2e-4;
  return opcheck::op(cat("Circulant_", backend, "_L", L), o, [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      CirculantOp<T, Backend> op;
      Tensor<T> c, x;
    };
    auto st = std::make_shared<St>();
    st->c = random<T>({L, 3}, 51);
    st->x = random<T>({2, L, 3}, 52);
    Case<T> c;
    c.inputs = {{"x", &st->x}, {"c", &st->c}};
    c.forward = [st](Tensor<T>& y) {
      st->op.prepare(st->c);
      st->op.forward(st->x, y);
    };
    c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& d) { st->op.backward(dy, &d[0], &d[1]); };
    c.reference = [st](Tensor<T>& y) { circulant_forward_direct(st->c, st->x, y); };
    return c;
  });
}

// y = T x over an H x W grid (model.md §12): x [B, H, W, C], t [2H-1, 2W-1, C].
template <class Backend>
OpSpec toeplitz2d(const char* backend, Index H, Index W, ToeplitzMethod m) {
  Options o;
  o.float_tol = 2e-4;
  if (H * W > 30) o.max_entries = 40;
  return opcheck::op(cat("Toeplitz2d_", backend, "_", method_name(m), "_", H, "x", W), o, [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      Toeplitz2dOp<T, Backend> op;
      Tensor<T> t, x;
    };
    auto st = std::make_shared<St>();
    st->t = random<T>({2 * H - 1, 2 * W - 1, 2}, 61);
    st->x = random<T>({2, H, W, 2}, 62);
    Case<T> c;
    c.inputs = {{"x", &st->x}, {"t", &st->t}};
    c.forward = [st, H, W, m](Tensor<T>& y) {
      st->op.prepare(st->t, H, W, m);
      st->op.forward(st->x, y);
    };
    c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& d) { st->op.backward(dy, &d[0], &d[1]); };
    c.reference = [st](Tensor<T>& y) { toeplitz2d_forward_direct(st->t, st->x, y); };
    return c;
  });
}

void add_kernels(std::vector<OpSpec>& v) {
  for (bool causal : {true, false})
    for (Index N : {1, 5, 40, 70, 130})
      for (ToeplitzMethod m : {ToeplitzMethod::Direct, ToeplitzMethod::FFT}) {
        v.push_back(toeplitz<EigenBackend>("eigen", N, causal, m));
#ifndef TNN_NO_FFTW
        if (m == ToeplitzMethod::FFT) v.push_back(toeplitz<FftwBackend>("fftw", N, causal, m));
#endif
      }
  for (Index L : {1, 2, 5, 64, 99}) {
    v.push_back(circulant<EigenBackend>("eigen", L));
#ifndef TNN_NO_FFTW
    v.push_back(circulant<FftwBackend>("fftw", L));
#endif
  }
  // odd and even sides, and H = 1 or W = 1 (the 1-D product)
  for (auto [H, W] : {std::pair<Index, Index>{1, 1}, {1, 6}, {5, 1}, {2, 3}, {4, 4}, {7, 6}})
    for (ToeplitzMethod m : {ToeplitzMethod::Direct, ToeplitzMethod::FFT}) {
      v.push_back(toeplitz2d<EigenBackend>("eigen", H, W, m));
#ifndef TNN_NO_FFTW
      if (m == ToeplitzMethod::FFT) v.push_back(toeplitz2d<FftwBackend>("fftw", H, W, m));
#endif
    }
}

// ---- layers ----

// One op per activation a, named prefix + a, made by make(s, a) as opcheck::op's makers are by
// make(s); kinked where a is.
template <class Maker>
void add_per_activation(std::vector<OpSpec>& v, const char* prefix, Maker make) {
  for (Activation a : kActs) {
    Options o;
    o.kinked = kinked(a);
    v.push_back(opcheck::op(cat(prefix, to_string(a)), o, [=](auto s) { return make(s, a); }));
  }
}

void add_activations(std::vector<OpSpec>& v) {
  add_per_activation(v, "Activation_", [](auto s, Activation a) {
    using T = typename decltype(s)::type;
    auto x = std::make_shared<Tensor<T>>(random<T>({3, 4, 5}, 7));
    Case<T> c;
    c.inputs = {{"x", x.get()}};
    c.forward = [x, a](Tensor<T>& y) { activation_forward(a, *x, y); };
    c.backward = [x, a](const Tensor<T>& dy, std::vector<Tensor<T>>& d) { activation_backward(a, *x, dy, d[0]); };
    c.reference = [x, a](Tensor<T>& y) {
      y.resize(x->shape());
      for (Index i = 0; i < y.size(); ++i) y[i] = act_forward(a, (*x)[i]);
    };
    return c;
  });
}

void add_linear(std::vector<OpSpec>& v) {
  for (bool bias : {true, false})
    v.push_back(opcheck::op(bias ? "Linear_bias" : "Linear_nobias", {}, [=](auto s) {
      using T = typename decltype(s)::type;
      struct St {
        Linear<T> lin;
        Tensor<T> x;
      };
      auto st = std::make_shared<St>(St{Linear<T>(6, 4, bias), random<T>({3, 2, 6}, 12)});
      Rng rng(5);
      st->lin.init_uniform(rng);
      Case<T> c;
      c.inputs = {{"x", &st->x}};
      c.params = opcheck::params_of(st->lin);
      c.forward = [st](Tensor<T>& y) { st->lin.forward(st->x, y); };
      c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& d) { st->lin.backward(st->x, dy, &d[0]); };
      if constexpr (std::is_same_v<T, double>) c.reference = [st](Tensor<T>& y) { y = reference::linear(st->lin, st->x); };
      return c;
    }));
}

void add_embedding(std::vector<OpSpec>& v) {
  v.push_back(opcheck::op("Embedding_repeated_ids", {}, [](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      Embedding<T> emb{6, 4};
      Tensor<std::int32_t> tokens = testing_helpers::ids({2, 3}, {1, 3, 1, 5, 1, 0});  // id 1 three times
    };
    auto st = std::make_shared<St>();
    Rng rng(2);
    st->emb.init_normal(rng, 0.5);
    Case<T> c;
    c.params = opcheck::params_of(st->emb);
    c.forward = [st](Tensor<T>& y) { st->emb.forward(st->tokens, y); };
    c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>&) { st->emb.backward(st->tokens, dy); };
    if constexpr (std::is_same_v<T, double>)
      c.reference = [st](Tensor<T>& y) { y = reference::embedding(st->emb, st->tokens); };
    return c;
  }));
}

void add_norms(std::vector<OpSpec>& v) {
  for (NormType t : kNorms)
    for (Index d : {2, 7}) {
      // layernorm of 2 features: xhat = +-1 up to eps, so dx is the O(eps) remainder of
      // O(1) terms that cancel, and float keeps only a few digits of it: held to 1e-2.
      Options o;
      if (t == NormType::LayerNorm && d == 2) o.float_grad_tol = 1e-2;
      v.push_back(opcheck::op(cat("Norm_", to_string(t), "_d", d), o, [=](auto s) {
        using T = typename decltype(s)::type;
        auto st = layer_state(Norm<T>(t, d), random<T>({2, 3, d}, 5));
        Rng rng(3);
        for (auto& [name, p] : opcheck::params_of(st->layer))  // scales in [0.5, 1.5], biases in [0.15, 0.45]
          for (auto& x : p->value) x = T(rng.uniform(0.5, 1.5) * (name == "bias" ? 0.3 : 1.0));
        return layer_case(st, "x", opcheck::params_of(st->layer),
                          [](const auto& n, const auto& x) { return reference::norm(n, x); });
      }));
    }
}

// A GLU on x [2, 3, 4] (seed 5), its weights initialized from seed 4.
template <class T>
Case<T> glu_case(Glu<T> glu) {
  auto st = layer_state(std::move(glu), random<T>({2, 3, 4}, 5));
  Rng rng(4);
  st->layer.init_weights(rng);
  return layer_case(st, "x", opcheck::params_of(st->layer, "feature_mixer."), kGluRef);
}

void add_glu(std::vector<OpSpec>& v) {
  add_per_activation(v, "Glu_", [](auto s, Activation a) {
    using T = typename decltype(s)::type;
    return glu_case(Glu<T>(4, 7, a));
  });
}

// The RPE of options `ro` (6 outputs) giving the coefficient rows of length n; every parameter,
// norms included (none may be ignored), drawn from N(0, 0.7^2) with `seed`.
OpSpec rpe_spec(const std::string& name, const Options& o, RpeOptions ro, Index n, bool causal, std::uint64_t seed) {
  return opcheck::op(name, o, [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      Rpe<T> r;
      typename Rpe<T>::Cache c;
    };
    auto st = std::make_shared<St>(St{Rpe<T>(ro, 6), {}});
    Rng rng(seed);
    for (auto& [nm, p] : opcheck::params_of(st->r))
      for (auto& x : p->value) x = T(rng.normal(0.0, 0.7));
    Case<T> c;
    c.params = opcheck::params_of(st->r, "rpe.");
    c.forward = [st, n, causal](Tensor<T>& y) { st->r.forward(n, causal, y, st->c); };
    c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>&) { st->r.backward(dy, st->c); };
    if constexpr (std::is_same_v<T, double>)
      c.reference = [st, n, causal](Tensor<T>& y) { y = reference::rpe_rows(st->r, n, causal); };
    return c;
  });
}

// RPE: every norm, activation, depth, direction and length (the ~600 offsets of
// N = 300 on a sample of entries).
void add_rpe(std::vector<OpSpec>& v) {
  for (NormType norm : kModelNorms)
    for (Activation act : kActs)
      for (Index hidden : {0, 2})
        for (bool causal : {true, false})
          for (Index n : {1, 2, 17, 300}) {
            Options o;
            o.kinked = kinked(act);
            if (n == 300) o.max_entries = 12;
            v.push_back(
                rpe_spec(cat("Rpe_", to_string(norm), "_", to_string(act), "_h", hidden, causal ? "_causal" : "_bidir",
                             "_N", n),
                         o, RpeOptions{4, hidden, norm, act}, n, causal, 100 + std::uint64_t(n)));
          }
}

// TNO: heads H with Dh = 2 (H = 3) or 3 (H = 1), RPE width 4; every trainable
// value (norm parameters and theta included) drawn at random.
template <class T>
Tno<T> make_tno_layer(Index heads, bool causal, TnoDecay decay, NormType norm, Activation act, Index rpe_layers) {
  return Tno<T>(TnoOptions{heads, causal, decay, 0.9, RpeOptions{4, rpe_layers, norm, act}}, heads == 1 ? 3 : 2);
}

OpSpec tno_spec(const std::string& name, Index heads, bool causal, TnoDecay decay, NormType norm, Activation act,
                Index rpe_layers, Index n, ToeplitzMethod method, Options o, std::uint64_t seed) {
  o.kinked = kinked(act);
  return opcheck::op(name, o, [=](auto s) {
    using T = typename decltype(s)::type;
    auto st = layer_state<T>(make_tno_layer<T>(heads, causal, decay, norm, act, rpe_layers));
    st->layer.method = method;
    Rng rng(seed);
    for (auto& [nm, p] : opcheck::params_of(st->layer))
      if (p->trainable)
        for (auto& x : p->value) x = T(rng.normal(0.0, 0.7));
    st->x = random<T>({2, n, st->layer.channels()}, seed + 10);
    return layer_case(st, "v", opcheck::params_of(st->layer, "toep."),
                      [](const auto& tno, const auto& v) { return reference::tno(tno, v); });
  });
}

void add_tno(std::vector<OpSpec>& v) {
  int combo = 0;
  for (bool causal : {true, false})
    for (Index heads : {1, 3})
      for (TnoDecay decay : kDecays)
        for (NormType norm : kModelNorms)
          for (Index n : {1, 2, 17, 300}) {
            const Activation act = kActs[std::size_t(combo % kNumActs)];
            const Index rpe_layers = (combo / 4) % 2 == 0 ? 0 : 2;
            ++combo;
            Options o;
            if (n >= 17) o.max_entries = n == 300 ? 12 : 30;
            // Over 300 positions with exp-like activations the gradients reach the hundreds and a
            // central difference in double keeps about six digits of them.
            if (n == 300) o.grad_tol = 1e-5;
            v.push_back(tno_spec(cat("Tno", causal ? "_causal" : "_bidir", "_H", heads, "_", decay_name(decay), "_",
                                     to_string(norm), "_", to_string(act), "_rpe", rpe_layers, "_N", n),
                                 heads, causal, decay, norm, act, rpe_layers, n, ToeplitzMethod::Auto, o,
                                 50 + std::uint64_t(combo)));
          }
  // Auto switches path at kToeplitzDirectMaxN: both paths at that one length.
  for (ToeplitzMethod m : {ToeplitzMethod::Direct, ToeplitzMethod::FFT})
    for (bool causal : {true, false}) {
      Options o;
      o.max_entries = 40;
      v.push_back(tno_spec(cat("Tno_crossover_", method_name(m), causal ? "_causal" : "_bidir"), 3, causal,
                           TnoDecay::Learned, NormType::RMSNorm, Activation::Silu, 2, kToeplitzDirectMaxN, m, o, 5));
    }
}

// GTU: D = 4, E = 6 (expand 1.5), RPE width 4, across heads, decay, norms and activations.
void add_gtu(std::vector<OpSpec>& v) {
  int combo = 0;
  for (bool causal : {true, false})
    for (Index heads : {1, 3})
      for (int decay : {0, 1, 2})
        for (Index n : {1, 2, 17, 300}) {
          TnnConfig cfg = testing_helpers::tiny_gtu_config(heads, causal);
          cfg.decay = (decay == 2) ? TnoDecay::Learned : (decay == 1) ? TnoDecay::Fixed : TnoDecay::None;
          cfg.norm_type = kNorms[std::size_t(combo % kNumNorms)];
          cfg.rpe_act = kActs[std::size_t(combo % kNumActs)];
          cfg.gtu_act = kActs[std::size_t((combo / 3) % kNumActs)];
          cfg.rpe_layers = (combo / 2) % 2 == 0 ? 0 : 2;
          ++combo;
          Options o;
          if (n >= 17) o.max_entries = n == 300 ? 12 : 30;
          o.kinked = kinked(cfg.rpe_act) || kinked(cfg.gtu_act);
          // (as in add_tno: 300 positions; and gatedrmsnorm's gate gradients can be ~1e-6, where a
          // central difference keeps five digits)
          if (n == 300 || cfg.norm_type == NormType::GatedRMSNorm) o.grad_tol = 1e-5;
          const std::uint64_t seed = 20 + std::uint64_t(combo);
          v.push_back(opcheck::op(
              cat("Gtu", causal ? "_causal" : "_bidir", "_H", heads, "_decay", decay, "_", to_string(cfg.norm_type),
                  "_rpe", to_string(cfg.rpe_act), cfg.rpe_layers, "_gtu", to_string(cfg.gtu_act), "_N", n),
              o, [=](auto s) {
                using T = typename decltype(s)::type;
                auto st = layer_state(make_gtu<T>(cfg), random<T>({2, n, 4}, seed + 10));
                Rng rng(seed);
                st->layer.init_weights(rng);
                for (auto& [nm, p] : opcheck::params_of(st->layer))  // the RPE's norm parameters and theta too
                  if (nm.find(".0.scale") != std::string::npos || nm.find(".0.weight") != std::string::npos ||
                      nm.find(".0.bias") != std::string::npos)
                    for (auto& x : p->value) x = T(1.0 + rng.normal(0.0, 0.3));
                return layer_case(st, "x", opcheck::params_of(st->layer, "token_mixer."), kGtuRef);
              }));
        }
}

// The 2-D TNO and GTU over an H x W grid (v, x [B, H*W, channels]): heads 2 with Dh 2, RPE
// width 4 (its input the offset pair), every trainable value drawn at random.
template <class T>
Tno2d<T> make_tno2d_layer(Index H, Index W, TnoDecay decay, NormType norm, Activation act, Index rpe_layers) {
  return Tno2d<T>(TnoOptions{2, false, decay, 0.9, RpeOptions{4, rpe_layers, norm, act}}, 2, H, W);
}

// The Case of a 2-D GTU g (with `gtu`) or of its TNO alone (input width 3 or the TNO's channels,
// [2, H*W, width] drawn from x_seed): both keep the whole GTU, so its values are drawn alike.
template <class T>
Case<T> gtu2d_case(Gtu2d<T> g, bool gtu, std::uint64_t x_seed) {
  struct St {
    Gtu2d<T> g;
    typename Gtu2d<T>::Cache gc;
    typename Tno2d<T>::Cache tc;
    Tensor<T> x;
  };
  const Index H = g.toep.grid_h(), W = g.toep.grid_w();
  auto st = std::make_shared<St>();
  st->x = random<T>({2, H * W, gtu ? 3 : g.toep.channels()}, x_seed);
  st->g = std::move(g);
  Case<T> c;
  c.inputs = {{"x", &st->x}};
  if (gtu) {
    c.params = opcheck::params_of(st->g, "token_mixer.");
    c.forward = [st](Tensor<T>& y) { st->g.forward(st->x, y, st->gc); };
    c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& dx) { st->g.backward(st->x, dy, st->gc, &dx[0]); };
    if constexpr (std::is_same_v<T, double>) c.reference = [st](Tensor<T>& y) { y = reference::gtu(st->g, st->x); };
  } else {
    c.params = opcheck::params_of(st->g.toep, "toep.");
    c.forward = [st](Tensor<T>& y) { st->g.toep.forward(st->x, y, st->tc); };
    c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& dx) {
      st->g.toep.backward(st->x, dy, st->tc, &dx[0]);
    };
    if constexpr (std::is_same_v<T, double>) c.reference = [st](Tensor<T>& y) { y = reference::tno(st->g.toep, st->x); };
  }
  return c;
}

OpSpec tno2d_spec(Index H, Index W, TnoDecay decay, NormType norm, Activation act, Index rpe_layers,
                  ToeplitzMethod method, bool gtu, std::uint64_t seed) {
  Options o;
  o.kinked = kinked(act);
  o.max_entries = 30;
  const std::string name = cat(gtu ? "Gtu2d_" : "Tno2d_", H, "x", W, "_", decay_name(decay), "_", to_string(norm), "_",
                               to_string(act), "_rpe", rpe_layers, "_", method_name(method));
  return opcheck::op(name, o, [=](auto s) {
    using T = typename decltype(s)::type;
    Gtu2d<T> g(3, Activation::Silu, make_tno2d_layer<T>(H, W, decay, norm, act, rpe_layers));
    g.toep.method = method;
    Rng rng(seed);
    for (auto& [nm, p] : opcheck::params_of(g))
      if (p->trainable)
        for (auto& x : p->value) x = T(rng.normal(0.0, 0.7));
    return gtu2d_case(std::move(g), gtu, seed + 10);
  });
}

void add_2d_layers(std::vector<OpSpec>& v) {
  int combo = 0;
  for (auto [H, W] : {std::pair<Index, Index>{1, 4}, {3, 1}, {2, 3}, {4, 3}})
    for (TnoDecay decay : kDecays)
      for (NormType norm : kModelNorms) {
        const Activation act = kActs[std::size_t(combo % kNumActs)];
        const Index rpe_layers = combo % 3 == 0 ? 0 : 1;
        const ToeplitzMethod m = combo % 2 == 0 ? ToeplitzMethod::Direct : ToeplitzMethod::FFT;
        ++combo;
        v.push_back(tno2d_spec(H, W, decay, norm, act, rpe_layers, m, false, 70 + std::uint64_t(combo)));
        v.push_back(tno2d_spec(H, W, decay, norm, act, rpe_layers, m, true, 90 + std::uint64_t(combo)));
      }
}

// ---- model ----

// Blocks of the tiny config, with the GTU (2 heads) or attention (1 or 2 heads of D 8) as the
// token mixer (attention's key bias left out: testing_helpers::without_key_bias).
void add_block(std::vector<OpSpec>& v) {
  int combo = 0;
  for (TokenMixerKind mixer : enum_values<TokenMixerKind>())
    for (NormType norm : kModelNorms)
      for (bool prenorm : {true, false})
        for (bool causal : {true, false}) {
          TnnConfig cfg = testing_helpers::tiny_block_config(norm, prenorm, causal);
          cfg.token_mixer = mixer;
          if (mixer == TokenMixerKind::Attention) cfg.heads = 1 + combo++ % 2;
          cfg.validate();
          const std::string kind = mixer == TokenMixerKind::Attention ? cat("attention_H", cfg.heads, "_") : "";
          v.push_back(opcheck::op(cat("Block_", kind, to_string(norm), prenorm ? "_prenorm" : "_postnorm",
                                      causal ? "_causal" : "_bidir"),
                                  {}, [=](auto s) {
                                    using T = typename decltype(s)::type;
                                    auto st = layer_state(make_block<T>(cfg), random<T>({2, 6, 8}, 8));
                                    Rng rng(11);  // no relu (rpe_act) input within the step of its kink
                                    st->layer.init_weights(rng);
                                    opcheck::perturb(opcheck::params_of(st->layer), 12);
                                    return layer_case(
                                        st, "x",
                                        testing_helpers::without_key_bias(opcheck::params_of(st->layer, "layers.0.")),
                                        [](const auto& b, const auto& x) { return reference::block(b, x); });
                                  }));
        }
}

// The LM: y = the mean cross-entropy of a batch (a scalar; backward() takes no dy).
// With `train`, the forward is a training step's (dropout masks fixed by the seed and step).
OpSpec lm_spec(const std::string& name, TnnConfig cfg, Index B, Index N, Index max_entries = -1,
               std::uint64_t seed = 3, bool train = false) {
  cfg.validate();
  return opcheck::op(name, loss_options(cfg, max_entries), [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      TnnLM<T> m;
      Tensor<std::int32_t> tokens, targets;
    };
    auto st = std::make_shared<St>(St{TnnLM<T>(cfg), {}, {}});
    testing_helpers::lm_batch(cfg, B, N, seed + 1, st->tokens, st->targets);
    Case<T> c = loss_case<T>(
        st, seed, [](St& t) { return t.m.forward(t.tokens, t.targets); },
        [cfg, train](auto& t) {
          const DropoutContext drop{cfg.dropout, 9, 4, 0};
          return reference::cross_entropy(reference::lm_logits(t.m, t.tokens, train ? &drop : nullptr), t.targets);
        });
    if (train) st->m.set_training(/*seed=*/9, /*step=*/4);
    // With one position, attention's softmax is over one key: the output is v whatever q and k
    // are, so their gradients are 0 up to rounding, which relative checks would compare with itself.
    if (cfg.token_mixer == TokenMixerKind::Attention && N == 1)
      c.params.erase(std::remove_if(c.params.begin(), c.params.end(),
                                    [](const auto& p) {
                                      return p.first.find("q_proj.") != std::string::npos ||
                                             p.first.find("k_proj.") != std::string::npos;
                                    }),
                     c.params.end());
    return c;
  });
}

void add_lm(std::vector<OpSpec>& v) {
  v.push_back(lm_spec("LM_base", testing_helpers::tiny_lm_config(), 2, 5));
  for (bool causal : {true, false})
    for (Index heads : {1, 3, 4}) {
      TnnConfig c = testing_helpers::tiny_lm_config();
      c.causal = causal;
      c.heads = heads;  // E = 12: Dh 12, 4 or 3
      v.push_back(lm_spec(cat("LM", causal ? "_causal" : "_bidir", "_H", heads), c, 2, 4));
    }
  for (NormType n : kModelNorms)
    for (bool prenorm : {true, false}) {
      TnnConfig c = testing_helpers::tiny_lm_config();
      c.norm_type = n;
      c.prenorm = prenorm;
      v.push_back(lm_spec(cat("LM_", to_string(n), prenorm ? "_prenorm" : "_postnorm"), c, 1, 6));
    }
  for (int decay : {0, 1, 2}) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.decay = (decay == 2) ? TnoDecay::Learned : (decay == 1) ? TnoDecay::Fixed : TnoDecay::None;
    c.causal = decay != 1;
    v.push_back(lm_spec(cat("LM_decay", decay), c, 2, 4));
  }
  for (bool causal : {true, false}) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.tie_embeddings = true;
    c.causal = causal;
    v.push_back(lm_spec(cat("LM_tied", causal ? "_causal" : "_bidir"), c, 2, 5));
  }
  for (Activation a : kActs) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.gtu_act = a;
    c.glu_act = a;
    c.rpe_act = kinked(a) ? Activation::Gelu : a;  // relu in the RPE: LM_relu_rpe
    v.push_back(lm_spec(cat("LM_act_", to_string(a)), c, 2, 4));
  }
  {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.rpe_act = Activation::Relu;
    v.push_back(lm_spec("LM_relu_rpe", c, 2, 5, -1, 21));
  }
  for (Index rl : {0, 2}) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.rpe_layers = rl;
    c.layers = 2;
    v.push_back(lm_spec(cat("LM_2layers_rpe", rl), c, 1, 5));
  }
  for (Index n : {1, 2, 17})
    for (bool causal : {true, false}) {
      TnnConfig c = testing_helpers::tiny_lm_config();
      c.causal = causal;
      v.push_back(lm_spec(cat("LM", causal ? "_causal" : "_bidir", "_N", n), c, 2, n, n == 17 ? 12 : -1));
    }
  for (bool causal : {true, false}) {  // FFT path in every layer
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.causal = causal;
    c.heads = 3;
    v.push_back(lm_spec(cat("LM_long", causal ? "_causal" : "_bidir", "_N300"), c, 1, 300, 5));
  }
  // Attention as the token mixer: heads 1, 2, 4 of D 8, positions none or sinusoidal, every norm,
  // pre- and post-norm, tied, N 1 and beyond the tile (130: query and key blocks of 128 and 2).
  for (bool causal : {true, false})
    for (Index heads : {1, 2, 4})
      for (PositionScheme positions : enum_values<PositionScheme>()) {
        TnnConfig c = testing_helpers::tiny_lm_config();
        c.token_mixer = TokenMixerKind::Attention;
        c.causal = causal;
        c.heads = heads;
        c.positions = positions;
        c.layers = heads == 2 ? 2 : 1;
        v.push_back(lm_spec(cat("LM_attention", causal ? "_causal" : "_bidir", "_H", heads, "_", to_string(positions)),
                            c, 2, 5, -1, 60 + std::uint64_t(heads)));
      }
  for (NormType n : kNorms)
    for (bool prenorm : {true, false}) {
      if (n == NormType::None) continue;  // only final_norm_type and embed_norm_type may be none
      TnnConfig c = testing_helpers::tiny_lm_config();
      c.token_mixer = TokenMixerKind::Attention;
      c.positions = PositionScheme::Sinusoidal;
      c.heads = 2;
      c.norm_type = n;
      c.prenorm = prenorm;
      c.tie_embeddings = n == NormType::RMSNorm;
      v.push_back(lm_spec(cat("LM_attention_", to_string(n), prenorm ? "_prenorm" : "_postnorm",
                              c.tie_embeddings ? "_tied" : ""),
                          c, 1, 6));
    }
  for (Index n : {1, 130})
    for (bool causal : {true, false}) {
      TnnConfig c = testing_helpers::tiny_lm_config();
      c.token_mixer = TokenMixerKind::Attention;
      c.positions = PositionScheme::Sinusoidal;
      c.causal = causal;
      c.heads = 2;
      v.push_back(lm_spec(cat("LM_attention", causal ? "_causal" : "_bidir", "_N", n), c, n == 1 ? 3 : 1, n,
                          n == 1 ? -1 : 6));
    }
  // Random combinations of everything above.
  Rng pick(2024);
  const NormType norms[] = {NormType::SimpleRMSNorm, NormType::RMSNorm, NormType::LayerNorm};
  const Activation acts[] = {Activation::Silu, Activation::Gelu, Activation::None};
  for (int k = 0; k < 12; ++k) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.layers = 2;
    c.causal = pick.below(2) == 0;
    c.heads = pick.below(2) == 0 ? 1 : 3;
    c.norm_type = norms[pick.below(3)];
    c.prenorm = pick.below(2) == 0;
    const auto decay = pick.below(3);
    c.decay = (decay == 2) ? TnoDecay::Learned : (decay == 1) ? TnoDecay::Fixed : TnoDecay::None;
    c.tie_embeddings = pick.below(2) == 0;
    c.gtu_act = acts[pick.below(3)];
    c.glu_act = acts[pick.below(3)];
    c.rpe_act = acts[pick.below(3)];
    c.rpe_layers = static_cast<Index>(pick.below(3));
    v.push_back(lm_spec(cat("LM_combined", k), c, 2, 3 + static_cast<Index>(pick.below(6)), -1, 30 + std::uint64_t(k)));
  }
}

// Cross-entropy of logits z [B, N, V] against targets with ignored (-1) positions.
// The classifier: y = the mean cross-entropy of a ragged batch (lengths 5, 2, 4 of N = 5;
// "first" pooling reads position 0 only).
OpSpec classifier_spec(const std::string& name, TnnConfig cfg, std::uint64_t seed) {
  cfg.task = Task::Classify;
  cfg.causal = false;
  cfg.num_classes = 3;
  cfg.validate();
  return opcheck::op(name, loss_options(cfg), [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      TnnClassifier<T> m;
      Tensor<std::int32_t> tokens, lengths, labels;
    };
    auto st = std::make_shared<St>(St{TnnClassifier<T>(cfg), {}, testing_helpers::ids({3}, {5, 2, 4}),
                                      testing_helpers::ids({3}, {2, 0, 1})});
    Tensor<std::int32_t> unused;
    testing_helpers::lm_batch(cfg, 3, 5, seed + 1, st->tokens, unused);
    return loss_case<T>(
        st, seed, [](St& t) { return t.m.forward(t.tokens, t.labels, &t.lengths); },
        [](auto& t) {
          return reference::cross_entropy(reference::classifier_logits(t.m, t.tokens, &t.lengths), t.labels);
        });
  });
}

// The image classifier: y = the mean cross-entropy of 2 images [Hi, Wi, 2] in P x P patches.
OpSpec image_spec(const std::string& name, TnnConfig cfg, Index hi, Index wi, Index p, std::uint64_t seed) {
  cfg.task = Task::Image;
  cfg.vocab_size = 0;
  cfg.causal = false;
  cfg.num_classes = 3;
  cfg.image_height = hi;
  cfg.image_width = wi;
  cfg.image_channels = 2;
  cfg.patch_size = p;
  cfg.validate();
  return opcheck::op(name, loss_options(cfg, 40), [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      TnnImageClassifier<T> m;
      Tensor<T> images;  // data, not differentiated
      Tensor<std::int32_t> labels;
    };
    auto st = std::make_shared<St>(St{TnnImageClassifier<T>(cfg), random<T>({2, hi, wi, 2}, seed + 1),
                                      testing_helpers::ids({2}, {1, 2})});
    return loss_case<T>(
        st, seed, [](St& t) { return t.m.forward(t.images, t.labels); },
        [](auto& t) { return reference::cross_entropy(reference::image_logits(t.m, t.images), t.labels); });
  });
}

void add_classifiers(std::vector<OpSpec>& v) {
  int combo = 0;
  for (NormType n : kModelNorms)
    for (const char* pooling : {"mean", "first"})
      for (bool prenorm : {true, false}) {
        TnnConfig c = testing_helpers::tiny_lm_config();
        c.norm_type = n;
        c.pooling = pooling == std::string("mean") ? Pooling::Mean : Pooling::First;
        c.prenorm = prenorm;
        c.layers = 2;
        c.heads = combo % 2 == 0 ? 1 : 3;
        c.decay = (combo % 3 == 2) ? TnoDecay::Learned : (combo % 3 == 1) ? TnoDecay::Fixed : TnoDecay::None;
        ++combo;
        v.push_back(classifier_spec(cat("Classifier_", to_string(n), "_", pooling, prenorm ? "_prenorm" : "_postnorm",
                                        "_H", c.heads),
                                    c, 30 + std::uint64_t(combo)));
      }
  for (NormType n : kModelNorms) {  // max pooling: ragged rows, the maximum over the valid positions
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.norm_type = n;
    c.pooling = Pooling::Max;
    c.layers = 2;
    c.decay = TnoDecay::Learned;
    v.push_back(classifier_spec(cat("Classifier_", to_string(n), "_max"), c, 90));
  }
  for (NormType n : kModelNorms)  // attention: ragged rows mask their padded keys
    for (const char* pooling : {"mean", "first"}) {
      TnnConfig c = testing_helpers::tiny_lm_config();
      c.token_mixer = TokenMixerKind::Attention;
      c.positions = n == NormType::LayerNorm ? PositionScheme::None : PositionScheme::Sinusoidal;
      c.norm_type = n;
      c.pooling = pooling == std::string("mean") ? Pooling::Mean : Pooling::First;
      c.prenorm = n != NormType::RMSNorm;
      c.layers = 2;
      c.heads = n == NormType::SimpleRMSNorm ? 4 : 2;
      v.push_back(classifier_spec(cat("Classifier_attention_", to_string(n), "_", pooling, "_H", c.heads, "_",
                                      to_string(c.positions)),
                                  c, 70 + std::uint64_t(c.heads)));
    }
  for (PositionScheme positions : enum_values<PositionScheme>()) {  // attention over the grid's positions
    TnnConfig c = testing_helpers::tiny_config(2);
    c.token_mixer = TokenMixerKind::Attention;
    c.positions = positions;
    v.push_back(image_spec(cat("Image_attention_4x6_P2_", to_string(positions)), c, 4, 6, 2, 80));
  }
  for (NormType n : kModelNorms)
    for (auto [hi, wi, p] : {std::tuple<Index, Index, Index>{4, 6, 2}, {3, 3, 1}, {6, 4, 2}}) {
      TnnConfig c = testing_helpers::tiny_config(2);
      c.norm_type = n;
      c.decay = (hi == 3) ? TnoDecay::Learned : (false) ? TnoDecay::Fixed : TnoDecay::None;
      c.layers = hi == 6 ? 2 : 1;
      v.push_back(image_spec(cat("Image_", to_string(n), "_", hi, "x", wi, "_P", p), c, hi, wi, p,
                             40 + std::uint64_t(hi * 10 + wi)));
    }
  {  // max pooling over the grid (the Pathfinder recipe's)
    TnnConfig c = testing_helpers::tiny_config(2);
    c.pooling = Pooling::Max;
    c.decay = TnoDecay::Learned;
    v.push_back(image_spec("Image_max_4x6_P2", c, 4, 6, 2, 85));
  }
}

// The regressor: y = the mean squared error of B sequences of N positions, F features in and Fo
// values out per position; with `lengths` a ragged batch, whose padded positions must count in
// neither the sum nor the divisor. The features and targets are data, not differentiated.
OpSpec regress_spec(const std::string& name, TnnConfig cfg, Index B, Index N, Index F, Index Fo,
                    std::vector<std::int32_t> lengths, std::uint64_t seed) {
  cfg.task = Task::Regress;
  cfg.vocab_size = 0;
  cfg.input_features = F;
  cfg.output_features = Fo;
  cfg.validate();
  if (!lengths.empty() && static_cast<Index>(lengths.size()) != B)
    throw std::invalid_argument(cat("regress_spec ", name, ": expected ", B, " lengths, got ", lengths.size()));
  return opcheck::op(name, loss_options(cfg, 40), [=](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      TnnRegressor<T> m;
      Tensor<T> features, targets;
      Tensor<std::int32_t> lengths;
    };
    auto st = std::make_shared<St>(St{TnnRegressor<T>(cfg), random<T>({B, N, F}, seed + 1),
                                      random<T>({B, N, Fo}, seed + 2), Tensor<std::int32_t>()});
    if (!lengths.empty()) {
      st->lengths.resize({B});
      std::copy(lengths.begin(), lengths.end(), st->lengths.data());
    }
    const bool ragged = !lengths.empty();
    return loss_case<T>(
        st, seed, [ragged](St& t) { return t.m.forward(t.features, t.targets, ragged ? &t.lengths : nullptr); },
        [ragged](auto& t) {
          return reference::regress_loss(t.m, t.features, t.targets, ragged ? &t.lengths : nullptr);
        });
  });
}

// Causal and bidirectional regressors: one and several features in and out, every model norm,
// pre- and post-norm, ragged batches (lengths 5, 2, 4 and 1 of N = 5), N = 1, and attention with
// and without positions.
void add_regressors(std::vector<OpSpec>& v) {
  int k = 0;
  for (bool causal : {true, false})
    for (NormType n : kModelNorms) {
      TnnConfig c = testing_helpers::tiny_lm_config();
      c.causal = causal;
      c.norm_type = n;
      c.prenorm = n != NormType::RMSNorm;
      c.layers = 2;
      c.heads = k % 2 == 0 ? 1 : 3;
      c.decay = (k % 3 == 2) ? TnoDecay::Learned : (k % 3 == 1) ? TnoDecay::Fixed : TnoDecay::None;
      const Index F = k % 2 == 0 ? 1 : 3, Fo = k % 3 == 0 ? 1 : 2;
      const bool ragged = n == NormType::LayerNorm;
      v.push_back(regress_spec(cat("Regress", causal ? "_causal_" : "_bidir_", to_string(n), "_H", c.heads, "_F", F,
                                   "_Fo", Fo, ragged ? "_ragged" : ""),
                               c, ragged ? 4 : 2, 5, F, Fo,
                               ragged ? std::vector<std::int32_t>{5, 2, 4, 1} : std::vector<std::int32_t>{},
                               90 + std::uint64_t(k)));
      ++k;
    }
  for (bool causal : {true, false}) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.causal = causal;
    c.heads = 2;
    v.push_back(regress_spec(cat("Regress", causal ? "_causal" : "_bidir", "_N1"), c, 3, 1, 2, 2, {}, 96));
  }
  for (bool causal : {true, false}) {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.token_mixer = TokenMixerKind::Attention;
    c.positions = causal ? PositionScheme::Sinusoidal : PositionScheme::None;
    c.causal = causal;
    c.heads = 2;
    c.layers = 2;
    v.push_back(regress_spec(cat("Regress_attention", causal ? "_causal_" : "_bidir_ragged_", to_string(c.positions)),
                             c, 3, 6, 2, 3, causal ? std::vector<std::int32_t>{} : std::vector<std::int32_t>{6, 3, 1},
                             98 + std::uint64_t(causal)));
  }
}

void add_loss(std::vector<OpSpec>& v) {
  Options o;
  o.unit_cotangent = true;
  v.push_back(opcheck::op("CrossEntropy_ignored_targets", o, [](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      Tensor<T> z;
      Tensor<std::int32_t> t = testing_helpers::ids({3, 4}, {1, 6, -1, 0, -1, -1, 3, 3, 5, 2, -1, 4});
    };
    auto st = std::make_shared<St>();
    st->z = random<T>({3, 4, 7}, 2, 3.0);
    Case<T> c;
    c.inputs = {{"logits", &st->z}};
    c.forward = [st](Tensor<T>& y) {
      y.resize({1});
      y[0] = cross_entropy(st->z, st->t, static_cast<Tensor<T>*>(nullptr));
    };
    c.backward = [st](const Tensor<T>&, std::vector<Tensor<T>>& d) { cross_entropy(st->z, st->t, &d[0]); };
    if constexpr (std::is_same_v<T, double>)
      c.reference = [st](Tensor<T>& y) {
        y.resize({1});
        y[0] = reference::cross_entropy(st->z, st->t);
      };
    return c;
  }));
}

// ---- the official options (docs/official.md) ----

// Every trainable value of a TNO drawn from N(0, 0.7^2); with `positive`, the RPE's output
// layer gets weights >= 0 and biases >= 0.5 (after an activation >= 0, the caller's choice), so
// every coefficient is > 0 and normalize's denominator stays away from 0: the checks then
// measure arithmetic, not a pole.
template <class T, class Layer>
void randomize_tno(Layer& tno, std::uint64_t seed, bool positive) {
  Rng rng(seed);
  for (auto& [nm, p] : opcheck::params_of(tno))
    if (p->trainable)
      for (auto& x : p->value) x = T(rng.normal(0.0, 0.7));
  if (!positive) return;
  for (auto& x : tno.rpe.out.linear.weight.value) x = std::abs(x);
  if (tno.rpe.out.linear.has_bias())
    for (auto& x : tno.rpe.out.linear.bias.value) x = T(0.5) + std::abs(x);
}

// The RPE with residual hidden layers, without biases, and fed each par_type, both directions.
void add_rpe_options(std::vector<OpSpec>& v) {
  struct Variant {
    const char* name;
    bool residual, bias;
    Index par_type, hidden;
  };
  for (const Variant& var : {Variant{"residual", true, true, 1, 2}, Variant{"nobias_residual", true, false, 1, 2},
                             Variant{"nobias", false, false, 2, 1}, Variant{"par2", false, true, 2, 1},
                             Variant{"par3_residual", true, true, 3, 1}})
    for (bool causal : {true, false})
      for (Index n : {1, 2, 17}) {
        Options o;
        o.max_entries = n == 17 ? 20 : -1;
        const RpeOptions ro{4, var.hidden, NormType::LayerNorm, Activation::Silu, var.residual, var.bias, var.par_type};
        v.push_back(rpe_spec(cat("Rpe_", var.name, causal ? "_causal" : "_bidir", "_N", n), o, ro, n, causal,
                             300 + std::uint64_t(n)));
      }
}

// A TNO of options `to` (Dh = 2) on v [B, n, E]; `lengths` (non-empty: a ragged batch) for
// normalize's per-row denominator.
OpSpec tno_options_spec(const std::string& name, TnoOptions to, Index B, Index n, std::vector<Index> lengths,
                        bool positive, ToeplitzMethod method, std::uint64_t seed) {
  Options o;
  o.kinked = kinked(to.rpe.act) || kinked(to.act);
  if (n >= 17) o.max_entries = 20;
  return opcheck::op(name, o, [=](auto s) {
    using T = typename decltype(s)::type;
    auto st = layer_state<T>(Tno<T>(to, 2));  // x: v
    st->layer.method = method;
    randomize_tno<T>(st->layer, seed, positive);
    st->x = random<T>({B, n, st->layer.channels()}, seed + 10);
    // The lengths as the TNO (a list) and the reference (a tensor) take them.
    struct Lengths {
      std::vector<Index> list;
      Tensor<std::int32_t> i32;
    };
    auto len = std::make_shared<Lengths>(Lengths{lengths, {}});
    if (!lengths.empty()) {
      len->i32 = Tensor<std::int32_t>({B});
      for (Index b = 0; b < B; ++b) len->i32[b] = std::int32_t(lengths[std::size_t(b)]);
    }
    Case<T> c;
    c.inputs = {{"v", &st->x}};
    c.params = opcheck::params_of(st->layer, "toep.");
    // Ragged rows: only the valid positions are the op's output. Beyond a row's length the
    // normalizer is a sum of ever smaller coefficients, whose FFT rounding the division blows up;
    // the models never read those positions (the next GTU zeroes them, pooling skips them), so
    // their outputs are masked here and their cotangents are zero, as in a model.
    auto mask = [len](Tensor<T>& t) {
      if (len->list.empty()) return;
      const Index B = t.dim(0), N = t.dim(1), E = t.dim(2);
      for (Index b = 0; b < B; ++b)
        std::fill(t.data() + (b * N + len->list[std::size_t(b)]) * E, t.data() + (b + 1) * N * E, T(0));
    };
    mask(st->x);  // the GTU zeroes the padding of the TNO's input
    c.forward = [st, len, mask](Tensor<T>& y) {
      st->layer.forward(st->x, y, st->c, len->list.empty() ? nullptr : &len->list);
      mask(y);
    };
    c.backward = [st, mask](const Tensor<T>& dy, std::vector<Tensor<T>>& dv) {
      Tensor<T> g = dy;
      mask(g);
      st->layer.backward(st->x, g, st->c, &dv[0]);
    };
    if constexpr (std::is_same_v<T, double>)
      c.reference = [st, len, mask](Tensor<T>& y) {
        y = reference::tno(st->layer, st->x, len->list.empty() ? nullptr : &len->i32);
        mask(y);
      };
    return c;
  });
}

// normalize (direct and FFT products, ragged rows, N = 1) and every coefficient activation.
void add_tno_options(std::vector<OpSpec>& v) {
  auto opts = [](bool causal, TnoDecay decay, Activation rpe_act, bool normalize, Activation act) {
    TnoOptions o{2, causal, decay, 0.9, RpeOptions{4, 1, NormType::RMSNorm, rpe_act}};
    o.normalize = normalize;
    o.act = act;
    return o;
  };
  std::uint64_t seed = 400;
  // (not N = 1: there y = t_0 v / t_0 = v, every coefficient gradient is 0 up to rounding, and a
  // central difference of a flat function measures nothing but that rounding)
  for (bool causal : {true, false})
    for (Index n : {2, 5, 17, 130}) {
      const ToeplitzMethod m = n == 130 ? ToeplitzMethod::FFT : ToeplitzMethod::Direct;
      const TnoDecay decay = n == 17 ? TnoDecay::Learned : TnoDecay::Fixed;
      v.push_back(tno_options_spec(cat("Tno_normalize", causal ? "_causal" : "_bidir", "_N", n),
                                   opts(causal, decay, Activation::Sigmoid, true, Activation::None), 2, n, {}, true, m,
                                   ++seed));
      v.push_back(tno_options_spec(cat("Tno_normalize_ragged", causal ? "_causal" : "_bidir", "_N", n),
                                   opts(causal, decay, Activation::Sigmoid, true, Activation::None), 3, n,
                                   {n, std::max<Index>(1, n / 2), 1}, true, m, ++seed));
    }
  // The coefficient activation (act_type), each in both directions; with normalize an activation
  // > 0 (exp, sigmoid) is what keeps the denominator positive without help.
  int k = 0;
  for (Activation act : enum_values<Activation>())
    for (bool causal : {true, false}) {
      const bool normalize = act == Activation::Exp || act == Activation::Sigmoid;
      // (exp always with a decay: without one, exp(bias) scales a channel's every coefficient,
      // which normalize cancels, so the RPE's output bias would have a gradient of 0 up to rounding)
      const bool alternate = k++ % 2 == 0;
      const TnoDecay decay = alternate || act == Activation::Exp ? TnoDecay::Learned : TnoDecay::None;
      v.push_back(tno_options_spec(cat("Tno_act_", to_string(act), causal ? "_causal" : "_bidir",
                                       normalize ? "_normalize" : ""),
                                   opts(causal, decay, Activation::Silu, normalize, act), 2, 9, {}, false,
                                   ToeplitzMethod::Auto, ++seed));
    }
}

// The GTU's options: use_norm with every norm, bias false, normalize with a positive act_type;
// each through the 1-D GTU (TnnConfig keys, make_gtu).
void add_gtu_options(std::vector<OpSpec>& v) {
  std::vector<std::pair<std::string, TnnConfig>> cases;
  int k = 0;
  for (NormType norm : enum_values<NormType>()) {
    if (norm == NormType::None) continue;
    TnnConfig c = testing_helpers::tiny_gtu_config(k % 2 == 0 ? 1 : 3, k % 2 == 0);
    c.norm_type = norm;
    c.use_norm = true;
    cases.emplace_back(cat("Gtu_usenorm_", to_string(norm)), c);
    ++k;
  }
  for (bool causal : {true, false}) {
    TnnConfig c = testing_helpers::tiny_gtu_config(3, causal);
    c.bias = false;
    c.residual = true;
    c.norm_type = NormType::LayerNorm;
    cases.emplace_back(cat("Gtu_nobias_residual", causal ? "_causal" : "_bidir"), c);
    TnnConfig d = testing_helpers::tiny_gtu_config(1, causal);
    d.normalize = true;
    d.act_type = Activation::Exp;
    d.par_type = causal ? 2 : 3;
    d.use_norm = true;
    cases.emplace_back(cat("Gtu_normalize_exp_par", d.par_type, causal ? "_causal" : "_bidir"), d);
  }
  std::uint64_t seed = 500;
  for (const auto& [name, cfg0] : cases) {
    const TnnConfig cfg = cfg0;
    const std::uint64_t sd = ++seed;
    Options o;
    o.max_entries = 20;
    v.push_back(opcheck::op(name, o, [=](auto s) {
      using T = typename decltype(s)::type;
      auto st = layer_state(make_gtu<T>(cfg), random<T>({2, 9, 4}, sd + 10));
      Rng rng(sd);
      st->layer.init_weights(rng);
      opcheck::perturb(opcheck::params_of(st->layer), sd + 1, 0.3);
      return layer_case(st, "x", opcheck::params_of(st->layer, "token_mixer."), kGtuRef);
    }));
  }
  // The 2-D TNO and GTU: normalize, a coefficient activation, no biases, residual RPE, use_norm.
  for (bool gtu : {false, true}) {
    const std::string name = cat(gtu ? "Gtu2d" : "Tno2d", "_3x4_normalize_sigmoid_nobias_residual_usenorm");
    Options o;
    o.max_entries = 20;
    v.push_back(opcheck::op(name, o, [=](auto s) {
      using T = typename decltype(s)::type;
      TnoOptions to{2, false, TnoDecay::Learned, 0.9,
                    RpeOptions{4, 1, NormType::GatedRMSNorm, Activation::Silu, true, false, 1}};
      to.normalize = true;
      to.act = Activation::Sigmoid;
      Gtu2d<T> g(GtuOptions{3, Activation::Silu, false, true, NormType::ScaleNorm}, Tno2d<T>(to, 2, 3, 4));
      randomize_tno<T>(g.toep, 600, false);
      opcheck::perturb(opcheck::params_of(g), 601, 0.3);
      return gtu2d_case(std::move(g), gtu, 602);
    }));
  }
}

// The GLU without biases, and blocks in the fairseq post-norm form norm(x + f(x)), without GLU
// biases, and with dropout (a training step's fixed masks: a deterministic function to check).
void add_block_options(std::vector<OpSpec>& v) {
  v.push_back(opcheck::op("Glu_nobias", {}, [](auto s) {
    using T = typename decltype(s)::type;
    return glu_case(Glu<T>(4, 7, Activation::Gelu, /*bias=*/false));
  }));
  struct Variant {
    std::string name;
    TnnConfig cfg;
    bool dropout;
  };
  std::vector<Variant> vars;
  for (NormType norm : {NormType::LayerNorm, NormType::ScaleNorm, NormType::GatedRMSNorm}) {
    TnnConfig c = testing_helpers::tiny_block_config(norm, /*prenorm=*/false, /*causal=*/norm != NormType::ScaleNorm);
    c.postnorm_residual = true;
    c.glu_bias = norm != NormType::LayerNorm;
    vars.push_back({cat("Block_postres_", to_string(norm), c.glu_bias ? "" : "_noglubias"), c, false});
  }
  for (int form = 0; form < 3; ++form) {  // pre-norm, post-norm, postnorm_residual
    TnnConfig c = testing_helpers::tiny_block_config(NormType::RMSNorm, form == 0, form != 1);
    c.postnorm_residual = form == 2;
    c.dropout = 0.3;
    vars.push_back({cat("Block_dropout_", form == 0 ? "prenorm" : form == 1 ? "postnorm" : "postres"), c, true});
  }
  for (const Variant& var : vars) {
    const TnnConfig cfg = var.cfg;
    const bool dropout = var.dropout;
    v.push_back(opcheck::op(var.name, {}, [=](auto s) {
      using T = typename decltype(s)::type;
      struct St {
        TnnBlock<T> b;
        typename TnnBlock<T>::Cache c;
        Tensor<T> x;
        DropoutContext drop;
      };
      auto st = std::make_shared<St>(St{make_block<T>(cfg), {}, random<T>({2, 6, 8}, 8), {cfg.dropout, 17, 5, 0}});
      Rng rng(11);
      st->b.init_weights(rng);
      opcheck::perturb(opcheck::params_of(st->b), 12);
      const DropoutContext* drop = dropout ? &st->drop : nullptr;
      Case<T> c;
      c.inputs = {{"x", &st->x}};
      c.params = opcheck::params_of(st->b, "layers.0.");
      c.forward = [st, drop](Tensor<T>& y) { st->b.forward(st->x, y, st->c, nullptr, drop, 3); };
      c.backward = [st](const Tensor<T>& dy, std::vector<Tensor<T>>& dx) { st->b.backward(st->x, dy, st->c, dx[0]); };
      if constexpr (std::is_same_v<T, double>)
        c.reference = [st, drop](Tensor<T>& y) {
          if (!drop) {
            y = reference::block(st->b, st->x);
            return;
          }
          Tensor<double> m1, m2;
          dropout_mask(*drop, 3, st->x.shape(), m1);
          dropout_mask(*drop, 4, st->x.shape(), m2);
          y = reference::block(st->b, st->x, nullptr, &m1, &m2);
        };
      return c;
    }));
  }
}

// The LM with the official options one family at a time, then together: the embedding's scale
// and every embedding norm, every final norm type, both LM heads tied and untied, post-norm
// forms, and a training step with dropout (masks fixed by its seed and step).
void add_lm_options(std::vector<OpSpec>& v) {
  auto base = [] {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.layers = 2;
    return c;
  };
  for (NormType n : enum_values<NormType>()) {
    TnnConfig c = base();
    c.embed_norm_type = n;
    c.scale_embedding = n != NormType::SimpleRMSNorm;
    v.push_back(lm_spec(cat("LM_embed_norm_", to_string(n), c.scale_embedding ? "_scaled" : ""), c, 2, 4));
    TnnConfig f = base();
    f.final_norm_type = n;
    f.causal = n != NormType::LayerNorm;
    v.push_back(lm_spec(cat("LM_final_norm_", to_string(n)), f, 2, 4));
  }
  for (LmHeadType h : enum_values<LmHeadType>())
    for (bool tied : {false, true}) {
      TnnConfig c = base();
      c.lm_head_type = h;
      c.tie_embeddings = tied;
      c.causal = !tied;
      v.push_back(lm_spec(cat("LM_head_", to_string(h), tied ? "_tied" : "_untied"), c, 2, 4));
    }
  {
    TnnConfig c = base();
    c.prenorm = false;
    c.postnorm_residual = true;
    c.final_norm_type = NormType::None;
    v.push_back(lm_spec("LM_postres_final_none", c, 2, 4));
  }
  {  // the paper's LM, small: scaled embedding, layernorm final norm, RPE of 3 layers, use_norm
    TnnConfig c = base();
    c.scale_embedding = true;
    c.final_norm_type = NormType::LayerNorm;
    c.rpe_layers = 3;
    c.use_norm = true;
    v.push_back(lm_spec("LM_paper_shape", c, 2, 5));
  }
  {  // RoBERTa's shape, small
    TnnConfig c = base();
    c.causal = false;
    c.prenorm = false;
    c.postnorm_residual = true;
    c.embed_norm_type = NormType::LayerNorm;
    c.final_norm_type = NormType::None;
    c.lm_head_type = LmHeadType::Roberta;
    c.tie_embeddings = true;
    v.push_back(lm_spec("LM_roberta_shape", c, 2, 5));
  }
  {  // everything at once
    TnnConfig c = base();
    c.causal = false;
    c.heads = 3;
    c.norm_type = NormType::GatedRMSNorm;
    c.use_norm = true;
    c.normalize = true;
    c.act_type = Activation::Sigmoid;
    c.residual = true;
    c.rpe_layers = 2;
    c.par_type = 3;
    c.bias = false;
    c.glu_bias = false;
    c.scale_embedding = true;
    c.embed_norm_type = NormType::ScaleNorm;
    c.final_norm_type = NormType::LayerNorm;
    c.prenorm = false;
    c.decay = TnoDecay::Learned;
    c.lm_head_type = LmHeadType::Roberta;
    c.gtu_act = Activation::Elu;
    c.glu_act = Activation::TwoPlusElu;
    c.rpe_act = Activation::OnePlusElu;
    v.push_back(lm_spec("LM_everything", c, 2, 6));
  }
  for (bool causal : {true, false}) {
    TnnConfig c = base();
    c.causal = causal;
    c.dropout = 0.25;
    c.scale_embedding = true;
    v.push_back(lm_spec(cat("LM_dropout_training", causal ? "_causal" : "_bidir"), c, 2, 5, -1, 3, /*train=*/true));
  }
}

// Classifiers (ragged rows) with normalize and use_norm, an embedding norm; an image model with
// normalize, use_norm, a coefficient activation and no biases.
void add_classifier_options(std::vector<OpSpec>& v) {
  {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.layers = 2;
    c.normalize = true;
    c.act_type = Activation::Exp;
    c.use_norm = true;
    c.norm_type = NormType::LayerNorm;
    v.push_back(classifier_spec("Classifier_normalize_exp_usenorm", c, 70));
  }
  {
    TnnConfig c = testing_helpers::tiny_lm_config();
    c.pooling = Pooling::First;
    c.embed_norm_type = NormType::GatedRMSNorm;
    c.scale_embedding = true;
    c.par_type = 3;
    c.bias = false;
    c.glu_bias = false;
    v.push_back(classifier_spec("Classifier_embed_norm_par3_nobias", c, 71));
  }
  {
    TnnConfig c = testing_helpers::tiny_config(2);
    c.normalize = true;
    c.act_type = Activation::Sigmoid;
    c.use_norm = true;
    c.bias = false;
    // (not scalenorm: in the bias-free RPE under normalize its one scalar's gradient is ~1e-7,
    // rounding noise to a relative check; scalenorm is covered by the TNO, GTU and LM cases)
    c.norm_type = NormType::RMSNorm;
    c.final_norm_type = NormType::None;
    v.push_back(image_spec("Image_normalize_sigmoid_usenorm_nobias_4x6_P2", c, 4, 6, 2, 72));
  }
}

std::vector<OpSpec> all_ops() {
  std::vector<OpSpec> v;
  add_kernels(v);
  add_activations(v);
  add_linear(v);
  add_embedding(v);
  add_norms(v);
  add_glu(v);
  add_rpe(v);
  add_tno(v);
  add_gtu(v);
  add_2d_layers(v);
  add_block(v);
  add_lm(v);
  add_classifiers(v);
  add_regressors(v);
  add_loss(v);
  add_rpe_options(v);
  add_tno_options(v);
  add_gtu_options(v);
  add_block_options(v);
  add_lm_options(v);
  add_classifier_options(v);
  return v;
}

}  // namespace

TNN_OP_CHECKS(OpCheck, all_ops());

// ---- the harness can fail: each check reports a deliberately broken op ----

namespace {

// Linear with a wrong backward, broken in one of four ways.
enum class Broken { WeightGrad, Overwrites, InputGradStale, Reference, FloatPath };

OpSpec broken_linear(Broken how) {
  return opcheck::op("broken", {}, [how](auto s) {
    using T = typename decltype(s)::type;
    struct St {
      Linear<T> lin{3, 2};
      Tensor<T> x;
    };
    auto st = std::make_shared<St>();
    st->x = random<T>({4, 3}, 1);
    Rng rng(9);
    st->lin.init_uniform(rng);
    Case<T> c;
    c.inputs = {{"x", &st->x}};
    c.params = opcheck::params_of(st->lin);
    c.forward = [st, how](Tensor<T>& y) {
      st->lin.forward(st->x, y);
      if (how == Broken::FloatPath && std::is_same_v<T, float>) y[0] += T(0.01);
    };
    c.backward = [st, how](const Tensor<T>& dy, std::vector<Tensor<T>>& d) {
      if (how == Broken::Overwrites) st->lin.weight.zero_grad();  // = instead of +=
      if (how == Broken::InputGradStale) {
        d[0].resize(st->x.shape());
        Tensor<T> dx;
        st->lin.backward(st->x, dy, &dx);
        for (Index i = 0; i < dx.size(); ++i) d[0][i] += dx[i];  // += into whatever dx held
        return;
      }
      st->lin.backward(st->x, dy, &d[0]);
      if (how == Broken::WeightGrad) st->lin.weight.grad[3] += T(1e-5);  // a relative error of ~5e-6
    };
    c.reference = [st, how](Tensor<T>& y) {
      st->lin.forward(st->x, y);
      if (how == Broken::Reference) y[2] *= T(1 + 1e-9);
    };
    return c;
  });
}

}  // namespace

TEST(OpCheckHarness, ReportsAWrongParameterGradient) {
  EXPECT_NONFATAL_FAILURE(opcheck::check_gradients(broken_linear(Broken::WeightGrad)), "weight: rel error");
}

TEST(OpCheckHarness, ReportsABackwardThatOverwritesParameterGradients) {
  EXPECT_NONFATAL_FAILURE(opcheck::check_accumulates(broken_linear(Broken::Overwrites)),
                          "the second backward did not add its gradient");
}

TEST(OpCheckHarness, ReportsAnInputGradientThatKeepsStaleValues) {
  EXPECT_NONFATAL_FAILURE(opcheck::check_accumulates(broken_linear(Broken::InputGradStale)), "is not overwritten");
}

TEST(OpCheckHarness, ReportsAForwardThatDiffersFromItsReference) {
  EXPECT_NONFATAL_FAILURE(opcheck::check_reference(broken_linear(Broken::Reference)), "forward vs reference");
}

TEST(OpCheckHarness, ReportsAFloatPathThatDiffersFromDouble) {
  EXPECT_NONFATAL_FAILURE(opcheck::check_float_vs_double(broken_linear(Broken::FloatPath)), "output");
}

TEST(OpCheckHarness, EveryOpHasAReferenceAndAUniqueName) {
  std::vector<std::string> names;
  for (const OpSpec& s : all_ops()) {
    EXPECT_TRUE(s.make_double().reference) << s.name << " registers no reference";
    names.push_back(s.name);
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end()) << "duplicate op name";
  EXPECT_GT(names.size(), 100u);
}
