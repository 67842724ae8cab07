// The architecture registry: one file per architecture under src/model/arch/
// says which metadata keys it reads (with defaults), which tensors it expects
// (names, shapes, required or optional) and how one block runs, built from
// the shared pieces in forward.h. Nothing else changes to add one.
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "gguf/gguf_reader.h"
#include "model/hparams.h"

namespace slm::model {

class Forward;

// Where a tensor goes in the loaded model.
enum class Slot {
  // global
  token_embd, output_norm, output, rope_factors_long, rope_factors_short, rope_freqs,
  // per layer
  attn_norm, attn_qkv, attn_q, attn_k, attn_v, attn_q_norm, attn_k_norm, attn_output, post_attention_norm,
  ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm,
  count
};
constexpr bool is_layer_slot(Slot s) { return s >= Slot::attn_norm; }

struct TensorSpec {
  Slot slot;
  const char* name;            // GGUF name; per-layer names contain "{}" for the layer
  std::vector<int64_t> ne;     // expected dims, fastest first
  bool required = true;
};

struct Architecture {
  std::string_view name;
  // Reads the metadata keys this architecture uses. n_vocab comes from the
  // token_embd tensor and is filled in before tensors() is called.
  HParams (*read_hparams)(const gguf::GgufFile& file);
  std::vector<TensorSpec> (*tensors)(const HParams& hp);
  // Runs layer `layer` on the batch held by `f` (residual stream f.x()).
  // Per-layer differences (window, RoPE table) are data: HParams::layers.
  void (*block)(Forward& f, int layer);
};

// The architecture named by general.architecture, or an Error listing the
// supported ones.
const Architecture& find_architecture(std::string_view name);
std::vector<std::string_view> architecture_names();

// Shared metadata readers for the architecture files.
namespace keys {
// The common transformer keys: context_length, embedding_length,
// feed_forward_length, block_count, attention.head_count(_kv),
// attention.layer_norm_rms_epsilon, attention.key_length / value_length,
// rope.dimension_count, rope.freq_base. Missing required keys are errors.
// Sets one RoPE table (rope.freq_base, the file's frequency factors) and
// every layer to it with full causal attention.
HParams read_common(const gguf::GgufFile& file);
}  // namespace keys

namespace tables {
// token_embd, output_norm, optional output, and per layer attn_norm,
// attn_q/k/v, attn_output, ffn_norm, ffn_gate/up/down: the tensors of every
// architecture with separate projections (gemma, gemma2, llama).
std::vector<TensorSpec> separate_projections(const HParams& hp);
}  // namespace tables

}  // namespace slm::model
