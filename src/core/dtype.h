// GGML tensor types: the id stored in GGUF files, the name, and the block
// geometry (elements per block, bytes per block) of every type ever assigned
// an id, so any file can be described even where slm cannot compute with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace slm {

// Values are the on-disk GGML type ids. Gaps are ids that were retired
// (Q4_2, Q4_3, the Q4_0_x_y and IQ4_NL_x_y repacked layouts).
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct DTypeTraits {
  DType type;
  std::string_view name;    // "Q4_K", as GGML and the GGUF tools print it
  uint32_t block_size;      // elements per block (1 for plain types)
  uint32_t type_size;       // bytes per block
  bool is_quantized;
};

// Traits of a known type id, or nullopt for an id no GGML version assigned.
std::optional<DTypeTraits> dtype_traits(uint32_t id);

// Traits of a known type (never fails for a valid enum value).
const DTypeTraits& traits(DType type);

inline std::string_view dtype_name(DType type) { return traits(type).name; }

// Looks a type up by its name, case-insensitively ("q4_k" -> Q4_K).
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes of one row of n_elements; n_elements must be a multiple of the
// block size (the caller checks: see row_size_checked in the GGUF reader).
inline uint64_t row_bytes(DType type, uint64_t n_elements) {
  const DTypeTraits& t = traits(type);
  return n_elements / t.block_size * t.type_size;
}

// Every known type, in id order (for tables and tests).
const DTypeTraits* all_dtypes(size_t* count);

// general.file_type values ("MOSTLY_Q4_K_M"); nullopt for unknown values.
std::optional<std::string_view> file_type_name(uint32_t file_type);

}  // namespace slm
