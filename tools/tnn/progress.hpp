// How `tnn train` shows a run on stderr: one status line rewritten in place on a terminal (cut to
// its width), a line every --log-every steps otherwise, both with the same fields; and full
// lines (validation, warnings) that never break the status line. It renders the library
// trainer's events (tnn::TrainEvent); the library itself never prints.
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

  // "step 120/600  loss 2.3456  12345 tok/s  lr 1.20e-03  elapsed 0m12s  ETA 1m02s"
  std::string fields(tnn::Index step, double loss, double tokens_per_s, double lr) const {
    const double elapsed = seconds();
    const double eta = step + 1 > first_ ? elapsed / double(step + 1 - first_) * double(total_ - step - 1) : 0.0;
    char buf[256];
    std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  %.0f tok/s  lr %.2e  elapsed %s  ETA %s",
                  (long long)(step + 1), (long long)total_, loss, tokens_per_s, lr, format_duration(elapsed).c_str(),
                  format_duration(eta).c_str());
    return buf;
  }

  // After step `step` (0-based) of total.
  void update(tnn::Index step, double loss, double tokens_per_s, double lr) {
    const std::string f = fields(step, loss, tokens_per_s, lr);
    if (tty_) {
      // A bar in front when the terminal is wide enough, and never more than its width (a wrapped
      // line could not be rewritten in place).
      const std::size_t width = static_cast<std::size_t>(terminal_columns()) - 1;
      std::string line = f;
      if (f.size() + 28 <= width) {
        const int cells = 24;
        const int filled = int(double(cells) * double(step + 1) / double(total_));
        std::string bar(std::size_t(filled), '#');
        bar.resize(std::size_t(cells), '.');
        line = "[" + bar + "] " + f;
      }
      if (line.size() > width) line.resize(width);
      std::fprintf(stderr, "\r%s\033[K", line.c_str());
      std::fflush(stderr);
      dirty_ = true;
    } else if ((step + 1) % every_ == 0 || step + 1 == total_) {
      std::fprintf(stderr, "%s\n", f.c_str());
    }
  }
  // A full line (validation, warnings) without breaking the status line.
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
