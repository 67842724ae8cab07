// Gemma (2B, 7B): separate q/k/v, head_dim from attention.key_length (7B:
// 16 x 256 != 3072), MQA in 2B, GeGLU with tanh GELU, embeddings scaled by
// sqrt(E), output tied to token_embd. Norm weights already include Gemma's +1.
#include <cmath>

#include "model/arch/arch.h"
#include "model/forward.h"

namespace slm::model {
namespace {

HParams read(const gguf::GgufFile& f) {
  HParams hp = keys::read_common(f);
  hp.rope_neox = true;
  // Exact float sqrt, like the reference engine (PyTorch rounds it to bf16).
  hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
  return hp;
}

std::vector<TensorSpec> tensors(const HParams& hp) {
  const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab;
  return {
      {Slot::token_embd, "token_embd.weight", {E, V}},
      {Slot::output_norm, "output_norm.weight", {E}},
      {Slot::output, "output.weight", {E, V}, false},
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
  f.gated_mlp(l, f.xn(), f.o(), Activation::gelu);
  f.add_residual(f.o());
}

int64_t window(const HParams&, int) { return 0; }

}  // namespace

extern const Architecture kGemma{"gemma", read, tensors, block, window};

}  // namespace slm::model
