// tnn's own single-precision GEMM, no library needed: op(A) and op(B) are packed into
// cache-sized panels and multiplied by a register-blocked microkernel chosen at run time
// from CPUID (AVX-512, AVX2+FMA, or portable vectors), so a consumer compiling without
// -march=native still gets the widest kernel the CPU runs, and no table of CPU models or
// environment variable decides the speed. Also the bf16 product (inputs rounded to bf16
// while packing, fp32 accumulation) and the obvious triple loops every kernel is held to.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#define TNN_GEMM_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "tnn/core/tensor.hpp"

namespace tnn {

enum class Op { N, T };  // op(A) = A or A^T

// A product's precision: fp32, or bf16 (float A and B rounded to bf16, to nearest even, while
// packed; products summed in fp32, as a bf16 mixed-precision step wants).
enum class Precision { F32, Bf16 };

namespace detail {

// ---------------------------------------------------------------- bf16 rounding

// fp32 -> bf16 bits, round to nearest even (what vcvtneps2bf16 does); a NaN stays a NaN.
inline std::uint16_t bf16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float bf16_round(float x) { return bf16_to_float(bf16_bits(x)); }

// ---------------------------------------------------------------- the slow, obvious twins

// C = alpha op(A) op(B) + beta C by the triple loop, summed in double; beta = 0 ignores C.
// `round` is applied to every element of A and B first (identity, or bf16_round).
template <class T, class Round>
void gemm_naive_rounded(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b,
                        Index ldb, T beta, T* c, Index ldc, Round round) {
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) {
      double s = 0;
      for (Index p = 0; p < k; ++p) {
        const T av = ta == Op::N ? a[i * lda + p] : a[p * lda + i];
        const T bv = tb == Op::N ? b[p * ldb + j] : b[j * ldb + p];
        s += double(round(av)) * double(round(bv));
      }
      T& out = c[i * ldc + j];
      out = static_cast<T>(beta == T(0) ? double(alpha) * s : double(alpha) * s + double(beta) * double(out));
    }
}
template <class T>
void gemm_naive(Op ta, Op tb, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb,
                T beta, T* c, Index ldc) {
  gemm_naive_rounded(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, [](T x) { return x; });
}
inline void gemm_naive_bf16(Op ta, Op tb, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                            const float* b, Index ldb, float beta, float* c, Index ldc) {
  gemm_naive_rounded(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, [](float x) { return bf16_round(x); });
}

// ---------------------------------------------------------------- CPU features

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 and FMA3, with the OS saving ymm state
  bool avx512 = false;       // AVX-512 F/BW/DQ/VL, with the OS saving zmm state
  bool avx512_bf16 = false;  // and AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16)
};

// Read once from CPUID and XCR0 (the OS must save the registers, not only the CPU have them).
inline CpuFeatures detect_cpu() {
  CpuFeatures f;
#ifdef TNN_GEMM_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = (c >> 12) & 1u, osxsave = (c >> 27) & 1u, avx = (c >> 28) & 1u;
  if (!osxsave || !avx) return f;
  unsigned xlo = 0, xhi = 0;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  const bool ymm_state = (xlo & 0x6u) == 0x6u;
  const bool zmm_state = (xlo & 0xe6u) == 0xe6u;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = (b >> 5) & 1u;
  const bool avx512 = ((b >> 16) & 1u) && ((b >> 17) & 1u) && ((b >> 30) & 1u) && ((b >> 31) & 1u);  // F DQ BW VL
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avx2_fma = avx2 && fma && ymm_state;
  f.avx512 = f.avx2_fma && avx512 && zmm_state;
  f.avx512_bf16 = f.avx512 && ((a1 >> 5) & 1u);
#endif
  return f;
}
inline const CpuFeatures& cpu() {
  static const CpuFeatures f = detect_cpu();
  return f;
}

// The microkernels. Avx512Bf16 differs from Avx512 only for bf16 products: vdpbf16ps on
// bf16 pairs, where the others multiply the rounded values in fp32 (the same results up to
// summation order, at fp32 speed). Tests and benchmarks run each kernel the CPU has.
enum class GemmKernel { Portable, Avx2, Avx512, Avx512Bf16 };
inline constexpr GemmKernel kGemmKernels[] = {GemmKernel::Portable, GemmKernel::Avx2, GemmKernel::Avx512,
                                              GemmKernel::Avx512Bf16};
inline const char* gemm_kernel_name(GemmKernel k) {
  switch (k) {
    case GemmKernel::Avx512Bf16: return "avx512bf16";
    case GemmKernel::Avx512: return "avx512";
    case GemmKernel::Avx2: return "avx2";
    default: return "portable";
  }
}
inline bool gemm_kernel_runs(GemmKernel k) {
  switch (k) {
    case GemmKernel::Avx512Bf16: return cpu().avx512_bf16;
    case GemmKernel::Avx512: return cpu().avx512;
    case GemmKernel::Avx2: return cpu().avx2_fma;
    default: return true;
  }
}
inline GemmKernel best_gemm_kernel() {
  const CpuFeatures& f = cpu();
  return f.avx512_bf16 ? GemmKernel::Avx512Bf16
         : f.avx512    ? GemmKernel::Avx512
         : f.avx2_fma  ? GemmKernel::Avx2
                       : GemmKernel::Portable;
}

// ---------------------------------------------------------------- packing buffers

// Each thread's packing buffers: one whole block of each operand, allocated at the thread's first
// product and reused, so products allocate nothing after it. Freed when the thread ends.
struct PackBuffers {
  struct Free {
    void operator()(void* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<void, Free> a, b;
  std::size_t a_bytes = 0, b_bytes = 0;
  static void grow(std::unique_ptr<void, Free>& buf, std::size_t& have, std::size_t need) {
    if (need <= have) return;
    buf.reset();
    buf.reset(::operator new(need, std::align_val_t(64)));
    have = need;
  }
};
inline PackBuffers& pack_buffers() {
  thread_local PackBuffers buffers;
  return buffers;
}

// ---------------------------------------------------------------- packing, portable

// The packed operand X is op(A) (rows: C's rows) or op(B)^T (rows: C's columns), both
// [rows, k]. Stored row-major either along k (x[r ld + p], `along_k`) or across it
// (x[p ld + r]). A packed panel holds W rows for kc units: out[u W + r]. A unit is one
// float for fp32 products, and for bf16 products one 32-bit word of two bf16 values,
// k = 2u (low half) and 2u + 1 (high half), which is what vdpbf16ps multiplies pairwise.
// Rows past `rows` and k past `k` are zeros, so the microkernel always runs whole tiles.
template <class E>
inline constexpr Index kPerUnit = std::is_same_v<E, float> ? 1 : 2;

// Portable packing of floats; kRound: rounded to bf16 values, for the bf16 product on kernels
// without bf16 instructions (the fp32 kernel then multiplies the rounded values exactly).
template <bool kRound>
void pack_f32_portable(const float* x, Index ld, bool along_k, Index r0, Index rows, Index W, Index u0, Index kcu,
                       float* out) {
  const Index panels = (rows + W - 1) / W;
  auto put = [](float v) { return kRound ? bf16_round(v) : v; };
  if (along_k) {  // each row's units are contiguous: a column of rows per unit (faster than row by row)
    for (Index q = 0; q < panels; ++q) {
      float* const o = out + q * W * kcu;
      const Index prow = std::min(W, rows - q * W);
      const float* src = x + (r0 + q * W) * ld + u0;
      for (Index u = 0; u < kcu; ++u) {
        for (Index r = 0; r < prow; ++r) o[u * W + r] = put(src[r * ld + u]);
        for (Index r = prow; r < W; ++r) o[u * W + r] = 0.0f;
      }
    }
    return;
  }
  for (Index u = 0; u < kcu; ++u) {  // each unit's rows are contiguous: one stored row at a time
    const float* src = x + (u0 + u) * ld + r0;
    for (Index q = 0; q < panels; ++q) {
      float* const o = out + q * W * kcu + u * W;
      const Index prow = std::min(W, rows - q * W);
      for (Index r = 0; r < prow; ++r) o[r] = put(src[q * W + r]);
      for (Index r = prow; r < W; ++r) o[r] = 0.0f;
    }
  }
}

// ---------------------------------------------------------------- the blocked driver

// One thread's C [m, n] = alpha op(A) op(B) + beta C through kernel K (k > 0). Loops as in
// BLIS: a KC x NC block of op(B) packed, then for each MC x KC block of op(A) packed, every
// MR-high panel of the A block (it stays in L1) against every NR-wide panel of the B block
// (streamed from L2/L3). The other order, a B panel kept in L1 against the A block from L2,
// measured a few percent slower on Zen 5: a 32 KB B panel and the C tile's rows, whose
// strides are often multiples of 2 KB, fight over the same L1 sets. Each C element is summed
// over k in the same order whatever the blocking of m and n, so the threads' split of C
// does not change results.
template <class K>
void packed_gemm(Op ta, Op tb, Index m, Index n, Index k, float alpha, const float* a, Index lda, const float* b,
                 Index ldb, float beta, float* c, Index ldc) {
  using E = typename K::Elem;
  constexpr Index MR = K::MR, NR = K::NR, KC = K::KC, MC = K::MC, NC = K::NC;
  const Index ku = (k + kPerUnit<E> - 1) / kPerUnit<E>;
  PackBuffers& ws = pack_buffers();
  // Whole blocks at once (MC x KC and NC x KC units: 3.4 MB a thread for the AVX-512 kernel), not
  // the block this product needs: a product that grows step by step (attention's keys while
  // decoding) then never allocates again. (+64 units: headroom past the last panel, never read)
  PackBuffers::grow(ws.a, ws.a_bytes, std::size_t(MC * KC + 64) * sizeof(E));
  PackBuffers::grow(ws.b, ws.b_bytes, std::size_t(NC * KC + 64) * sizeof(E));
  E* const ap = static_cast<E*>(ws.a.get());
  E* const bp = static_cast<E*>(ws.b.get());
  const bool a_along_k = ta == Op::N, b_along_k = tb == Op::T;
  for (Index jc = 0; jc < n; jc += NC) {
    const Index nc = std::min(NC, n - jc);
    for (Index pc = 0; pc < ku; pc += KC) {
      const Index kc = std::min(KC, ku - pc);
      K::pack_b(b, ldb, b_along_k, jc, nc, pc, kc, k, bp);
      const float beta_k = pc == 0 ? beta : 1.0f;  // later k blocks add to what the first wrote
      for (Index ic = 0; ic < m; ic += MC) {
        const Index mc = std::min(MC, m - ic);
        K::pack_a(a, lda, a_along_k, ic, mc, pc, kc, k, ap);
        for (Index ir = 0; ir < mc; ir += MR)
          for (Index jr = 0; jr < nc; jr += NR)
            K::micro(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, alpha, beta_k,
                     int(std::min(MR, mc - ir)), int(std::min(NR, nc - jr)));
      }
    }
  }
}

// Writes a tile computed into `acc` [MR, NR] to the mr x nr corner of C.
inline void store_tile(const float* acc, Index NR, int mr, int nr, float* c, Index ldc, float alpha, float beta) {
  for (int r = 0; r < mr; ++r)
    for (int j = 0; j < nr; ++j) {
      float& o = c[r * ldc + j];
      o = beta == 0.0f ? alpha * acc[r * NR + j] : alpha * acc[r * NR + j] + beta * o;
    }
}

// ---------------------------------------------------------------- portable kernel

// Compiler vector extensions (GCC, clang): SSE2 on any x86-64, NEON on AArch64.
typedef float PortableV __attribute__((vector_size(16)));

template <bool kRound>
struct PortableKernel {
  using Elem = float;
  static constexpr Index MR = 4, NR = 8, KC = 256, MC = 128, NC = 2048;
  static void pack_a(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0, Index kcu, Index,
                     float* out) {
    pack_f32_portable<kRound>(x, ld, along_k, r0, rows, MR, u0, kcu, out);
  }
  static void pack_b(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0, Index kcu, Index,
                     float* out) {
    pack_f32_portable<kRound>(x, ld, along_k, r0, rows, NR, u0, kcu, out);
  }
  static void micro(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha, float beta, int mr,
                    int nr) {
    PortableV acc[MR][2] = {};
    for (Index u = 0; u < kc; ++u) {
      PortableV b0, b1;
      std::memcpy(&b0, bp + u * NR, 16);
      std::memcpy(&b1, bp + u * NR + 4, 16);
      for (int r = 0; r < MR; ++r) {
        const float s = ap[u * MR + r];
        acc[r][0] += s * b0;
        acc[r][1] += s * b1;
      }
    }
    float tile[MR * NR];
    for (int r = 0; r < MR; ++r) {
      std::memcpy(tile + r * NR, &acc[r][0], 16);
      std::memcpy(tile + r * NR + 4, &acc[r][1], 16);
    }
    store_tile(tile, NR, mr, nr, c, ldc, alpha, beta);
  }
};

#ifdef TNN_GEMM_X86

#define TNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TNN_TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")))
#define TNN_TARGET_AVX512BF16 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl,avx512bf16")))

// ---------------------------------------------------------------- AVX2 + FMA kernel

// 6 x 16: 12 ymm accumulators, 2 for a row of B, 1 broadcast of A.
template <bool kRound>
struct Avx2Kernel {
  using Elem = float;
  static constexpr Index MR = 6, NR = 16, KC = 256, MC = 144, NC = 3072;
  static void pack_a(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0, Index kcu, Index k,
                     float* out) {
    (void)k;
    pack_f32_portable<kRound>(x, ld, along_k, r0, rows, MR, u0, kcu, out);
  }
  static void pack_b(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0, Index kcu, Index k,
                     float* out) {
    (void)k;
    pack_f32_portable<kRound>(x, ld, along_k, r0, rows, NR, u0, kcu, out);
  }
  TNN_TARGET_AVX2 static void micro(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha,
                                    float beta, int mr, int nr) {
    __m256 acc[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (Index u = 0; u < kc; ++u) {
      const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m256 s = _mm256_broadcast_ss(ap + r);
        acc[r][0] = _mm256_fmadd_ps(s, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(s, b1, acc[r][1]);
      }
      ap += MR;
      bp += NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (mr == MR && nr == NR) {
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < 2; ++h) {
          float* o = c + r * ldc + 8 * h;
          const __m256 v = _mm256_mul_ps(acc[r][h], va);
          _mm256_storeu_ps(o, beta == 0.0f ? v : _mm256_fmadd_ps(_mm256_loadu_ps(o), vb, v));
        }
      return;
    }
    alignas(32) float tile[MR * NR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      _mm256_store_ps(tile + r * NR, acc[r][0]);
      _mm256_store_ps(tile + r * NR + 8, acc[r][1]);
    }
    store_tile(tile, NR, mr, nr, c, ldc, alpha, beta);
  }
};

// ---------------------------------------------------------------- AVX-512 packing

// r[i] (16 rows of 16 lanes) becomes r[j] = lane j of every row: column j. The shuffles are
// the masked forms with every lane selected (the same instructions): GCC 12 warns that the
// unmasked ones' undefined pass-through "may be used uninitialized", which would fail a
// consumer's -Werror build.
TNN_TARGET_AVX512 inline void transpose16(__m512 (&r)[16]) {
  constexpr __mmask16 all = 0xffff;
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_mask_unpacklo_ps(r[2 * i], all, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_mask_unpackhi_ps(r[2 * i], all, r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // rows 4g..4g+3; u[4g + c] holds columns 4L + c of them in 128-bit lane L
    u[4 * g] = _mm512_mask_shuffle_ps(t[4 * g], all, t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_mask_shuffle_ps(t[4 * g], all, t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm512_mask_shuffle_ps(t[4 * g], all, t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_mask_shuffle_ps(t[4 * g], all, t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  auto lanes = [&](__m512 a, __m512 b, int imm) TNN_TARGET_AVX512 {
    return imm == 0x88 ? _mm512_mask_shuffle_f32x4(a, all, a, b, 0x88) : _mm512_mask_shuffle_f32x4(a, all, a, b, 0xdd);
  };
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = lanes(u[c], u[4 + c], 0x88), v1 = lanes(u[c], u[4 + c], 0xdd);
    const __m512 w0 = lanes(u[8 + c], u[12 + c], 0x88), w1 = lanes(u[8 + c], u[12 + c], 0xdd);
    r[c] = lanes(v0, w0, 0x88);
    r[8 + c] = lanes(v0, w0, 0xdd);
    r[4 + c] = lanes(v1, w1, 0x88);
    r[12 + c] = lanes(v1, w1, 0xdd);
  }
}

// The stored row 4 ahead of the one being copied, whole: a block's rows are strided
// fragments (a few hundred floats of a longer row), which the hardware prefetcher follows
// poorly; fetching them ahead made packing op(A) = A^T 1.7x faster.
inline void prefetch_row(const float* p, Index n) {
  for (Index i = 0; i < n; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
}

inline __mmask16 lanes16(Index n) { return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1); }

// fp32 -> bf16 -> fp32 in every lane (bf16_round's rule), for the bf16 product on a CPU without
// AVX512_BF16: the fp32 kernel then multiplies the rounded values.
TNN_TARGET_AVX512 inline __m512 round_bf16_ps(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_mask_srli_epi32(u, 0xffff, u, 16), _mm512_set1_epi32(1));  // see transpose16
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  r = _mm512_and_si512(r, _mm512_set1_epi32(int(0xffff0000u)));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32(int(0xffff0000u))),
                                                     _mm512_set1_epi32(0x400000)));
  return _mm512_castsi512_ps(r);
}

template <bool kRound>
TNN_TARGET_AVX512 inline __m512 maybe_round(__m512 v) {
  if constexpr (kRound) return round_bf16_ps(v);
  return v;
}

// Panels of W (14 or 32) rows of floats, `rows` in all (the last panel zero-padded), panel q
// at out + q W kcu; kRound: rounded to bf16 values (see the packing section above).
template <Index W, bool kRound>
TNN_TARGET_AVX512 void pack_f32_avx512(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0,
                                       Index kcu, float* out) {
  constexpr Index G = (W + 15) / 16;  // groups of 16 rows in a panel
  const Index panels = (rows + W - 1) / W;
  if (!along_k) {  // a unit's rows are contiguous: copied, one stored row of X at a time
    for (Index u = 0; u < kcu; ++u) {
      const float* src = x + (u0 + u) * ld + r0;
      prefetch_row(src + 4 * ld, rows);
      for (Index q = 0; q < panels; ++q)
        for (Index g = 0; g < G; ++g)
          _mm512_mask_storeu_ps(out + q * W * kcu + u * W + 16 * g, lanes16(W - 16 * g),
                                maybe_round<kRound>(_mm512_maskz_loadu_ps(lanes16(rows - q * W - 16 * g), src + q * W + 16 * g)));
    }
    return;
  }
  for (Index q = 0; q < panels; ++q) {
    float* const po = out + q * W * kcu;
    const Index prow = std::min(W, rows - q * W);
    for (Index ub = 0; ub < kcu; ub += 16) {  // 16 units of every row, transposed
      const Index nu = std::min<Index>(16, kcu - ub);
      const __mmask16 pm = lanes16(nu);
      for (Index g = 0; g < G; ++g) {
        __m512 t[16];
        for (Index i = 0; i < 16; ++i) {
          if (16 * g + i < prow) {
            const float* src = x + (r0 + q * W + 16 * g + i) * ld + u0 + ub;
            _mm_prefetch(reinterpret_cast<const char*>(src + 32), _MM_HINT_T0);
            t[i] = _mm512_maskz_loadu_ps(pm, src);
          } else {
            t[i] = _mm512_setzero_ps();
          }
        }
        transpose16(t);
        const __mmask16 wm = lanes16(W - 16 * g);
        for (Index j = 0; j < nu; ++j) _mm512_mask_storeu_ps(po + (ub + j) * W + 16 * g, wm, maybe_round<kRound>(t[j]));
      }
    }
  }
}

// Panels of W rows of bf16 pairs (see the packing section above), laid out as
// pack_f32_avx512's, rounded by vcvtne2ps2bf16.
template <Index W>
TNN_TARGET_AVX512BF16 void pack_pairs_avx512(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0,
                                             Index kcu, Index k, std::uint32_t* out) {
  constexpr Index G = (W + 15) / 16;
  const Index panels = (rows + W - 1) / W;
  if (!along_k) {  // k = 2u and 2u + 1 are two stored rows: both converted, their halves interleaved
    alignas(64) static const std::uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                              21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                              11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_load_si512(kInterleave);
    for (Index u = 0; u < kcu; ++u) {
      const Index p = 2 * (u0 + u);
      const float* lo_row = x + p * ld + r0;
      const float* hi_row = p + 1 < k ? lo_row + ld : nullptr;
      prefetch_row(lo_row + 4 * ld, rows);
      prefetch_row(lo_row + 5 * ld, rows);
      for (Index q = 0; q < panels; ++q)
        for (Index g = 0; g < G; ++g) {
          const Index off = q * W + 16 * g;
          const __mmask16 m = lanes16(rows - off);
          const __m512 lo = _mm512_maskz_loadu_ps(m, lo_row + off);
          const __m512 hi = hi_row ? _mm512_maskz_loadu_ps(m, hi_row + off) : _mm512_setzero_ps();
          const __m512i w = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
          _mm512_mask_storeu_epi32(out + q * W * kcu + u * W + 16 * g, lanes16(W - 16 * g), w);
        }
    }
    return;
  }
  for (Index q = 0; q < panels; ++q) {
    std::uint32_t* const po = out + q * W * kcu;
    const Index prow = std::min(W, rows - q * W);
    for (Index ub = 0; ub < kcu; ub += 16) {  // 32 floats = 16 units of every row, transposed as words
      const Index nu = std::min<Index>(16, kcu - ub);
      const Index p0 = 2 * (u0 + ub), nf = std::min<Index>(32, k - p0);
      const __mmask16 m0 = lanes16(nf), m1 = lanes16(nf - 16);
      for (Index g = 0; g < G; ++g) {
        __m512 t[16];
        for (Index i = 0; i < 16; ++i) {
          if (16 * g + i < prow) {
            const float* src = x + (r0 + q * W + 16 * g + i) * ld + p0;
            _mm_prefetch(reinterpret_cast<const char*>(src + 64), _MM_HINT_T0);
            t[i] = (__m512)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src));
          } else {
            t[i] = _mm512_setzero_ps();
          }
        }
        transpose16(t);
        const __mmask16 wm = lanes16(W - 16 * g);
        for (Index j = 0; j < nu; ++j)
          _mm512_mask_storeu_epi32(po + (ub + j) * W + 16 * g, wm, _mm512_castps_si512(t[j]));
      }
    }
  }
}

// ---------------------------------------------------------------- AVX-512 kernels

// 14 x 32: 28 zmm accumulators, 2 for a row of B, 1 broadcast of A. Two FMA pipes of
// latency 4 need 8 independent chains; 28 amortize the loads. E = float (vfmadd231ps;
// kRound: values rounded to bf16 while packed) or bf16 pairs (vdpbf16ps: twice the
// multiply-adds per instruction).
template <class E, bool kRound = false>
struct Avx512Kernel {
  using Elem = E;
      static constexpr Index MR = 14, NR = 32, KC = 256, MC = 14 * 24, NC = 3072;
  static void pack_a(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0, Index kcu, Index k,
                     E* out) {
    if constexpr (std::is_same_v<E, float>)
      pack_f32_avx512<MR, kRound>(x, ld, along_k, r0, rows, u0, kcu, out);
    else
      pack_pairs_avx512<MR>(x, ld, along_k, r0, rows, u0, kcu, k, out);
  }
  static void pack_b(const float* x, Index ld, bool along_k, Index r0, Index rows, Index u0, Index kcu, Index k,
                     E* out) {
    if constexpr (std::is_same_v<E, float>)
      pack_f32_avx512<NR, kRound>(x, ld, along_k, r0, rows, u0, kcu, out);
    else
      pack_pairs_avx512<NR>(x, ld, along_k, r0, rows, u0, kcu, k, out);
  }
  // B's panels come from L2, or L3 for wide products (see packed_gemm): fetched 16 units
  // (about 200 cycles) ahead.
  TNN_TARGET_AVX512 static void prefetch_b(const E* bp) {
    _mm_prefetch(reinterpret_cast<const char*>(bp + 16 * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 16 * NR + 16), _MM_HINT_T0);
  }
  // C's old values, read at the end, fetched while the tile is summed.
  TNN_TARGET_AVX512 static void prefetch_c(const float* c, Index ldc) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __builtin_prefetch(c + r * ldc, 1, 3);
      __builtin_prefetch(c + r * ldc + 16, 1, 3);
    }
  }
  TNN_TARGET_AVX512 static void store(__m512 (&acc)[MR][2], float* c, Index ldc, float alpha, float beta, int mr,
                                      int nr) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (mr == MR && nr == NR) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          float* o = c + r * ldc + 16 * h;
          const __m512 v = _mm512_mul_ps(acc[r][h], va);
          _mm512_storeu_ps(o, beta == 0.0f ? v : _mm512_fmadd_ps(_mm512_loadu_ps(o), vb, v));
        }
      return;
    }
    alignas(64) float tile[MR * NR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      _mm512_store_ps(tile + r * NR, acc[r][0]);
      _mm512_store_ps(tile + r * NR + 16, acc[r][1]);
    }
    store_tile(tile, NR, mr, nr, c, ldc, alpha, beta);
  }
  TNN_TARGET_AVX512BF16 __attribute__((noinline)) static void micro_bf16(Index kc, const std::uint32_t* ap, const std::uint32_t* bp, float* c,
                                               Index ldc, float alpha, float beta, int mr, int nr) {
    if (beta != 0.0f) prefetch_c(c, ldc);
    __m512 acc[MR][2];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (Index u = 0; u < kc; ++u) {
      prefetch_b(bp);
      const __m512bh b0 = (__m512bh)_mm512_load_si512(bp), b1 = (__m512bh)_mm512_load_si512(bp + 16);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512bh s = (__m512bh)_mm512_set1_epi32(int(ap[r]));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], s, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], s, b1);
      }
      ap += MR;
      bp += NR;
    }
    store(acc, c, ldc, alpha, beta, mr, nr);
  }
  TNN_TARGET_AVX512 __attribute__((noinline)) static void micro_f32(Index kc, const float* ap, const float* bp, float* c, Index ldc,
                                          float alpha, float beta, int mr, int nr) {
    if (beta != 0.0f) prefetch_c(c, ldc);
    __m512 acc[MR][2];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (Index u = 0; u < kc; ++u) {
      prefetch_b(bp);
      const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 s = _mm512_set1_ps(ap[r]);
        acc[r][0] = _mm512_fmadd_ps(s, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(s, b1, acc[r][1]);
      }
      ap += MR;
      bp += NR;
    }
    store(acc, c, ldc, alpha, beta, mr, nr);
  }
  static void micro(Index kc, const E* ap, const E* bp, float* c, Index ldc, float alpha, float beta, int mr,
                    int nr) {
    if constexpr (std::is_same_v<E, float>)
      micro_f32(kc, ap, bp, c, ldc, alpha, beta, mr, nr);
    else
      micro_bf16(kc, ap, bp, c, ldc, alpha, beta, mr, nr);
  }
};

#endif  // TNN_GEMM_X86

// ---------------------------------------------------------------- dispatch

template <bool kRound>
void own_gemm_f32(GemmKernel kernel, Op ta, Op tb, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                  const float* b, Index ldb, float beta, float* c, Index ldc) {
#ifdef TNN_GEMM_X86
  if (kernel == GemmKernel::Avx512 || kernel == GemmKernel::Avx512Bf16) {
    packed_gemm<Avx512Kernel<float, kRound>>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  if (kernel == GemmKernel::Avx2) {
    packed_gemm<Avx2Kernel<kRound>>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  (void)kernel;
  packed_gemm<PortableKernel<kRound>>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C = alpha op(A) op(B) + beta C on this thread through the given kernel, which the CPU must
// run (gemm_kernel_runs); beta = 0 ignores C's old contents (NaN included).
inline void own_gemm(GemmKernel kernel, Precision prec, Op ta, Op tb, Index m, Index n, Index k, float alpha,
                     const float* a, Index lda, const float* b, Index ldb, float beta, float* c, Index ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
#ifdef TNN_GEMM_X86
  if (prec == Precision::Bf16 && kernel == GemmKernel::Avx512Bf16) {
    packed_gemm<Avx512Kernel<std::uint32_t>>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  if (prec == Precision::Bf16)
    own_gemm_f32<true>(kernel, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    own_gemm_f32<false>(kernel, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace detail
}  // namespace tnn
