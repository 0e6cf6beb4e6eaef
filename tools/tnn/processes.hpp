// The program under mpirun: one communicator per process (tnn::dist::MpiCommunicator when built
// with TNN_USE_MPI and started by mpirun, otherwise the one-process LocalCommunicator), made on
// first use and finalized at exit; ranks other than 0 print nothing but their own errors.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include <tnn/dist/communicator.hpp>
#ifdef TNN_USE_MPI
#include <tnn/dist/mpi.hpp>
#endif

namespace tnncli {

// This process's rank as the launcher says (before MPI is initialized), or 0.
inline int launcher_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 0;
}

namespace detail {
inline std::unique_ptr<tnn::dist::Communicator>& communicator_slot() {
  static std::unique_ptr<tnn::dist::Communicator> c;
  return c;
}
inline int& saved_stderr() {
  static int fd = -1;
  return fd;
}
}  // namespace detail

inline tnn::dist::Communicator& communicator() {
  auto& c = detail::communicator_slot();
  if (!c) {
#ifdef TNN_USE_MPI
    if (tnn::dist::MpiCommunicator::launched_by_mpirun()) c = std::make_unique<tnn::dist::MpiCommunicator>();
#endif
    if (!c) c = std::make_unique<tnn::dist::LocalCommunicator>();
  }
  return *c;
}
inline bool several_processes() {
  const auto& c = detail::communicator_slot();
  return c && c->size() > 1;
}

// Ranks other than 0: stdout and stderr go to /dev/null (one report for the job), errors to the
// real stderr through report_error.
inline void quiet_unless_rank0() {
  if (launcher_rank() == 0) return;
  std::fflush(stdout);
  std::fflush(stderr);
  detail::saved_stderr() = ::dup(STDERR_FILENO);
  if (!std::freopen("/dev/null", "w", stdout) || !std::freopen("/dev/null", "w", stderr)) return;
}

// An error this process cannot continue from. One process: print it and return `code`. Under
// mpirun, rank 0 prints it and ends the job (MPI up: an abort; before that: its exit, on which
// mpirun ends the other ranks). Another rank first waits a moment for rank 0 to end the job
// (most errors happen on every rank at the same point: one line for the job), then prints it
// with its rank on its own stderr and ends the job itself -- also before MPI is up, so an error
// only that rank meets (a bad flag in one part of `mpirun -np 1 tnn ... : -np 1 tnn ...`, a file
// missing on one machine) is never lost.
inline int report_error(const std::string& line, int code) {
  const int rank = launcher_rank();
  if (rank == 0) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    if (several_processes()) communicator().abort("", code);
    return code;
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::string msg = line + " (rank " + std::to_string(rank) + ")\n";
  const int fd = detail::saved_stderr() >= 0 ? detail::saved_stderr() : STDERR_FILENO;
  if (::write(fd, msg.data(), msg.size()) < 0) { /* nowhere left to report */ }
  if (several_processes()) communicator().abort("", code);
  return code;  // before MPI: this process's exit ends the job
}

}  // namespace tnncli
