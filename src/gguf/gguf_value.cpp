#include "gguf/gguf_value.h"

#include <limits>

namespace slm::gguf {

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::U8: return "uint8";
    case ValueType::I8: return "int8";
    case ValueType::U16: return "uint16";
    case ValueType::I16: return "int16";
    case ValueType::U32: return "uint32";
    case ValueType::I32: return "int32";
    case ValueType::F32: return "float32";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
    case ValueType::Array: return "array";
    case ValueType::U64: return "uint64";
    case ValueType::I64: return "int64";
    case ValueType::F64: return "float64";
  }
  return "invalid";
}

size_t value_type_size(ValueType type) {
  switch (type) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::Bool: return 1;
    case ValueType::U16:
    case ValueType::I16: return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32: return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64: return 8;
    case ValueType::String:
    case ValueType::Array: return 0;
  }
  return 0;
}

Value Value::string(std::string s) {
  Value out;
  out.type_ = ValueType::String;
  out.str_ = std::move(s);
  return out;
}

Value Value::string_array(std::vector<std::string> items) {
  Value out;
  out.type_ = ValueType::Array;
  out.elem_type_ = ValueType::String;
  out.n_ = items.size();
  out.strings_ = std::move(items);
  return out;
}

Value Value::array_of_arrays(std::vector<Value> items) {
  Value out;
  out.type_ = ValueType::Array;
  out.elem_type_ = ValueType::Array;
  out.n_ = items.size();
  out.items_ = std::move(items);
  return out;
}

Value Value::raw_array(ValueType elem, uint64_t n, std::vector<uint8_t> bytes) {
  Value out;
  out.type_ = ValueType::Array;
  out.elem_type_ = elem;
  out.n_ = n;
  out.raw_ = std::move(bytes);
  return out;
}

bool Value::is_integer() const {
  switch (type_) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::U16:
    case ValueType::I16:
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::U64:
    case ValueType::I64: return true;
    default: return false;
  }
}

std::optional<int64_t> Value::to_int() const {
  const auto* p = reinterpret_cast<const uint8_t*>(&bits_);
  switch (type_) {
    case ValueType::U8: return element<uint8_t>(p);
    case ValueType::I8: return element<int8_t>(p);
    case ValueType::U16: return element<uint16_t>(p);
    case ValueType::I16: return element<int16_t>(p);
    case ValueType::U32: return element<uint32_t>(p);
    case ValueType::I32: return element<int32_t>(p);
    case ValueType::I64: return element<int64_t>(p);
    case ValueType::U64: {
      const auto v = element<uint64_t>(p);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(v);
    }
    default: return std::nullopt;
  }
}

std::optional<uint64_t> Value::to_uint() const {
  if (type_ == ValueType::U64) return bits_;
  const auto v = to_int();
  if (!v || *v < 0) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

std::optional<double> Value::to_double() const {
  const auto* p = reinterpret_cast<const uint8_t*>(&bits_);
  if (type_ == ValueType::F32) return element<float>(p);
  if (type_ == ValueType::F64) return element<double>(p);
  if (type_ == ValueType::U64) return static_cast<double>(bits_);
  if (const auto v = to_int()) return static_cast<double>(*v);
  return std::nullopt;
}

std::optional<bool> Value::to_bool() const {
  if (type_ != ValueType::Bool) return std::nullopt;
  return bits_ != 0;
}

const std::string* Value::to_string() const { return type_ == ValueType::String ? &str_ : nullptr; }

bool Value::operator==(const Value& other) const {
  if (type_ != other.type_) return false;
  if (type_ == ValueType::String) return str_ == other.str_;
  if (type_ != ValueType::Array) return bits_ == other.bits_;
  return elem_type_ == other.elem_type_ && n_ == other.n_ && raw_ == other.raw_ &&
         strings_ == other.strings_ && items_ == other.items_;
}

}  // namespace slm::gguf
