#include "gguf/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "gguf/gguf_reader.h"
#include "slm/error.h"

namespace slm::gguf {
namespace {

// Buffered output to a FILE*, remembering the first error.
class Output {
 public:
  explicit Output(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "wb")) {
    if (file_ == nullptr) throw Error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  }
  ~Output() {
    if (file_ != nullptr) std::fclose(file_);
  }
  void bytes(const void* p, size_t n) {
    if (n != 0 && std::fwrite(p, 1, n, file_) != n) {
      throw Error(fmt::format("{}: write failed after {} bytes: {}", path_, written_, std::strerror(errno)));
    }
    written_ += n;
  }
  template <class T>
  void pod(T v) {
    bytes(&v, sizeof(T));
  }
  void string(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t kZeros[256] = {};
    while (written_ % alignment != 0) {
      bytes(kZeros, std::min<uint64_t>(alignment - written_ % alignment, sizeof(kZeros)));
    }
  }
  uint64_t written() const { return written_; }
  void close() {
    FILE* f = file_;
    file_ = nullptr;
    if (std::fclose(f) != 0) throw Error(fmt::format("{}: close failed: {}", path_, std::strerror(errno)));
  }

 private:
  std::string path_;
  FILE* file_;
  uint64_t written_ = 0;
};

void write_value(Output& out, const Value& v);

void write_array_body(Output& out, const Value& v) {
  out.pod<uint32_t>(static_cast<uint32_t>(v.elem_type()));
  out.pod<uint64_t>(v.size());
  if (v.elem_type() == ValueType::String) {
    for (const std::string& s : v.strings()) out.string(s);
  } else if (v.elem_type() == ValueType::Array) {
    for (const Value& item : v.items()) write_array_body(out, item);
  } else {
    out.bytes(v.raw().data(), v.raw().size());
  }
}

void write_value(Output& out, const Value& v) {
  switch (v.type()) {
    case ValueType::String: out.string(*v.to_string()); return;
    case ValueType::Array: write_array_body(out, v); return;
    case ValueType::Bool: out.pod<uint8_t>(*v.to_bool() ? 1 : 0); return;
    case ValueType::F32: out.pod<float>(static_cast<float>(*v.to_double())); return;
    case ValueType::F64: out.pod<double>(*v.to_double()); return;
    case ValueType::U64: out.pod<uint64_t>(*v.to_uint()); return;
    default: {
      // Integers up to int64: write the low value_type_size bytes (little-endian).
      const int64_t i = *v.to_int();
      out.bytes(&i, value_type_size(v.type()));
      return;
    }
  }
}

// Arrays of arrays must hold arrays at every level (a Value built by hand
// could violate that; the reader would then misparse the file).
void check_value(const std::string& key, const Value& v) {
  if (!v.is_array() || v.elem_type() != ValueType::Array) return;
  for (const Value& item : v.items()) {
    if (!item.is_array()) throw Error(fmt::format("gguf writer: key '{}': array of arrays holds a non-array", key));
    check_value(key, item);
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, Value value) {
  if (key == "general.alignment") {
    const auto a = value.to_uint();
    if (value.type() != ValueType::U32 || *a == 0 || (*a & (*a - 1)) != 0) {
      throw Error("gguf writer: general.alignment must be a power-of-two uint32");
    }
  }
  check_value(key, value);
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::remove(std::string_view key) {
  for (auto it = kv_.begin(); it != kv_.end(); ++it) {
    if (it->first == key) {
      kv_.erase(it);
      return;
    }
  }
}

const Value* GgufWriter::find(std::string_view key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data,
                            uint64_t n_bytes) {
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) throw Error(fmt::format("gguf writer: duplicate tensor name '{}'", name));
  }
  if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims)) {
    throw Error(fmt::format("gguf writer: tensor '{}' has {} dims (expected 1..{})", name, ne.size(), kMaxDims));
  }
  const DTypeTraits& tt = traits(type);
  uint64_t n_elements = 1;
  for (int64_t d : ne) {
    if (d < 0) throw Error(fmt::format("gguf writer: tensor '{}' has a negative dimension", name));
    if (__builtin_mul_overflow(n_elements, static_cast<uint64_t>(d), &n_elements) ||
        n_elements > static_cast<uint64_t>(INT64_MAX)) {
      throw Error(fmt::format("gguf writer: tensor '{}' element count overflows", name));
    }
  }
  if (ne[0] % tt.block_size != 0) {
    throw Error(fmt::format("gguf writer: tensor '{}' row length {} is not a multiple of the {} block size {}", name,
                            ne[0], tt.name, tt.block_size));
  }
  const uint64_t expected = ne[0] == 0 ? 0 : n_elements / ne[0] * row_bytes(type, ne[0]);
  if (n_bytes != expected) {
    throw Error(fmt::format("gguf writer: tensor '{}' ({} {}) needs {} bytes, got {}", name, tt.name,
                            fmt::join(ne, "x"), expected, n_bytes));
  }
  tensors_.push_back({name, type, ne, static_cast<const uint8_t*>(data), n_bytes, {}, {}});
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, uint64_t n_bytes,
                            Filler fill) {
  add_tensor(name, type, ne, nullptr, n_bytes);
  tensors_.back().fill = std::move(fill);
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne,
                            std::vector<uint8_t> bytes) {
  add_tensor(name, type, ne, bytes.data(), bytes.size());
  tensors_.back().owned = std::move(bytes);  // moving a vector keeps its buffer, so data stays valid
}

uint64_t GgufWriter::alignment() const {
  const Value* v = find("general.alignment");
  return v != nullptr ? *v->to_uint() : kDefaultAlignment;
}

void GgufWriter::write(const std::string& path) const {
  const uint64_t align = alignment();
  const std::string tmp = path + ".tmp";
  {
    Output out(tmp);
    try {
      out.pod<uint32_t>(kMagic);
      out.pod<uint32_t>(3);
      out.pod<uint64_t>(tensors_.size());
      out.pod<uint64_t>(kv_.size());
      for (const auto& [key, value] : kv_) {
        out.string(key);
        out.pod<uint32_t>(static_cast<uint32_t>(value.type()));
        write_value(out, value);
      }
      uint64_t offset = 0;
      for (const PendingTensor& t : tensors_) {
        out.string(t.name);
        out.pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) out.pod<uint64_t>(static_cast<uint64_t>(d));
        out.pod<uint32_t>(static_cast<uint32_t>(t.type));
        out.pod<uint64_t>(offset);
        offset = (offset + t.n_bytes + align - 1) / align * align;
      }
      // The data section starts aligned, so aligning absolute positions
      // aligns the offsets relative to it too.
      out.pad_to(align);
      std::vector<uint8_t> scratch;
      for (const PendingTensor& t : tensors_) {
        if (t.fill) {
          scratch.assign(t.n_bytes, 0);
          t.fill(scratch.data());
          out.bytes(scratch.data(), t.n_bytes);
        } else {
          out.bytes(t.data, t.n_bytes);
        }
        out.pad_to(align);
      }
      out.close();
    } catch (...) {
      std::remove(tmp.c_str());
      throw;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: cannot rename from {}: {}", path, tmp, std::strerror(err)));
  }
}

}  // namespace slm::gguf
