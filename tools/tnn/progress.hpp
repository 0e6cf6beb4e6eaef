// How `tnn train` shows a run on stderr: a live bar on a terminal, a line every --log-every
// steps otherwise, and full lines (validation, warnings) that never break the bar. It renders
// the library trainer's events (tnn::TrainEvent); the library itself never prints.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include <tnn/core/tensor.hpp>

#include "common.hpp"

namespace tnncli {

class Progress {
 public:
  Progress(tnn::Index total, tnn::Index first, bool tty, tnn::Index every)
      : total_(total), first_(first), tty_(tty), every_(every), start_(clock::now()) {}
  // After step `step` (0-based) of total.
  void update(tnn::Index step, double loss, double tokens_per_s, double lr) {
    const double elapsed = seconds();
    const double eta = step + 1 > first_ ? elapsed / double(step + 1 - first_) * double(total_ - step - 1) : 0.0;
    if (tty_) {
      const int width = 24;
      const int filled = int(double(width) * double(step + 1) / double(total_));
      std::string bar(std::size_t(filled), '#');
      bar.resize(std::size_t(width), '.');
      std::fprintf(stderr, "\r[%s] step %lld/%lld  loss %.4f  %.0f tok/s  lr %.2e  ETA %s   ", bar.c_str(),
                   (long long)(step + 1), (long long)total_, loss, tokens_per_s, lr, format_duration(eta).c_str());
      std::fflush(stderr);
      dirty_ = true;
    } else if ((step + 1) % every_ == 0 || step + 1 == total_) {
      std::fprintf(stderr, "step %lld/%lld loss %.4f tok/s %.0f lr %.3e elapsed %s eta %s\n", (long long)(step + 1),
                   (long long)total_, loss, tokens_per_s, lr, format_duration(elapsed).c_str(),
                   format_duration(eta).c_str());
    }
  }
  // A full line (validation, warnings) without breaking the bar.
  void line(const std::string& s) {
    if (dirty_) std::fputc('\n', stderr);
    dirty_ = false;
    std::fprintf(stderr, "%s\n", s.c_str());
  }
  void finish() {
    if (dirty_) std::fputc('\n', stderr);
    dirty_ = false;
  }
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  tnn::Index total_, first_;
  bool tty_;
  tnn::Index every_;
  clock::time_point start_;
  bool dirty_ = false;
};

}  // namespace tnncli
