// Gemma 3 (270M, 1B, 4B, 12B, 27B text stacks): Gemma 2's sandwich norms
// plus QK-RMSNorm per head before RoPE, a local/global layer pattern with a
// RoPE table each, no attention soft-capping. ../shared/docs/model-math.md
// (Gemma 3) and gemma3-details.md are the spec.
#include <fmt/format.h>

#include <cmath>

#include "model/arch/arch.h"
#include "model/forward.h"
#include "slm/error.h"

namespace slm::model {
namespace {

HParams read(const gguf::GgufFile& f) {
  HParams hp = keys::read_common(f);
  if (!f.has(f.arch_key("attention.layer_norm_rms_epsilon")))
    throw Error(fmt::format("{}: missing metadata key '{}'", f.path(), f.arch_key("attention.layer_norm_rms_epsilon")));
  hp.rope_neox = true;
  hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
  hp.final_softcap = static_cast<float>(f.get_float(f.arch_key("final_logit_softcapping"), 0.0));
  // The 27B (62 layers) scales queries by 1/sqrt(E/H) (integer E/H); no key
  // stores it, the reference engine keys it on the layer count.
  if (hp.n_layer == 62) hp.query_scale = 1.0f / std::sqrt(static_cast<float>(hp.n_embd / hp.n_head));

  // Global layers: rope.freq_base, linear scaling when the file asks for it.
  RopeTable global{hp.rope_base, 1.0f, false};
  const std::string scaling = f.get_string(f.arch_key("rope.scaling.type"), "linear");
  const double factor = f.get_float(f.arch_key("rope.scaling.factor"), f.get_float(f.arch_key("rope.scale_linear"), 1.0));
  if (scaling == "linear" && factor > 0) {
    global.linear_factor = static_cast<float>(factor);
  } else if (scaling != "linear" && scaling != "none") {
    throw Error(fmt::format("{}: rope.scaling.type '{}' is not supported for gemma3 (linear or none)", f.path(), scaling));
  }
  // Local layers: rope.freq_base_swa (default 10000, never rope.freq_base), unscaled.
  const RopeTable local{static_cast<float>(f.get_float(f.arch_key("rope.freq_base_swa"), 10000.0)), 1.0f, false};
  hp.rope_tables = {global, local};

  // Layer l is local iff l % P < P - 1 when a window is set; without one
  // every layer is global. The pattern key is read as a scalar only (an
  // array, which no converter writes, is refused rather than half-honoured).
  const int64_t window = f.get_int(f.arch_key("attention.sliding_window"), 0);
  const gguf::Value* pattern_value = f.find(f.arch_key("attention.sliding_window_pattern"));
  if (pattern_value != nullptr && !pattern_value->to_int())
    throw Error(fmt::format("{}: '{}' must be a single integer", f.path(), f.arch_key("attention.sliding_window_pattern")));
  const int64_t period = pattern_value ? *pattern_value->to_int() : 6;
  if (window < 0 || period < 0)
    throw Error(fmt::format("{}: sliding window {} and pattern {} must not be negative", f.path(), window, period));
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const bool local = window > 0 && (period == 0 || l % period < period - 1);
    hp.layers[static_cast<size_t>(l)] = local ? LayerSpec{window, 1} : LayerSpec{0, 0};
  }
  return hp;
}

std::vector<TensorSpec> tensors(const HParams& hp) {
  auto t = tables::separate_projections(hp);
  t.push_back({Slot::attn_q_norm, "blk.{}.attn_q_norm.weight", {hp.head_dim}});
  t.push_back({Slot::attn_k_norm, "blk.{}.attn_k_norm.weight", {hp.head_dim}});
  t.push_back({Slot::post_attention_norm, "blk.{}.post_attention_norm.weight", {hp.n_embd}});
  t.push_back({Slot::post_ffw_norm, "blk.{}.post_ffw_norm.weight", {hp.n_embd}});
  return t;
}

// The same sandwich as Gemma 2; the QK-norm happens inside attention()
// because the layer has attn_q_norm / attn_k_norm.
void block(Forward& f, int l) { f.sandwich_norm_block(l, Activation::gelu); }

}  // namespace

extern const Architecture kGemma3{"gemma3", read, tensors, block};

}  // namespace slm::model
