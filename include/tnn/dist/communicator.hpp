// The communicator a data-parallel trainer talks to: rank, size, barrier, broadcast, in-place
// sums (blocking, and non-blocking for overlapping gradient reduction with the backward pass),
// an agreement check and an abort that ends the whole job. This header has no MPI in it:
// LocalCommunicator is the one-process implementation (every operation is the identity), and
// tnn/dist/mpi.hpp provides MpiCommunicator (target tnn::mpi). Code written against
// Communicator& runs unchanged with one process or many.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "tnn/core/error.hpp"
#include "tnn/core/tensor.hpp"

namespace tnn::dist {

// Ranks disagree about something they must share (config, data size, flags, parameters).
// Every rank detects it at the same point, so it is an ordinary exception, not an abort.
struct AgreementError : Error {
  using Error::Error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool is_root() const { return rank() == 0; }

  virtual void barrier() = 0;
  // bytes from `root` to every rank, in place.
  virtual void broadcast_bytes(void* data, std::size_t bytes, int root) = 0;

  // In-place element-wise sums over all ranks; every rank gets the same result.
  virtual void allreduce_sum(float* data, Index n) = 0;
  virtual void allreduce_sum(double* data, Index n) = 0;
  virtual void allreduce_sum(std::int64_t* data, Index n) = 0;
  // max over ranks of each element.
  virtual void allreduce_max(std::uint64_t* data, Index n) = 0;

  // Non-blocking in-place sums: start one, keep computing, call progress() now and then (MPI
  // moves non-blocking collectives forward only inside MPI calls), wait_all() before reading
  // any of the buffers. The buffer must stay alive and untouched until wait_all() returns.
  virtual void start_allreduce_sum(float* data, Index n) = 0;
  virtual void start_allreduce_sum(double* data, Index n) = 0;
  virtual void progress() = 0;
  virtual void wait_all() = 0;

  // Ends every process of the job with `code`, after printing `message` (one line; none if empty)
  // on stderr.
  [[noreturn]] virtual void abort(std::string_view message, int code) = 0;

  // True when every rank passed the same value (one allreduce of two numbers).
  bool all_equal(std::uint64_t value) {
    std::uint64_t v[2] = {value, ~value};
    allreduce_max(v, 2);
    return v[0] == value && ~v[1] == value;  // max == min == value
  }
  // Throws AgreementError "<what>: ranks disagree ..." unless every rank passed the same
  // string (compared by a 64-bit hash). `what` names the thing, e.g. "run settings".
  void require_agreement(std::string_view text, std::string_view what) {
    if (!all_equal(hash_bytes(text.data(), text.size())))
      fail<AgreementError>(what, ": expected every rank to have the same, got a difference on some of the ",
                           size(), " ranks (same binary, files and flags on every machine?)");
  }

  // FNV-1a 64 over bytes: a cheap checksum, not a cryptographic one.
  static std::uint64_t hash_bytes(const void* data, std::size_t bytes, std::uint64_t h = 0xcbf29ce484222325ull) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
  }
};

// One process: rank 0 of 1. Sums and broadcasts leave the data as they are.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void barrier() override {}
  void broadcast_bytes(void*, std::size_t, int root) override { check_root(root); }
  void allreduce_sum(float*, Index) override {}
  void allreduce_sum(double*, Index) override {}
  void allreduce_sum(std::int64_t*, Index) override {}
  void allreduce_max(std::uint64_t*, Index) override {}
  void start_allreduce_sum(float*, Index) override {}
  void start_allreduce_sum(double*, Index) override {}
  void progress() override {}
  void wait_all() override {}
  [[noreturn]] void abort(std::string_view message, int code) override {
    if (!message.empty()) std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data());
    std::fflush(stderr);
    std::exit(code);
  }

 private:
  static void check_root(int root) {
    if (root != 0) fail<ValueError>("broadcast root: expected a rank in [0, 1), got ", root);
  }
};

// A checksum of values: every parameter's name, shape and bytes, in visiting order.
template <class T, class NamedParams>
std::uint64_t parameter_checksum(const NamedParams& params) {
  std::uint64_t h = Communicator::hash_bytes(nullptr, 0);
  for (const auto& [name, p] : params) {
    h = Communicator::hash_bytes(name.data(), name.size(), h);
    const Shape& s = p->value.shape();
    h = Communicator::hash_bytes(s.data(), s.size() * sizeof(s[0]), h);
    h = Communicator::hash_bytes(p->value.data(), static_cast<std::size_t>(p->value.size()) * sizeof(T), h);
  }
  return h;
}

// Rank `root`'s parameter values to every rank (start of training; resume on a new layout).
template <class T, class NamedParams>
void broadcast_parameters(Communicator& comm, const NamedParams& params, int root = 0) {
  for (const auto& [name, p] : params)
    comm.broadcast_bytes(p->value.data(), static_cast<std::size_t>(p->value.size()) * sizeof(T), root);
}

// Throws AgreementError when the ranks' parameters differ (a divergence: they must stay
// bit-identical, since every rank applies the same update to the same reduced gradient).
template <class T, class NamedParams>
void check_parameters_agree(Communicator& comm, const NamedParams& params, std::int64_t step) {
  if (!comm.all_equal(parameter_checksum<T>(params)))
    fail<AgreementError>("parameter checksum at step ", step, ": expected the same on all ", comm.size(),
                         " ranks, got a difference (the ranks have diverged)");
}

}  // namespace tnn::dist
