// A whole file mapped read-only into memory (POSIX mmap). Model weights are
// used in place from the mapping: nothing is copied, and the page cache is
// shared between processes that load the same file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace slm {

// How the bytes reach memory: mapped from the file (pages read on first use,
// shared with other processes, dropped under memory pressure), or read into
// private memory up front (--no-mmap: network file systems, files that may
// change under the process); locked: kept resident (--mlock; a lock the
// system refuses is a warning, the file stays usable).
struct FileAccess {
  bool mmap = true;
  bool lock = false;
};

class MappedFile {
 public:
  // Maps (or reads) `path`. Throws slm::Error naming the path and the OS
  // reason when it cannot be opened, is not a regular file, is empty, or
  // cannot be mapped or read.
  explicit MappedFile(const std::string& path, FileAccess access = {});
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace slm
