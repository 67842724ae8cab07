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

  // Drops this process's resident pages of [p, p + n) (whole pages inside
  // it) when the bytes come from a mapping of the file (not --no-mmap, not
  // --mlock): they stay readable, read from the file again if ever touched.
  // Used after weights were copied into another layout, so the process holds
  // one copy, not two. Returns the bytes released.
  size_t release(const void* p, size_t n) const;

 private:
  std::string path_;
  bool file_backed_ = false;  // mapped from the file and not locked
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace slm
