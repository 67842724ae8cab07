// Phi-3 (mini / medium, 4k and 128k): fused qkv and gate|up projections,
// SwiGLU, NeoX RoPE, GQA in medium, LongRoPE in the 128k models.
//
// Sliding window: phi3.attention.sliding_window (2047 in mini-4k) is NOT
// applied, like the reference engine: slm gives the same answers as it on the
// same file. (Hugging Face masks keys older than the window; the two differ
// only past 2047 tokens.) See docs/models.md.
#include "model/arch/arch.h"
#include "model/forward.h"

namespace slm::model {
namespace {

HParams read(const gguf::GgufFile& f) {
  HParams hp = keys::read_common(f);
  hp.rope_neox = true;
  hp.rope_orig_ctx = f.get_int(f.arch_key("rope.scaling.original_context_length"), hp.n_ctx_train);
  // LongRoPE magnitude scaling; applies only when the factor tensors exist
  // (Context checks), default 1.
  hp.rope_attn_factor = static_cast<float>(f.get_float(f.arch_key("rope.scaling.attn_factor"), 1.0));
  return hp;
}

std::vector<TensorSpec> tensors(const HParams& hp) {
  const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab;
  return {
      {Slot::token_embd, "token_embd.weight", {E, V}},
      {Slot::output_norm, "output_norm.weight", {E}},
      {Slot::output, "output.weight", {E, V}, false},
      {Slot::rope_factors_long, "rope_factors_long.weight", {hp.n_rot / 2}, false},
      {Slot::rope_factors_short, "rope_factors_short.weight", {hp.n_rot / 2}, false},
      {Slot::attn_norm, "blk.{}.attn_norm.weight", {E}},
      {Slot::attn_qkv, "blk.{}.attn_qkv.weight", {E, hp.q_dim() + 2 * hp.kv_dim()}},  // rows: q, k, v
      {Slot::attn_output, "blk.{}.attn_output.weight", {hp.q_dim(), E}},
      {Slot::ffn_norm, "blk.{}.ffn_norm.weight", {E}},
      {Slot::ffn_up, "blk.{}.ffn_up.weight", {E, 2 * F}},  // rows: gate, then up
      {Slot::ffn_down, "blk.{}.ffn_down.weight", {F, E}},
  };
}

void block(Forward& f, int l) { f.pre_norm_block(l, Activation::silu); }

}  // namespace

extern const Architecture kPhi3{"phi3", read, tensors, block};

}  // namespace slm::model
