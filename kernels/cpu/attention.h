// Causal (optionally sliding-window) attention of a batch of tokens against a
// KV cache, split across threads: the runtime side of KernelTable::attention.
#pragma once

#include <cstdint>

#include "cpu/kernels.h"

namespace slm::kernels {

struct AttentionProblem {
  // Queries: token t's head h at q + t * q_stride + h * head_dim; the result
  // goes to the same place in out (out_stride).
  const float* q = nullptr;
  int64_t q_stride = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
  int64_t n_tokens = 0;
  int64_t pos0 = 0;     // token t is at position pos0 + t and attends [first, pos0 + t]
  int64_t window = 0;   // first = max(0, pos - window + 1); 0: first = 0
  int n_head = 0, n_head_kv = 0, head_dim = 0;  // query head h reads KV head h / (n_head / n_head_kv)
  // The cache: KV head g's rows at k + g * k_head_bytes (row(j) as in AttentionArgs).
  const void* k = nullptr;
  const void* v = nullptr;
  size_t k_head_bytes = 0, v_head_bytes = 0;
  DType k_type = DType::F16, v_type = DType::F16;
  int64_t ring = 0;
  float scale = 1.0f, softcap = 0.0f;
};

// Tasks are blocks of query rows of one KV head (its GQA group's heads over
// consecutive tokens), so each block reads its K/V rows once for all its
// rows; blocks are sized for a few tasks per thread. Results do not depend
// on the thread count (AttentionArgs).
void attention(const KernelTable& k, const AttentionProblem& p, int n_threads);

}  // namespace slm::kernels
