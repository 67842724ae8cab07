// A GGUF metadata value: any scalar type, a string, or an array (of scalars,
// strings, or further arrays). Used by both the reader and the writer; values
// own their data, so a file's metadata outlives its mapping.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace slm::gguf {

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "slm reads GGUF (little-endian) by memcpy and needs a little-endian host"
#endif

// On-disk value type ids (gguf_type).
enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

constexpr bool is_valid_value_type(uint32_t id) { return id <= 12; }

// "uint32", "float32", "string", "array", ... (the names GGUF tools print).
std::string_view value_type_name(ValueType type);

// Bytes of one scalar of `type` on disk; 0 for String and Array.
size_t value_type_size(ValueType type);

// Maps a C++ scalar type to its GGUF type id.
template <class T> struct ValueTypeOf;
template <> struct ValueTypeOf<uint8_t> { static constexpr ValueType value = ValueType::U8; };
template <> struct ValueTypeOf<int8_t> { static constexpr ValueType value = ValueType::I8; };
template <> struct ValueTypeOf<uint16_t> { static constexpr ValueType value = ValueType::U16; };
template <> struct ValueTypeOf<int16_t> { static constexpr ValueType value = ValueType::I16; };
template <> struct ValueTypeOf<uint32_t> { static constexpr ValueType value = ValueType::U32; };
template <> struct ValueTypeOf<int32_t> { static constexpr ValueType value = ValueType::I32; };
template <> struct ValueTypeOf<float> { static constexpr ValueType value = ValueType::F32; };
template <> struct ValueTypeOf<bool> { static constexpr ValueType value = ValueType::Bool; };
template <> struct ValueTypeOf<uint64_t> { static constexpr ValueType value = ValueType::U64; };
template <> struct ValueTypeOf<int64_t> { static constexpr ValueType value = ValueType::I64; };
template <> struct ValueTypeOf<double> { static constexpr ValueType value = ValueType::F64; };

class Value {
 public:
  Value() = default;  // an uint8 0; use the factories below

  // A scalar of the GGUF type matching T (uint32_t -> U32, float -> F32, ...).
  template <class T>
  static Value scalar(T v) {
    Value out;
    out.type_ = ValueTypeOf<T>::value;
    std::memcpy(&out.bits_, &v, sizeof(T));
    return out;
  }
  static Value string(std::string s);
  // An array of scalars of the GGUF type matching T.
  template <class T>
  static Value array(const std::vector<T>& items) {
    Value out;
    out.type_ = ValueType::Array;
    out.elem_type_ = ValueTypeOf<T>::value;
    out.n_ = items.size();
    out.raw_.resize(items.size() * sizeof(T));
    for (size_t i = 0; i < items.size(); ++i) {
      const T item = items[i];  // vector<bool> has no data()
      std::memcpy(out.raw_.data() + i * sizeof(T), &item, sizeof(T));
    }
    return out;
  }
  static Value string_array(std::vector<std::string> items);
  static Value array_of_arrays(std::vector<Value> items);  // each item must be an array
  // An array of scalars from raw little-endian bytes (n * size of elem).
  static Value raw_array(ValueType elem, uint64_t n, std::vector<uint8_t> bytes);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::Array; }
  bool is_integer() const;  // U8..I64, not Bool
  bool is_float() const { return type_ == ValueType::F32 || type_ == ValueType::F64; }

  // Scalars. Each returns nullopt when the value is not of a compatible type
  // (or the integer does not fit).
  std::optional<int64_t> to_int() const;    // any integer type
  std::optional<uint64_t> to_uint() const;  // any non-negative integer
  std::optional<double> to_double() const;  // F32, F64 or any integer
  std::optional<bool> to_bool() const;      // Bool
  const std::string* to_string() const;     // String, else null

  // Arrays.
  ValueType elem_type() const { return elem_type_; }
  uint64_t size() const { return n_; }
  const std::vector<uint8_t>& raw() const { return raw_; }           // scalar elements, LE bytes
  const std::vector<std::string>& strings() const { return strings_; }  // String elements
  const std::vector<Value>& items() const { return items_; }            // Array elements
  // Scalar elements converted to T (numeric arrays only; nullopt otherwise).
  template <class T>
  std::optional<std::vector<T>> to_vector() const;

  // Exact equality: same types and the same bits (NaN == NaN bitwise).
  bool operator==(const Value& other) const;
  bool operator!=(const Value& other) const { return !(*this == other); }

 private:
  template <class T>
  static T element(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
  // Element i of a scalar array, converted to T without a detour through
  // double (int64 values survive exactly).
  template <class T>
  T element_as(uint64_t i) const {
    const uint8_t* p = raw_.data() + i * value_type_size(elem_type_);
    switch (elem_type_) {
      case ValueType::U8: return static_cast<T>(element<uint8_t>(p));
      case ValueType::I8: return static_cast<T>(element<int8_t>(p));
      case ValueType::U16: return static_cast<T>(element<uint16_t>(p));
      case ValueType::I16: return static_cast<T>(element<int16_t>(p));
      case ValueType::U32: return static_cast<T>(element<uint32_t>(p));
      case ValueType::I32: return static_cast<T>(element<int32_t>(p));
      case ValueType::F32: return static_cast<T>(element<float>(p));
      case ValueType::Bool: return static_cast<T>(element<uint8_t>(p) != 0);
      case ValueType::U64: return static_cast<T>(element<uint64_t>(p));
      case ValueType::I64: return static_cast<T>(element<int64_t>(p));
      case ValueType::F64: return static_cast<T>(element<double>(p));
      default: return T{};
    }
  }

  ValueType type_ = ValueType::U8;
  uint64_t bits_ = 0;  // scalar: the value's bytes, zero-extended
  std::string str_;
  ValueType elem_type_ = ValueType::U8;
  uint64_t n_ = 0;
  std::vector<uint8_t> raw_;
  std::vector<std::string> strings_;
  std::vector<Value> items_;
};

template <class T>
std::optional<std::vector<T>> Value::to_vector() const {
  static_assert(std::is_arithmetic_v<T>);
  if (type_ != ValueType::Array || value_type_size(elem_type_) == 0) return std::nullopt;
  std::vector<T> out(n_);
  for (uint64_t i = 0; i < n_; ++i) out[i] = element_as<T>(i);
  return out;
}

}  // namespace slm::gguf
