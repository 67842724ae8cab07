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
  return tables::separate_projections(hp);
}

void block(Forward& f, int l) { f.pre_norm_block(l, Activation::gelu); }

}  // namespace

extern const Architecture kGemma{"gemma", read, tensors, block};

}  // namespace slm::model
