// A GGUF file holding every metadata type and a few tensors, built with the
// writer, shared by the writer and malformed-input tests.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"

namespace slm::gguf::test {

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

inline void add_every_metadata_type(GgufWriter& w) {
  w.set("general.architecture", Value::string("llama"));
  w.set("t.u8", Value::scalar(uint8_t{250}));
  w.set("t.i8", Value::scalar(int8_t{-120}));
  w.set("t.u16", Value::scalar(uint16_t{65000}));
  w.set("t.i16", Value::scalar(int16_t{-32000}));
  w.set("t.u32", Value::scalar(uint32_t{4000000000u}));
  w.set("t.i32", Value::scalar(int32_t{-2000000000}));
  w.set("t.f32", Value::scalar(3.25f));
  w.set("t.bool_true", Value::scalar(true));
  w.set("t.bool_false", Value::scalar(false));
  w.set("t.u64", Value::scalar(std::numeric_limits<uint64_t>::max()));
  w.set("t.i64", Value::scalar(std::numeric_limits<int64_t>::min()));
  w.set("t.f64", Value::scalar(-1.0e300));
  w.set("t.f32_nan", Value::scalar(std::numeric_limits<float>::quiet_NaN()));
  w.set("t.string", Value::string("h\xC3\xA9llo \xE2\x96\x81 world"));
  w.set("t.string_empty", Value::string(""));
  w.set("t.string_nul", Value::string(std::string("a\0b", 3)));
  w.set("t.arr_u8", Value::array(std::vector<uint8_t>{1, 2, 255}));
  w.set("t.arr_i8", Value::array(std::vector<int8_t>{-1, 0, 1}));
  w.set("t.arr_u16", Value::array(std::vector<uint16_t>{1, 65535}));
  w.set("t.arr_i16", Value::array(std::vector<int16_t>{-32768, 32767}));
  w.set("t.arr_u32", Value::array(std::vector<uint32_t>{0, 1, 4294967295u}));
  w.set("t.arr_i32", Value::array(std::vector<int32_t>{-5, 6, 7}));
  w.set("t.arr_f32", Value::array(std::vector<float>{0.5f, -1.5f}));
  w.set("t.arr_bool", Value::array(std::vector<bool>{true, false, true}));
  w.set("t.arr_u64", Value::array(std::vector<uint64_t>{std::numeric_limits<uint64_t>::max(), 3}));
  w.set("t.arr_i64", Value::array(std::vector<int64_t>{std::numeric_limits<int64_t>::min() + 1, -7}));
  w.set("t.arr_f64", Value::array(std::vector<double>{1e-300, 2.5}));
  w.set("t.arr_empty", Value::array(std::vector<float>{}));
  w.set("t.arr_string", Value::string_array({"<s>", "", "\xE2\x96\x81the", "x"}));
  w.set("t.arr_nested", Value::array_of_arrays({Value::array(std::vector<int32_t>{1, 2}),
                                                Value::string_array({"a", "bc"}),
                                                Value::array_of_arrays({Value::array(std::vector<uint8_t>{9})}),
                                                Value::array(std::vector<double>{})}));
}

// Adds tensors of several types with random contents; returns their bytes.
inline std::vector<std::vector<uint8_t>> add_tensors(GgufWriter& w) {
  struct Spec {
    const char* name;
    DType type;
    std::vector<int64_t> ne;
  };
  const Spec specs[] = {
      {"token_embd.weight", DType::F32, {8, 3}},
      {"blk.0.attn_q.weight", DType::Q4_0, {64, 5}},
      {"blk.0.ffn_down.weight", DType::Q6_K, {256, 2}},
      {"blk.0.attn_norm.weight", DType::F16, {7}},  // odd byte count: exercises padding
      {"blk.0.big.weight", DType::I8, {3, 2, 2, 2}},
  };
  std::vector<std::vector<uint8_t>> data;
  uint32_t seed = 1;
  for (const Spec& s : specs) {
    uint64_t n = 1;
    for (int64_t d : s.ne) n *= d;
    const uint64_t bytes = n / traits(s.type).block_size * traits(s.type).type_size;
    data.push_back(random_bytes(bytes, seed++));
    w.add_tensor(s.name, s.type, s.ne, data.back());
  }
  return data;
}

}  // namespace slm::gguf::test
