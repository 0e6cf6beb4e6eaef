// A read-only memory map of a whole regular file: data larger than memory is paged in by the
// kernel as it is read, and pages not used lately are dropped again, so only what training
// touches stays resident. RAII, movable, not copyable. POSIX only.
// The file must not shrink while it is mapped: reading a page past its new end raises SIGBUS,
// which no library can turn into an error message.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "tnn/core/error.hpp"
#include "tnn/io/file.hpp"

namespace tnn {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`; `what` names it in messages ("token file"). IoError when it cannot be opened or
  // is not a regular file (pipes and devices cannot be mapped), FormatError when it is empty.
  MappedFile(const std::string& path, const char* what) : path_(path) {
    const std::string where = std::string(what) + " " + quote_path(path);
    const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (raw < 0) fail<IoError>(where, ": cannot open: ", detail::errno_str(errno));
    detail::Fd f(raw);
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) fail<IoError>(where, ": stat: ", detail::errno_str(errno));
    if (!S_ISREG(st.st_mode))
      fail<IoError>(where, ": expected a regular file (it is memory-mapped), got a directory, pipe or device");
    if (st.st_size <= 0) fail<FormatError>(where, ": expected at least one token, got an empty file (0 bytes)");
    if (static_cast<std::uint64_t>(st.st_size) > std::numeric_limits<std::size_t>::max())
      fail<FormatError>(where, ": ", st.st_size, " bytes do not fit in this process's address space");
    size_ = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, f.fd, 0);
    if (p == MAP_FAILED) fail<IoError>(where, ": mmap of ", size_, " bytes: ", detail::errno_str(errno));
    data_ = static_cast<const std::uint8_t*>(p);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    MappedFile tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  }

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void swap(MappedFile& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(path_, o.path_);
  }
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::string path_;
};

}  // namespace tnn
