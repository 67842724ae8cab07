#include "core/dtype.h"

#include <array>
#include <cctype>

namespace slm {
namespace {

// Block geometry from the GGML block structs (see kernels/ for the layouts of
// the formats slm computes with). K-quants and IQ types use 256-element
// super-blocks.
constexpr DTypeTraits kTypes[] = {
    {DType::F32, "F32", 1, 4, false},
    {DType::F16, "F16", 1, 2, false},
    {DType::Q4_0, "Q4_0", 32, 18, true},      // f16 d + 16 B nibbles
    {DType::Q4_1, "Q4_1", 32, 20, true},      // f16 d, m + 16 B
    {DType::Q5_0, "Q5_0", 32, 22, true},      // f16 d + 4 B high bits + 16 B
    {DType::Q5_1, "Q5_1", 32, 24, true},      // f16 d, m + 4 B + 16 B
    {DType::Q8_0, "Q8_0", 32, 34, true},      // f16 d + 32 int8
    {DType::Q8_1, "Q8_1", 32, 36, true},      // f16 d, s + 32 int8
    {DType::Q2_K, "Q2_K", 256, 84, true},     // 16 scales + 64 qs + f16 d, dmin
    {DType::Q3_K, "Q3_K", 256, 110, true},    // 32 hmask + 64 qs + 12 scales + f16 d
    {DType::Q4_K, "Q4_K", 256, 144, true},    // f16 d, dmin + 12 scales + 128 qs
    {DType::Q5_K, "Q5_K", 256, 176, true},    // f16 d, dmin + 12 scales + 32 qh + 128 qs
    {DType::Q6_K, "Q6_K", 256, 210, true},    // 128 ql + 64 qh + 16 scales + f16 d
    {DType::Q8_K, "Q8_K", 256, 292, true},    // f32 d + 256 int8 + 16 int16 bsums
    {DType::IQ2_XXS, "IQ2_XXS", 256, 66, true},
    {DType::IQ2_XS, "IQ2_XS", 256, 74, true},
    {DType::IQ3_XXS, "IQ3_XXS", 256, 98, true},
    {DType::IQ1_S, "IQ1_S", 256, 50, true},
    {DType::IQ4_NL, "IQ4_NL", 32, 18, true},
    {DType::IQ3_S, "IQ3_S", 256, 110, true},
    {DType::IQ2_S, "IQ2_S", 256, 82, true},
    {DType::IQ4_XS, "IQ4_XS", 256, 136, true},
    {DType::I8, "I8", 1, 1, false},
    {DType::I16, "I16", 1, 2, false},
    {DType::I32, "I32", 1, 4, false},
    {DType::I64, "I64", 1, 8, false},
    {DType::F64, "F64", 1, 8, false},
    {DType::IQ1_M, "IQ1_M", 256, 56, true},
    {DType::BF16, "BF16", 1, 2, false},
    {DType::TQ1_0, "TQ1_0", 256, 54, true},
    {DType::TQ2_0, "TQ2_0", 256, 66, true},
    {DType::MXFP4, "MXFP4", 32, 17, true},
};

constexpr uint32_t kMaxId = 39;

// id -> index into kTypes, -1 for unassigned ids.
constexpr std::array<int, kMaxId + 1> make_index() {
  std::array<int, kMaxId + 1> index{};
  for (auto& i : index) i = -1;
  for (size_t i = 0; i < sizeof(kTypes) / sizeof(kTypes[0]); ++i) {
    index[static_cast<uint32_t>(kTypes[i].type)] = static_cast<int>(i);
  }
  return index;
}
constexpr std::array<int, kMaxId + 1> kIndex = make_index();

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<DTypeTraits> dtype_traits(uint32_t id) {
  if (id > kMaxId || kIndex[id] < 0) return std::nullopt;
  return kTypes[kIndex[id]];
}

const DTypeTraits& traits(DType type) { return kTypes[kIndex[static_cast<uint32_t>(type)]]; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& t : kTypes) {
    if (iequals(t.name, name)) return t.type;
  }
  return std::nullopt;
}

const DTypeTraits* all_dtypes(size_t* count) {
  *count = sizeof(kTypes) / sizeof(kTypes[0]);
  return kTypes;
}

std::optional<std::string_view> file_type_name(uint32_t file_type) {
  // The llama_ftype values written to general.file_type (retired values omitted).
  switch (file_type) {
    case 0: return "ALL_F32";
    case 1: return "MOSTLY_F16";
    case 2: return "MOSTLY_Q4_0";
    case 3: return "MOSTLY_Q4_1";
    case 7: return "MOSTLY_Q8_0";
    case 8: return "MOSTLY_Q5_0";
    case 9: return "MOSTLY_Q5_1";
    case 10: return "MOSTLY_Q2_K";
    case 11: return "MOSTLY_Q3_K_S";
    case 12: return "MOSTLY_Q3_K_M";
    case 13: return "MOSTLY_Q3_K_L";
    case 14: return "MOSTLY_Q4_K_S";
    case 15: return "MOSTLY_Q4_K_M";
    case 16: return "MOSTLY_Q5_K_S";
    case 17: return "MOSTLY_Q5_K_M";
    case 18: return "MOSTLY_Q6_K";
    case 19: return "MOSTLY_IQ2_XXS";
    case 20: return "MOSTLY_IQ2_XS";
    case 21: return "MOSTLY_Q2_K_S";
    case 22: return "MOSTLY_IQ3_XS";
    case 23: return "MOSTLY_IQ3_XXS";
    case 24: return "MOSTLY_IQ1_S";
    case 25: return "MOSTLY_IQ4_NL";
    case 26: return "MOSTLY_IQ3_S";
    case 27: return "MOSTLY_IQ3_M";
    case 28: return "MOSTLY_IQ2_S";
    case 29: return "MOSTLY_IQ2_M";
    case 30: return "MOSTLY_IQ4_XS";
    case 31: return "MOSTLY_IQ1_M";
    case 32: return "MOSTLY_BF16";
    case 36: return "MOSTLY_TQ1_0";
    case 37: return "MOSTLY_TQ2_0";
    case 38: return "MOSTLY_MXFP4_MOE";
    default: return std::nullopt;
  }
}

}  // namespace slm
