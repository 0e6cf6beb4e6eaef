// Streams between the program and the world, held to file.hpp's rules:
//   LineReader    lines of a file, a pipe, standard input or memory, each cut to what the caller
//                 keeps while the rest is read and dropped (a 16 GiB line costs no memory);
//   OutputStream  an output whose every write, flush and close is checked, errors naming it
//                 (standard output, a log): a closed pipe or a full disk stops the work at once;
//   OutputLock    an exclusive lock a run holds on an output path for its whole life.
// POSIX only.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tnn/core/error.hpp"
#include "tnn/io/file.hpp"

namespace tnn {

// Lines of an input, one at a time, in memory bounded by the caller's cut plus one 64 KiB
// buffer. A line is the bytes before '\n' (a last line without one counts), a final '\r' dropped.
class LineReader {
 public:
  // `path` as detail::open_input takes it: a regular file or a pipe (a FIFO's late writer is
  // waited for); directories, devices and sockets are IoErrors naming `where`.
  static LineReader open(const std::string& path, const std::string& where) {
    LineReader r(where);
    r.in_ = detail::open_input(path, where);
    return r;
  }
  // Standard input, not closed at the end. A file, a pipe, a terminal or /dev/null; a directory
  // (`< somedir`) or another device (/dev/zero never ends) is an IoError.
  static LineReader standard_input(const std::string& where = "standard input") {
    LineReader r(where);
    struct stat st {};
    if (::fstat(STDIN_FILENO, &st) != 0) fail<IoError>(where, ": stat: ", detail::errno_str(errno));
    if (S_ISDIR(st.st_mode)) fail<IoError>(where, ": expected text (a file, a pipe or a terminal), got a directory");
    if (S_ISCHR(st.st_mode) && ::isatty(STDIN_FILENO) != 1) {
      struct stat null {};
      if (::stat("/dev/null", &null) != 0 || !S_ISCHR(null.st_mode) || null.st_rdev != st.st_rdev)
        fail<IoError>(where, ": expected text (a file, a pipe or a terminal), got a device (it may never end)");
    }
    if (S_ISBLK(st.st_mode)) fail<IoError>(where, ": expected text (a file, a pipe or a terminal), got a block device");
    r.in_.f = detail::Fd(::dup(STDIN_FILENO));  // our own descriptor to close; the file stays open for others
    if (r.in_.f.fd < 0) fail<IoError>(where, ": ", detail::errno_str(errno));
    r.in_.pipe = S_ISFIFO(st.st_mode);
    return r;
  }
  // Bytes in memory (not copied: they must outlive the reader).
  static LineReader from_memory(const std::uint8_t* data, std::size_t size, const std::string& where) {
    LineReader r(where);
    r.mem_ = data;
    r.end_ = size;
    r.eof_ = true;
    return r;
  }

  // The next line into `line`, cut to its first `keep` bytes; *length (if given) gets its
  // length before the cut. false at the end of the input.
  bool next(std::string& line, std::size_t keep, std::uint64_t* length = nullptr) {
    line.clear();
    std::uint64_t len = 0;
    bool any = false, last_cr = false;
    for (;;) {
      if (pos_ == end_ && !fill()) break;
      any = true;
      const std::uint8_t* p = data() + pos_;
      const std::size_t n = end_ - pos_;
      const auto* nl = static_cast<const std::uint8_t*>(std::memchr(p, '\n', n));
      const std::size_t take = nl ? static_cast<std::size_t>(nl - p) : n;
      if (take > 0) {
        if (line.size() < keep) line.append(reinterpret_cast<const char*>(p), std::min(take, keep - line.size()));
        len += take;
        last_cr = p[take - 1] == '\r';
      }
      pos_ += take;
      if (nl) {
        ++pos_;
        break;
      }
    }
    if (!any) return false;
    ++line_no_;
    const std::uint64_t content = len - (last_cr ? 1 : 0);
    if (line.size() > content) line.resize(static_cast<std::size_t>(content));
    if (length) *length = content;
    bytes_ += len;
    return true;
  }

  std::int64_t line_number() const { return line_no_; }  // of the last line next() returned, 1-based
  const std::string& where() const { return where_; }

 private:
  explicit LineReader(std::string where) : where_(std::move(where)) {}
  const std::uint8_t* data() const { return mem_ ? mem_ : buf_.data(); }
  bool fill() {
    if (eof_) return false;
    buf_.resize(1 << 16);
    pos_ = 0;
    end_ = detail::read_input(in_, buf_.data(), buf_.size(), where_, bytes_);
    if (end_ == 0) eof_ = true;
    return end_ > 0;
  }

  std::string where_;
  detail::InputFile in_;
  const std::uint8_t* mem_ = nullptr;
  std::vector<std::uint8_t> buf_;  // [64 KiB] the bytes read and not yet returned: [pos_, end_)
  std::size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  std::int64_t line_no_ = 0;
  std::uint64_t bytes_ = 0;
};

// An output whose every write is checked: bytes are buffered and written by flush() (called
// when the buffer fills, when the oldest buffered byte is older than the flush interval, and by
// close()); a failed write (a closed pipe, a full disk, /dev/full) is an IoError naming the
// output, e.g. "writing standard output: Broken pipe (the reading end was closed)", and every
// later call fails the same way without writing. The destructor flushes what is left and
// ignores errors: call close() to see them.
class OutputStream {
 public:
  // File descriptor 1, which stays open. Flushed every `interval` seconds at most (0: at every
  // write, for a terminal).
  static OutputStream standard_output(const std::string& what = "standard output", double interval = 0.05) {
    OutputStream s(STDOUT_FILENO, false, what);
    s.interval_ = interval;
    return s;
  }
  // `path` opened for appending (created, mode 0666 minus the umask, when absent); close()
  // also fsyncs it. Flushed only when the buffer fills and at flush() / close().
  static OutputStream append_to(const std::string& path, const std::string& what) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) fail<IoError>(what, ": cannot open for appending: ", detail::errno_str(errno));
    OutputStream s(fd, true, what);
    s.interval_ = -1;
    return s;
  }

  OutputStream(OutputStream&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), owned_(o.owned_), what_(std::move(o.what_)), buf_(std::move(o.buf_)),
        interval_(o.interval_), oldest_(o.oldest_), error_(std::move(o.error_)) {}
  OutputStream& operator=(OutputStream&&) = delete;
  OutputStream(const OutputStream&) = delete;
  ~OutputStream() {
    if (fd_ < 0) return;
    if (error_.empty()) try_write();
    if (owned_) ::close(fd_);
  }

  void write(std::string_view s) {
    check();
    if (buf_.empty()) oldest_ = std::chrono::steady_clock::now();
    buf_.append(s.data(), s.size());
    if (buf_.size() >= kBuffer || interval_ == 0) flush();
    else if (interval_ > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - oldest_).count() >= interval_)
      flush();
  }
  void put(char c) { write(std::string_view(&c, 1)); }

  // Everything written so far goes to the file descriptor now.
  void flush() {
    check();
    if (!try_write()) check();
  }
  // flush(), then (files) fsync and close. Afterwards the stream takes no more writes.
  void close() {
    flush();
    if (owned_ && fd_ >= 0) {
      if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) fail_with(errno, "fsync");
      const int fd = std::exchange(fd_, -1);
      if (::close(fd) != 0) fail_with(errno, "closing");
    }
    fd_ = -1;
  }
  bool failed() const { return !error_.empty(); }
  const std::string& what() const { return what_; }

 private:
  static constexpr std::size_t kBuffer = 1 << 16;
  OutputStream(int fd, bool owned, std::string what) : fd_(fd), owned_(owned), what_(std::move(what)) {}

  void check() const {
    if (!error_.empty()) throw IoError(error_);
    if (fd_ < 0) fail<IoError>("writing ", what_, ": the output is already closed");
  }
  void set_error(int e, const char* doing) {
    error_ = detail::concat(doing, " ", what_, ": ", detail::errno_str(e),
                            e == EPIPE ? " (the reading end of the pipe was closed)" : "");
  }
  [[noreturn]] void fail_with(int e, const char* doing) {
    set_error(e, doing);
    throw IoError(error_);
  }
  // Writes the buffer; false (error_ set) on failure.
  bool try_write() {
    std::size_t done = 0;
    while (done < buf_.size()) {
      const ssize_t w = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {  // a non-blocking descriptor inherited from the caller
          pollfd p{fd_, POLLOUT, 0};
          ::poll(&p, 1, -1);
          continue;
        }
        set_error(errno, "writing");
        buf_.clear();
        return false;
      }
      done += static_cast<std::size_t>(w);
    }
    buf_.clear();
    return true;
  }

  int fd_ = -1;
  bool owned_ = false;
  std::string what_;
  std::string buf_;  // bytes written and not yet flushed (at most kBuffer + one write)
  double interval_ = -1;  // < 0: no time-based flushing
  std::chrono::steady_clock::time_point oldest_{};
  std::string error_;  // the first failure's message; every later call repeats it
};

namespace detail {
// One lock file held by this process: released (unlinked, then closed) when the last
// OutputLock sharing it goes.
struct HeldLock {
  std::string path;  // the lock file
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  pid_t pid = 0;  // the process that took it (a forked child inherits the memory, not the lock)
  // Unlinked only while it is still ours: a later run may already have replaced it, and a forked
  // child ending must not remove its parent's.
  void remove_file() const {
    struct stat st {};
    if (pid == ::getpid() && ::stat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino)
      ::unlink(path.c_str());
  }
  ~HeldLock() {
    remove_file();
    ::close(fd);  // drops the lock
  }
};
// This process's locks. A process that ends by exit() (a signal handled by saving and exiting)
// never destroys the locks on its stack: their files are removed here, at exit.
struct HeldLocks {
  std::mutex m;
  std::vector<std::weak_ptr<HeldLock>> locks;
  ~HeldLocks() {
    for (const auto& w : locks)
      if (auto h = w.lock()) h->remove_file();
  }
};
inline HeldLocks& held_locks() {
  static HeldLocks h;
  return h;
}
}  // namespace detail

// An exclusive advisory lock (flock(2)) on an output path, held on a lock file beside it,
// PATH.lock, which holds the holder's process id. While one OutputLock for PATH lives, another
// process asking for it gets an IoError naming that process ("... is in use by another run
// (process 1234)"); the kernel drops the lock when its holder ends, however it ends (kill -9
// included), and the next run takes over a lock file a killed run left behind. Within one
// process, asking again for a lock it holds shares it. Released (the file removed) when the
// last OutputLock for it goes. An empty OutputLock holds nothing.
class OutputLock {
 public:
  OutputLock() = default;

  // Locks `path` (an output: `what` names it in messages, e.g. "--out"); its directory must
  // exist and be writable (check_output_path).
  static OutputLock acquire(const std::string& path, const std::string& what) {
    const std::string lock_path = detail::temporary_name(path, ".lock");
    const std::string where = what + " " + quote_path(path);
    for (int attempt = 0; attempt < 100; ++attempt) {
      detail::Fd f(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666));
      if (f.fd < 0)
        fail<IoError>(where, ": cannot open its lock file ", quote_path(lock_path), ": ", detail::errno_str(errno));
      struct stat st {};
      if (::fstat(f.fd, &st) != 0) fail<IoError>(where, ": stat of its lock file: ", detail::errno_str(errno));
      {
        std::lock_guard<std::mutex> g(detail::held_locks().m);
        auto& held = detail::held_locks().locks;
        held.erase(std::remove_if(held.begin(), held.end(), [](const auto& w) { return w.expired(); }), held.end());
        for (const auto& w : held)
          if (auto h = w.lock(); h && h->pid == ::getpid() && h->dev == st.st_dev && h->ino == st.st_ino)
            return OutputLock(std::move(h));
      }
      // A lock file holds a process id and a newline; anything else is someone's file, not ours.
      if (!S_ISREG(st.st_mode) || st.st_size > 32)
        fail<IoError>(where, ": its lock file ", quote_path(lock_path), " exists and is not a lock file (", st.st_size,
                      " bytes); expected it absent or holding a process id (move it away)");
      if (::flock(f.fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
          fail<IoError>(where, ": cannot lock ", quote_path(lock_path), ": ", detail::errno_str(errno));
        char pid[33] = {};
        const ssize_t n = ::pread(f.fd, pid, 32, 0);
        std::string holder(pid, n > 0 ? static_cast<std::size_t>(n) : 0);
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
        const bool digits = !holder.empty() && holder.find_first_not_of("0123456789") == std::string::npos;
        fail<IoError>(where, " is in use by another run", digits ? " (process " + holder + ")" : std::string(),
                      "; expected one run per output (its lock file is ", quote_path(lock_path), ")");
      }
      // Its previous holder may have removed the file between our open and our lock: then we hold
      // a lock on a name nobody else can see, and start again.
      struct stat now {};
      if (::stat(lock_path.c_str(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) continue;
      const std::string me = std::to_string(::getpid()) + "\n";
      if (::ftruncate(f.fd, 0) == 0 && ::pwrite(f.fd, me.data(), me.size(), 0) < 0) {
        // the process id is for messages only; a full disk must not stop the run here
      }
      auto h = std::make_shared<detail::HeldLock>();
      h->path = lock_path;
      h->fd = std::exchange(f.fd, -1);
      h->dev = st.st_dev;
      h->ino = st.st_ino;
      h->pid = ::getpid();
      std::lock_guard<std::mutex> g(detail::held_locks().m);
      detail::held_locks().locks.push_back(h);
      return OutputLock(std::move(h));
    }
    fail<IoError>(where, ": its lock file ", quote_path(lock_path), " kept changing; expected to lock it");
  }

  bool held() const { return held_ != nullptr; }
  const std::string& lock_path() const {
    static const std::string none;
    return held_ ? held_->path : none;
  }

 private:
  explicit OutputLock(std::shared_ptr<detail::HeldLock> h) : held_(std::move(h)) {}
  std::shared_ptr<detail::HeldLock> held_;
};

}  // namespace tnn
