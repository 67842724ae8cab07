#include "gguf/gguf_reader.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/mapped_file.h"
#include "slm/error.h"

namespace slm::gguf {
namespace {

// Smallest on-disk size of one array element of each kind, used to bound an
// element count by the bytes left before anything is allocated.
constexpr uint64_t kMinStringBytes = 8;      // u64 length, empty payload
constexpr uint64_t kMinArrayBytes = 4 + 8;   // elem type + count
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, one dim

uint64_t min_element_bytes(ValueType t) {
  if (t == ValueType::String) return kMinStringBytes;
  if (t == ValueType::Array) return kMinArrayBytes;
  return value_type_size(t);
}

// What is being read, for error messages. Formatted only when an error is
// reported: building the text for every array element up front would make a
// hostile file (a long key, millions of elements) quadratic in its size.
struct Label {
  static constexpr uint64_t kNoIndex = ~uint64_t{0};
  Label(const char* t) : text(t) {}  // NOLINT: implicit on purpose
  Label(const std::string& t) : text(t) {}  // NOLINT
  Label(const Label* p, std::string_view t, uint64_t i = kNoIndex) : parent(p), text(t), index(i) {}

  std::string str() const {
    std::string s = parent != nullptr ? parent->str() : std::string();
    s += text;
    if (index != kNoIndex) s += fmt::format("[{}]", index);
    return s;
  }

  const Label* parent = nullptr;
  std::string_view text;
  uint64_t index = kNoIndex;
};

// Bounds-checked sequential reader over the mapped bytes. Every failure names
// the file, what was being read and where.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  [[noreturn]] void fail(uint64_t at, const Label& what, const std::string& problem) const {
    throw Error(fmt::format("{}: {} at offset {}: {}", path_, what.str(), at, problem));
  }

  void need(uint64_t n, const Label& what) const {
    if (n > left()) {
      fail(pos_, what, fmt::format("file truncated ({} bytes needed, {} left of {})", n, left(), size_));
    }
  }

  template <class T>
  T read(const Label& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const Label& what) {
    const uint64_t at = pos_;
    const auto len = read<uint64_t>(Label(&what, " length"));
    if (len > left()) {
      fail(at, what, fmt::format("string length {} exceeds the {} bytes left in the file", len, left()));
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  std::vector<uint8_t> read_bytes(uint64_t n, const Label& what) {
    need(n, what);
    std::vector<uint8_t> bytes(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
    return bytes;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

// Counts come from the file: reserve at most this many entries up front and
// let vectors grow as elements are actually parsed.
constexpr uint64_t kMaxReserve = 4096;

ValueType read_value_type(Cursor& in, const Label& what) {
  const uint64_t at = in.pos();
  const auto id = in.read<uint32_t>(what);
  if (!is_valid_value_type(id)) {
    in.fail(at, what, fmt::format("unknown value type id {} (expected 0..12)", id));
  }
  return static_cast<ValueType>(id);
}

Value read_value(Cursor& in, ValueType type, const Label& what, int depth);

Value read_array(Cursor& in, const Label& what, int depth) {
  if (depth >= kMaxArrayNesting) {
    in.fail(in.pos(), what, fmt::format("arrays nested deeper than {} levels", kMaxArrayNesting));
  }
  const ValueType elem = read_value_type(in, Label(&what, " element type"));
  const uint64_t at = in.pos();
  const auto n = in.read<uint64_t>(Label(&what, " element count"));
  const uint64_t min_bytes = min_element_bytes(elem);
  if (n > in.left() / min_bytes) {
    in.fail(at, what,
            fmt::format("array of {} {} elements needs at least {} bytes per element, only {} bytes left", n,
                        value_type_name(elem), min_bytes, in.left()));
  }
  if (elem == ValueType::String) {
    std::vector<std::string> items;
    items.reserve(std::min(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) items.push_back(in.read_string(Label(&what, "", i)));
    return Value::string_array(std::move(items));
  }
  if (elem == ValueType::Array) {
    std::vector<Value> items;
    items.reserve(std::min(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) items.push_back(read_array(in, Label(&what, "", i), depth + 1));
    return Value::array_of_arrays(std::move(items));
  }
  return Value::raw_array(elem, n, in.read_bytes(n * min_bytes, Label(&what, " elements")));
}

Value read_value(Cursor& in, ValueType type, const Label& what, int depth) {
  switch (type) {
    case ValueType::U8: return Value::scalar(in.read<uint8_t>(what));
    case ValueType::I8: return Value::scalar(in.read<int8_t>(what));
    case ValueType::U16: return Value::scalar(in.read<uint16_t>(what));
    case ValueType::I16: return Value::scalar(in.read<int16_t>(what));
    case ValueType::U32: return Value::scalar(in.read<uint32_t>(what));
    case ValueType::I32: return Value::scalar(in.read<int32_t>(what));
    case ValueType::F32: return Value::scalar(in.read<float>(what));
    case ValueType::U64: return Value::scalar(in.read<uint64_t>(what));
    case ValueType::I64: return Value::scalar(in.read<int64_t>(what));
    case ValueType::F64: return Value::scalar(in.read<double>(what));
    case ValueType::Bool: {
      const uint64_t at = in.pos();
      const auto b = in.read<uint8_t>(what);
      if (b > 1) in.fail(at, what, fmt::format("bool byte is {} (expected 0 or 1)", b));
      return Value::scalar(b != 0);
    }
    case ValueType::String: return Value::string(in.read_string(what));
    case ValueType::Array: return read_array(in, what, depth);
  }
  in.fail(in.pos(), what, "unknown value type");
}

std::string type_mismatch(const std::string& path, std::string_view key, const Value& v, std::string_view wanted) {
  std::string got(value_type_name(v.type()));
  if (v.is_array()) got += fmt::format(" of {}", value_type_name(v.elem_type()));
  return fmt::format("{}: metadata key '{}' has type {}, expected {}", path, key, got, wanted);
}

}  // namespace

GgufFile::GgufFile(const std::string& path, FileAccess access) : file_(std::make_unique<MappedFile>(path, access)) {
  try {
    parse();
  } catch (const std::bad_alloc&) {
    throw Error(fmt::format("{}: out of memory while reading the metadata ({} bytes of file)", path,
                            file_->size()));
  }
}

GgufFile::~GgufFile() = default;

const std::string& GgufFile::path() const { return file_->path(); }
uint64_t GgufFile::file_size() const { return file_->size(); }

void GgufFile::parse() {
  const std::string& path = file_->path();
  Cursor in(file_->data(), file_->size(), path);

  // ---- Header: magic, version, counts.
  const auto magic = in.read<uint32_t>("magic");
  if (magic != kMagic) {
    in.fail(0, "magic", fmt::format("expected \"GGUF\" (0x{:08x}), found 0x{:08x}: not a GGUF file", kMagic, magic));
  }
  version_ = in.read<uint32_t>("version");
  if (version_ == 1) in.fail(4, "version", "GGUF v1 is not supported (v2 and v3 are)");
  if (version_ != 2 && version_ != 3) {
    const bool big_endian = (version_ & 0xFFFF) == 0 && (version_ >> 24) <= 3;
    in.fail(4, "version",
            fmt::format("unsupported GGUF version {} (expected 2 or 3){}", version_,
                        big_endian ? "; this looks like a big-endian file, which slm does not read" : ""));
  }
  uint64_t at = in.pos();
  const auto n_tensors = in.read<uint64_t>("tensor count");
  if (n_tensors > in.left() / kMinTensorInfoBytes) {
    in.fail(at, "tensor count", fmt::format("{} tensors cannot fit in the {} bytes left", n_tensors, in.left()));
  }
  at = in.pos();
  const auto n_kv = in.read<uint64_t>("metadata count");
  if (n_kv > in.left() / kMinKeyValueBytes) {
    in.fail(at, "metadata count", fmt::format("{} key/values cannot fit in the {} bytes left", n_kv, in.left()));
  }

  // ---- Metadata.
  kv_.reserve(std::min(n_kv, kMaxReserve));
  for (uint64_t i = 0; i < n_kv; ++i) {
    at = in.pos();
    std::string key = in.read_string(fmt::format("metadata key #{}", i));
    const std::string what = fmt::format("metadata '{}'", key);
    const Label what_label(what);
    if (kv_index_.count(key) != 0) in.fail(at, what, "duplicate key");
    const ValueType type = read_value_type(in, Label(&what_label, " type"));
    Value value = read_value(in, type, what_label, 0);
    kv_index_.emplace(key, kv_.size());
    kv_.push_back({std::move(key), std::move(value)});
  }

  if (const Value* v = find("general.alignment")) {
    if (v->type() != ValueType::U32) throw Error(type_mismatch(path, "general.alignment", *v, "uint32"));
    alignment_ = *v->to_uint();
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0) {
      throw Error(fmt::format("{}: general.alignment is {} (expected a power of two)", path, alignment_));
    }
  }
  if (const Value* v = find("general.architecture")) {
    if (v->type() != ValueType::String) throw Error(type_mismatch(path, "general.architecture", *v, "string"));
    architecture_ = *v->to_string();
  }

  // ---- Tensor infos.
  tensors_.reserve(std::min(n_tensors, kMaxReserve));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    at = in.pos();
    t.name = in.read_string(fmt::format("tensor #{} name", i));
    const std::string what = fmt::format("tensor '{}'", t.name);
    const Label what_t(what);
    if (tensor_index_.count(t.name) != 0) in.fail(at, what, "duplicate tensor name");

    at = in.pos();
    const auto n_dims = in.read<uint32_t>(Label(&what_t, " dimension count"));
    if (n_dims == 0 || n_dims > static_cast<uint32_t>(kMaxDims)) {
      in.fail(at, what, fmt::format("{} dimensions (expected 1..{})", n_dims, kMaxDims));
    }
    // The product of the non-zero dims must fit in int64 (a zero dim would
    // otherwise hide absurd others).
    uint64_t nonzero_product = 1;
    bool has_zero = false;
    for (uint32_t d = 0; d < n_dims; ++d) {
      at = in.pos();
      const auto dim = in.read<uint64_t>(Label(&what_t, " ne", d));
      has_zero = has_zero || dim == 0;
      if (dim > static_cast<uint64_t>(INT64_MAX) ||
          (dim != 0 && __builtin_mul_overflow(nonzero_product, dim, &nonzero_product)) ||
          nonzero_product > static_cast<uint64_t>(INT64_MAX)) {
        in.fail(at, what, fmt::format("ne[{}] = {} makes the element count overflow", d, dim));
      }
      t.ne.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t n_elements = has_zero ? 0 : nonzero_product;
    t.n_elements = n_elements;

    at = in.pos();
    const auto type_id = in.read<uint32_t>(Label(&what_t, " type"));
    const auto tt = dtype_traits(type_id);
    if (!tt) in.fail(at, what, fmt::format("unknown GGML type id {}", type_id));
    t.type = tt->type;
    if (t.ne[0] % tt->block_size != 0) {
      in.fail(at, what,
              fmt::format("row length ne[0] = {} is not a multiple of the {} block size {}", t.ne[0], tt->name,
                          tt->block_size));
    }
    // n_bytes = (ne0 / block) * type_size * rows, overflow-checked.
    const uint64_t rows = t.ne[0] == 0 ? 0 : n_elements / static_cast<uint64_t>(t.ne[0]);
    const uint64_t row_bytes_ = static_cast<uint64_t>(t.ne[0]) / tt->block_size * tt->type_size;
    if (__builtin_mul_overflow(row_bytes_, rows, &t.n_bytes)) {
      in.fail(at, what, "byte size overflows 64 bits");
    }
    at = in.pos();
    t.offset = in.read<uint64_t>(Label(&what_t, " data offset"));
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // ---- Data section: starts at the next multiple of the alignment.
  const uint64_t header_end = in.pos();
  data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (n_tensors == 0) return;  // vocabulary-only files may end right after the header
  if (data_offset_ > file_->size()) {
    throw Error(fmt::format("{}: data section would start at offset {}, past the end of the {}-byte file", path,
                            data_offset_, file_->size()));
  }
  const uint64_t data_size = file_->size() - data_offset_;
  for (TensorInfo& t : tensors_) {
    if (t.offset % alignment_ != 0) {
      throw Error(fmt::format("{}: tensor '{}' data offset {} is not a multiple of the alignment {}", path, t.name,
                              t.offset, alignment_));
    }
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      throw Error(fmt::format("{}: tensor '{}' data [{}, +{}) lies outside the {}-byte data section", path, t.name,
                              t.offset, t.n_bytes, data_size));
    }
    t.file_offset = data_offset_ + t.offset;
  }
  // No two tensors may share bytes.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) {
    if (t.n_bytes != 0) by_offset.push_back(&t);  // an empty tensor occupies no bytes
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    if (prev.offset + prev.n_bytes > cur.offset) {
      throw Error(fmt::format("{}: tensor '{}' data at {} overlaps tensor '{}' at [{}, +{})", path, cur.name,
                              cur.offset, prev.name, prev.offset, prev.n_bytes));
    }
  }
}

const Value* GgufFile::find(std::string_view key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const Value& GgufFile::require(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) throw Error(fmt::format("{}: missing required metadata key '{}'", path(), key));
  return *v;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  const auto i = v->to_int();
  if (!i) throw Error(type_mismatch(path(), key, *v, "an integer"));
  return i;
}

std::optional<uint32_t> GgufFile::get_u32(std::string_view key) const {
  const auto i = get_int(key);
  if (!i) return std::nullopt;
  if (*i < 0 || *i > static_cast<int64_t>(UINT32_MAX)) {
    throw Error(fmt::format("{}: metadata key '{}' = {} is out of range for uint32", path(), key, *i));
  }
  return static_cast<uint32_t>(*i);
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  const auto d = v->to_double();
  if (!d) throw Error(type_mismatch(path(), key, *v, "a number"));
  return d;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  const auto b = v->to_bool();
  if (!b) throw Error(type_mismatch(path(), key, *v, "bool"));
  return b;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  const std::string* s = v->to_string();
  if (s == nullptr) throw Error(type_mismatch(path(), key, *v, "string"));
  return *s;
}

std::vector<std::string> GgufFile::get_strings(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return {};
  if (!v->is_array() || v->elem_type() != ValueType::String) {
    throw Error(type_mismatch(path(), key, *v, "array of string"));
  }
  return v->strings();
}

std::vector<float> GgufFile::get_floats(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return {};
  auto out = v->to_vector<float>();
  if (!out) throw Error(type_mismatch(path(), key, *v, "array of numbers"));
  return *out;
}

std::vector<int32_t> GgufFile::get_ints(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return {};
  const bool integral = v->is_array() && value_type_size(v->elem_type()) != 0 &&
                        v->elem_type() != ValueType::F32 && v->elem_type() != ValueType::F64;
  auto out = integral ? v->to_vector<int32_t>() : std::nullopt;
  if (!out) throw Error(type_mismatch(path(), key, *v, "array of integers"));
  return *out;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const TensorInfo& info) const { return file_->data() + info.file_offset; }

uint64_t GgufFile::n_parameters() const {
  uint64_t n = 0;
  for (const TensorInfo& t : tensors_) n += t.n_elements;
  return n;
}

size_t GgufFile::release_tensor_pages(const TensorInfo& info) const {
  return file_->release(tensor_data(info), static_cast<size_t>(info.n_bytes));
}

}  // namespace slm::gguf
