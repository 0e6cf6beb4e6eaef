// MpiCommunicator: tnn::dist::Communicator over MPI (Open MPI on Debian: libopenmpi-dev,
// openmpi-bin). Needs the CMake target tnn::mpi (MPI::MPI_CXX); tnn::tnn itself never includes
// this header. One object per process, made once at start: it initializes MPI with
// MPI_THREAD_FUNNELED (only the thread that made it calls MPI; OpenMP threads inside a rank only
// compute) and finalizes it when destroyed. Errors inside MPI keep MPI's default handler
// (MPI_ERRORS_ARE_FATAL): a dead peer ends the job instead of hanging it.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "tnn/dist/communicator.hpp"

namespace tnn::dist {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      owns_mpi_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    requests_.reserve(64);
  }
  ~MpiCommunicator() override {
    if (!owns_mpi_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  // True when this process was started by mpirun/mpiexec (or srun), so that a plain run of a
  // program never initializes MPI: Open MPI's singleton start is slow and may print warnings.
  static bool launched_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
      if (std::getenv(v) != nullptr) return true;
    return false;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  void broadcast_bytes(void* data, std::size_t bytes, int root) override {
    if (root < 0 || root >= size_) fail<ValueError>("broadcast root: expected a rank in [0, ", size_, "), got ", root);
    auto* p = static_cast<char*>(data);
    while (bytes > 0) {  // MPI counts are int
      const std::size_t chunk = bytes < kMaxChunk ? bytes : kMaxChunk;
      MPI_Bcast(p, static_cast<int>(chunk), MPI_BYTE, root, MPI_COMM_WORLD);
      p += chunk;
      bytes -= chunk;
    }
  }
  void allreduce_sum(float* data, Index n) override { reduce(data, n, MPI_FLOAT, MPI_SUM); }
  void allreduce_sum(double* data, Index n) override { reduce(data, n, MPI_DOUBLE, MPI_SUM); }
  void allreduce_sum(std::int64_t* data, Index n) override { reduce(data, n, MPI_INT64_T, MPI_SUM); }
  void allreduce_max(std::uint64_t* data, Index n) override { reduce(data, n, MPI_UINT64_T, MPI_MAX); }

  void start_allreduce_sum(float* data, Index n) override { start(data, n, MPI_FLOAT); }
  void start_allreduce_sum(double* data, Index n) override { start(data, n, MPI_DOUBLE); }
  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE);
    if (done) requests_.clear();
  }
  void wait_all() override {
    if (requests_.empty()) return;
    MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    requests_.clear();  // keeps its capacity: no allocation in later steps
  }

  [[noreturn]] void abort(std::string_view message, int code) override {
    if (!message.empty()) std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

 private:
  static constexpr std::size_t kMaxChunk = std::size_t(1) << 30;

  void reduce(void* data, Index n, MPI_Datatype type, MPI_Op op) {
    check_count(n);
    if (n > 0) MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), type, op, MPI_COMM_WORLD);
  }
  void start(void* data, Index n, MPI_Datatype type) {
    check_count(n);
    if (n == 0) return;
    requests_.emplace_back();
    MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), type, MPI_SUM, MPI_COMM_WORLD, &requests_.back());
  }
  static void check_count(Index n) {
    if (n < 0 || n > Index(0x7fffffff))
      fail<ValueError>("allreduce count: expected 0 .. 2^31-1 elements, got ", n);
  }

  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
  std::vector<MPI_Request> requests_;
};

}  // namespace tnn::dist
