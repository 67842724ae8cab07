// Llama family (TinyLlama, SmolLM, Llama 3.2 1B): separate q/k/v and
// gate/up, SwiGLU, GQA, normal (adjacent-pair) RoPE — the converter permutes
// q/k rows for it — optional tied output, optional rope_freqs (Llama 3.x
// frequency factors).
#include "model/arch/arch.h"
#include "model/forward.h"

namespace slm::model {
namespace {

HParams read(const gguf::GgufFile& f) {
  HParams hp = keys::read_common(f);
  hp.rope_neox = false;
  return hp;
}

std::vector<TensorSpec> tensors(const HParams& hp) {
  const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab;
  return {
      {Slot::token_embd, "token_embd.weight", {E, V}},
      {Slot::output_norm, "output_norm.weight", {E}},
      {Slot::output, "output.weight", {E, V}, false},
      {Slot::rope_freqs, "rope_freqs.weight", {hp.n_rot / 2}, false},
      {Slot::attn_norm, "blk.{}.attn_norm.weight", {E}},
      {Slot::attn_q, "blk.{}.attn_q.weight", {E, hp.q_dim()}},
      {Slot::attn_k, "blk.{}.attn_k.weight", {E, hp.kv_dim()}},
      {Slot::attn_v, "blk.{}.attn_v.weight", {E, hp.kv_dim()}},
      {Slot::attn_output, "blk.{}.attn_output.weight", {hp.q_dim(), E}},
      {Slot::ffn_norm, "blk.{}.ffn_norm.weight", {E}},
      {Slot::ffn_gate, "blk.{}.ffn_gate.weight", {E, F}},
      {Slot::ffn_up, "blk.{}.ffn_up.weight", {E, F}},
      {Slot::ffn_down, "blk.{}.ffn_down.weight", {F, E}},
  };
}

void block(Forward& f, int l) {
  const Model& m = f.model();
  f.norm(f.x(), m.layer(l, Slot::attn_norm), f.xn());
  f.attention(l, f.xn(), f.o());
  f.add_residual(f.o());
  f.norm(f.x(), m.layer(l, Slot::ffn_norm), f.xn());
  f.gated_mlp(l, f.xn(), f.o(), Activation::silu);
  f.add_residual(f.o());
}

int64_t window(const HParams&, int) { return 0; }

}  // namespace

extern const Architecture kLlama{"llama", read, tensors, block, window};

}  // namespace slm::model
