// What the libFuzzer targets share: check(), which aborts with a message naming the target (a
// finding), and errors_one_line(), which runs the body of one input and takes a tnn::Error as
// the expected answer to bad input, as long as its message is one line. Each target defines
// tnn_fuzz::kTarget, its name.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tnn/core/error.hpp"

namespace tnn_fuzz {

extern const char kTarget[];

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "%s: %s\n", kTarget, what);
    std::abort();
  }
}

template <class F>
void errors_one_line(F&& body) {
  try {
    body();
  } catch (const tnn::Error& e) {
    check(std::string(e.what()).find('\n') == std::string::npos, "error message not one line");
  }
}

}  // namespace tnn_fuzz
