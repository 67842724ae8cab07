// Running a model: the KV cache, the batch state with the shared pieces every
// architecture's block is built from (forward.cpp), and Context, which feeds
// token batches through the layers.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/kernels.h"
#include "model/model.h"

namespace slm::model {

struct ContextParams {
  int64_t n_ctx = 0;     // positions the KV cache holds; 0 = min(training context, 4096)
  int64_t n_batch = 512; // tokens per forward pass when evaluating a long prompt
  int n_threads = 0;     // 0 = every core
  bool kv_f16 = true;    // K/V stored as f16 (half the memory) or f32
};

// K and V for every layer: layer l holds rows(l) rows of kv_dim elements —
// every position of the context (rows == n_ctx), or, for a sliding-window
// layer, a ring of the last rows(l) positions (position p in row p % rows).
// Kv head g of a row starts at element g * D.
class KvCache {
 public:
  // rows[l]: rows of layer l (n_ctx, or a ring size below it).
  KvCache(const std::vector<int64_t>& rows, int64_t n_ctx, int64_t kv_dim, bool f16);
  void* k(int layer) { return base(layer, 0); }
  void* v(int layer) { return base(layer, 1); }
  bool f16() const { return f16_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t rows(int layer) const { return rows_[static_cast<size_t>(layer)]; }
  bool is_ring(int layer) const { return rows(layer) < n_ctx_; }
  size_t bytes() const { return data_.size(); }
  // Stores position pos's K or V (kv_dim floats) in its row.
  void store(int layer, int which, int64_t pos, const float* row, const kernels::KernelTable& k);

 private:
  void* base(int layer, int which);
  std::vector<int64_t> rows_;
  std::vector<size_t> offset_;  // byte offset of layer l's K; its V follows
  int64_t n_ctx_, kv_dim_;
  bool f16_;
  size_t elem_;
  std::vector<uint8_t> data_;
};

enum class Activation { silu, gelu };

// One RoPE table as a context runs it: the per-pair divisors (empty = none)
// and the magnitude factor, resolved from HParams::rope_tables, the file's
// frequency factors and the context length (LongRoPE's rule).
struct RopeState {
  std::vector<float> factors;
  float attn_factor = 1.0f;
};

// The batch being evaluated and the pieces a block is made of. Buffers hold
// n_tokens rows; row t is position pos(t).
class Forward {
 public:
  // `ropes` (one per HParams::rope_tables entry) must outlive the Forward.
  Forward(const Model& model, KvCache& cache, const kernels::KernelTable& k, int n_threads, int64_t n_batch,
          const std::vector<RopeState>& ropes);

  const Model& model() const { return model_; }
  const HParams& hp() const { return hp_; }
  int64_t n_tokens() const { return n_tokens_; }
  int64_t pos(int64_t t) const { return pos0_ + t; }

  float* x() { return x_.data(); }    // residual stream [n, E]
  float* xn() { return xn_.data(); }  // normalised input of a sub-layer [n, E]
  float* o() { return o_.data(); }    // sub-layer output [n, E]

  // out[t] = rmsnorm(in[t]) * w for every row (out may alias in).
  void norm(const float* in, const Weight& w, float* out);
  // Self-attention of layer l: projections (fused qkv or separate), per-head
  // QK-RMSNorm when the layer has attn_q_norm / attn_k_norm, RoPE with the
  // layer's table, K/V into the cache, causal attention within the layer's
  // window, output projection.
  void attention(int layer, const float* in, float* out);
  // Gated MLP of layer l: act(gate) * up, then down. Fused gate|up (phi3)
  // when the layer has no ffn_gate.
  void gated_mlp(int layer, const float* in, float* out, Activation act);
  // x += o.
  void add_residual(const float* o);
  // The pre-norm block most architectures use:
  //   x += attention(norm(x)); x += mlp(norm(x)).
  void pre_norm_block(int layer, Activation act);
  // The sandwich block of Gemma 2 / 3: the sub-layer outputs are normalised
  // too (post_attention_norm, post_ffw_norm) before they join the residual.
  void sandwich_norm_block(int layer, Activation act);

  // y = W x for the batch (rows of in are `in_dim` long).
  void matmul(const kernels::WeightMatrix& w, const float* in, int64_t n, float* out, int64_t ldy);

  // Embeds tokens at positions pos0.. into x (the batch's first step).
  void begin(const int32_t* tokens, int64_t n, int64_t pos0);
  // Final norm and output projection of the rows [first, n) into logits.
  void logits(int64_t first, float* out);

  size_t scratch_bytes() const;

 private:
  const Model& model_;
  const HParams& hp_;
  KvCache& cache_;
  const kernels::KernelTable& k_;
  int n_threads_;
  const std::vector<RopeState>& ropes_;
  int64_t n_tokens_ = 0, pos0_ = 0;
  std::vector<float> x_, xn_, o_, q_, kv_k_, kv_v_, attn_, up_, act_;
  std::vector<float> cos_, sin_;  // [table][token][n_rot / 2]
  std::vector<uint8_t> act_scratch_;
};

// A model being run: its KV cache and position. One thread at a time.
class Context {
 public:
  Context(const Model& model, const ContextParams& params);

  // Evaluates `n` tokens at positions n_past() .. n_past() + n - 1, in
  // batches of n_batch. With all_logits, logits receives n rows of n_vocab;
  // otherwise the last token's row. Throws slm::Error (nothing evaluated)
  // when the tokens do not fit the context or an id is out of range.
  void evaluate(const int32_t* tokens, int64_t n, bool all_logits, std::vector<float>& logits);

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return cache_.n_ctx(); }
  const ContextParams& params() const { return params_; }
  // Forgets every position from n on (n <= n_past()). Throws slm::Error
  // when !can_rewind(n).
  void rewind(int64_t n);
  // Whether the sliding-window rings still hold the window before position
  // n (they keep only their last rows; going further back needs the tokens
  // evaluated again from the start — Session does that). Always true for 0.
  bool can_rewind(int64_t n) const;
  size_t kv_bytes() const { return cache_.bytes(); }
  size_t scratch_bytes() const { return fwd_.scratch_bytes(); }

 private:
  const Model& model_;
  ContextParams params_;
  KvCache cache_;
  std::vector<RopeState> ropes_;
  Forward fwd_;
  int64_t n_past_ = 0;
  // Per layer: the lowest position whose ring row still holds it (0 for
  // full-context layers); grows as positions wrap around the ring.
  std::vector<int64_t> valid_from_;
};

}  // namespace slm::model
