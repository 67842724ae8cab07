// GGUF v3 writer: metadata of every type and tensors, each tensor's data
// padded to the file's alignment (general.alignment, default 32). Whatever it
// writes, GgufFile reads back to identical metadata and tensor bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "gguf/gguf_value.h"

namespace slm::gguf {

class GgufWriter {
 public:
  // Sets a metadata key. An existing key keeps its position and takes the
  // new value; a new key goes last. Setting general.alignment to anything but
  // a power-of-two uint32 throws slm::Error.
  void set(const std::string& key, Value value);
  void remove(std::string_view key);
  const Value* find(std::string_view key) const;

  // Adds a tensor whose bytes are not copied: `data` must stay valid until
  // write() returns (use it to stream from a mapped input file). Throws
  // slm::Error on a duplicate name, a row length that is not a multiple of
  // the type's block size, or n_bytes that does not match the shape.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data,
                  uint64_t n_bytes);
  // Same, but the writer keeps the bytes.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, std::vector<uint8_t> bytes);

  // Same, but the bytes are produced during write() by `fill(dst)`, which
  // must write exactly n_bytes to dst: lets a file far larger than memory be
  // generated (or converted) one tensor at a time.
  using Filler = std::function<void(uint8_t* dst)>;
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, uint64_t n_bytes,
                  Filler fill);

  size_t n_tensors() const { return tensors_.size(); }

  // Writes the file. The bytes go to "<path>.tmp", which is renamed over
  // `path` only once complete, so a failure never leaves a partial file.
  void write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    const uint8_t* data;
    uint64_t n_bytes;
    std::vector<uint8_t> owned;
    Filler fill;  // set when the bytes are produced at write time
  };
  uint64_t alignment() const;

  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace slm::gguf
