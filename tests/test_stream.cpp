// io/stream.hpp: LineReader (lines cut as they are read, pipes whose writer comes late,
// standard input that is a directory), OutputStream (every write checked: a full disk, a
// closed pipe) and OutputLock (one holder per output, across processes, gone with a killed
// holder).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "temp_files.hpp"
#include "tnn/io/stream.hpp"

using namespace tnn;
using tnn_test::TempDir;

namespace {
std::vector<std::string> all_lines(LineReader& r, std::size_t keep, std::vector<std::uint64_t>* lengths = nullptr) {
  std::vector<std::string> out;
  std::string line;
  std::uint64_t len = 0;
  while (r.next(line, keep, &len)) {
    out.push_back(line);
    if (lengths) lengths->push_back(len);
  }
  return out;
}
// Runs `child` in a forked process; returns its pid.
template <class F>
pid_t fork_child(F&& child) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    child();
    ::_exit(0);
  }
  return pid;
}
int wait_child(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}
}  // namespace

TEST(LineReader, LinesAreCutAsTheyAreReadWithTheirFullLengthsReported) {
  const std::string text = "short\r\n" + std::string(200000, 'x') + "\n\nlast line without newline\r";
  const std::vector<std::uint8_t> bytes(text.begin(), text.end());
  LineReader r = LineReader::from_memory(bytes.data(), bytes.size(), "memory");
  std::vector<std::uint64_t> lengths;
  const auto lines = all_lines(r, 10, &lengths);
  EXPECT_EQ(lines, (std::vector<std::string>{"short", "xxxxxxxxxx", "", "last line "}));
  EXPECT_EQ(lengths, (std::vector<std::uint64_t>{5, 200000, 0, 25}));
  EXPECT_EQ(r.line_number(), 4);
  // A '\r' is dropped only where it ends the line, also when the cut falls just before it.
  const std::string cr = "abc\r\nab\rc\n";
  LineReader r2 = LineReader::from_memory(reinterpret_cast<const std::uint8_t*>(cr.data()), cr.size(), "m");
  EXPECT_EQ(all_lines(r2, 3), (std::vector<std::string>{"abc", "ab\r"}));
}

TEST(LineReader, AFileIsReadInChunksAcrossLineBoundaries) {
  TempDir dir("tnn_stream_");
  std::string text;
  for (int i = 0; i < 30000; ++i) text += std::to_string(i) + "\t" + std::string(static_cast<std::size_t>(i % 7), 'a') + "\n";
  tnn_test::write_bytes(dir.file("f"), tnn_test::Bytes(text.begin(), text.end()));
  LineReader r = LineReader::open(dir.file("f"), "data file");
  const auto lines = all_lines(r, 1000);
  ASSERT_EQ(lines.size(), 30000u);
  EXPECT_EQ(lines[12345], "12345\t" + std::string(12345 % 7, 'a'));
  EXPECT_THROW(LineReader::open(dir.file(""), "data file"), IoError);      // a directory
  EXPECT_THROW(LineReader::open("/dev/zero", "data file"), IoError);       // never ends
  EXPECT_THROW(LineReader::open(dir.file("none"), "data file"), IoError);  // missing
}

// A named pipe whose writer opens it only after the reader has: its data, not an empty file.
TEST(LineReader, ANamedPipeWaitsForALateWriter) {
  TempDir dir("tnn_stream_");
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const pid_t child = fork_child([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const int fd = ::open(fifo.c_str(), O_WRONLY);
    const std::string s = "late\nwriter\n";
    if (fd < 0 || ::write(fd, s.data(), s.size()) != static_cast<ssize_t>(s.size())) ::_exit(1);
  });
  LineReader r = LineReader::open(fifo, "data file");
  EXPECT_EQ(all_lines(r, 100), (std::vector<std::string>{"late", "writer"}));
  EXPECT_EQ(wait_child(child), 0);
  // The same through read_file_bounded (io/file.hpp), which every whole-file input uses.
  const pid_t child2 = fork_child([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd < 0 || ::write(fd, "abc", 3) != 3) ::_exit(1);
  });
  EXPECT_EQ(read_file_bounded(fifo, 100, "data file"), (std::vector<std::uint8_t>{'a', 'b', 'c'}));
  EXPECT_EQ(wait_child(child2), 0);
}

TEST(LineReader, StandardInputThatIsADirectoryOrADeviceIsRefused) {
  TempDir dir("tnn_stream_");
  const int saved = ::dup(STDIN_FILENO);
  auto with_stdin = [&](const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags);
    EXPECT_GE(fd, 0) << path;
    ::dup2(fd, STDIN_FILENO);
    ::close(fd);
  };
  with_stdin(dir.file(""), O_RDONLY | O_DIRECTORY);
  EXPECT_THROW(LineReader::standard_input(), IoError);
  with_stdin("/dev/zero", O_RDONLY);
  EXPECT_THROW(LineReader::standard_input(), IoError);
  with_stdin("/dev/null", O_RDONLY);  // empty input: no lines, no error
  {
    LineReader r = LineReader::standard_input();
    EXPECT_TRUE(all_lines(r, 10).empty());
  }
  tnn_test::write_bytes(dir.file("in"), tnn_test::Bytes{'a', '\n', 'b'});
  with_stdin(dir.file("in"), O_RDONLY);
  {
    LineReader r = LineReader::standard_input();
    EXPECT_EQ(all_lines(r, 10), (std::vector<std::string>{"a", "b"}));
  }
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
}

TEST(OutputStream, AFullDiskIsAnErrorNamingTheOutputAndStaysOne) {
  const int saved = ::dup(STDOUT_FILENO);
  const int full = ::open("/dev/full", O_WRONLY);
  ASSERT_GE(full, 0);
  ::dup2(full, STDOUT_FILENO);
  ::close(full);
  std::string msg;
  {
    OutputStream out = OutputStream::standard_output("standard output", 0);
    try {
      out.write("hello");
    } catch (const IoError& e) {
      msg = e.what();
    }
    EXPECT_TRUE(out.failed());
    EXPECT_THROW(out.write("more"), IoError);  // every later call fails too, writing nothing
    EXPECT_THROW(out.close(), IoError);
  }
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  EXPECT_NE(msg.find("writing standard output: No space left on device"), std::string::npos) << msg;
}

TEST(OutputStream, AClosedPipeIsAnErrorAtTheNextFlush) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // the reader is gone
  const auto old = std::signal(SIGPIPE, SIG_IGN);
  const int saved = ::dup(STDOUT_FILENO);
  ::dup2(fds[1], STDOUT_FILENO);
  ::close(fds[1]);
  std::string msg;
  {
    OutputStream out = OutputStream::standard_output("the text", -1);
    out.write("buffered, not yet written");  // no time-based flush: nothing written yet
    EXPECT_FALSE(out.failed());
    try {
      out.flush();
    } catch (const IoError& e) {
      msg = e.what();
    }
  }
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  std::signal(SIGPIPE, old);
  EXPECT_NE(msg.find("writing the text: Broken pipe"), std::string::npos) << msg;
}

TEST(OutputStream, AppendedFileHoldsEveryByteAfterClose) {
  TempDir dir("tnn_stream_");
  tnn_test::write_bytes(dir.file("log"), tnn_test::Bytes{'a', '\n'});
  OutputStream out = OutputStream::append_to(dir.file("log"), "log");
  for (int i = 0; i < 100000; ++i) out.write("b");
  out.close();
  const auto bytes = tnn_test::read_bytes(dir.file("log"));
  EXPECT_EQ(bytes.size(), 100002u);
  EXPECT_THROW(OutputStream::append_to(dir.file("none/log"), "log"), IoError);
}

TEST(OutputLock, ASecondProcessIsRefusedUntilTheHolderIsKilled) {
  TempDir dir("tnn_stream_");
  const std::string out = dir.file("m.safetensors");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t holder = fork_child([&] {
    OutputLock lock = OutputLock::acquire(out, "--out");
    if (::write(ready[1], "x", 1) != 1) ::_exit(1);
    ::pause();  // until killed
  });
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  std::string msg;
  try {
    OutputLock::acquire(out, "--out");
  } catch (const IoError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("--out '" + out + "' is in use by another run (process " + std::to_string(holder) + ")"),
            std::string::npos)
      << msg;
  ::kill(holder, SIGKILL);  // no clean-up runs: the lock file stays, the lock goes with the process
  wait_child(holder);
  EXPECT_TRUE(std::filesystem::exists(out + ".lock"));
  {
    OutputLock lock = OutputLock::acquire(out, "--out");
    EXPECT_TRUE(lock.held());
    OutputLock again = OutputLock::acquire(out, "--out");  // this process holds it: shared
    EXPECT_TRUE(again.held());
  }
  EXPECT_FALSE(std::filesystem::exists(out + ".lock"));  // released: removed
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(OutputLock, SomeoneElsesFileIsNeverTakenForALockFile) {
  TempDir dir("tnn_stream_");
  const std::string data(1000, 'd');
  tnn_test::write_bytes(dir.file("x.lock"), tnn_test::Bytes(data.begin(), data.end()));
  EXPECT_THROW(OutputLock::acquire(dir.file("x"), "--out"), IoError);
  EXPECT_EQ(tnn_test::read_bytes(dir.file("x.lock")).size(), 1000u);  // untouched
}
