// The GGML type table against the GGML block layouts (sizes from the format
// definitions, not from this code) — the manifest check in test_gguf_reader
// cross-checks the same table against an independent reader.
#include <gtest/gtest.h>

#include "core/dtype.h"

namespace slm {
namespace {

struct Expected {
  uint32_t id;
  const char* name;
  uint32_t block;
  uint32_t bytes;
};

// Sizes worked out from each block struct: e.g. Q4_K = f16 d + f16 dmin +
// 12 packed 6-bit scales + 256/2 nibbles = 144.
constexpr Expected kExpected[] = {
    {0, "F32", 1, 4},          {1, "F16", 1, 2},          {2, "Q4_0", 32, 2 + 16},
    {3, "Q4_1", 32, 4 + 16},   {6, "Q5_0", 32, 2 + 4 + 16}, {7, "Q5_1", 32, 4 + 4 + 16},
    {8, "Q8_0", 32, 2 + 32},   {9, "Q8_1", 32, 4 + 32},   {10, "Q2_K", 256, 16 + 64 + 4},
    {11, "Q3_K", 256, 32 + 64 + 12 + 2}, {12, "Q4_K", 256, 4 + 12 + 128}, {13, "Q5_K", 256, 4 + 12 + 32 + 128},
    {14, "Q6_K", 256, 128 + 64 + 16 + 2}, {15, "Q8_K", 256, 4 + 256 + 32}, {16, "IQ2_XXS", 256, 2 + 64},
    {17, "IQ2_XS", 256, 2 + 64 + 8}, {18, "IQ3_XXS", 256, 2 + 96}, {19, "IQ1_S", 256, 2 + 32 + 16},
    {20, "IQ4_NL", 32, 2 + 16}, {21, "IQ3_S", 256, 2 + 64 + 8 + 32 + 4}, {22, "IQ2_S", 256, 2 + 64 + 8 + 8},
    {23, "IQ4_XS", 256, 2 + 2 + 4 + 128}, {24, "I8", 1, 1}, {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},         {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 32 + 16 + 8}, {30, "BF16", 1, 2},   {34, "TQ1_0", 256, 48 + 4 + 2},
    {35, "TQ2_0", 256, 64 + 2}, {39, "MXFP4", 32, 1 + 16},
};

TEST(DType, EveryKnownIdHasTheGgmlGeometry) {
  for (const Expected& e : kExpected) {
    const auto t = dtype_traits(e.id);
    ASSERT_TRUE(t.has_value()) << "type id " << e.id;
    EXPECT_EQ(t->name, e.name) << "type id " << e.id;
    EXPECT_EQ(t->block_size, e.block) << e.name;
    EXPECT_EQ(t->type_size, e.bytes) << e.name;
    EXPECT_EQ(static_cast<uint32_t>(t->type), e.id);
  }
  size_t n = 0;
  all_dtypes(&n);
  EXPECT_EQ(n, sizeof(kExpected) / sizeof(kExpected[0]));
}

TEST(DType, RetiredAndOutOfRangeIdsAreUnknown) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u, 0xFFFFFFFFu}) {
    EXPECT_FALSE(dtype_traits(id).has_value()) << id;
  }
}

TEST(DType, NamesLookUpCaseInsensitively) {
  EXPECT_EQ(dtype_from_name("q4_k"), DType::Q4_K);
  EXPECT_EQ(dtype_from_name("Bf16"), DType::BF16);
  EXPECT_EQ(dtype_from_name("F32"), DType::F32);
  EXPECT_FALSE(dtype_from_name("q4_k_m").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
}

TEST(DType, RowBytes) {
  EXPECT_EQ(row_bytes(DType::Q4_0, 3072), 3072u / 32 * 18);
  EXPECT_EQ(row_bytes(DType::Q6_K, 8192), 8192u / 256 * 210);
  EXPECT_EQ(row_bytes(DType::F16, 7), 14u);
}

TEST(DType, FileTypeNames) {
  EXPECT_EQ(file_type_name(15), "MOSTLY_Q4_K_M");
  EXPECT_EQ(file_type_name(0), "ALL_F32");
  EXPECT_EQ(file_type_name(32), "MOSTLY_BF16");
  EXPECT_FALSE(file_type_name(4).has_value());  // retired
  EXPECT_FALSE(file_type_name(1000).has_value());
}

}  // namespace
}  // namespace slm
