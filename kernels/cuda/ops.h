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

// x[t] = dequant(table row tokens[t]) * scale for t < n; x is [n, E].
void embed(DType type, const void* table, size_t row_bytes, const int32_t* tokens, int n, int E, float scale,
           float* x, cudaStream_t stream);

// W rows [row0, row0 + rows) as f32 into out ([rows, K]).
void dequantize_rows(DType type, const void* w, size_t row_bytes, int64_t row0, int64_t rows, int64_t K, float* out,
                     cudaStream_t stream);

// y[t][r] = sum_k W[r][k] * x[t][k] for t < n, r < rows: one pass over the
// weights per kGemvMaxTokens tokens, dequantized in registers, f32
// accumulation. x is [n, K] ldx, y is [n, rows] ldy; scratch holds
// gemv_scratch_floats(n, K) floats (the activations, re-laid out).
constexpr int kGemvMaxTokens = 8;
size_t gemv_scratch_floats(int n, int64_t K);
void gemv(DType type, const void* w, size_t row_bytes, int64_t rows, int64_t K, const float* x, int64_t ldx, int n,
          float* y, int64_t ldy, float* scratch, cudaStream_t stream);

// out[r] = in[r] * rsqrt(mean(in[r]^2) + eps) * w for `rows` rows of `dim`
// floats: row (t, h) of a [n, heads * dim] ld buffer, so one call covers a
// residual stream (heads = 1) or every head of q / k (out may alias in).
void rmsnorm(const float* in, int64_t ld_in, float* out, int64_t ld_out, int n, int heads, int dim, const float* w,
             float eps, cudaStream_t stream);

// RoPE on the first n_rot dims of each of `heads` heads of every row of x
// ([n, heads * head_dim] ld); cos/sin are [n, n_rot / 2].
void rope(float* x, int64_t ld, int n, int heads, int head_dim, int n_rot, const float* cos, const float* sin,
          bool neox, cudaStream_t stream);

// Rows t < n of src ([n, kv_dim] ld) into cache row (pos0 + t) % rows, as f16
// (uint16_t bits) or f32.
void kv_store(const float* src, int64_t ld, int n, int kv_dim, int64_t pos0, int64_t rows, void* cache, bool f16,
              cudaStream_t stream);

// Causal attention of every (token, head): token t at position pos0 + t
// attends to keys [max(0, pos - window + 1), pos] (window 0: from 0), read
// from the cache (row = key % ring when ring > 0), with scale, optional soft
// cap, online softmax. q is [n, H * D] ldq; out is [n, H * D].
struct AttentionShape {
  int n = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t ldq = 0, kv_dim = 0, pos0 = 0, window = 0, ring = 0;
  float scale = 1, softcap = 0;
  bool kv_f16 = true;
};
// Up to this many tokens take the decode kernel (keys split across threads);
// more take the tiled one (query tiles sharing K/V tiles in shared memory).
constexpr int kAttentionDecodeMax = 4;
void attention(const AttentionShape& s, const float* q, const void* k_cache, const void* v_cache, float* out,
               cudaStream_t stream);

enum class GatedAct { silu, gelu };
// out[t][i] = act(gate[t][i]) * up[t][i], i < F; gate/up rows at ld_in, out rows at ld_out.
void gated(GatedAct act, const float* gate, const float* up, int64_t ld_in, float* out, int64_t ld_out, int n, int F,
           cudaStream_t stream);

void add(float* y, const float* x, int64_t n, cudaStream_t stream);               // y += x
void softcap(float* x, float cap, int64_t n, cudaStream_t stream);                // x = cap * tanh(x / cap)

}  // namespace slm::kernels::cuda
