// The list of architectures and the metadata readers they share.
#include <fmt/format.h>

#include <cmath>

#include "model/arch/arch.h"
#include "slm/error.h"

namespace slm::model {

extern const Architecture kPhi3;
extern const Architecture kGemma;
extern const Architecture kGemma2;
extern const Architecture kLlama;
extern const Architecture kGemma3;

namespace {
const Architecture* const kAll[] = {&kPhi3, &kGemma, &kGemma2, &kGemma3, &kLlama};
}

std::vector<std::string_view> architecture_names() {
  std::vector<std::string_view> out;
  for (const Architecture* a : kAll) out.push_back(a->name);
  return out;
}

const Architecture& find_architecture(std::string_view name) {
  for (const Architecture* a : kAll)
    if (a->name == name) return *a;
  throw Error(fmt::format("unsupported architecture '{}' (slm runs: {})", name, fmt::join(architecture_names(), ", ")));
}

namespace keys {

HParams read_common(const gguf::GgufFile& f) {
  auto need = [&](const char* suffix) -> int64_t {
    const auto v = f.get_int(f.arch_key(suffix));
    if (!v) throw Error(fmt::format("{}: missing metadata key '{}'", f.path(), f.arch_key(suffix)));
    if (*v <= 0) throw Error(fmt::format("{}: metadata key '{}' = {} must be positive", f.path(), f.arch_key(suffix), *v));
    return *v;
  };
  HParams hp;
  hp.n_ctx_train = need("context_length");
  hp.n_embd = need("embedding_length");
  hp.n_ff = need("feed_forward_length");
  hp.n_layer = need("block_count");
  hp.n_head = need("attention.head_count");
  hp.n_head_kv = f.get_int(f.arch_key("attention.head_count_kv"), hp.n_head);
  if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0)
    throw Error(fmt::format("{}: attention.head_count_kv = {} must divide head_count = {}", f.path(), hp.n_head_kv,
                            hp.n_head));
  hp.head_dim = f.get_int(f.arch_key("attention.key_length"), hp.n_embd / hp.n_head);
  const int64_t value_dim = f.get_int(f.arch_key("attention.value_length"), hp.head_dim);
  if (hp.head_dim <= 0 || value_dim != hp.head_dim)
    throw Error(fmt::format("{}: attention key_length {} and value_length {} must be equal and positive", f.path(),
                            hp.head_dim, value_dim));
  hp.rms_eps = static_cast<float>(f.get_float(f.arch_key("attention.layer_norm_rms_epsilon"), 1e-5));
  hp.n_rot = static_cast<int>(f.get_int(f.arch_key("rope.dimension_count"), hp.head_dim));
  if (hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
    throw Error(fmt::format("{}: rope.dimension_count = {} must be even and at most the head size {}", f.path(),
                            hp.n_rot, hp.head_dim));
  hp.rope_base = static_cast<float>(f.get_float(f.arch_key("rope.freq_base"), 10000.0));
  hp.query_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  if (hp.n_layer > 100000 || hp.n_embd > (1 << 20) || hp.n_head > 4096 || hp.n_ff > (1 << 22))
    throw Error(fmt::format("{}: implausible hyperparameters (layers {}, embedding {}, heads {}, ff {})", f.path(),
                            hp.n_layer, hp.n_embd, hp.n_head, hp.n_ff));
  hp.rope_tables = {RopeTable{hp.rope_base, 1.0f, true}};
  hp.layers.assign(static_cast<size_t>(hp.n_layer), LayerSpec{});
  return hp;
}

}  // namespace keys

namespace tables {

std::vector<TensorSpec> separate_projections(const HParams& hp) {
  const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab;
  return {
      {Slot::token_embd, "token_embd.weight", {E, V}},
      {Slot::output_norm, "output_norm.weight", {E}},
      {Slot::output, "output.weight", {E, V}, false},  // absent: tied to token_embd
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

}  // namespace tables
}  // namespace slm::model
