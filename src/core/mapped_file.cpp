#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/log.h"
#include "slm/error.h"

namespace slm {

MappedFile::MappedFile(const std::string& path, FileAccess access) : path_(path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused
  // as not a regular file).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(fmt::format("{}: cannot stat: {}", path, std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("{}: not a regular file", path));
  }
  if (st.st_size == 0) {
    ::close(fd);
    throw Error(fmt::format("{}: file is empty (0 bytes)", path));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  void* addr = MAP_FAILED;
  int map_err = 0;
  if (access.mmap) {
    addr = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    map_err = errno;
  } else {
    // Private anonymous memory holding the file's bytes (freed the same way
    // as a mapping, by munmap).
    addr = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    map_err = errno;
    uint64_t done = 0;
    while (addr != MAP_FAILED && done < size_) {
      const ssize_t n = ::pread(fd, static_cast<uint8_t*>(addr) + done, size_ - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : EIO;
        ::munmap(addr, size_);
        ::close(fd);
        throw Error(fmt::format("{}: cannot read: {}", path, n < 0 ? std::strerror(err) : "the file shrank"));
      }
      done += static_cast<uint64_t>(n);
    }
  }
  ::close(fd);  // the mapping keeps the file alive
  if (addr == MAP_FAILED) {
    throw Error(fmt::format("{}: cannot {} {} bytes: {}", path, access.mmap ? "mmap" : "allocate", size_,
                            std::strerror(map_err)));
  }
  data_ = static_cast<const uint8_t*>(addr);
  file_backed_ = access.mmap && !access.lock;
  if (access.lock && ::mlock(addr, size_) != 0)
    logger().warn("{}: cannot lock {:.1f} MiB in memory ({}); raise `ulimit -l` to use --mlock", path,
                  static_cast<double>(size_) / (1 << 20), std::strerror(errno));
}

size_t MappedFile::release(const void* p, size_t n) const {
  if (!file_backed_ || n == 0) return 0;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (begin < reinterpret_cast<uintptr_t>(data_) || end > reinterpret_cast<uintptr_t>(data_) + size_ || end <= begin)
    return 0;
  if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) != 0) return 0;
  return end - begin;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace slm
