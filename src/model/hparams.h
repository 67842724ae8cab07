// Hyperparameters of a loaded model, read from GGUF metadata by its
// architecture (src/model/arch/*.cpp says which keys, with which defaults).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slm::model {

// One table of RoPE angles: theta_i = p * base^(-2i/n_rot) / f_i, where f_i
// is `linear_factor` for every i, times the model's frequency factors
// (LongRoPE / rope_freqs tensors) when `model_factors` is set.
struct RopeTable {
  float base = 10000.0f;
  float linear_factor = 1.0f;  // rope.scaling.type linear: positions divided by it
  bool model_factors = true;   // apply rope_factors_* / rope_freqs when the file has them
};

// What differs from one layer to the next, as data: the forward pass reads
// it, it never asks which architecture it runs.
struct LayerSpec {
  int64_t window = 0;  // keys with pos - j >= window are masked (0 = full causal attention)
  int rope_table = 0;  // index into HParams::rope_tables
};

struct HParams {
  std::string arch;          // general.architecture
  std::string name;          // general.name ("" when absent)
  int64_t n_vocab = 0;       // rows of token_embd
  int64_t n_ctx_train = 0;   // context_length
  int64_t n_embd = 0;        // E
  int64_t n_ff = 0;          // F
  int64_t n_layer = 0;
  int64_t n_head = 0;        // H
  int64_t n_head_kv = 0;     // KV (divides H)
  int64_t head_dim = 0;      // D: attention.key_length, else E / H
  float rms_eps = 1e-5f;

  // RoPE over the first n_rot dims of each head.
  int n_rot = 0;
  float rope_base = 10000.0f;       // the base of rope_tables[0]
  bool rope_neox = true;            // pair i with i + n_rot/2 (else 2i with 2i+1)
  int64_t rope_orig_ctx = 0;        // LongRoPE: long factors beyond this context
  float rope_attn_factor = 1.0f;    // LongRoPE magnitude scaling (1 = none)

  // The distinct RoPE tables and, per layer, which one it uses and its
  // attention window (keys::read_common: one table, no windows).
  std::vector<RopeTable> rope_tables;
  std::vector<LayerSpec> layers;

  // Attention.
  float query_scale = 0;            // multiplies q.k (1/sqrt(D) unless the arch says otherwise)
  float attn_softcap = 0;           // 0 = none

  // Embeddings and output.
  float embd_scale = 1.0f;          // Gemma: sqrt(E)
  float final_softcap = 0;          // Gemma 2

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

}  // namespace slm::model
