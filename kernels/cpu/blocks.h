// GGUF / GGML block layouts, bit-exact.
//
// A quantized row is a sequence of blocks; each block holds `kBlock*`
// elements. Scales are IEEE half (`uint16_t` bits) unless noted. The element
// order inside a block is what the file format defines — read the layout
// comment before touching a kernel. The scalar reference in ref/quant_ref.cpp
// is the executable form of these comments.
#pragma once

#include <cstddef>
#include <cstdint>

// The CUDA kernels (kernels/cuda) read the same structs and call the same
// unpacking helpers on the device: one definition of every format.
#if defined(__CUDACC__)
#define SLM_HOST_DEVICE __host__ __device__
#else
#define SLM_HOST_DEVICE
#endif

namespace slm::kernels {

constexpr int kQK = 32;     // elements per block of the 32-element formats
constexpr int kQK_K = 256;  // elements per super-block of the K formats

// Q4_0: x = d * (q - 8), q in 0..15.
// qs[j] holds element j in its low nibble and element j + 16 in its high one.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes");

// Q4_1: x = d * q + m, q in 0..15; nibbles as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block is 20 bytes");

// Q5_0: x = d * (q - 16), q in 0..31. Low 4 bits as in Q4_0; bit 4 of
// element j is bit j of the little-endian 32-bit word qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block is 22 bytes");

// Q5_1: x = d * q + m, q in 0..31; bits as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block is 24 bytes");

// Q8_0: x = d * q, q in -127..127 (the format allows -128), element j = qs[j].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

// Row-interleaved copies of Q4_0 and Q8_0, made once at load (matmul.h
// pack_weight_matrix): block i of 8 consecutive rows in one struct, so one
// 32-byte load holds 4 quant bytes of each of the 8 rows and an integer dot
// product lands one row per 32-bit lane — the per-block conversion and
// scaling then cost one instruction for 8 rows instead of one per row.
//   d[k]                       the f16 scale of row k's block i
//   qs[32 * s + 4 * k + j]     byte 4 * s + j of row k's block i (its qs),
//                              for step s < kBytes / 4, row k < 8, j < 4
// Q4_0x8: 4 steps; step s's low nibbles are elements 4s..4s+3 of each row,
// its high nibbles elements 16+4s..16+4s+3. Q8_0x8: 8 steps of elements
// 4s..4s+3. Rows past the last full group of 8 stay in the plain layout.
constexpr int kInterleave = 8;
template <int kBytes>
struct BlockX8 {
  uint16_t d[kInterleave];
  uint8_t qs[kInterleave * kBytes];
};
using BlockQ4_0x8 = BlockX8<kQK / 2>;
using BlockQ8_0x8 = BlockX8<kQK>;
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0), "Q4_0x8 holds 8 Q4_0 blocks");
static_assert(sizeof(BlockQ8_0x8) == 8 * sizeof(BlockQ8_0), "Q8_0x8 holds 8 Q8_0 blocks");

// Row-interleaved F16 / BF16: 8 elements of each of the 8 rows per 128-byte
// block, so a kernel pass over a few rows reads short contiguous runs and
// the 8 rows' data for a stretch of elements is one contiguous range:
//   h[64 * b + 8 * k + j]      element 8b + j of row k, for b < cols / 8
//   h[64 * nb + t * k + j]     the t = cols % 8 last elements (nb = cols / 8)
constexpr int64_t half_x8_index(int64_t cols, int k, int64_t e) {
  return e < cols / 8 * 8 ? 64 * (e / 8) + 8 * k + e % 8 : cols / 8 * 64 + (cols % 8) * k + e % 8;
}

// Q8_1: Q8_0 plus s = d * sum(qs) (a GGUF format slm reads; slm's own
// activations use BlockQ8Act below).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block is 36 bytes");

// slm's activation format for the 32-element weight formats (not a GGUF
// type): x = d * q with float d, so kernels never convert an f16 scale per
// block, and s = d * sum(qs), so a weight minimum or zero point costs one
// multiply per block: sum((q_w - 8) * q_x) = sum(q_w * q_x) - 8 * sum(q_x).
struct BlockQ8Act {
  float d;
  float s;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8Act) == 40, "activation block is 40 bytes");

// Q2_K: 16 sub-blocks of 16. scales[i]: low nibble = scale, high = min of
// sub-block i; x = d * scale * q - dmin * min, q in 0..3. qs is read in two
// halves of 32 bytes (elements 0..127, 128..255); within a half, bits 2k..2k+1
// of qs[l] hold element 32k + l.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block is 84 bytes");

// Q3_K: 16 sub-blocks of 16 with 6-bit scales (stored biased by 32, packed
// in 12 bytes: low 4 bits in bytes 0..7, high 2 bits in bytes 8..11).
// x = d * (scale - 32) * (q - 4 * !hbit), q in 0..3 from qs laid out as in
// Q2_K; hbit of element e is bit (e / 32) of hmask[e % 32].
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block is 110 bytes");

// Q4_K: 8 sub-blocks of 32, each with a 6-bit scale and 6-bit min packed in
// scales[12] (see unpack_scale_min_k4). x = d * scale * q - dmin * min,
// q in 0..15. qs is four 32-byte groups; group g holds sub-block 2g in the
// low nibbles and sub-block 2g + 1 in the high nibbles.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes");

// Q5_K: Q4_K plus a fifth bit: bit 4 of element 32s + l is bit s of qh[l].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes");

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; x = d * scale * (q - 32),
// q in 0..63. Two halves of 128 elements; in half h (ql += 64h, qh += 32h),
// for l in 0..31: element l      = ql[l] low  | (qh[l] bits 0-1) << 4,
//                 element l + 32 = ql[l+32] low | (qh[l] bits 2-3) << 4,
//                 element l + 64 = ql[l] high | (qh[l] bits 4-5) << 4,
//                 element l + 96 = ql[l+32] high | (qh[l] bits 6-7) << 4.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes");

// GGUF Q8_K: float d, qs in -127..127 and the sum of each group of 16 qs
// (slm's K activations are BlockQ8_KAct below, which begins alike).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block is 292 bytes");

// slm's activation format for the K formats (ActFormat::q8_k; not a GGUF
// type): a Q8_K block plus the sum of each group of 32 qs. Q6_K (and Q2_K,
// Q3_K) scale every 16 elements and take bsums; Q4_K / Q5_K have one min
// per 32 elements and take bsums32 — half the multiplies for their min term
// (the x86 VNNI prefill kernel gained 5 % from it; a standalone copy 9 %).
struct BlockQ8_KAct {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
  int16_t bsums32[kQK_K / 32];  // bsums32[j] = bsums[2j] + bsums[2j + 1]
};
static_assert(sizeof(BlockQ8_KAct) == 308, "K activation block is 308 bytes");

// Row-interleaved Q4_K (see BlockX8): super-block i of 8 consecutive rows.
// The 6-bit scales and mins are stored unpacked (one byte each), ordered
// for the kernel: 32 bytes more than 8 plain blocks (2.8 %).
//   d[k], dmin[k]              row k's super-block scales (f16)
//   scales[j][k]               row k's scale of sub-block j < 8
//   mins[p][k][h]              row k's min of sub-block 2p + h (p < 4, h < 2):
//                              a pair of sub-blocks per row as two bytes
//   qs[32 * s + 4 * k + i]     byte 4 * s + i of row k's qs, s < 32: step s
//                              is in group g = s / 8; its low nibbles are
//                              elements 64g + 4(s % 8) + i (sub-block 2g),
//                              its high nibbles 32 further (sub-block 2g + 1)
struct BlockQ4_Kx8 {
  uint16_t d[kInterleave];
  uint16_t dmin[kInterleave];
  uint8_t scales[8][kInterleave];
  uint8_t mins[4][kInterleave][2];
  uint8_t qs[kInterleave * kQK_K / 2];
};
static_assert(sizeof(BlockQ4_Kx8) == 8 * sizeof(BlockQ4_K) + 32, "Q4_Kx8 holds 8 Q4_K blocks, scales unpacked");

// Row-interleaved Q5_K: Q4_Kx8 for the scales and low four bits, and the
// fifth bits interleaved as the quant bytes of one group are:
//   qh[32 * t + 4 * k + i]     byte 4 * t + i of row k's qh, t < 8
// so step s's quant vector (its bytes are qs bytes 4 * (s % 8) + i of group
// g = s / 8) meets qh vector t = s % 8, whose bit 2g is the fifth bit of the
// low nibbles and bit 2g + 1 that of the high nibbles (BlockQ5_K).
struct BlockQ5_Kx8 {
  BlockQ4_Kx8 low;
  uint8_t qh[kInterleave * kQK_K / 8];
};
static_assert(sizeof(BlockQ5_Kx8) == 8 * sizeof(BlockQ5_K) + 32, "Q5_Kx8 holds 8 Q5_K blocks, scales unpacked");

// Row-interleaved Q6_K: ql and qh each interleaved 4 bytes per row per
// 32-byte step, the scales in pairs per row (a sub-block pair's two scales
// are the two 16-bit halves of a row's lane after one widening).
//   d[k]                       row k's scale (f16)
//   scales[p][k][h]            row k's scale of sub-block 2p + h (p < 8)
//   ql[32 * s + 4 * k + i]     byte 4 * s + i of row k's ql, s < 32
//   qh[32 * t + 4 * k + i]     byte 4 * t + i of row k's qh, t < 16
// So in half h, for u < 8 (BlockQ6_K's element rules with l = 4u + i):
// ql step 16h + u holds elements 4u + i (low nibbles) and 64 + 4u + i (high),
// ql step 16h + 8 + u elements 32 + 4u + i and 96 + 4u + i, and qh step
// 8h + u all four elements' high bits.
struct BlockQ6_Kx8 {
  uint16_t d[kInterleave];
  int8_t scales[8][kInterleave][2];
  uint8_t ql[kInterleave * kQK_K / 2];
  uint8_t qh[kInterleave * kQK_K / 4];
};
static_assert(sizeof(BlockQ6_Kx8) == 8 * sizeof(BlockQ6_K), "Q6_Kx8 holds 8 Q6_K blocks");

// One super-block of kRows row-interleaved K-quant rows (kRows / 8
// consecutive Q4_Kx8, Q5_Kx8 or Q6_Kx8 groups) expanded for a prefill
// chunk: matmul_rows builds it once per group and token chunk, and every
// 4-token tile of the chunk reads it (the packed kernels rebuild the levels
// from the bits for each tile). Not stored in a file or kept past the chunk.
// Every scale sub-block is 16 elements here (a Q4_K / Q5_K scale covers two
// of them; offsets go by groups, below):
//   q[s][4 * k + i]       row k's level of element 4 * s + i, 0..63 (Q6_K
//                         stored +32, Q4_K / Q5_K as stored)
//   scale[j][2 * k + h]   row k's scale of sub-block j, in both 16-bit halves
//   offset[p][2 * k + h]  row k's level offset coefficient of group 2p + h:
//                         Q6_K 32 * the scale of 16-element sub-block
//                         2p + h (p < 8); Q4_K / Q5_K the min of 32-element
//                         sub-block 2p + h (p < 4; 4..7 unused)
//   d[k], dmin[k]         row k's super-block scales as f32 (dmin: Q4_K, Q5_K)
// A row's dot with a BlockQ8_KAct is d * sum_j scale_j * (q . x)_j minus
// (dmin or d) * sum_g offset_g * (group sum g of x: BlockQ8_KAct's bsums for
// Q6_K, bsums32 for Q4_K / Q5_K). The paths' kernels take
// 8 rows (256-bit vectors) or 16 (512-bit: TypeKernels::expanded_rows).
template <int kRows>
struct alignas(64) ExpandedK {
  uint8_t q[kQK_K / 4][4 * kRows];
  int16_t scale[kQK_K / 16][2 * kRows];
  int16_t offset[kQK_K / 32][2 * kRows];
  float d[kRows];
  float dmin[kRows];
};
using ExpandedKx8 = ExpandedK<kInterleave>;
using ExpandedKx16 = ExpandedK<2 * kInterleave>;
static_assert(sizeof(ExpandedKx8) == 2880, "ExpandedKx8: levels, scales, offsets and two f32 scales per row");
static_assert(sizeof(ExpandedKx16) == 2 * sizeof(ExpandedKx8), "a 16-row expansion is two 8-row ones' bytes");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block:
// j < 4: scale = low 6 bits of byte j, min = low 6 bits of byte j + 4;
// j >= 4: low 4 bits from byte j + 4 (scale: low nibble, min: high nibble),
//         high 2 bits from the top bits of byte j - 4 (scale) / byte j (min).
SLM_HOST_DEVICE inline void unpack_scale_min_k4(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The 16 signed scales (already minus 32) of a Q3_K block.
SLM_HOST_DEVICE inline void unpack_scales_q3_k(const uint8_t* packed, int8_t out[16]) {
  for (int i = 0; i < 16; ++i) {
    const int low = (i < 8) ? (packed[i] & 0xF) : (packed[i - 8] >> 4);
    const int high = (packed[8 + (i % 4)] >> (2 * (i / 4))) & 3;
    out[i] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

}  // namespace slm::kernels
