// tnn::Rng: the 64 x 64 -> 128-bit multiply behind below() is portable C++ (no
// unsigned __int128, which -Wpedantic rejects); it must give the numbers the
// __int128 version gave, since batch sampling, masking and initialization replay them.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tnn/core/rng.hpp"

namespace {

using u64 = std::uint64_t;

// The slow obvious twin: schoolbook multiplication one bit of b at a time, with the
// 128-bit accumulator held as two words.
void mul_by_bits(u64 a, u64 b, u64& high, u64& low) {
  high = low = 0;
  u64 sh_hi = 0, sh_lo = a;  // a << i as 128 bits
  for (int i = 0; i < 64; ++i) {
    if ((b >> i) & 1u) {
      const u64 before = low;
      low += sh_lo;
      high += sh_hi + (low < before ? 1u : 0u);
    }
    sh_hi = (sh_hi << 1) | (sh_lo >> 63);
    sh_lo <<= 1;
  }
}

TEST(Rng, Multiply128MatchesSchoolbookProduct) {
  const u64 edge[] = {0ull, 1ull, 2ull, 0xFFFFFFFFull, 0x100000000ull, 0x8000000000000000ull,
                      0x8000000000000001ull, 0xFFFFFFFFFFFFFFFEull, 0xFFFFFFFFFFFFFFFFull};
  for (u64 a : edge)
    for (u64 b : edge) {
      u64 hi = 0, ref_hi = 0, ref_lo = 0;
      const u64 lo = tnn::Rng::mul_64x64_128(a, b, hi);
      mul_by_bits(a, b, ref_hi, ref_lo);
      EXPECT_EQ(lo, ref_lo) << a << " * " << b;
      EXPECT_EQ(hi, ref_hi) << a << " * " << b;
    }
  // all-ones squared: (2^64 - 1)^2 = 2^128 - 2^65 + 1
  u64 hi = 0;
  EXPECT_EQ(tnn::Rng::mul_64x64_128(~0ull, ~0ull, hi), 1ull);
  EXPECT_EQ(hi, ~0ull - 1);
  tnn::Rng rng(3);
  for (int i = 0; i < 20000; ++i) {
    const u64 a = rng.next_u64(), b = rng.next_u64() >> (i % 64);
    u64 ref_hi = 0, ref_lo = 0;
    const u64 lo = tnn::Rng::mul_64x64_128(a, b, hi);
    mul_by_bits(a, b, ref_hi, ref_lo);
    ASSERT_EQ(lo, ref_lo) << a << " * " << b;
    ASSERT_EQ(hi, ref_hi) << a << " * " << b;
  }
}

#if defined(__SIZEOF_INT128__)
// Where the compiler has it, the old implementation itself is the reference.
TEST(Rng, Multiply128MatchesInt128) {
  __extension__ typedef unsigned __int128 u128;
  tnn::Rng rng(11);
  for (int i = 0; i < 100000; ++i) {
    const u64 a = rng.next_u64(), b = rng.next_u64() >> (i % 64);
    const u128 m = static_cast<u128>(a) * b;
    u64 hi = 0;
    const u64 lo = tnn::Rng::mul_64x64_128(a, b, hi);
    ASSERT_EQ(lo, static_cast<u64>(m));
    ASSERT_EQ(hi, static_cast<u64>(m >> 64));
  }
}
#endif

// below() from seed 12345, twice over these bounds, as printed by the __int128
// implementation (git 5311b50) before the change. The bounds near 2^63 reject about
// half of the draws, so the rejection loop is replayed too.
TEST(Rng, BelowGivesTheNumbersOfTheInt128Version) {
  const u64 bounds[] = {1ull, 2ull, 3ull, 7ull, 10ull, 256ull, 257ull, 1000003ull, (1ull << 32) + 15,
                        0x8000000000000001ull, 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFEull};
  const std::vector<u64> expected = {
      0ull, 0ull, 2ull, 0ull, 5ull, 2ull, 41ull, 295805ull, 1657710247ull, 7211239954003415529ull,
      9909524114151206875ull, 15486790527933621593ull, 0ull, 0ull, 2ull, 3ull, 8ull, 138ull, 111ull, 91937ull,
      1422528405ull, 1210380413045561114ull, 5481630251846105061ull, 380532263873560359ull};
  tnn::Rng rng(12345);
  std::vector<u64> got;
  for (int rep = 0; rep < 2; ++rep)
    for (u64 n : bounds) got.push_back(rng.below(n));
  EXPECT_EQ(got, expected);
}

TEST(Rng, BelowStaysInRangeAndCoversIt) {
  tnn::Rng rng(5);
  std::vector<int> count(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const u64 v = rng.below(7);
    ASSERT_LT(v, 7u);
    ++count[static_cast<std::size_t>(v)];
  }
  for (int c : count) EXPECT_GT(c, 800);  // 1000 expected each; 800 is > 6 sigma below
}

}  // namespace
