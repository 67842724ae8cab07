// y = W x for a batch of tokens: the one entry point the runtime uses for
// every projection, whatever the weight type.
//
// Two phases: (1) the activations are converted once to the weight type's
// activation format (kernels.h ActFormat: 8-bit blocks for quantized weights, f32
// for float weights); (2) the rows of W are split
// across threads and each range runs the ISA's dot kernel on tiles of up to
// kMaxDotCols tokens, so a decoded weight block serves several tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/kernels.h"

namespace slm::kernels {

// A weight matrix as stored in GGUF: `rows` rows of `cols` elements, each
// row `row_bytes` long (ne = [cols, rows]).
// Rows [0, packed_rows) may instead be read from `packed`: the same rows
// re-laid in groups of 8 (blocks.h BlockX8, BlockQ4_Kx8; x8_group_bytes per
// group), made
// by pack_weight_matrix for a table with a row-interleaved kernel.
struct WeightMatrix {
  const void* data = nullptr;
  DType type = DType::F32;
  int64_t cols = 0;
  int64_t rows = 0;
  size_t row_bytes = 0;
  const void* packed = nullptr;
  int64_t packed_rows = 0;   // a multiple of 8; rows from here on are read from data
  Isa packed_for = Isa::ref; // the path that packed it (for logs and tests)
};

WeightMatrix make_weight_matrix(const void* data, DType type, int64_t cols, int64_t rows);

// Whether table k would re-lay a matrix of this type and row count.
bool can_pack(const KernelTable& k, DType type, int64_t rows);
// Re-lays the full groups of 8 rows of `w` for table k's row-interleaved
// kernel (when can_pack), into `storage` (allocated here, x8_group_bytes
// per group), using n_threads threads. Returns the matrix reading
// them; w's own rows [0, packed_rows) are not read by matmul afterwards (the
// caller may release their pages). Without a kernel, returns w unchanged.
WeightMatrix pack_weight_matrix(const KernelTable& k, const WeightMatrix& w, std::unique_ptr<uint8_t[]>& storage,
                                int n_threads);

// Bytes of one token's converted activations for this weight type.
size_t activation_row_bytes(const KernelTable& k, DType type, int64_t cols);

// Phase 1 for tokens [t0, t1): x is [n_tokens, cols] f32 (row stride cols),
// acts receives activation_row_bytes per token.
void convert_activations(const KernelTable& k, DType type, const float* x, int64_t cols, int64_t t0, int64_t t1,
                         void* acts);

// Tokens per chunk of phase 2 for activations of this many bytes per token
// (a multiple of kMaxDotCols): tests use it to cross chunk boundaries.
int64_t matmul_token_chunk(size_t act_row_bytes);

// Phase 2 for weight rows [r0, r1): y[t * ldy + r] = dot(W[r], x_t) for every
// token t < n_tokens.
void matmul_rows(const KernelTable& k, const WeightMatrix& w, const void* acts, int64_t n_tokens, float* y,
                 int64_t ldy, int64_t r0, int64_t r1);

// Both phases across n_threads threads (parallel_for). `scratch` grows to fit
// the converted activations and is reused between calls.
void matmul(const KernelTable& k, const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
            int n_threads, std::vector<uint8_t>& scratch);

}  // namespace slm::kernels
