// Multi-head softmax self-attention, the Transformer's token mixer: a drop-in alternative to
// the GTU (layers/gtu.hpp) in the same backbone, x [B, N, D] -> y [B, N, D], H heads of Dh = D/H
// channels, causal or bidirectional, ragged batches, incremental decoding over a KV cache:
//   q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv        [B, N, D], head h = channels h*Dh ..
//   z_h = softmax(q_h k_h^T / sqrt(Dh) + mask) v_h         mask: -inf at future (causal) and padded keys
//   y = z Wo^T + bo
// Two paths, equal up to rounding: Direct materializes every head's N x N probabilities (the
// reference), Tiled never does (online softmax over key blocks, memory O(N D)).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tnn/core/enum_table.hpp"
#include "tnn/core/gemm.hpp"
#include "tnn/core/parallel.hpp"
#include "tnn/core/rng.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/layers/linear.hpp"

namespace tnn {

// How the N x N attention of one head is computed.
//   Direct  scores and probabilities [B, H, N, N] held in the cache: O(N^2) memory per head;
//   Tiled   query blocks against key blocks with a running max and sum per query (the
//           FlashAttention scheme); the backward recomputes each block's probabilities from the
//           saved log-sum-exp: O(N D) memory, the same O(N^2 D) work plus one more product;
//   Auto    Tiled at every length: measured (benchmarks/bench_attention.cpp, D 512, 8 heads,
//           causal, 1 thread), Direct is nowhere faster beyond noise: the same time from N 128
//           to 512, 2x slower at 64 (its small untransposed products take tnn::gemm's
//           coefficient-wise Eigen path), slower from 1024 on; and it holds H N^2 values.
//           Attention::method_for(N) is where a length-dependent choice would go.
enum class AttentionMethod { Auto, Direct, Tiled };

template <>
struct EnumTable<AttentionMethod> {
  static constexpr EnumRow<AttentionMethod> rows[] = {
      {AttentionMethod::Auto, "auto"}, {AttentionMethod::Direct, "direct"}, {AttentionMethod::Tiled, "tiled"}};
};

inline AttentionMethod parse_attention_method(const std::string& s) {
  return parse_enum<AttentionMethod, ValueError>(s, "attention method");
}

namespace detail {
// One thread's buffers. Sizes only grow, so a warm layer does not allocate.
template <class T>
struct AttentionWork {
  Tensor<T> s;   // Tiled: [Bq, Bk] one block's scores, then its probabilities
  Tensor<T> dp;  // Tiled: [Bq, Bk] dLoss/dP, then dLoss/dS in place. Direct: [N, N] the same for one head
  Tensor<T> acc;         // [Dh, Bq] a query block's output (or dQ) rows, transposed, before the division by their sums
  Tensor<T> m, l, dsum;  // [Bq] running max, running sum of exp(s - max); the rescaling, or rowsum(dO * O)
  Tensor<T> dk, dv;      // [N, Dh] this thread's share of one (row, head)'s key and value grads
};

template <class T>
void ensure_size(Tensor<T>& t, Index n) {  // a flat buffer of at least n elements
  if (t.size() < n) t.resize({n});
}
}  // namespace detail

template <class T>
class Attention : public Visits<Attention<T>> {
 public:
  // Rows of a query block and of a key block on the Tiled path: 64 to 256 run within 5% of each
  // other at N 512 and 4096, 32 is 30% slower at 4096 (BM_Attention_FwdBwd_Tile).
  static constexpr Index kDefaultTile = 128;

  Attention() = default;
  // dim D, heads H (D % H == 0), causal: position i attends to j <= i only.
  Attention(Index dim, Index heads, bool causal) : causal_(causal) {
    if (dim < 1 || heads < 1)
      fail<ConfigError>("attention: expected dim >= 1 and heads >= 1, got dim ", dim, ", heads ", heads);
    if (dim % heads != 0)
      fail<ConfigError>("attention: expected dim divisible by heads, got dim ", dim, " and heads ", heads,
                        " (remainder ", dim % heads, ")");
    q_proj = Linear<T>(dim, dim);
    k_proj = Linear<T>(dim, dim);
    v_proj = Linear<T>(dim, dim);
    out_proj = Linear<T>(dim, dim);
    heads_ = heads;
  }

  // fairseq's MultiheadAttention names (the paper's Transformer baseline), so its weights map
  // one to one; PyTorch's nn.MultiheadAttention packs q, k, v into one in_proj instead.
  Linear<T> q_proj;    // D -> D, H heads side by side: head h is channels h*Dh .. (h+1)*Dh - 1
  Linear<T> k_proj;    // D -> D; its bias adds q . bk to a whole row of scores, which the softmax
                       // cancels: no effect on y, a gradient of 0 up to rounding (kept for fairseq)
  Linear<T> v_proj;    // D -> D
  Linear<T> out_proj;  // D -> D

  Index dim() const { return q_proj.in_features(); }
  Index heads() const { return heads_; }
  Index head_dim() const { return heads_ > 0 ? dim() / heads_ : 0; }
  bool causal() const { return causal_; }

  AttentionMethod method() const { return method_; }
  void set_method(AttentionMethod m) { method_ = m; }
  // The path forward takes at length N (Direct or Tiled).
  AttentionMethod method_for(Index /*N*/) const {
    return method_ == AttentionMethod::Auto ? AttentionMethod::Tiled : method_;
  }
  // Block rows of the Tiled path; any sizes >= 1 give the same results up to rounding.
  void set_tiles(Index query_rows, Index key_rows) {
    if (query_rows < 1 || key_rows < 1)
      fail<ValueError>("attention tiles: expected query and key rows >= 1, got ", query_rows, " and ", key_rows);
    tile_q_ = query_rows;
    tile_k_ = key_rows;
  }
  Index tile_q() const { return tile_q_; }
  Index tile_k() const { return tile_k_; }

  // PyTorch's nn.Linear default for q_proj, k_proj, v_proj, out_proj in that order: weight then
  // bias uniform in [-1/sqrt(D), 1/sqrt(D)). (fairseq draws xavier_uniform weights and zero
  // out_proj bias; a checkpoint from it loads either way.)
  void init_weights(Rng& rng) {
    q_proj.init_uniform(rng);
    k_proj.init_uniform(rng);
    v_proj.init_uniform(rng);
    out_proj.init_uniform(rng);
  }
  void init_weights(std::uint64_t seed) {
    Rng rng(seed);
    init_weights(rng);
  }

  struct Cache {
    Tensor<T> q, k, v;  // [B, N, D] the projections, bias included
    Tensor<T> z;        // [B, N, D] the heads' outputs side by side, out_proj's input
    Tensor<T> p;        // [B, H, N, N] Direct: probabilities, 0 where masked (empty on Tiled)
    Tensor<T> lse;      // [B, H, N] Tiled: log sum_j exp(s_ij) over each query's visible keys
    // Row b's keys at positions >= lengths[b] are masked. Empty: every position valid.
    std::vector<Index> lengths;  // [B]
    AttentionMethod path = AttentionMethod::Direct;  // the one forward took
    // backward workspaces, kept so a training step reuses them
    Tensor<T> dz;          // [B, N, D] dLoss/dz
    Tensor<T> dq, dk, dv;  // [B, N, D] dLoss/d(q, k, v)
    Tensor<T> part_k, part_v;  // [B * H * chunks, N, Dh] Tiled, fewer (row, head) pairs than threads: partial dk, dv
    std::vector<detail::AttentionWork<T>> work;  // [threads]
  };

  // x, y: [B, N, D] (y must not alias x). With `lengths` (I32 [B], each in [1, N]), row b's keys
  // at positions >= lengths[b] are masked out, so its outputs at positions < lengths[b] equal
  // the row run alone at its length (the ragged-batch contract of Gtu::forward). Every query
  // row gets an output (a padded position attends to the valid keys).
  void forward(const Tensor<T>& x, Tensor<T>& y, Cache& c, const Tensor<std::int32_t>* lengths = nullptr) const {
    check_input(x, "attention x");
    if (&x == &y) fail<ValueError>("attention: expected y to be a different tensor from x, got the same one");
    set_lengths(x, lengths, c);
    q_proj.forward(x, c.q);
    k_proj.forward(x, c.k);
    v_proj.forward(x, c.v);
    c.z.resize(x.shape());
    c.path = method_for(x.dim(1));
    if (c.path == AttentionMethod::Direct) {
      c.lse.resize({0});
      forward_direct(c);
    } else {
      c.p.resize({0});
      forward_tiled(c);
    }
    out_proj.forward(c.z, y);
  }

  // x: the forward input, dy [B, N, D]. Accumulates every parameter grad; dx [B, N, D]
  // overwritten when non-null.
  void backward(const Tensor<T>& x, const Tensor<T>& dy, Cache& c, Tensor<T>* dx) {
    check_input(x, "attention x");
    if (dy.shape() != x.shape())
      fail<ShapeError>("attention dy: expected shape ", shape_str(x.shape()), " (as x), got ", shape_str(dy.shape()));
    if (c.z.shape() != x.shape())
      fail<ShapeError>("attention cache: expected the forward of this x ", shape_str(x.shape()),
                       ", got a cache of ", shape_str(c.z.shape()));
    out_proj.backward(c.z, dy, &c.dz);
    c.dq.resize(x.shape());
    c.dk.resize(x.shape());
    c.dv.resize(x.shape());
    if (c.path == AttentionMethod::Direct)
      backward_direct(c);
    else
      backward_tiled(c);
    q_proj.backward(x, c.dq, dx);
    k_proj.backward(x, c.dk, nullptr);
    v_proj.backward(x, c.dv, nullptr);
    if (dx) {
      k_proj.input_grad(c.dk, *dx, T(1));
      v_proj.input_grad(c.dv, *dx, T(1));
    }
  }

  // Incremental decoding (causal layers): the keys and values of the positions fed so far.
  struct KvCache {
    Tensor<T> k, v;  // [B, capacity, D] rows 0 .. position()-1 hold positions 0 .. position()-1
    Index length = 0;
    // step workspaces
    Tensor<T> q, kn, vn, z;  // [B, n, D] the new positions' projections and attention outputs
    std::vector<detail::AttentionWork<T>> work;  // [threads]

    Index position() const { return length; }  // positions fed so far (per sequence)
    Index capacity() const { return k.rank() == 3 ? k.dim(1) : 0; }
    Index batch() const { return k.rank() == 3 ? k.dim(0) : 0; }
    void reset() { length = 0; }
    // Forgets every position from n on (n <= position()).
    void rewind(Index n) {
      if (n < 0 || n > length) fail<ValueError>("attention kv cache rewind: expected a position in [0, ", length, "], got ", n);
      length = n;
    }
  };

  // Room for `capacity` positions of `batch` sequences without growing later; keeps what the
  // cache holds (its batch must then be `batch`).
  void reserve(KvCache& kv, Index batch, Index capacity) const {
    if (batch < 1 || capacity < 1)
      fail<ValueError>("attention kv cache: expected batch >= 1 and capacity >= 1, got batch ", batch, ", capacity ",
                       capacity);
    const Index D = dim(), old_cap = kv.capacity();
    if (kv.length > 0 && kv.batch() != batch)
      fail<ShapeError>("attention kv cache: expected batch ", kv.batch(), " (the sequences it holds), got ", batch);
    if (kv.length > 0 && kv.k.dim(2) != D)
      fail<ShapeError>("attention kv cache: expected keys of width ", D, " (this layer's dim), got a cache of ",
                       shape_str(kv.k.shape()));
    if (kv.batch() == batch && kv.k.rank() == 3 && kv.k.dim(2) == D && capacity <= old_cap) return;
    const Index cap = std::max(capacity, kv.length);
    auto grow = [&](Tensor<T>& t) {
      Tensor<T> n({batch, cap, D});
      for (Index b = 0; b < batch && kv.length > 0; ++b)
        std::copy(t.data() + b * old_cap * D, t.data() + (b * old_cap + kv.length) * D, n.data() + b * cap * D);
      t = std::move(n);
    };
    grow(kv.k);
    grow(kv.v);
  }

  // Replaces what `kv` holds by the keys and values of the full forward `c` ([rows, n, D], rows 1
  // or `batch`; one row is every sequence's): a prompt run by the model's forward becomes the
  // history the next steps attend to, as if it had been fed by step() (equal up to rounding).
  void assign(KvCache& kv, const Cache& c, Index batch) const {
    if (!causal_)
      fail<ConfigError>("attention kv cache: expected a causal layer (incremental decoding), got a bidirectional one");
    const Index D = dim();
    if (c.k.rank() != 3 || c.k.dim(2) != D || c.v.shape() != c.k.shape() || (c.k.dim(0) != 1 && c.k.dim(0) != batch))
      fail<ShapeError>("attention kv cache: expected a forward's keys [1 or ", batch, ", n, ", D, "], got ",
                       shape_str(c.k.shape()));
    const Index rows = c.k.dim(0), n = c.k.dim(1);
    kv.length = 0;
    reserve(kv, batch, std::max(n, kv.capacity()));
    const Index cap = kv.capacity();
    for (Index b = 0; b < batch; ++b) {
      const Index src = (rows == 1 ? 0 : b) * n * D;
      std::copy(c.k.data() + src, c.k.data() + src + n * D, kv.k.data() + b * cap * D);
      std::copy(c.v.data() + src, c.v.data() + src + n * D, kv.v.data() + b * cap * D);
    }
    kv.length = n;
  }

  // Feeds the next n positions of B sequences: x_t [B, n, D] -> y_t [B, n, D], position p of the
  // chunk attending to every position fed before and to the chunk's positions <= p. Equal to
  // the full forward's rows position() .. position()+n-1 up to rounding (n = 1: one token; a
  // whole prompt at once: the prefill). The cache grows by doubling when full.
  void step(const Tensor<T>& x_t, Tensor<T>& y_t, KvCache& kv) const {
    if (!causal_)
      fail<ConfigError>("attention step: expected a causal layer (incremental decoding), got a bidirectional one");
    check_input(x_t, "attention step x");
    if (&x_t == &y_t) fail<ValueError>("attention step: expected y to be a different tensor from x, got the same one");
    const Index B = x_t.dim(0), n = x_t.dim(1), D = dim(), H = heads_, Dh = head_dim();
    if (kv.length > 0 && kv.batch() != B)
      fail<ShapeError>("attention step x: expected batch ", kv.batch(), " (the sequences the cache holds), got shape ",
                       shape_str(x_t.shape()));
    const Index needed = kv.length + n, cap0 = kv.capacity();
    if (kv.batch() != B || kv.k.dim(2) != D || needed > cap0)
      reserve(kv, B, std::max({needed, needed > cap0 ? 2 * cap0 : cap0, Index(16)}));
    q_proj.forward(x_t, kv.q);
    k_proj.forward(x_t, kv.kn);
    v_proj.forward(x_t, kv.vn);
    const Index cap = kv.capacity(), t0 = kv.length;
    for (Index b = 0; b < B; ++b) {
      std::copy(kv.kn.data() + b * n * D, kv.kn.data() + (b + 1) * n * D, kv.k.data() + (b * cap + t0) * D);
      std::copy(kv.vn.data() + b * n * D, kv.vn.data() + (b + 1) * n * D, kv.v.data() + (b * cap + t0) * D);
    }
    kv.z.resize(x_t.shape());
    const Index nqb = (n + tile_q_ - 1) / tile_q_;
    prepare_work(kv.work, 0);
    // the decoder's threshold: between two tokens the other threads go to sleep
    const bool parallel = double(B) * double(n) * double(t0 + n) * double(D) >= double(grain::kDecodeMinWork) &&
                          detail::blas_threads_per_call() == 1;
    parallel_for(B * H * nqb, parallel, [&](Index task) {
      const Index b = task / (H * nqb), h = (task / nqb) % H, i0 = (task % nqb) * tile_q_;
      const Index kv_off = b * cap * D + h * Dh, q_off = (b * n + i0) * D + h * Dh;
      const Index nq = std::min(tile_q_, n - i0);
      // Few queries (one token: 1): key blocks as long as the score buffer holds, so a step
      // makes a few long products rather than many short ones.
      tiled_rows(kv.q.data() + q_off, kv.k.data() + kv_off, kv.v.data() + kv_off, D, nq, t0 + i0, t0 + n,
                 std::max(tile_k_, tile_q_ * tile_k_ / nq), kv.z.data() + q_off, nullptr, kv.work[slot()]);
    });
    out_proj.forward(kv.z, y_t);
    kv.length = t0 + n;
  }

 private:
  friend Visits<Attention<T>>;
  template <class Self, class F>
  static void visit_all(Self& m, const std::string& prefix, F& f) {  // Self: this class or its const
    m.q_proj.visit(prefix + "q_proj.", f);
    m.k_proj.visit(prefix + "k_proj.", f);
    m.v_proj.visit(prefix + "v_proj.", f);
    m.out_proj.visit(prefix + "out_proj.", f);
  }

  T scale() const { return T(1) / std::sqrt(T(head_dim())); }
  static constexpr T kNegInf = -std::numeric_limits<T>::infinity();

  // Keys row b may attend to: its length, or N.
  static Index keys_of(const Cache& c, Index b, Index N) {
    return c.lengths.empty() ? N : c.lengths[static_cast<std::size_t>(b)];
  }

  // The workspace slot of the running thread: parallel_for's thread index, or the caller's own
  // slot when an enclosing parallel region makes our loops serial.
  static std::size_t slot() { return static_cast<std::size_t>(detail::thread_id()); }
  void prepare_work(std::vector<detail::AttentionWork<T>>& work, Index grad_rows) const {
    const auto slots = static_cast<std::size_t>(std::max(detail::max_threads(), detail::thread_id() + 1));
    if (work.size() < slots) work.resize(slots);
    const Index Dh = head_dim();
    for (auto& w : work) {
      detail::ensure_size(w.s, tile_q_ * tile_k_);
      detail::ensure_size(w.dp, tile_q_ * tile_k_);
      detail::ensure_size(w.acc, tile_q_ * Dh);
      detail::ensure_size(w.m, tile_q_);
      detail::ensure_size(w.l, tile_q_);
      detail::ensure_size(w.dsum, tile_q_);
      detail::ensure_size(w.dk, grad_rows * Dh);
      detail::ensure_size(w.dv, grad_rows * Dh);
    }
  }

  // ---- Direct: one head's [N, N] at a time, every (row, head) a task ----

  void forward_direct(Cache& c) const {
    const Index B = c.q.dim(0), N = c.q.dim(1), D = dim(), H = heads_, Dh = head_dim();
    const T sc = scale();
    c.p.resize({B, H, N, N});
    parallel_for(B * H, split_worthwhile(double(B) * double(N) * double(N) * double(D)), [&](Index task) {
      const Index b = task / H, h = task % H, len = keys_of(c, b, N), off = b * N * D + h * Dh;
      T* P = c.p.data() + task * N * N;  // [N, N]
      gemm(Op::N, Op::T, N, N, Dh, sc, c.q.data() + off, D, c.k.data() + off, D, T(0), P, N);
      for (Index i = 0; i < N; ++i) {
        T* row = P + i * N;
        const Index visible = causal_ ? std::min(i + 1, len) : len;
        auto e = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(row, visible);
        e = (e - e.maxCoeff()).exp();
        e /= e.sum();
        std::fill(row + visible, row + N, T(0));
      }
      gemm(Op::N, Op::N, N, Dh, N, T(1), P, N, c.v.data() + off, D, T(0), c.z.data() + off, D);
    });
  }

  // With S = sc Q K^T and P = softmax(S) per row, O = P V:
  //   dP = dO V^T, dV = P^T dO, dS = P * (dP - rowsum(P * dP)), dQ = sc dS K, dK = sc dS^T Q.
  void backward_direct(Cache& c) {
    const Index B = c.q.dim(0), N = c.q.dim(1), D = dim(), H = heads_, Dh = head_dim();
    const T sc = scale();
    prepare_work(c.work, 0);
    for (auto& w : c.work) detail::ensure_size(w.dp, N * N);
    parallel_for(B * H, split_worthwhile(double(B) * double(N) * double(N) * double(D)), [&](Index task) {
      const Index b = task / H, h = task % H, off = b * N * D + h * Dh;
      const T* P = c.p.data() + task * N * N;  // [N, N]
      T* dS = c.work[slot()].dp.data();        // [N, N] dP, then dS
      const T* dO = c.dz.data() + off;
      gemm(Op::N, Op::T, N, N, Dh, T(1), dO, D, c.v.data() + off, D, T(0), dS, N);
      gemm(Op::T, Op::N, N, Dh, N, T(1), P, N, dO, D, T(0), c.dv.data() + off, D);
      for (Index i = 0; i < N; ++i) {
        const auto p = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(P + i * N, N);
        auto d = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(dS + i * N, N);
        d = p * (d - (p * d).sum());
      }
      gemm(Op::N, Op::N, N, Dh, N, sc, dS, N, c.k.data() + off, D, T(0), c.dq.data() + off, D);
      gemm(Op::T, Op::N, N, Dh, N, sc, dS, N, c.q.data() + off, D, T(0), c.dk.data() + off, D);
    });
  }

  // ---- Tiled ----

  // The forward of nq query rows of one (row, head) against keys 0 .. nk-1, bk keys at a time
  // (nq bk <= the score buffer's tile_q tile_k). q: the first query row; k, v: key/value row 0;
  // all with row stride ld. The queries sit at positions pos0 .. pos0+nq-1 (causal: query at p
  // sees keys j <= p). out: nq rows of Dh, stride ld; lse: nq values or null.
  // The output is accumulated transposed, O^T += V^T P^T: tnn::gemm hands small products of
  // two untransposed operands to a coefficient-wise Eigen product (gemm.hpp: it keeps a BLAS
  // from allocating), 5-10x slower than the BLAS at these block sizes; this form never is one.
  void tiled_rows(const T* q, const T* k, const T* v, Index ld, Index nq, Index pos0, Index nk, Index bk, T* out,
                  T* lse, detail::AttentionWork<T>& w) const {
    const Index Dh = head_dim();
    const T sc = scale();
    T* S = w.s.data();        // [nq, nb] scores, then exp(s - running max)
    T* accT = w.acc.data();   // [Dh, nq] sum over the blocks so far of V^T P^T, rescaled
    T* m = w.m.data();        // [nq] running max
    T* l = w.l.data();        // [nq] running sum of exp(s - m)
    T* alpha = w.dsum.data(); // [nq] this block's rescaling of the earlier ones, exp(m_old - m_new)
    std::fill(m, m + nq, kNegInf);
    std::fill(l, l + nq, T(0));
    std::fill(accT, accT + Dh * nq, T(0));
    const Index kend = causal_ ? std::min(nk, pos0 + nq) : nk;  // keys any of the rows sees
    for (Index j0 = 0; j0 < kend; j0 += bk) {
      const Index nb = std::min(bk, kend - j0);
      gemm(Op::N, Op::T, nq, nb, Dh, sc, q, ld, k + j0 * ld, ld, T(0), S, nb);
      bool rescale = false;
      for (Index r = 0; r < nq; ++r) {
        T* row = S + r * nb;
        const Index visible = causal_ ? std::clamp<Index>(pos0 + r + 1 - j0, 0, nb) : nb;
        std::fill(row + visible, row + nb, T(0));
        alpha[r] = T(1);
        if (visible == 0) continue;  // a later query block's row: nothing of this key block
        auto e = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(row, visible);
        const T m_new = std::max(m[r], e.maxCoeff());
        e = (e - m_new).exp();  // vectorized: the exps are as many as the multiply-adds / Dh
        alpha[r] = std::exp(m[r] - m_new);  // 0 on the row's first block (m = -inf)
        l[r] = l[r] * alpha[r] + e.sum();
        m[r] = m_new;
        rescale |= alpha[r] != T(1) && j0 > 0;
      }
      if (rescale)
        for (Index d = 0; d < Dh; ++d)
          for (Index r = 0; r < nq; ++r) accT[d * nq + r] *= alpha[r];
      if (nq == 1)  // [Dh, 1] is [1, Dh]: P V, which tnn::gemm makes a BLAS gemv (a decoding step)
        gemm(Op::N, Op::N, 1, Dh, nb, T(1), S, nb, v + j0 * ld, ld, T(1), accT, Dh);
      else
        gemm(Op::T, Op::T, Dh, nq, nb, T(1), v + j0 * ld, ld, S, nb, T(1), accT, nq);
    }
    for (Index r = 0; r < nq; ++r) {
      const T inv = T(1) / l[r];
      for (Index d = 0; d < Dh; ++d) out[r * ld + d] = accT[d * nq + r] * inv;
      if (lse) lse[r] = m[r] + std::log(l[r]);
    }
  }

  // Tasks over (row, head, query block), the costliest causal blocks (the last) handed out first.
  void forward_tiled(Cache& c) const {
    const Index B = c.q.dim(0), N = c.q.dim(1), D = dim(), H = heads_, Dh = head_dim();
    const Index nqb = (N + tile_q_ - 1) / tile_q_;
    c.lse.resize({B, H, N});
    prepare_work(c.work, 0);
    parallel_for(
        B * H * nqb, split_worthwhile(double(B) * double(N) * double(N) * double(D)),
        [&](Index task) {
          const Index bh = task / nqb, b = bh / H, h = bh % H, i0 = (nqb - 1 - task % nqb) * tile_q_;
          const Index off = b * N * D + h * Dh, q_off = off + i0 * D;
          tiled_rows(c.q.data() + q_off, c.k.data() + off, c.v.data() + off, D, std::min(tile_q_, N - i0), i0,
                     keys_of(c, b, N), tile_k_, c.z.data() + q_off, c.lse.data() + bh * N + i0, c.work[slot()]);
        },
        Schedule::Dynamic);
  }

  // One query block's backward: its dQ rows in full, its share of dK, dV into dk, dv ([N, Dh]
  // partials of this row and head). Per key block, P is recomputed from the saved log-sum-exp:
  //   dV += P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)), dQ += sc dS K, dK += sc dS^T Q
  // (rowsum(P * dP) = rowsum(dO * O), which needs no full row of P). dQ is accumulated
  // transposed, dQ^T += sc K^T dS^T, for the reason tiled_rows gives.
  void backward_block(Cache& c, Index b, Index h, Index i0, T* dk, T* dv, detail::AttentionWork<T>& w) const {
    const Index N = c.q.dim(1), D = dim(), H = heads_, Dh = head_dim();
    const Index nq = std::min(tile_q_, N - i0), nk = keys_of(c, b, N), off = b * N * D + h * Dh, q_off = off + i0 * D;
    const T sc = scale();
    const T* q = c.q.data() + q_off;                     // [nq, Dh] stride D
    const T* dO = c.dz.data() + q_off;                   // [nq, Dh] stride D
    const T* O = c.z.data() + q_off;                     // [nq, Dh] stride D
    const T* k = c.k.data() + off;                       // [N, Dh] stride D
    const T* v = c.v.data() + off;                       // [N, Dh] stride D
    const T* lse = c.lse.data() + (b * H + h) * N + i0;  // [nq]
    T* dq = c.dq.data() + q_off;                         // [nq, Dh] stride D
    T* P = w.s.data();                                   // [nq, nb]
    T* dS = w.dp.data();                                 // [nq, nb]
    T* dqT = w.acc.data();                               // [Dh, nq]
    T* dsum = w.dsum.data();                             // [nq]
    for (Index r = 0; r < nq; ++r) {
      T s = 0;
      for (Index d = 0; d < Dh; ++d) s += dO[r * D + d] * O[r * D + d];
      dsum[r] = s;
    }
    std::fill(dqT, dqT + Dh * nq, T(0));
    const Index kend = causal_ ? std::min(nk, i0 + nq) : nk;
    for (Index j0 = 0; j0 < kend; j0 += tile_k_) {
      const Index nb = std::min(tile_k_, kend - j0);
      gemm(Op::N, Op::T, nq, nb, Dh, sc, q, D, k + j0 * D, D, T(0), P, nb);
      for (Index r = 0; r < nq; ++r) {
        T* row = P + r * nb;
        const Index visible = causal_ ? std::clamp<Index>(i0 + r + 1 - j0, 0, nb) : nb;
        auto e = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(row, visible);
        e = (e - lse[r]).exp();
        std::fill(row + visible, row + nb, T(0));
      }
      gemm(Op::T, Op::N, nb, Dh, nq, T(1), P, nb, dO, D, T(1), dv + j0 * Dh, Dh);
      gemm(Op::N, Op::T, nq, nb, Dh, T(1), dO, D, v + j0 * D, D, T(0), dS, nb);
      for (Index r = 0; r < nq; ++r)
        for (Index j = 0; j < nb; ++j) dS[r * nb + j] = P[r * nb + j] * (dS[r * nb + j] - dsum[r]);
      gemm(Op::T, Op::T, Dh, nq, nb, sc, k + j0 * D, D, dS, nb, T(1), dqT, nq);
      gemm(Op::T, Op::N, nb, Dh, nq, sc, dS, nb, q, D, T(1), dk + j0 * Dh, Dh);
    }
    for (Index r = 0; r < nq; ++r)
      for (Index d = 0; d < Dh; ++d) dq[r * D + d] = dqT[d * nq + r];
  }

  // dQ rows belong to one query block, but dK and dV rows collect from every query block. One
  // parallel loop: tasks own a (row, head), or, when there are fewer of those than threads, a
  // share of its query blocks ("chunks", summed afterwards in chunk order). Causal query blocks
  // are taken in pairs, first with last, so the shares cost about the same. The sums run in an
  // order fixed by B, H and the thread count: results are deterministic.
  void backward_tiled(Cache& c) {
    const Index B = c.q.dim(0), N = c.q.dim(1), D = dim(), H = heads_, Dh = head_dim(), BH = B * H;
    const Index nqb = (N + tile_q_ - 1) / tile_q_, pairs = (nqb + 1) / 2;
    const bool parallel = split_worthwhile(double(B) * double(N) * double(N) * double(D));
    const Index threads = parallel ? parallel_threads() : 1;
    const Index chunks = std::clamp<Index>((threads + BH - 1) / BH, 1, pairs);
    prepare_work(c.work, N);
    if (chunks > 1) {
      c.part_k.resize({BH * chunks, N, Dh});
      c.part_v.resize({BH * chunks, N, Dh});
    }
    parallel_for(
        BH * chunks, parallel,
        [&](Index task) {
          const Index bh = task / chunks, chunk = task % chunks, b = bh / H, h = bh % H, nk = keys_of(c, b, N);
          detail::AttentionWork<T>& w = c.work[slot()];
          T* dk = chunks > 1 ? c.part_k.data() + task * N * Dh : w.dk.data();  // [N, Dh]
          T* dv = chunks > 1 ? c.part_v.data() + task * N * Dh : w.dv.data();  // [N, Dh]
          std::fill(dk, dk + nk * Dh, T(0));
          std::fill(dv, dv + nk * Dh, T(0));
          for (Index t = chunk; t < pairs; t += chunks) {
            backward_block(c, b, h, t * tile_q_, dk, dv, w);
            if (nqb - 1 - t != t) backward_block(c, b, h, (nqb - 1 - t) * tile_q_, dk, dv, w);
          }
          if (chunks == 1) scatter_key_grads(c, b, h, dk, dv, 1, 0);
        },
        Schedule::Dynamic);
    if (chunks > 1)
      for (Index bh = 0; bh < BH; ++bh)
        scatter_key_grads(c, bh / H, bh % H, c.part_k.data() + bh * chunks * N * Dh,
                          c.part_v.data() + bh * chunks * N * Dh, chunks, N * Dh);
  }

  // dk, dv rows of (row b, head h) = the sum of `count` [N, Dh] partials `stride` apart; 0 at
  // masked keys, which no partial touched.
  void scatter_key_grads(Cache& c, Index b, Index h, const T* pk, const T* pv, Index count, Index stride) const {
    const Index N = c.q.dim(1), D = dim(), Dh = head_dim(), nk = keys_of(c, b, N);
    for (Index j = 0; j < N; ++j) {
      T* dk = c.dk.data() + (b * N + j) * D + h * Dh;
      T* dv = c.dv.data() + (b * N + j) * D + h * Dh;
      std::fill(dk, dk + Dh, T(0));
      std::fill(dv, dv + Dh, T(0));
      if (j >= nk) continue;
      for (Index i = 0; i < count; ++i)
        for (Index d = 0; d < Dh; ++d) {
          dk[d] += pk[i * stride + j * Dh + d];
          dv[d] += pv[i * stride + j * Dh + d];
        }
    }
  }

  // Our loops call the BLAS inside their threads: worth it above a GEMM's split size, and only
  // when each BLAS call runs one thread (tnn::set_num_threads, as the `tnn` program sets it); a
  // BLAS left multithreaded splits every block product itself instead (gemm.hpp's policy).
  static bool split_worthwhile(double multiply_adds) {
    return multiply_adds >= grain::kGemmMinWork && detail::blas_threads_per_call() == 1;
  }

  void check_input(const Tensor<T>& x, const char* what) const {
    if (x.rank() != 3 || x.dim(2) != dim() || x.dim(0) < 1 || x.dim(1) < 1)
      fail<ShapeError>(what, ": expected shape [B >= 1, N >= 1, ", dim(), "], got ", shape_str(x.shape()));
  }

  static void set_lengths(const Tensor<T>& x, const Tensor<std::int32_t>* lengths, Cache& c) {
    read_row_lengths(lengths, x.dim(0), x.dim(1), "attention lengths", c.lengths);
  }

  Index heads_ = 0;
  bool causal_ = true;
  AttentionMethod method_ = AttentionMethod::Auto;
  Index tile_q_ = kDefaultTile, tile_k_ = kDefaultTile;
};

}  // namespace tnn
