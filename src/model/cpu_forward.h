// The CPU backend: the KV cache in host memory and the Forward pieces on the
// CPU kernel table (kernels/cpu), threaded over tokens, heads and rows.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/kernels.h"
#include "model/forward.h"

namespace slm::model {

// K and V for every layer, head-major: layer l's K is n_head_kv blocks of
// rows(l) rows of head_dim elements (so one head's keys are contiguous and
// attention streams them), V the same. A layer holds every position of the
// context (rows == n_ctx) or, for a sliding-window layer, a ring of the last
// rows(l) positions (position p in row p % rows). Element types: F16, F32 or
// Q8_0 (kernels::kv_row_bytes), K and V each their own. One per sequence.
class KvCache {
 public:
  // rows[l]: rows of layer l (n_ctx, or a ring size below it). Memory is
  // committed as rows are written; check_fits() first.
  KvCache(const std::vector<int64_t>& rows, int64_t n_ctx, int n_head_kv, int head_dim, DType k_type, DType v_type);
  // Bytes that n_seq such caches take; throws slm::Error naming the size
  // when the machine could not back them once they fill.
  static size_t check_fits(const std::vector<int64_t>& rows, int64_t n_ctx, int n_head_kv, int head_dim, DType k_type,
                           DType v_type, int n_seq);
  // Head 0 of layer l's K or V; head g is head_bytes(which, l) further.
  const void* k(int layer) const { return base(layer, 0); }
  const void* v(int layer) const { return base(layer, 1); }
  DType type(int which) const { return which == 0 ? k_type_ : v_type_; }
  size_t head_bytes(int which, int layer) const { return static_cast<size_t>(rows(layer)) * row_bytes_[which]; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t rows(int layer) const { return rows_[static_cast<size_t>(layer)]; }
  bool is_ring(int layer) const { return rows(layer) < n_ctx_; }
  size_t bytes() const { return bytes_; }
  // Stores position pos's K or V (n_head_kv * head_dim floats) in its rows.
  void store(int layer, int which, int64_t pos, const float* row, const kernels::KernelTable& k);

 private:
  uint8_t* base(int layer, int which) const;
  std::vector<int64_t> rows_;
  std::vector<size_t> offset_;  // byte offset of layer l's K; its V follows
  int64_t n_ctx_;
  int n_head_kv_, head_dim_;
  DType k_type_, v_type_;
  size_t row_bytes_[2];  // one head's row of K, of V
  std::unique_ptr<uint8_t[]> data_;  // uninitialised: pages are committed as rows are written
  size_t bytes_ = 0;
};

class CpuForward final : public Forward {
 public:
  CpuForward(const Model& model, const ForwardConfig& config, const std::vector<RopeState>& ropes,
             const kernels::KernelTable& k);

  float* x() override { return x_.data(); }
  float* xn() override { return xn_.data(); }
  float* o() override { return o_.data(); }
  void norm(const float* in, const Weight& w, float* out) override;
  void attention(int layer, const float* in, float* out, Store store) override;
  void gated_mlp(int layer, const float* in, float* out, Activation act, Store store) override;
  void add_residual(const float* o) override;
  void logits(int64_t first, float* out) override;
  bool keep_rows(const std::vector<int64_t>& rows) override;
  size_t scratch_bytes() const override;
  size_t kv_bytes() const override;

 private:
  void embed(const int32_t* tokens) override;
  // y = W x for the batch (rows of in are `in_dim` long).
  void matmul(const kernels::WeightMatrix& w, const float* in, int64_t n, float* out, int64_t ldy);
  // The sub-layer's output projection into out ([n, E]), written or added
  // (through o_: the matmul kernels write their output).
  void project(const kernels::WeightMatrix& w, const float* in, float* out, Store store);

  std::vector<KvCache> caches_;  // per sequence
  const kernels::KernelTable& k_;
  int n_threads_;
  std::vector<float> x_, xn_, o_, q_, kv_k_, kv_v_, attn_, up_, act_;
  std::vector<float> cos_, sin_;  // [table][token][n_rot / 2]
  std::vector<uint8_t> act_scratch_;
};

}  // namespace slm::model
