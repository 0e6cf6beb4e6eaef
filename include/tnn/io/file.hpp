// File I/O for everything tnn reads or writes (checkpoints, batches, data, configs): reads that
// stop at the bytes needed and refuse what is not a file or a pipe, and atomic writes
// (temporary in the same directory, fsync, rename), with output paths validated before any
// work starts. Streams (lines, checked output, locks) are in io/stream.hpp.
// Every error is an IoError (the OS refused) or a FormatError (the content is short) naming the
// path. POSIX only.
#pragma once

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"

namespace tnn {
namespace detail {

// RAII file descriptor.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd >= 0) ::close(fd);
      fd = std::exchange(o.fd, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

inline std::string errno_str(int e) { return std::strerror(e); }

inline void read_exact(int fd, std::uint8_t* out, std::size_t n, const std::string& path) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail<IoError>("reading ", quote_path(path), ": ", errno_str(errno));
    }
    if (r == 0)
      fail<FormatError>("safetensors ", quote_path(path), ": expected ", n, " bytes, the file ended after ", got,
                        " (did it shrink while being read?)");
    got += static_cast<std::size_t>(r);
  }
}

inline int open_regular_file(const std::string& path, std::uint64_t* size) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer, forever; it changes
  // nothing for the regular files that pass the check below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail<IoError>("opening ", quote_path(path), " for reading: ", errno_str(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail<IoError>("stat ", quote_path(path), ": ", errno_str(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail<IoError>("reading ", quote_path(path), ": expected a regular file, got something else (directory, pipe, device)");
  }
  *size = static_cast<std::uint64_t>(st.st_size);
  return fd;
}

// An input as tnn reads it: a regular file (size known) or a pipe (a FIFO, `<(zcat x)`).
struct InputFile {
  Fd f{-1};
  bool pipe = false;
  std::uint64_t size = 0;  // regular files
};

// Opens `path` for reading. Regular files and pipes are taken; directories, devices (/dev/zero
// never ends) and sockets are IoErrors naming `where`. The open never blocks (O_NONBLOCK: a FIFO
// without a writer would otherwise wait in open()); read_input() then waits for a pipe's data.
inline InputFile open_input(const std::string& path, const std::string& where) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (raw < 0) fail<IoError>(where, ": cannot open: ", errno_str(errno));
  InputFile in;
  in.f = Fd(raw);
  struct stat st {};
  if (::fstat(in.f.fd, &st) != 0) fail<IoError>(where, ": stat: ", errno_str(errno));
  if (S_ISDIR(st.st_mode)) fail<IoError>(where, ": expected a regular file or a pipe, got a directory");
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    fail<IoError>(where, ": expected a regular file or a pipe, got a device or socket (it may never end)");
  in.pipe = S_ISFIFO(st.st_mode);
  in.size = in.pipe ? 0 : static_cast<std::uint64_t>(st.st_size);
  return in;
}

// Up to n bytes of `in` into out; 0 at the end. On a pipe it first waits (poll) until data or
// the end is there: a FIFO opened before its writer arrives reports neither until a writer has
// come (Linux and the BSDs keep that state per open file), so a late writer is waited for and
// its data read, never taken for an empty file; after the writers leave, the end is real.
inline std::size_t read_input(InputFile& in, std::uint8_t* out, std::size_t n, const std::string& where,
                              std::uint64_t done) {
  for (;;) {
    if (in.pipe) {
      pollfd p{in.f.fd, POLLIN, 0};
      if (::poll(&p, 1, -1) < 0) {
        if (errno == EINTR) continue;
        fail<IoError>(where, ": waiting for data after ", done, " bytes: ", errno_str(errno));
      }
    }
    const ssize_t r = ::read(in.f.fd, out, n);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    fail<IoError>(where, ": read error after ", done, " bytes: ", errno_str(errno));
  }
}

[[noreturn]] inline void refuse_special_output(const std::string& path, const std::string& where) {
  (void)path;
  fail<IoError>(where, ": expected a regular file path (outputs are written to a temporary and renamed over it), "
                       "got a device, pipe or socket");
}

inline void write_all(int fd, const std::uint8_t* p, std::size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail<IoError>("writing ", quote_path(path), ": ", errno_str(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

inline std::atomic<std::uint64_t>& st_tmp_counter() {
  static std::atomic<std::uint64_t> c{0};
  return c;
}

// `path` + `suffix`, with the file name cut so the result stays within NAME_MAX: a legal
// 250-byte target name must not fail because its temporary is longer.
inline std::string temporary_name(const std::string& path, const std::string& suffix) {
  const std::size_t slash = path.find_last_of('/');
  const std::size_t base = slash == std::string::npos ? 0 : slash + 1;
  const std::size_t name_len = path.size() - base;
  const std::size_t keep = suffix.size() >= NAME_MAX ? 0 : NAME_MAX - suffix.size();
  if (name_len <= keep) return path + suffix;
  return path.substr(0, base + keep) + suffix;
}

// Writes the bytes produce(sink) emits to a temporary next to `path`, fsyncs it, renames it over
// `path` and fsyncs the directory. Whatever goes wrong (an exception from produce included), the
// temporary is removed and `path` keeps its previous content.
template <class Produce>
void write_file_atomically(const std::string& path, Produce&& produce) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))  // renaming over /dev/full would replace the device
    refuse_special_output(path, quote_path(path));
  // Unique per process and call; O_EXCL never follows or reuses a file left by someone else.
  std::string tmp;
  Fd f(-1);
  for (int attempt = 0; attempt < 100 && f.fd < 0; ++attempt) {
    tmp = temporary_name(path, ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++st_tmp_counter()));
    f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f.fd < 0 && errno != EEXIST) break;
  }
  if (f.fd < 0) fail<IoError>("creating ", quote_path(tmp), " (temporary for ", quote_path(path), "): ", errno_str(errno));
  struct Remover {
    const std::string& p;
    bool armed = true;
    ~Remover() {
      if (armed) ::unlink(p.c_str());
    }
  } remover{tmp};
  std::vector<std::uint8_t> buf;
  buf.reserve(1 << 20);
  auto flush = [&] {
    write_all(f.fd, buf.data(), buf.size(), tmp);
    buf.clear();
  };
  auto sink = [&](const std::uint8_t* p, std::size_t n) {
    if (buf.size() + n > buf.capacity()) flush();
    if (n >= buf.capacity()) write_all(f.fd, p, n, tmp);
    else buf.insert(buf.end(), p, p + n);
  };
  produce(sink);
  flush();
  if (::fsync(f.fd) != 0) fail<IoError>("fsync ", quote_path(tmp), ": ", errno_str(errno));
  const int fd = f.fd;
  f.fd = -1;
  if (::close(fd) != 0) fail<IoError>("closing ", quote_path(tmp), ": ", errno_str(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    fail<IoError>("renaming ", quote_path(tmp), " to ", quote_path(path), ": ", errno_str(errno));
  remover.armed = false;
  // Make the rename itself durable. Some file systems cannot fsync a directory (EINVAL); the
  // data is in place either way, so only real I/O errors are reported.
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd >= 0 && ::fsync(d.fd) != 0 && errno != EINVAL && errno != EROFS)
    fail<IoError>("fsync directory ", quote_path(dir), " after writing ", quote_path(path), ": ", errno_str(errno));
}

}  // namespace detail

// `bytes` as the whole content of `path`, written atomically (detail::write_file_atomically:
// a temporary beside it, fsync, rename; on any failure the temporary is removed and `path`
// keeps its previous content). For every small output: plots, logs, generated data.
inline void write_file_atomic(const std::string& path, std::string_view bytes) {
  detail::write_file_atomically(path, [&](auto& sink) {
    sink(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  });
}

// The bytes produce(sink) emits (sink(const std::uint8_t*, std::size_t), any number of calls)
// as the whole content of `path`, written atomically like write_file_atomic: for outputs made
// as they are generated (tnn-listops's splits), never held whole in memory.
template <class Produce>
void write_file_atomic_streamed(const std::string& path, Produce&& produce) {
  detail::write_file_atomically(path, std::forward<Produce>(produce));
}

// Reads `path` through to its end, refusing what cannot be read boundedly: regular files and
// pipes (--data <(zcat corpus.gz)) are read; directories, devices (/dev/zero never ends) and
// sockets are IoErrors. More than max_bytes is a FormatError when `prefix_only` is false,
// and otherwise only the first max_bytes are read (eval --max-bytes). Memory: the bytes read.
// `what` names the file in messages ("data file", "--config file").
inline std::vector<std::uint8_t> read_file_bounded(const std::string& path, std::uint64_t max_bytes, const char* what,
                                                   bool prefix_only = false) {
  const std::string where = std::string(what) + " " + quote_path(path);
  detail::InputFile in = detail::open_input(path, where);
  if (!in.pipe && !prefix_only && in.size > max_bytes)
    fail<FormatError>(where, ": expected at most ", max_bytes, " bytes, got ", in.size);
  std::vector<std::uint8_t> bytes;
  if (!in.pipe) bytes.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(in.size, max_bytes)));
  std::uint8_t chunk[1 << 16];
  for (;;) {
    const std::uint64_t room = max_bytes - bytes.size();
    // One byte beyond the limit tells "exactly max_bytes" from "more" without reading more.
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof chunk, prefix_only ? room : room + 1));
    if (want == 0) break;
    const std::size_t r = detail::read_input(in, chunk, want, where, bytes.size());
    if (r == 0) break;
    if (!prefix_only && r > room) fail<FormatError>(where, ": expected at most ", max_bytes, " bytes, got more");
    bytes.insert(bytes.end(), chunk, chunk + r);
  }
  return bytes;
}

// Checks, before any work, that `path` can be written atomically: not empty, not a directory
// nor a device, pipe or socket (an output is a file renamed into place: /dev/full or a FIFO
// would be replaced, not written), its directory exists and is writable, and the file name
// leaves room within NAME_MAX.
// `what` names the flag or role in messages ("--out"). IoError otherwise; creates nothing.
inline void check_output_path(const std::string& path, const char* what) {
  if (path.empty()) fail<IoError>(what, ": expected a file path, got an empty string");
  const std::string where = std::string(what) + " " + quote_path(path);
  if (path.back() == '/') fail<IoError>(where, ": expected a file path, got a directory (it ends in '/')");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    fail<IoError>(where, ": expected a file path, got an existing directory");
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) detail::refuse_special_output(path, where);
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::size_t name_len = path.size() - (slash == std::string::npos ? 0 : slash + 1);
  if (name_len > NAME_MAX)
    fail<IoError>(where, ": expected a file name of at most ", NAME_MAX, " bytes, got ", name_len);
  if (::stat(dir.c_str(), &st) != 0)
    fail<IoError>(where, ": its directory ", quote(dir), " cannot be used: ", detail::errno_str(errno));
  if (!S_ISDIR(st.st_mode)) fail<IoError>(where, ": its parent ", quote(dir), " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    fail<IoError>(where, ": its directory ", quote(dir), " is not writable: ", detail::errno_str(errno));
}

// IoError unless `out` names a file other than each of `inputs` ({flag, path}; empty paths
// are skipped): an output renamed over an input would replace what the run reads (eval --plot
// naming the checkpoint, train --out naming --data). Compared by device and inode, so another
// spelling, a hard link or a symbolic link to an input is caught; an output that does not
// exist yet names no input.
inline void check_output_not_input(const std::string& out, const char* what,
                                   const std::vector<std::pair<std::string, std::string>>& inputs) {
  struct stat o {};
  if (out.empty() || ::stat(out.c_str(), &o) != 0) return;
  for (const auto& [flag, in] : inputs) {
    struct stat i {};
    if (in.empty() || ::stat(in.c_str(), &i) != 0) continue;
    if (i.st_dev == o.st_dev && i.st_ino == o.st_ino)
      fail<IoError>(what, " ", quote_path(out), ": names the input ", flag, " ", quote_path(in),
                    "; expected another path (writing it would replace the input)");
  }
}

}  // namespace tnn
