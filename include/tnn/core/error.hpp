// Error types: everything a caller can get wrong is reported by throwing one of
// these, with a message naming the argument, what was expected and what came.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tnn {

// Root of the hierarchy; catch this to handle every library error.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A tensor or argument has the wrong shape or size.
struct ShapeError : Error {
  using Error::Error;
};
// A model/training configuration is invalid (unknown key, wrong type, bad value).
struct ConfigError : Error {
  using Error::Error;
};
// A file (checkpoint, batch, data) is malformed or does not match what is expected.
struct FormatError : Error {
  using Error::Error;
};
// A value is out of range: token id outside the vocabulary, NaN in weights, ...
struct ValueError : Error {
  using Error::Error;
};
// The operating system refused a file operation.
struct IoError : Error {
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Throws E with the pieces concatenated: tnn::fail<ShapeError>("x: expected ", n, " rows, got ", m).
template <class E = Error, class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw E(detail::concat(args...));
}

}  // namespace tnn
