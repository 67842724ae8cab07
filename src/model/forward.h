// Running a model: the Forward interface (the per-op seam every backend
// implements, with the blocks built from it) and Context, which feeds token
// batches through the layers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model.h"
#include "slm/session.h"

namespace slm::model {

struct ContextParams {
  int64_t n_ctx = 0;     // positions the KV cache holds; 0 = min(training context, 4096)
  int64_t n_batch = 512; // tokens per forward pass when evaluating a long prompt
  int n_threads = 0;     // 0 = every core
  DType k_type = DType::F16;  // KV cache element types: F16, F32 or Q8_0
  DType v_type = DType::F16;  // (kernels::is_kv_type)
  int n_seq = 1;         // sequences, each with its own KV cache of n_ctx positions (batch_forward)
};

// One token of a batch that may mix sequences: it goes at position `pos` of
// sequence `seq` (the position after that sequence's last one), and its
// logits are wanted or not.
struct BatchToken {
  int32_t token = 0;
  int64_t pos = 0;
  int seq = 0;
  bool logits = false;
};

// The cache element type of a public KvType.
DType kv_dtype(KvType t);

enum class Activation { silu, gelu };

// How a sub-layer's result reaches its output rows: written, or added to
// what they hold. The pre-norm block adds the attention and MLP results to
// the residual stream directly, so a backend can join the residual inside
// the output projection (the same rounding as writing the result and
// adding it with add_residual).
enum class Store { write, add };

// One RoPE table as a context runs it: the per-pair divisors (empty = none)
// and the magnitude factor, resolved from HParams::rope_tables, the file's
// frequency factors and the context length (LongRoPE's rule).
struct RopeState {
  std::vector<float> factors;
  float attn_factor = 1.0f;
};

// The seam between the model and the hardware: the batch being evaluated and
// the pieces every architecture's block is built from. A backend (CPU:
// cpu_forward.h; CUDA: cuda/cuda_forward.h) implements the pieces over whole
// batches and owns its scratch buffers and KV cache; the blocks below and the
// architecture files are shared by all of them. Buffers hold n_tokens rows
// (row t is position pos(t) of sequence seq(t)) in the backend's memory:
// shared code passes the pointers on, it never reads them. A backend built
// for one sequence (ForwardConfig::n_seq == 1) gets consecutive positions.
class Forward {
 public:
  // `ropes` (one per HParams::rope_tables entry) must outlive the Forward.
  Forward(const Model& model, const std::vector<RopeState>& ropes) : model_(model), hp_(model.hparams()), ropes_(ropes) {}
  virtual ~Forward() = default;
  Forward(const Forward&) = delete;
  Forward& operator=(const Forward&) = delete;

  const Model& model() const { return model_; }
  const HParams& hp() const { return hp_; }
  int64_t n_tokens() const { return n_tokens_; }
  int64_t pos(int64_t t) const { return pos_[static_cast<size_t>(t)]; }
  int seq(int64_t t) const { return seq_[static_cast<size_t>(t)]; }

  virtual float* x() = 0;   // residual stream [n, E]
  virtual float* xn() = 0;  // normalised input of a sub-layer [n, E]
  virtual float* o() = 0;   // sub-layer output [n, E]

  // Embeds the batch's tokens (host memory) into x: its first step. Row t
  // is batch[t]'s token at its position and sequence.
  void begin(const BatchToken* batch, int64_t n) {
    n_tokens_ = n;
    tokens_.resize(static_cast<size_t>(n));
    pos_.resize(static_cast<size_t>(n));
    seq_.resize(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
      tokens_[static_cast<size_t>(t)] = batch[t].token;
      pos_[static_cast<size_t>(t)] = batch[t].pos;
      seq_[static_cast<size_t>(t)] = batch[t].seq;
    }
    embed(tokens_.data());
  }
  // out[t] = rmsnorm(in[t]) * w for every row (out may alias in).
  virtual void norm(const float* in, const Weight& w, float* out) = 0;
  // Self-attention of layer l: projections (fused qkv or separate), per-head
  // QK-RMSNorm when the layer has attn_q_norm / attn_k_norm, RoPE with the
  // layer's table, K/V into the cache, causal attention within the layer's
  // window, output projection — written to out, or added to it (Store).
  virtual void attention(int layer, const float* in, float* out, Store store) = 0;
  // Gated MLP of layer l: act(gate) * up, then down. Fused gate|up (phi3)
  // when the layer has no ffn_gate.
  virtual void gated_mlp(int layer, const float* in, float* out, Activation act, Store store) = 0;
  // x += o.
  virtual void add_residual(const float* o) = 0;
  // After the last layer's block of a batch, before logits(): a backend that
  // records the layers rather than running them one by one (the CUDA
  // backend's graph of a decode step) runs them here.
  virtual void finish_layers() {}
  // Final norm and output projection of the rows [first, n) into logits
  // (host memory, rows of n_vocab).
  virtual void logits(int64_t first, float* out) = 0;
  // After the layers: moves rows `rows` (increasing) of x to rows 0, 1, ...
  // and makes them the batch, so logits(0) computes just those. False when
  // the backend cannot (Context then computes more rows and picks).
  virtual bool keep_rows(const std::vector<int64_t>& /*rows*/) { return false; }

  // The pre-norm block most architectures use:
  //   x += attention(norm(x)); x += mlp(norm(x)).
  void pre_norm_block(int layer, Activation act);
  // The sandwich block of Gemma 2 / 3: the sub-layer outputs are normalised
  // too (post_attention_norm, post_ffw_norm) before they join the residual.
  void sandwich_norm_block(int layer, Activation act);

  virtual size_t scratch_bytes() const = 0;
  virtual size_t kv_bytes() const = 0;

 protected:
  // Token rows of token_embd (times embd_scale) into x; angles for pos(0..n).
  virtual void embed(const int32_t* tokens) = 0;

  const Model& model_;
  const HParams& hp_;
  const std::vector<RopeState>& ropes_;
  int64_t n_tokens_ = 0;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> pos_;
  std::vector<int> seq_;
};

// What a backend needs to build a Forward for one context.
struct ForwardConfig {
  std::vector<int64_t> kv_rows;  // per layer: n_ctx, or a sliding-window ring below it
  int64_t n_ctx = 0;
  int64_t n_batch = 0;
  int n_threads = 0;
  DType k_type = DType::F16, v_type = DType::F16;
  int n_seq = 1;  // sequences (one KV cache each)
};

// The Forward of the backend the model was loaded for (Model::device()).
std::unique_ptr<Forward> make_forward(const Model& model, const ForwardConfig& config,
                                      const std::vector<RopeState>& ropes);

// A model being run: the KV caches of its sequences (n_seq, each n_ctx
// positions) and their positions. One thread at a time.
class Context {
 public:
  Context(const Model& model, const ContextParams& params);

  // Evaluates `n` tokens of sequence `seq` at positions n_past(seq) ..
  // n_past(seq) + n - 1, in batches of n_batch. With all_logits, logits
  // receives n rows of n_vocab; otherwise the last token's row. Throws
  // slm::Error (nothing evaluated) when the tokens do not fit the context or
  // an id is out of range.
  void evaluate(const int32_t* tokens, int64_t n, bool all_logits, std::vector<float>& logits, int seq = 0);
  // Evaluates tokens of any sequences together, in passes of at most
  // n_batch tokens: one weight pass serves them all, each attends only to its
  // own sequence. A sequence's tokens must come in order at the positions
  // after its last one. `logits` receives one row of n_vocab per token whose
  // `logits` is set, in batch order. A token's result does not depend on the
  // others in its batch. Throws slm::Error (nothing evaluated) on a position
  // out of order, a sequence or id out of range, or a sequence overflowing
  // the context.
  void evaluate_batch(const std::vector<BatchToken>& batch, std::vector<float>& logits);

  int n_seq() const { return params_.n_seq; }
  int64_t n_past(int seq = 0) const { return n_past_[checked(seq)]; }
  int64_t n_ctx() const { return params_.n_ctx; }
  const ContextParams& params() const { return params_; }
  // Forgets every position of sequence `seq` from n on (n <= n_past(seq)).
  // Throws slm::Error when !can_rewind(n, seq).
  void rewind(int64_t n, int seq = 0);
  // Whether the sliding-window rings still hold the window before position
  // n (they keep only their last rows; going further back needs the tokens
  // evaluated again from the start — Session does that). Always true for 0.
  bool can_rewind(int64_t n, int seq = 0) const;
  size_t kv_bytes() const { return fwd_->kv_bytes(); }
  // Bytes of K and V that attention reads for one token at position pos
  // (every held position of every layer; a sliding-window layer its window).
  uint64_t kv_bytes_read(int64_t pos) const;
  size_t scratch_bytes() const { return fwd_->scratch_bytes(); }

 private:
  const Model& model_;
  ContextParams params_;
  std::vector<int64_t> kv_rows_;  // per layer (ForwardConfig::kv_rows)
  std::vector<RopeState> ropes_;
  std::unique_ptr<Forward> fwd_;
  std::vector<int64_t> n_past_;  // per sequence
  // Per sequence and layer: the lowest position whose ring row still holds
  // it (0 for full-context layers); grows as positions wrap around the ring.
  std::vector<std::vector<int64_t>> valid_from_;
  std::vector<float> all_rows_;  // logits of a pass when the backend cannot keep_rows
  bool is_ring(int layer) const { return kv_rows_[static_cast<size_t>(layer)] < params_.n_ctx; }
  size_t checked(int seq) const;
};

}  // namespace slm::model
