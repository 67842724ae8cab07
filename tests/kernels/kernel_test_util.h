// Shared helpers for the kernel tests: deterministic random data, weight
// rows in every format, and the ISA list under test.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "cpu/kernels.h"
#include "cpu/ref/ref.h"

namespace slm::kernels::testing {

inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Student-t with 3 degrees of freedom: heavy tails, like real weight outliers.
inline std::vector<float> heavy_tailed(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> dist(3.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Every weight type with a dot kernel.
inline std::vector<DType> weight_types() {
  return {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
          DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
}

// rows x cols weights of `type` (row-major, row_bytes apart) from Gaussian
// data; Q2_K / Q3_K (which slm does not write) get random bits with small
// random scales.
inline std::vector<uint8_t> make_weights(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  const size_t rb = static_cast<size_t>(row_bytes(type, static_cast<uint64_t>(cols)));
  std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
  if (type == DType::Q2_K || type == DType::Q3_K) {
    std::mt19937 rng(seed);
    for (auto& b : out) b = static_cast<uint8_t>(rng());
    const size_t block = traits(type).type_size;
    std::uniform_real_distribution<float> scale(0.001f, 0.02f);
    for (size_t off = 0; off < out.size(); off += block) {
      // d (and dmin) are the last 4 / 2 bytes of the block.
      const uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(scale(rng));
      if (type == DType::Q2_K) {
        std::memcpy(&out[off + block - 4], &d, 2);
        std::memcpy(&out[off + block - 2], &dmin, 2);
      } else {
        std::memcpy(&out[off + block - 2], &d, 2);
      }
    }
    return out;
  }
  const std::vector<float> x = gaussian(static_cast<size_t>(rows * cols), seed, 0.05f);
  for (int64_t r = 0; r < rows; ++r) quantize_row(type, x.data() + r * cols, out.data() + r * rb, cols);
  return out;
}

inline std::vector<float> dequantize(DType type, const uint8_t* data, int64_t rows, int64_t cols) {
  const size_t rb = static_cast<size_t>(row_bytes(type, static_cast<uint64_t>(cols)));
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) ref::dequantize_row(type, data + r * rb, out.data() + r * cols, cols);
  return out;
}

// A copy of `bytes` starting `offset` bytes past an aligned address, to
// exercise unaligned loads.
struct Unaligned {
  std::vector<uint8_t> storage;
  size_t offset;
  Unaligned(const void* data, size_t n, size_t off) : storage(n + 64), offset(off) {
    std::memcpy(storage.data() + offset, data, n);
  }
  uint8_t* get() { return storage.data() + offset; }
};

inline std::vector<Isa> simd_isas() {
  std::vector<Isa> out;
  for (Isa isa : available_isas())
    if (isa != Isa::ref) out.push_back(isa);
  return out;
}

inline std::string isa_label(Isa isa) { return std::string(isa_name(isa)); }

}  // namespace slm::kernels::testing
