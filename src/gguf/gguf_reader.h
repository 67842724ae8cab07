// GGUF reader: validates a whole GGUF v2/v3 file up front and then serves its
// metadata and tensor data (zero-copy, from a read-only mapping).
//
// Every file is treated as hostile. Counts and lengths are bounded by the
// bytes left in the file before anything is allocated, shapes are
// overflow-checked, each tensor's data must lie inside the file, aligned and
// not overlapping another. Any violation throws slm::Error naming the file,
// the field and its offset, and what was expected.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <map>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "gguf/gguf_value.h"

namespace slm {
class MappedFile;
}

namespace slm::gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;
constexpr int kMaxArrayNesting = 16;  // arrays of arrays deeper than this are refused

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> ne;   // dims, fastest-varying first (ne[0] = row length)
  uint64_t offset = 0;       // relative to the data section, as stored
  uint64_t file_offset = 0;  // absolute position of the data in the file
  uint64_t n_bytes = 0;
  uint64_t n_elements = 0;

  int64_t dim(int i) const { return i < static_cast<int>(ne.size()) ? ne[i] : 1; }
  int64_t n_rows() const { return ne.empty() || ne[0] == 0 ? 0 : static_cast<int64_t>(n_elements) / ne[0]; }
};

class GgufFile {
 public:
  // Maps and validates `path`. Throws slm::Error on any problem.
  explicit GgufFile(const std::string& path, FileAccess access = {});
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const;
  uint64_t file_size() const;
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section

  // ---- Metadata, in file order.
  const std::vector<KeyValue>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;  // null when absent
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. Absent key: nullopt (or the default). Present with an
  // incompatible type or out of range: slm::Error naming key and types.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<uint32_t> get_u32(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t fallback) const { return get_int(key).value_or(fallback); }
  uint32_t get_u32(std::string_view key, uint32_t fallback) const { return get_u32(key).value_or(fallback); }
  double get_float(std::string_view key, double fallback) const { return get_float(key).value_or(fallback); }
  bool get_bool(std::string_view key, bool fallback) const { return get_bool(key).value_or(fallback); }
  std::string get_string(std::string_view key, const std::string& fallback) const {
    return get_string(key).value_or(fallback);
  }
  // Arrays: absent -> empty; wrong element type -> slm::Error.
  std::vector<std::string> get_strings(std::string_view key) const;
  std::vector<float> get_floats(std::string_view key) const;
  std::vector<int32_t> get_ints(std::string_view key) const;

  // Required value: slm::Error "missing required key" when absent.
  const Value& require(std::string_view key) const;

  // general.architecture ("" when absent) and architecture-prefixed keys:
  // arch_key("block_count") == "phi3.block_count".
  const std::string& architecture() const { return architecture_; }
  std::string arch_key(std::string_view suffix) const { return architecture_ + "." + std::string(suffix); }

  // ---- Tensors, in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;  // null when absent
  // Pointer to the tensor's bytes inside the mapping (valid while *this lives).
  const uint8_t* tensor_data(const TensorInfo& info) const;
  // Drops the resident pages of a tensor's bytes (MappedFile::release).
  size_t release_tensor_pages(const TensorInfo& info) const;
  uint64_t n_parameters() const;  // sum of tensor elements

 private:
  void parse();

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::string architecture_;
  std::vector<KeyValue> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace slm::gguf
