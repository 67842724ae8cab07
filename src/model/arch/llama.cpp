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
  auto t = tables::separate_projections(hp);
  t.push_back({Slot::rope_freqs, "rope_freqs.weight", {hp.n_rot / 2}, false});
  return t;
}

void block(Forward& f, int l) { f.pre_norm_block(l, Activation::silu); }

}  // namespace

extern const Architecture kLlama{"llama", read, tensors, block};

}  // namespace slm::model
