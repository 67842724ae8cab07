// The CUDA kernels, as plain C++ functions the backend (src/model/cuda) calls
// with device pointers. Every launch goes to `stream`; nothing here
// synchronises. The math of each op is the CPU reference's
// (kernels/cpu/ref/ops_ref.cpp, ../shared/docs/model-math.md); the weight
// formats are kernels/cpu/blocks.h, shared with the CPU code.
//
// Shapes: "[n, K] ld" is n rows of K floats, row t at t * ld.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace slm::kernels::cuda {

// Whether the device kernels can read weights of `type` (matmul, embedding).
bool supports(DType type);

// Weight rows as the device kernels read them ("device rows"). The
// 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) are re-laid out once,
// at upload: a row holds the quants of all its blocks first (16 or 32 bytes
// per block, so each block's quants are one aligned 16-byte load), then each
// other field of the block (scale, minimum, high bits) as an array of its
// own, every array starting on a 16-byte boundary. In the file's layout a
// block's quants sit at 2-byte alignment and a warp reads them two bytes at
// a time. Every other format keeps the file's layout. Every kernel below
// that reads weights takes device rows, `row_bytes` apart.
size_t device_row_bytes(DType type, int64_t K);
// Whether type's device rows differ from the file's (a re-laid-out format).
bool relaid_out(DType type);
// `rows` rows of K elements in the file's layout (src, src_row_bytes apart)
// as device rows into dst (device_row_bytes(type, K) apart); host memory.
void to_device_rows(DType type, int64_t K, int64_t rows, const void* src, size_t src_row_bytes, void* dst);

// x[t] = dequant(table row tokens[t]) * scale for t < n; x is [n, E].
void embed(DType type, const void* table, size_t row_bytes, const int32_t* tokens, int n, int E, float scale,
           float* x, cudaStream_t stream);

// W rows [row0, row0 + rows) as f32 into out ([rows, K]).
void dequantize_rows(DType type, const void* w, size_t row_bytes, int64_t row0, int64_t rows, int64_t K, float* out,
                     cudaStream_t stream);

// y[t][r] = sum_k W[r][k] * x[t][k] for t < n, r < rows: one pass over the
// weights per kGemvMaxTokens tokens, dequantized in registers, f32
// accumulation. x is [n, K] ldx, y is [n, rows] ldy; scratch holds
// gemv_scratch_floats(n, K) floats (the activations, re-laid out). With
// Store::add, y[t][r] += the sum instead (the residual join: the same
// rounding as writing the sum and adding it).
constexpr int kGemvMaxTokens = 8;
enum class Store { write, add };
size_t gemv_scratch_floats(int n, int64_t K);
void gemv(DType type, const void* w, size_t row_bytes, int64_t rows, int64_t K, const float* x, int64_t ldx, int n,
          float* y, int64_t ldy, float* scratch, cudaStream_t stream, Store store = Store::write);

// The same product with int8 dot products (dp4a) for the 32-element formats
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): the activations are first quantized to
// BlockQ8Act (kernels/cpu/blocks.h), bit for bit as the CPU's
// quantize_row_q8_act, and each block contributes d_w * d_x * sum(q_w * q_x)
// + m_w * s_x, the CPU's dot_q_act. Reads 36-40 activation bytes per 32
// weights instead of 128, and integer math. K must be a multiple of 32;
// scratch as for gemv.
bool gemv_q8_supports(DType type, int64_t K);
void gemv_q8(DType type, const void* w, size_t row_bytes, int64_t rows, int64_t K, const float* x, int64_t ldx, int n,
             float* y, int64_t ldy, float* scratch, cudaStream_t stream, Store store = Store::write);
// x ([n, K] ldx) as BlockQ8Act blocks, [n][K / 32], into q.
void quantize_q8_act(const float* x, int64_t ldx, int n, int64_t K, void* q, cudaStream_t stream);
// gemv_q8 on activations already quantized (quantize_q8_act, rmsnorm_q8,
// gated_q8): xq is [n][K / 32] blocks.
void gemv_q8_quantized(DType type, const void* w, size_t row_bytes, int64_t rows, int64_t K, const void* xq, int n,
                       float* y, int64_t ldy, cudaStream_t stream, Store store = Store::write);

// out[r] = in[r] * rsqrt(mean(in[r]^2) + eps) * w for `rows` rows of `dim`
// floats: row (t, h) of a [n, heads * dim] ld buffer, so one call covers a
// residual stream (heads = 1) or every head of q / k (out may alias in).
// dim <= kMaxNormDim.
constexpr int kMaxNormDim = 8192;
// rmsnorm of whole rows (heads = 1) that also writes the outputs as 8-bit
// activations into q, exactly as quantize_q8_act would: the int8 GEMV's
// input without another pass. dim must be a multiple of 32.
void rmsnorm_q8(const float* in, int64_t ld_in, float* out, int64_t ld_out, int n, int dim, const float* w, float eps,
                void* q, cudaStream_t stream);
void rmsnorm(const float* in, int64_t ld_in, float* out, int64_t ld_out, int n, int heads, int dim, const float* w,
             float eps, cudaStream_t stream);

// A layer's RoPE and KV-cache write in one launch: RoPE (pairs (p, p +
// n_rot/2) for neox, else (2p, 2p + 1); cos/sin [n, n_rot / 2]) on the first
// n_rot dims of every query head of q ([n, heads * D] ldq, in place) and of
// every key head of k, the rotated keys and the values (k, v: [n, kv_heads
// * D] ldk) written to cache row (pos0 + t) % rows as f16 (uint16_t bits) or
// f32. pos0 is read from device memory (*pos0), so a recorded decode step (a
// CUDA graph) replays at every position.
struct RopeStoreShape {
  int n = 0, heads = 0, kv_heads = 0, head_dim = 0, n_rot = 0;
  int64_t ldq = 0, ldk = 0, rows = 0;
  bool neox = false, kv_f16 = true;
  const int64_t* pos0 = nullptr;
};
void rope_store(const RopeStoreShape& s, float* q, const float* k, const float* v, const float* cos, const float* sin,
                void* k_cache, void* v_cache, cudaStream_t stream);

// Causal attention of every (token, head): token t at position pos0 + t
// attends to keys [max(0, pos - window + 1), pos] (window 0: from 0), read
// from the cache (row = key % ring when ring > 0), with scale, optional soft
// cap, online softmax. q is [n, H * D] ldq; out is [n, H * D]. pos0 is in
// device memory, as for rope_store, and must be written before the kernels
// of the batch start (the decode kernel reads it before it waits for the
// previous kernel).
// With q8 (head_dim a multiple of 32): the outputs' 8-bit activations too,
// [n][H * D / 32] blocks as quantize_q8_act writes them — written by the
// decode kernel as it stores the outputs, by a separate pass for batches.
//
// Decode batches (n <= kAttentionDecodeMax) may split each token's keys
// among up to `splits` blocks per KV head (flash-decoding: long contexts
// keep the GPU busy), merged by the last block to finish. With splits > 1:
// partials holds attention_partial_floats(n, heads, head_dim, splits)
// floats and counters n * heads zeros (each merge leaves its counter 0).
constexpr int kMaxAttentionSplits = 16;
struct AttentionShape {
  int n = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t ldq = 0, kv_dim = 0, window = 0, ring = 0;
  const int64_t* pos0 = nullptr;
  float scale = 1, softcap = 0;
  bool kv_f16 = true;
  void* q8 = nullptr;
  int splits = 1;  // 1 .. kMaxAttentionSplits
  float* partials = nullptr;
  unsigned* counters = nullptr;
};
// The splits for a context of n_ctx positions: chunks of at least 256 keys.
int attention_splits(int64_t n_ctx);
inline size_t attention_partial_floats(int n, int heads, int head_dim, int splits) {
  return static_cast<size_t>(n) * static_cast<size_t>(heads) * static_cast<size_t>(splits) *
         (2 + static_cast<size_t>(head_dim));
}
// Up to this many tokens take the decode kernel (keys split across threads);
// more take the tiled one (query tiles sharing K/V tiles in shared memory).
constexpr int kAttentionDecodeMax = 4;
void attention(const AttentionShape& s, const float* q, const void* k_cache, const void* v_cache, float* out,
               cudaStream_t stream);

// rope_store then attention, as one kernel for a decode step of one token
// (when one launch covers the query heads of a KV head: at most 8 per KV
// head); other batches take the two kernels. The same results either way.
void rope_store_attention(const RopeStoreShape& r, const AttentionShape& s, float* q, const float* k, const float* v,
                          const float* cos, const float* sin, void* k_cache, void* v_cache, float* out,
                          cudaStream_t stream);

enum class GatedAct { silu, gelu };
// out[t][i] = act(gate[t][i]) * up[t][i], i < F; gate/up rows at ld_in, out rows at ld_out.
void gated(GatedAct act, const float* gate, const float* up, int64_t ld_in, float* out, int64_t ld_out, int n, int F,
           cudaStream_t stream);
// The same, also writing the outputs as 8-bit activations into q ([n][F /
// 32] blocks, as quantize_q8_act). F must be a multiple of 32.
void gated_q8(GatedAct act, const float* gate, const float* up, int64_t ld_in, float* out, int64_t ld_out, int n, int F,
              void* q, cudaStream_t stream);

void add(float* y, const float* x, int64_t n, cudaStream_t stream);               // y += x
void softcap(float* x, float cap, int64_t n, cudaStream_t stream);                // x = cap * tanh(x / cap)

}  // namespace slm::kernels::cuda
