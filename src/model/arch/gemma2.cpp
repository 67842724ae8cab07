// Gemma 2: Gemma plus post-attention and post-FFN norms, attention-logit and
// final-logit soft-capping, and sliding-window attention on even layers.
#include <cmath>

#include "model/arch/arch.h"
#include "model/forward.h"

namespace slm::model {
namespace {

HParams read(const gguf::GgufFile& f) {
  HParams hp = keys::read_common(f);
  hp.rope_neox = true;
  hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
  hp.attn_softcap = static_cast<float>(f.get_float(f.arch_key("attn_logit_softcapping"), 50.0));
  hp.final_softcap = static_cast<float>(f.get_float(f.arch_key("final_logit_softcapping"), 30.0));
  // Even layers attend within the window, odd layers globally.
  const int64_t window = f.get_int(f.arch_key("attention.sliding_window"), 4096);
  for (size_t l = 0; l < hp.layers.size(); l += 2) hp.layers[l].window = window;
  // Gemma 2 27B (46 layers) scales queries by 1/sqrt(E/H) instead of
  // 1/sqrt(D); the reference engine recognises it by its layer count.
  if (hp.n_layer == 46) hp.query_scale = 1.0f / std::sqrt(static_cast<float>(hp.n_embd / hp.n_head));
  return hp;
}

std::vector<TensorSpec> tensors(const HParams& hp) {
  auto t = tables::separate_projections(hp);
  t.push_back({Slot::post_attention_norm, "blk.{}.post_attention_norm.weight", {hp.n_embd}});
  t.push_back({Slot::post_ffw_norm, "blk.{}.post_ffw_norm.weight", {hp.n_embd}});
  return t;
}

void block(Forward& f, int l) { f.sandwich_norm_block(l, Activation::gelu); }

}  // namespace

extern const Architecture kGemma2{"gemma2", read, tensors, block};

}  // namespace slm::model
