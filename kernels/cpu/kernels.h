// The CPU kernel interface: one table of function pointers per instruction
// set, filled once at start-up.
//
// Every entry is a single-threaded function over the range it is given; the
// runtime splits work across threads (see parallel.h). The scalar reference
// table (Isa::ref) is the specification: every other table must agree with it
// within the tolerance its test names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace slm::kernels {

// Instruction-set paths, best last within each family.
enum class Isa {
  ref,          // portable scalar C++, compiled without auto-vectorisation
  avx2,         // AVX2 + FMA + F16C
  avx512,       // AVX-512 F/BW/VL/DQ
  avx512_vnni,  // AVX-512 + VNNI (int8 dot products in one instruction)
  neon,         // aarch64 Advanced SIMD (+ fp16 conversions)
  neon_dotprod, // aarch64 + SDOT
};

std::string_view isa_name(Isa isa);

// Activation formats the dot kernels read. A matmul converts its input rows
// once into the format its weight type pairs with.
enum class ActFormat {
  f32,    // plain floats: F32 / F16 / BF16 weights
  q8_32,  // BlockQ8Act: 32 int8 + float scale + scaled sum (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
  q8_k,   // BlockQ8_KAct: 256 int8 + float scale + sums of 16 and of 32 (K formats)
};
int64_t act_block_size(ActFormat f);
size_t act_row_bytes(ActFormat f, int64_t n);  // n must be a multiple of the block
std::string_view act_format_name(ActFormat f);

// Most activation tiles a dot kernel handles at once (GEMM reuses each
// decoded weight block across this many tokens).
constexpr int kMaxDotCols = 4;

// One weight row (n elements, row bytes of its type) against `nx` activation
// rows already converted to the weight type's activation format, the rows
// `x_stride` bytes apart: out[c] = dot(w, x_c) for c < nx <= kMaxDotCols.
using DotFn = void (*)(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
// Two weight rows (the second w_stride bytes after the first) against the
// same activation rows: out[r * kMaxDotCols + c] = dot(w_r, x_c). Optional:
// the GEMM uses it to load each activation block once for two rows.
using Dot2Fn = void (*)(int64_t n, const void* w, size_t w_stride, const void* x, size_t x_stride, int nx,
                        float* out);
// Eight row-interleaved weight rows (blocks.h BlockX8: rows packed by
// pack_rows_x8) against `nx` activation rows: out[r * kMaxDotCols + c] =
// dot(w_r, x_c) for r < 8, c < nx <= kMaxDotCols.
using DotX8Fn = void (*)(int64_t n, const void* w, const void* x, size_t x_stride, int nx, float* out);
// Expands n elements of TypeKernels::expanded_rows / 8 consecutive packed
// K-quant groups (pack_rows_x8, `group_bytes` apart) into n / 256
// blocks.h ExpandedK<expanded_rows> at `out` (64-byte aligned).
using ExpandRunFn = void (*)(int64_t n, const void* packed, size_t group_bytes, void* out);
// Converts n floats (a multiple of the format's block) to another format.
using ConvertRowFn = void (*)(const float* x, void* out, int64_t n);

struct TypeKernels {
  DotFn dot = nullptr;                   // null: the type cannot be a matmul weight
  ActFormat act = ActFormat::f32;        // activation format dot() expects
  ConvertRowFn quantize_act = nullptr;   // f32 -> act (null for f32)
  Dot2Fn dot2 = nullptr;                 // two-row GEMM kernel, when the path has one
  DotX8Fn dot_x8 = nullptr;              // row-interleaved kernel: weights of this type are
                                         // repacked at load when the active path has one
  // Optional, together: token chunks longer than a tile expand each run of
  // expanded_rows rows (8 or 16: one or two groups) once with expand_run,
  // and dot_expanded reads the ExpandedK blocks for all the chunk's tiles,
  // giving dot_x8's bits (out[r * kMaxDotCols + c] for r < expanded_rows).
  ExpandRunFn expand_run = nullptr;
  DotX8Fn dot_expanded = nullptr;
  int expanded_rows = 8;
};
constexpr int kMaxExpandedRows = 16;

// Attention of a block of query rows that share one KV head (the heads of a
// GQA group, over one or more tokens) against that head's cached keys and
// values. Every row's result depends only on its own q, its key range and
// the cache: never on which other rows share the call. Keys are visited in
// chunks of kAttentionChunk positions aligned on absolute positions, with an
// online softmax across chunks (running max m, running sum l, output
// rescaled by exp(m_old - m_new)); so batching rows differently, or a
// different thread count, gives bit-identical results.
constexpr int kAttentionChunk = 64;

// Bytes of one cached row of `head_dim` elements of a KV cache type (F32,
// F16 or Q8_0; Q8_0 needs head_dim % 32 == 0).
size_t kv_row_bytes(DType type, int64_t head_dim);
bool is_kv_type(DType type);

struct AttentionArgs {
  int n_rows = 0;                      // query rows, <= kMaxAttentionRows
  const float* const* q = nullptr;     // q[r]: [head_dim]
  float* const* out = nullptr;         // out[r]: [head_dim]
  const int64_t* first = nullptr;      // row r attends positions [first[r], last[r]]
  const int64_t* last = nullptr;
  const void* k = nullptr;             // position j's key at k + row(j) * k_row_bytes
  const void* v = nullptr;             // its value at v + row(j) * v_row_bytes
  DType k_type = DType::F16;           // F32, F16 or Q8_0 (kv_row_bytes)
  DType v_type = DType::F16;
  size_t k_row_bytes = 0, v_row_bytes = 0;
  int64_t ring = 0;                    // row(j) = j, or j % ring for a ring buffer of that many rows
  int head_dim = 0;
  float scale = 1.0f;                  // multiplies q·k before soft-capping
  float softcap = 0.0f;                // s -> softcap * tanh(s / softcap) when > 0
  float* scratch = nullptr;            // attention_scratch_floats(n_rows) floats
};
constexpr int kMaxAttentionRows = 64;
inline size_t attention_scratch_floats(int n_rows) {
  return static_cast<size_t>(n_rows) * (kAttentionChunk + 3);
}

struct KernelTable {
  Isa isa = Isa::ref;
  TypeKernels types[40];  // indexed by DType id

  // ---- elementwise and reductions (n any length, pointers any alignment)
  // out = x / sqrt(mean(x^2) + eps) * w   (out may alias x)
  void (*rmsnorm)(const float* x, const float* w, float eps, int64_t n, float* out) = nullptr;
  // in place: x = exp(x - max) / sum
  void (*softmax)(float* x, int64_t n) = nullptr;
  void (*silu)(const float* x, float* out, int64_t n) = nullptr;
  void (*gelu)(const float* x, float* out, int64_t n) = nullptr;  // tanh form
  // out = act(gate) * up, the gated MLP (out may alias gate or up)
  void (*swiglu)(const float* gate, const float* up, float* out, int64_t n) = nullptr;
  void (*geglu)(const float* gate, const float* up, float* out, int64_t n) = nullptr;
  void (*add)(float* y, const float* x, int64_t n) = nullptr;      // y += x
  void (*scale)(float* x, float s, int64_t n) = nullptr;           // x *= s
  void (*softcap)(float* x, float cap, int64_t n) = nullptr;       // x = cap*tanh(x/cap)
  // Rotates n_heads heads of head_dim floats (head h at x + h*head_dim) over
  // the first n_rot dims with the per-pair cos/sin of rope_angles().
  void (*rope)(float* x, int n_heads, int head_dim, int n_rot, const float* cos, const float* sin,
               bool neox) = nullptr;
  void (*attention)(const AttentionArgs& args) = nullptr;
  // One row of head_dim floats into a KV cache row (kv_row_bytes).
  void (*store_kv)(DType type, const float* x, void* out, int64_t head_dim) = nullptr;
  // f32 <-> f16 rows (KV cache writes; F16 activations)
  void (*f32_to_f16)(const float* x, uint16_t* out, int64_t n) = nullptr;
  // Sum of n floats with the widest loads the path has: the streaming read
  // that measures memory bandwidth (membw.cpp), so the roofline is what this
  // path's kernels can actually pull from DRAM.
  float (*read_sum)(const float* x, int64_t n) = nullptr;
};

// The table for an instruction set this build has (throws slm::Error if the
// build lacks it or this CPU cannot run it — never SIGILL).
const KernelTable& kernel_table(Isa isa);

// The process-wide table: chosen once from the environment variable SLM_ISA
// (ref|avx2|avx512|avx512_vnni|neon|neon_dotprod) or the best the CPU runs.
// set_active_isa() overrides it (the CLI's --isa); call it before any work.
const KernelTable& active_kernels();
void set_active_isa(Isa isa);
// Parses an ISA name (isa_name() spellings, or "auto" for the best path this
// CPU runs). Throws on unknown names.
Isa parse_isa(std::string_view name);

// Every path compiled into this build and runnable on this CPU, ref first.
std::vector<Isa> available_isas();
Isa best_isa();

// ---- helpers shared by every path (no ISA-specific code)

// Per-pair RoPE coefficients for one position: for i < n_rot / 2,
// theta = pos * base^(-2i / n_rot) / factor_i (factors may be null = 1),
// cos[i] = cos(theta) * attn_factor, sin[i] = sin(theta) * attn_factor.
// Computed in double so large positions keep their precision.
void rope_angles(int64_t pos, int n_rot, float base, const float* factors, float attn_factor,
                 float* cos, float* sin);

// Dequantizes a row of n elements of any supported type (reference code:
// used for embedding lookups, tests and tools).
void dequantize_row(DType type, const void* src, float* out, int64_t n);
// Whether dequantize_row supports a type.
bool can_dequantize(DType type);

// Weight quantizers (reference; the quantize tool runs them once per row).
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K
// (Q2_K / Q3_K are read but not written). n must be a multiple of the block.
void quantize_row(DType type, const float* x, void* out, int64_t n);
bool can_quantize(DType type);

// Row interleaving (blocks.h BlockX8, BlockQ4_Kx8, the F16 / BF16 element
// interleave), for the types that have a layout: Q4_0, Q8_0, Q4_K, Q5_K,
// Q6_K, F16, BF16. Whether `type` has one.
bool can_interleave(DType type);
// Bytes of one interleaved group of 8 rows of `cols` elements.
size_t x8_group_bytes(DType type, int64_t cols);
// Packs 8 rows of `cols` elements (the first at `rows`, the next row_bytes
// apart) into one interleaved group at `out` (x8_group_bytes).
void pack_rows_x8(DType type, const void* rows, size_t row_bytes, int64_t cols, void* out);
// The inverse: row r < 8 of a packed group back to plain blocks.
void unpack_row_x8(DType type, const void* packed, int64_t cols, int r, void* out);

}  // namespace slm::kernels
