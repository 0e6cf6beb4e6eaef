// Real FFT backends behind one policy. A backend provides, for a transform
// length L, the forward real-to-complex transform of one row (L/2+1 bins) and the
// unscaled inverse; callers apply the 1/L scaling themselves. Backend::Plan<T>(L)
// fetches what a length needs once, for callers that transform many rows.
//   FftwBackend  (default) FFTW3, plans cached per (length, direction, precision).
//   EigenBackend Eigen's built-in kissfft: slower, but no GPL code in the program.
// DefaultFftBackend is FftwBackend, or EigenBackend when TNN_NO_FFTW is defined:
// then fftw3.h is not included and FFTW need not be linked at all.
#pragma once

#include <complex>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

#ifndef TNN_NO_FFTW
#include <fftw3.h>
#endif
#include <unsupported/Eigen/FFT>

#include "tnn/core/tensor.hpp"

namespace tnn {

// Smallest L >= n of the form 2 * 2^a 3^b 5^c: even (so the real transform has
// L/2+1 bins) and fast for both backends.
inline Index fft_fast_size(Index n) {
  if (n <= 2) return 2;
  Index best = 2;
  while (best < n) best *= 2;
  for (Index p3 = 1; p3 < best; p3 *= 3)
    for (Index p5 = p3; p5 < best; p5 *= 5) {
      Index v = 2 * p5;
      while (v < n) v *= 2;
      if (v < best) best = v;
    }
  return best;
}

// Row stride (in elements) so that every row of a workspace starts on a 64-byte boundary.
template <class E>
inline Index fft_row_stride(Index len) {
  const Index per_line = static_cast<Index>(64 / sizeof(E));
  return (len + per_line - 1) / per_line * per_line;
}

#ifndef TNN_NO_FFTW
namespace detail {

template <class T>
struct FftwApi;

template <>
struct FftwApi<double> {
  using plan = fftw_plan;
  using complex = fftw_complex;
  static plan r2c(int n, double* in, complex* out) { return fftw_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE); }
  static plan c2r(int n, complex* in, double* out) { return fftw_plan_dft_c2r_1d(n, in, out, FFTW_ESTIMATE); }
  static plan r2c_2d(int n0, int n1, double* in, complex* out) {
    return fftw_plan_dft_r2c_2d(n0, n1, in, out, FFTW_ESTIMATE);
  }
  static plan c2r_2d(int n0, int n1, complex* in, double* out) {
    return fftw_plan_dft_c2r_2d(n0, n1, in, out, FFTW_ESTIMATE);
  }
  static void exec_r2c(plan p, double* in, complex* out) { fftw_execute_dft_r2c(p, in, out); }
  static void exec_c2r(plan p, complex* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
  static void destroy(plan p) { fftw_destroy_plan(p); }
};

template <>
struct FftwApi<float> {
  using plan = fftwf_plan;
  using complex = fftwf_complex;
  static plan r2c(int n, float* in, complex* out) { return fftwf_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE); }
  static plan c2r(int n, complex* in, float* out) { return fftwf_plan_dft_c2r_1d(n, in, out, FFTW_ESTIMATE); }
  static plan r2c_2d(int n0, int n1, float* in, complex* out) {
    return fftwf_plan_dft_r2c_2d(n0, n1, in, out, FFTW_ESTIMATE);
  }
  static plan c2r_2d(int n0, int n1, complex* in, float* out) {
    return fftwf_plan_dft_c2r_2d(n0, n1, in, out, FFTW_ESTIMATE);
  }
  static void exec_r2c(plan p, float* in, complex* out) { fftwf_execute_dft_r2c(p, in, out); }
  static void exec_c2r(plan p, complex* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
  static void destroy(plan p) { fftwf_destroy_plan(p); }
};

// FFTW plans for one precision, keyed by (length, direction). Planning is not
// thread-safe in FFTW, so it is serialized by a mutex shared by both precisions;
// executing a plan on new arrays is thread-safe, which is all the kernels do.
// FFTW_ESTIMATE keeps plan choice deterministic from run to run, so results are
// bit-reproducible (training resume relies on this).
inline std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

template <class T>
class FftwPlanCache {
 public:
  using Api = FftwApi<T>;
  using Plan = typename Api::plan;

  static FftwPlanCache& instance() {
    static FftwPlanCache cache;
    return cache;
  }

  // Plans are created on 64-byte aligned scratch arrays; callers execute them
  // on 64-byte aligned rows (see fft_row_stride), as FFTW requires.
  Plan get(Index n, bool forward) {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    auto key = std::make_pair(n, forward);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second.get();
    AlignedVector<T> re(static_cast<std::size_t>(n));
    AlignedVector<std::complex<T>> co(static_cast<std::size_t>(n / 2 + 1));
    auto* c = reinterpret_cast<typename Api::complex*>(co.data());
    Plan p = forward ? Api::r2c(static_cast<int>(n), re.data(), c) : Api::c2r(static_cast<int>(n), c, re.data());
    if (!p) fail<Error>("FFTW could not plan a real transform of length ", n);
    plans_.emplace(key, std::unique_ptr<std::remove_pointer_t<Plan>, Deleter>(p));
    return p;
  }

  // 2-D real transforms of an n0 x n1 row-major grid (n0 x (n1/2+1) bins), in
  // their own map: a 2-D plan must never be found under a 1-D key.
  Plan get_2d(Index n0, Index n1, bool forward) {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    auto key = std::make_tuple(n0, n1, forward);
    auto it = plans_2d_.find(key);
    if (it != plans_2d_.end()) return it->second.get();
    AlignedVector<T> re(static_cast<std::size_t>(n0 * n1));
    AlignedVector<std::complex<T>> co(static_cast<std::size_t>(n0 * (n1 / 2 + 1)));
    auto* c = reinterpret_cast<typename Api::complex*>(co.data());
    const int a = static_cast<int>(n0), b = static_cast<int>(n1);
    Plan p = forward ? Api::r2c_2d(a, b, re.data(), c) : Api::c2r_2d(a, b, c, re.data());
    if (!p) fail<Error>("FFTW could not plan a 2-D real transform of ", n0, " x ", n1);
    plans_2d_.emplace(key, std::unique_ptr<std::remove_pointer_t<Plan>, Deleter>(p));
    return p;
  }

 private:
  struct Deleter {
    void operator()(Plan p) const { Api::destroy(p); }
  };
  std::map<std::pair<Index, bool>, std::unique_ptr<std::remove_pointer_t<Plan>, Deleter>> plans_;
  std::map<std::tuple<Index, Index, bool>, std::unique_ptr<std::remove_pointer_t<Plan>, Deleter>> plans_2d_;
};

}  // namespace detail

struct FftwBackend {
  static constexpr const char* name = "fftw";

  // Both plans of one length, looked up once: the cache lookup takes a lock,
  // which costs more than a short transform.
  template <class T>
  class Plan {
   public:
    using Api = detail::FftwApi<T>;
    Plan() = default;
    explicit Plan(Index L)
        : L_(L),
          fwd_(detail::FftwPlanCache<T>::instance().get(L, true)),
          inv_(detail::FftwPlanCache<T>::instance().get(L, false)) {}
    Index length() const { return L_; }
    // out[L/2+1] = rfft(in[L]). `in` is not modified.
    void r2c(const T* in, std::complex<T>* out) const {
      Api::exec_r2c(fwd_, const_cast<T*>(in), reinterpret_cast<typename Api::complex*>(out));
    }
    // out[L] = L * irfft(in[L/2+1]) (unscaled). `in` is destroyed.
    void c2r(std::complex<T>* in, T* out) const {
      Api::exec_c2r(inv_, reinterpret_cast<typename Api::complex*>(in), out);
    }

   private:
    Index L_ = 0;
    typename Api::plan fwd_ = nullptr, inv_ = nullptr;  // owned by the cache
  };

  // The 2-D real transform of an n0 x n1 row-major grid: out[n0, n1/2+1] =
  // rfft2(in[n0, n1]); c2r is the unscaled inverse (scale by 1/(n0 n1)) and destroys
  // its input. Arrays must be 64-byte aligned, as for Plan.
  template <class T>
  class Plan2d {
   public:
    using Api = detail::FftwApi<T>;
    Plan2d() = default;
    Plan2d(Index n0, Index n1)
        : n0_(n0),
          n1_(n1),
          fwd_(detail::FftwPlanCache<T>::instance().get_2d(n0, n1, true)),
          inv_(detail::FftwPlanCache<T>::instance().get_2d(n0, n1, false)) {}
    Index rows() const { return n0_; }
    Index cols() const { return n1_; }
    void r2c(const T* in, std::complex<T>* out) const {
      Api::exec_r2c(fwd_, const_cast<T*>(in), reinterpret_cast<typename Api::complex*>(out));
    }
    void c2r(std::complex<T>* in, T* out) const {
      Api::exec_c2r(inv_, reinterpret_cast<typename Api::complex*>(in), out);
    }

   private:
    Index n0_ = 0, n1_ = 0;
    typename Api::plan fwd_ = nullptr, inv_ = nullptr;  // owned by the cache
  };

  // One-off transforms, as Plan<T>(L).r2c / .c2r (the plans are looked up per call).
  template <class T>
  static void r2c(Index L, const T* in, std::complex<T>* out) {
    using Api = detail::FftwApi<T>;
    auto p = detail::FftwPlanCache<T>::instance().get(L, true);
    Api::exec_r2c(p, const_cast<T*>(in), reinterpret_cast<typename Api::complex*>(out));
  }
  template <class T>
  static void c2r(Index L, std::complex<T>* in, T* out) {
    using Api = detail::FftwApi<T>;
    auto p = detail::FftwPlanCache<T>::instance().get(L, false);
    Api::exec_c2r(p, reinterpret_cast<typename Api::complex*>(in), out);
  }
};

#endif  // TNN_NO_FFTW

struct EigenBackend {
  static constexpr const char* name = "eigen";

  // Eigen::FFT keeps its own per-length twiddles: the plan only remembers L.
  template <class T>
  class Plan {
   public:
    Plan() = default;
    explicit Plan(Index L) : L_(L) {}
    Index length() const { return L_; }
    void r2c(const T* in, std::complex<T>* out) const { EigenBackend::r2c(L_, in, out); }
    void c2r(std::complex<T>* in, T* out) const { EigenBackend::c2r(L_, in, out); }

   private:
    Index L_ = 0;
  };

  // The 2-D real transform as FftwBackend::Plan2d: real transforms of the n0 rows,
  // then complex transforms of the n1/2+1 bin columns (and back in reverse order).
  template <class T>
  class Plan2d {
   public:
    Plan2d() = default;
    Plan2d(Index n0, Index n1) : n0_(n0), n1_(n1) {}
    Index rows() const { return n0_; }
    Index cols() const { return n1_; }
    void r2c(const T* in, std::complex<T>* out) const {
      const Index h = n1_ / 2 + 1;
      for (Index r = 0; r < n0_; ++r) EigenBackend::r2c(n1_, in + r * n1_, out + r * h);
      if (n0_ > 1) columns(out, h, /*forward=*/true);
    }
    void c2r(std::complex<T>* in, T* out) const {
      const Index h = n1_ / 2 + 1;
      if (n0_ > 1) columns(in, h, /*forward=*/false);
      for (Index r = 0; r < n0_; ++r) EigenBackend::c2r(n1_, in + r * h, out + r * n1_);
    }

   private:
    // Unscaled complex transform of every column of a[n0, h], in place.
    void columns(std::complex<T>* a, Index h, bool forward) const {
      auto& f = engine<T>();
      f.SetFlag(Eigen::FFT<T>::Unscaled);
      auto& col = scratch<T>(0, n0_);
      auto& res = scratch<T>(1, n0_);
      for (Index k = 0; k < h; ++k) {
        for (Index r = 0; r < n0_; ++r) col[std::size_t(r)] = a[r * h + k];
        if (forward)
          f.fwd(res.data(), col.data(), n0_);
        else
          f.inv(res.data(), col.data(), n0_);
        for (Index r = 0; r < n0_; ++r) a[r * h + k] = res[std::size_t(r)];
      }
    }
    Index n0_ = 0, n1_ = 0;
  };

  template <class T>
  static void r2c(Index L, const T* in, std::complex<T>* out) {
    if (L == 1) {  // kissfft cannot plan length 1
      out[0] = in[0];
      return;
    }
    auto& f = engine<T>();
    if (L % 2 == 0) {
      f.SetFlag(Eigen::FFT<T>::HalfSpectrum);
      f.fwd(out, in, L);
      return;
    }
    // kissfft's real-input path needs an even length: take the complex transform.
    auto& a = scratch<T>(0, L);
    auto& b = scratch<T>(1, L);
    for (Index i = 0; i < L; ++i) a[std::size_t(i)] = in[i];
    f.fwd(b.data(), a.data(), L);
    std::copy(b.begin(), b.begin() + L / 2 + 1, out);
  }
  template <class T>
  static void c2r(Index L, std::complex<T>* in, T* out) {
    if (L == 1) {
      out[0] = in[0].real();
      return;
    }
    auto& f = engine<T>();
    f.SetFlag(Eigen::FFT<T>::Unscaled);
    if (L % 2 == 0) {
      f.SetFlag(Eigen::FFT<T>::HalfSpectrum);
      f.inv(out, in, L);
      return;
    }
    auto& a = scratch<T>(0, L);
    auto& b = scratch<T>(1, L);
    for (Index k = 0; k < L; ++k) a[std::size_t(k)] = k <= L / 2 ? in[k] : std::conj(in[L - k]);
    f.inv(b.data(), a.data(), L);
    for (Index i = 0; i < L; ++i) out[i] = b[std::size_t(i)].real();
  }

 private:
  // Eigen::FFT caches its twiddles inside the object and is not thread-safe:
  // one engine (and scratch) per thread and precision.
  template <class T>
  static Eigen::FFT<T>& engine() {
    thread_local Eigen::FFT<T> f;
    return f;
  }
  template <class T>
  static std::vector<std::complex<T>>& scratch(int which, Index L) {
    thread_local std::vector<std::complex<T>> buf[2];
    buf[which].resize(static_cast<std::size_t>(L));
    return buf[which];
  }
};

#ifdef TNN_NO_FFTW
using DefaultFftBackend = EigenBackend;
#else
using DefaultFftBackend = FftwBackend;
#endif

}  // namespace tnn
