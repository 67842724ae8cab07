#include "cpu/attention.h"

#include <algorithm>
#include <vector>

#include "cpu/parallel.h"

namespace slm::kernels {

void attention(const KernelTable& k, const AttentionProblem& p, int n_threads) {
  const int64_t group = p.n_head / p.n_head_kv;
  const int64_t rows_per_head = p.n_tokens * group;  // row i: token i / group, head g * group + i % group
  // Blocks of up to kMaxAttentionRows rows, small enough for ~8 tasks per
  // thread (decode: one row per task when the heads are few).
  const int64_t tasks_wanted = 8 * static_cast<int64_t>(std::max(1, n_threads));
  const int64_t block = std::clamp<int64_t>((p.n_head_kv * rows_per_head + tasks_wanted - 1) / tasks_wanted, 1,
                                            kMaxAttentionRows);
  const int64_t blocks_per_head = (rows_per_head + block - 1) / block;
  const size_t k_row = kv_row_bytes(p.k_type, p.head_dim), v_row = kv_row_bytes(p.v_type, p.head_dim);
  parallel_for(p.n_head_kv * blocks_per_head, n_threads, [&](int64_t begin, int64_t end) {
    const float* q[kMaxAttentionRows];
    float* out[kMaxAttentionRows];
    int64_t first[kMaxAttentionRows], last[kMaxAttentionRows];
    thread_local std::vector<float> scratch;
    scratch.resize(attention_scratch_floats(kMaxAttentionRows));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / blocks_per_head, r0 = task % blocks_per_head * block;
      const int n = static_cast<int>(std::min(block, rows_per_head - r0));
      for (int r = 0; r < n; ++r) {
        const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
        q[r] = p.q + t * p.q_stride + h * p.head_dim;
        out[r] = p.out + t * p.out_stride + h * p.head_dim;
        last[r] = p.pos0 + t;
        first[r] = p.window > 0 ? std::max<int64_t>(0, last[r] - p.window + 1) : 0;
      }
      AttentionArgs a;
      a.n_rows = n;
      a.q = q;
      a.out = out;
      a.first = first;
      a.last = last;
      a.k = static_cast<const uint8_t*>(p.k) + static_cast<size_t>(g) * p.k_head_bytes;
      a.v = static_cast<const uint8_t*>(p.v) + static_cast<size_t>(g) * p.v_head_bytes;
      a.k_type = p.k_type;
      a.v_type = p.v_type;
      a.k_row_bytes = k_row;
      a.v_row_bytes = v_row;
      a.ring = p.ring;
      a.head_dim = p.head_dim;
      a.scale = p.scale;
      a.softcap = p.softcap;
      a.scratch = scratch.data();
      k.attention(a);
    }
  });
}

}  // namespace slm::kernels
