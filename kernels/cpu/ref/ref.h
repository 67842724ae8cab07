// Scalar reference kernels: the specification every ISA path is tested
// against. Internal to kernels/ (and its tests).
#pragma once

#include "cpu/kernels.h"

namespace slm::kernels::ref {

// ---- formats (quant_ref.cpp)
void dequantize_row(DType type, const void* src, float* out, int64_t n);
// Activation formats.
void quantize_row_q8_act(const float* x, void* out, int64_t n);  // BlockQ8Act
void quantize_row_q8_k_act(const float* x, void* out, int64_t n);  // BlockQ8_KAct
void quantize_row_q8_k(const float* x, void* out, int64_t n);      // BlockQ8_K (GGUF Q8_K)
// Weight formats.
void quantize_row_q8_0(const float* x, void* out, int64_t n);
void quantize_row_q4_0(const float* x, void* out, int64_t n);
void quantize_row_q4_1(const float* x, void* out, int64_t n);
void quantize_row_q5_0(const float* x, void* out, int64_t n);
void quantize_row_q5_1(const float* x, void* out, int64_t n);
void quantize_row_q2_k(const float* x, void* out, int64_t n);
void quantize_row_q3_k(const float* x, void* out, int64_t n);
void quantize_row_q4_k(const float* x, void* out, int64_t n);
void quantize_row_q5_k(const float* x, void* out, int64_t n);
void quantize_row_q6_k(const float* x, void* out, int64_t n);

// Round to nearest, ties to even, for |v| < 2^22: the rounding every
// quantizer uses, and the one SIMD conversions (cvtps, vcvtnq) perform, so
// vector quantizers can match the reference bit for bit.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.0f;  // 1.5 * 2^23: the integer lands in the low mantissa bits
  int32_t bits;
  __builtin_memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007FFFFF) - 0x00400000;
}

// ---- the reference table (table_ref.cpp)
const KernelTable& table();

// Fills the dot-product entries of a table with the reference ones.
void fill_dot_table(KernelTable& t);

}  // namespace slm::kernels::ref
