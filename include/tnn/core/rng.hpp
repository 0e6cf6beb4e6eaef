// Deterministic random numbers: xoshiro256** seeded by splitmix64. The stream is
// the same on every platform and compiler (std:: distributions are not), which
// initialization, batch sampling, masking and sampling rely on for reproducibility.
#pragma once

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "tnn/core/error.hpp"

namespace tnn {

// What is wrong with a seed given as text (--seed), or "" when it is a decimal integer 0 to
// 2^64 - 1, digits only. A sign, a fraction or a value beyond 64 bits is refused, never wrapped
// around or clamped to the nearest seed (either would silently give another run's numbers).
inline std::string seed_problem(std::string_view text) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || text[0] < '0' || text[0] > '9' || ec != std::errc() || ptr != end)
    return detail::concat("expected an integer 0 to 18446744073709551615, got ", quote(text, 60),
                          ec == std::errc::result_out_of_range ? " (beyond 64 bits)" : "");
  return "";
}

// The seed `text` names (seed_problem), or a ValueError naming `what`.
inline std::uint64_t parse_seed(std::string_view text, std::string_view what = "--seed") {
  const std::string problem = seed_problem(text);
  if (!problem.empty()) fail<ValueError>(what, ": ", problem);
  std::uint64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

class Rng {
 public:
  using State = std::array<std::uint64_t, 4>;

  explicit Rng(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    std::uint64_t z = seed;
    for (auto& w : s_) w = splitmix64(z);
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method).
  std::uint64_t below(std::uint64_t n) {
    std::uint64_t high = 0;
    std::uint64_t low = mul_64x64_128(next_u64(), n, high);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) low = mul_64x64_128(next_u64(), n, high);
    }
    return high;
  }

  // The full 128-bit product a * b: returns the low 64 bits and sets `high` to the
  // high 64. Four 32 x 32 -> 64 partial products, so standard C++ (no __int128).
  static std::uint64_t mul_64x64_128(std::uint64_t a, std::uint64_t b, std::uint64_t& high) {
    const std::uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
    const std::uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
    const std::uint64_t ll = a_lo * b_lo, lh = a_lo * b_hi, hl = a_hi * b_lo, hh = a_hi * b_hi;
    // middle column: the high half of ll plus the low halves of lh and hl (< 3 * 2^32)
    const std::uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);
    high = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return (mid << 32) | (ll & 0xFFFFFFFFu);
  }

  // Standard normal (Box-Muller; the second value is discarded to keep the state simple).
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  const State& state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& z) {
    std::uint64_t r = (z += 0x9E3779B97F4A7C15ull);
    r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
    r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
    return r ^ (r >> 31);
  }
  State s_{};
};

namespace detail {
// splitmix64's finalizer: a bijective mix of 64 bits, for deriving independent stream seeds.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace detail

}  // namespace tnn
