// A steady-state training step allocates nothing on the heap. Counted here: every
// call of the malloc family (malloc, calloc, realloc, posix_memalign, aligned_alloc,
// memalign, valloc, pvalloc), which this program replaces with forwarders to glibc's
// own allocator, so calls from libstdc++'s operator new, Eigen, FFTW, OpenBLAS and
// libgomp are all seen; and separately every replaceable operator new. Both must stay
// at zero over a forward with loss, backward, gradient clipping and an AdamW step,
// once warm-up steps have sized every buffer.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "tnn/infer/decoder.hpp"
#include "tnn/model/models.hpp"
#include "tnn/train/optimizer.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_mallocs{0};  // malloc-family calls while counting
std::atomic<long> g_news{0};     // operator new calls while counting
// To find who allocates: break on on_counted_allocation in a debugger, or set
// TNN_ALLOC_TEST_TRAP=1 in the environment to trap at the first one.
bool g_trap = false;
[[gnu::noinline]] void on_counted_allocation() {
  if (g_trap) __builtin_trap();
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
}
inline void count_malloc() {
  if (g_counting.load(std::memory_order_relaxed)) on_counted_allocation();
}
}  // namespace

// ---- malloc family (glibc: forward to the __libc_* entry points) ----
#if defined(__GLIBC__)
#define TNN_TEST_HOOKS_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  count_malloc();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t s) {
  count_malloc();
  return __libc_calloc(n, s);
}
void* realloc(void* p, std::size_t n) {
  count_malloc();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t a, std::size_t n) {
  count_malloc();
  return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  count_malloc();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  count_malloc();
  if (a < sizeof(void*) || (a & (a - 1)) != 0) return 22;  // EINVAL
  void* p = __libc_memalign(a, n);
  if (p == nullptr && n != 0) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void* valloc(std::size_t n) {
  count_malloc();
  return __libc_valloc(n);
}
void* pvalloc(std::size_t n) {
  count_malloc();
  return __libc_pvalloc(n);
}
}
#else
#define TNN_TEST_HOOKS_MALLOC 0
#endif

// ---- operator new / delete (counted on their own, then served by the malloc above) ----
namespace {
void* counted_new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* counted_new_aligned(std::size_t n, std::align_val_t al) {
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  void* p = nullptr;
  const auto a = static_cast<std::size_t>(al) < sizeof(void*) ? sizeof(void*) : static_cast<std::size_t>(al);
  if (posix_memalign(&p, a, n == 0 ? 1 : n) != 0) throw std::bad_alloc();
  return p;
}
}  // namespace
void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

using namespace tnn;

struct Counts {
  long mallocs, news;
};

// Runs f with counting on; returns what it allocated.
template <class F>
Counts count_allocations(F&& f) {
  g_mallocs = 0;
  g_news = 0;
  g_trap = std::getenv("TNN_ALLOC_TEST_TRAP") != nullptr;
  g_counting = true;
  f();
  g_counting = false;
  return {g_mallocs.load(), g_news.load()};
}

// The hooks see what they must: without them a zero below would prove nothing.
TEST(Alloc, HooksCountVectorAndMalloc) {
  const Counts c = count_allocations([] {
    std::vector<int> v(100, 1);
    volatile int sink = v[7];
    (void)sink;
  });
  EXPECT_GE(c.news, 1);
#if TNN_TEST_HOOKS_MALLOC
  EXPECT_GE(c.mallocs, 1);
  const Counts m = count_allocations([] {
    void* p = std::malloc(4096);
    volatile char* q = static_cast<char*>(p);
    q[0] = 1;
    std::free(p);
  });
  EXPECT_EQ(m.mallocs, 1);
  EXPECT_EQ(m.news, 0);
  // A Tensor resized beyond what it held allocates; back to a size it held, not.
  Tensor<float> t({4, 8});
  EXPECT_GE(count_allocations([&] { t.resize({64, 8}); }).mallocs, 1);
  EXPECT_EQ(count_allocations([&] { t.resize({4, 8}); }).mallocs, 0);
  EXPECT_EQ(count_allocations([&] { t.resize({64, 8}); }).mallocs, 0);
#endif
}

TnnConfig small_config() {
  return TnnConfig::parse(R"({"vocab_size": 37, "dim": 24, "layers": 2, "heads": 2, "expand_ratio": 2, "glu_dim": 32,
                              "rpe_dim": 16, "rpe_layers": 2, "causal": true})");
}

void make_batch(Index B, Index N, Index V, Tensor<std::int32_t>& tokens, Tensor<std::int32_t>& targets) {
  tokens.resize({B, N});
  targets.resize({B, N});
  for (Index i = 0; i < B * N; ++i) tokens[i] = static_cast<std::int32_t>((i * 7 + 3) % V);
  for (Index i = 0; i < B * N; ++i) targets[i] = (i % N == N - 1) ? -1 : tokens[i + 1];
}

// One training step: zero grads, forward with loss, backward, clip, AdamW.
template <class T>
void train_step(TnnLM<T>& model, AdamW<T>& opt, const NamedParams<T>& params, const Tensor<std::int32_t>& tokens,
                const Tensor<std::int32_t>& targets) {
  model.zero_grad();
  const T loss = model.forward(tokens, targets);
  model.backward();
  clip_grad_norm(params, 1.0);
  opt.step();
  volatile T sink = loss;
  (void)sink;
}

// N: sequence length (64 and above take the FFT path, 16 the direct one).
void expect_steady_state_without_allocation(const TnnConfig& cfg, Index B, Index N) {
  tnn::set_num_threads(0);  // the documented setup of an allocation-free step (core/gemm.hpp)
  TnnLM<float> model(cfg);
  model.init_weights(7);
  const NamedParams<float> params = model.named_parameters();
  AdamW<float> opt(params);
  Tensor<std::int32_t> tokens, targets;
  make_batch(B, N, cfg.vocab_size, tokens, targets);
  for (int i = 0; i < 2; ++i) train_step(model, opt, params, tokens, targets);  // warm-up: sizes buffers
  const Counts c = count_allocations([&] {
    for (int i = 0; i < 3; ++i) train_step(model, opt, params, tokens, targets);
  });
  EXPECT_EQ(c.mallocs, 0) << "heap allocations (malloc family) in 3 steady-state steps, N=" << N;
  EXPECT_EQ(c.news, 0) << "operator new calls in 3 steady-state steps, N=" << N;
}

TEST(Alloc, TrainingStepAllocatesNothingFftPath) {
  expect_steady_state_without_allocation(small_config(), 2, 160);  // above kToeplitzDirectMaxN: the FFT path
}

TEST(Alloc, TrainingStepAllocatesNothingDirectPath) {
  expect_steady_state_without_allocation(small_config(), 2, 16);
}

TEST(Alloc, TrainingStepAllocatesNothingBidirectional) {
  TnnConfig c = small_config();
  c.causal = false;
  c.decay = TnoDecay::Learned;
  c.norm_type = NormType::LayerNorm;
  expect_steady_state_without_allocation(c, 1, 80);
}

// Decoding steps after reserve() allocate nothing: 1500 steps of a batch of 2 cross
// every block size up to 1024 (direct blocks and FFT products), by each method.
TEST(Alloc, DecodingStepsAllocateNothing) {
  tnn::set_num_threads(0);  // the documented setup of an allocation-free step (core/gemm.hpp)
  TnnConfig cfg = small_config();
  TnnLM<float> model(cfg);
  model.init_weights(3);
  for (DecoderMethod m : {DecoderMethod::Fft, DecoderMethod::Direct, DecoderMethod::Auto}) {
    IncrementalDecoder<float> dec(model, 2048, 2, m);
    Tensor<std::int32_t> prompt({2, 37}), tok({2});
    for (Index i = 0; i < prompt.size(); ++i) prompt[i] = std::int32_t(i % cfg.vocab_size);
    dec.prefill(prompt);
    for (int i = 0; i < 3; ++i) dec.step(tok);  // warm-up: sizes the one-position workspaces
    const Counts c = count_allocations([&] {
      for (Index i = 0; i < 1500; ++i) {
        tok[0] = std::int32_t(i % cfg.vocab_size);
        tok[1] = std::int32_t((3 * i) % cfg.vocab_size);
        dec.step(tok);
      }
    });
    EXPECT_EQ(c.mallocs, 0) << "heap allocations (malloc family) in 1500 decoding steps, " << to_string(m);
    EXPECT_EQ(c.news, 0) << "operator new calls in 1500 decoding steps, " << to_string(m);
  }
}

// The same with attention as the token mixer and sinusoidal positions: the attention layer's
// workspaces, the positions' table and (decoding) the KV caches are sized once.
TnnConfig attention_config() {
  TnnConfig c = small_config();
  c.token_mixer = TokenMixerKind::Attention;
  c.positions = PositionScheme::Sinusoidal;
  c.heads = 4;
  return c;
}

TEST(Alloc, AttentionTrainingStepAllocatesNothing) {
  expect_steady_state_without_allocation(attention_config(), 2, 160);  // beyond the tile of 128
  TnnConfig bidir = attention_config();
  bidir.causal = false;
  expect_steady_state_without_allocation(bidir, 1, 80);
}

TEST(Alloc, AttentionDecodingStepsAllocateNothing) {
  tnn::set_num_threads(0);
  const TnnConfig cfg = attention_config();
  TnnLM<float> model(cfg);
  model.init_weights(3);
  IncrementalDecoder<float> dec(model, 2048, 2);
  Tensor<std::int32_t> prompt({2, 37}), tok({2});
  for (Index i = 0; i < prompt.size(); ++i) prompt[i] = std::int32_t(i % cfg.vocab_size);
  dec.prefill(prompt);
  for (int i = 0; i < 3; ++i) dec.step(tok);
  const Counts c = count_allocations([&] {
    for (Index i = 0; i < 1500; ++i) {
      tok[0] = std::int32_t(i % cfg.vocab_size);
      tok[1] = std::int32_t((3 * i) % cfg.vocab_size);
      dec.step(tok);
    }
  });
  EXPECT_EQ(c.mallocs, 0) << "heap allocations (malloc family) in 1500 attention decoding steps";
  EXPECT_EQ(c.news, 0) << "operator new calls in 1500 attention decoding steps";
}

}  // namespace
