// slm::Session — one conversation with a model: its KV cache and position.
//
// Ownership: holds a shared_ptr to its Model. Thread-safety: one thread at a
// time per Session; different Sessions (even on the same Model) run on
// different threads independently and give the same results as run one
// after the other. Errors: slm::Error — a prompt that does not fit the
// context (nothing is evaluated then), a token id out of range.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slm/model.h"

namespace slm {

// KV cache element types: f16 (the default), f32, or q8_0 (blocks of 32
// int8 with an f16 scale: ~half of f16's memory and reads; needs a head size
// that is a multiple of 32). K and V each take their own, like llama.cpp's
// -ctk / -ctv.
enum class KvType { f16, f32, q8_0 };
// "f16", "f32", "q8_0"; parse_kv_type reads them back (throws slm::Error
// naming the accepted ones).
const char* kv_type_name(KvType t);
KvType parse_kv_type(const std::string& name);

struct SessionParams {
  int64_t n_ctx = 0;      // positions (tokens) the session holds; 0 = min(model's training context, 4096)
  int64_t n_batch = 512;  // prompt tokens per forward pass
  int n_threads = 0;      // 0 = every core
  KvType type_k = KvType::f16;  // K cache
  KvType type_v = KvType::f16;  // V cache
};

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model, const SessionParams& params = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // Appends tokens (batched prefill) and returns the logits after the last
  // one: n_vocab floats, valid until the next call on this session.
  const std::vector<float>& evaluate(const std::vector<TokenId>& tokens);
  // Same, returning every position's logits (tokens.size() rows of n_vocab).
  std::vector<float> evaluate_all(const std::vector<TokenId>& tokens);
  // One token through the single-token decode path.
  const std::vector<float>& decode(TokenId token);

  int64_t n_past() const;   // tokens in the cache
  int64_t n_ctx() const;
  int64_t n_free() const { return n_ctx() - n_past(); }
  const std::vector<TokenId>& tokens() const;  // what the cache holds, in order
  // Keeps the first n tokens and forgets the rest (edits, retries). Cheap,
  // except on models with sliding-window layers (Gemma 2/3) when n is further
  // back than their window-sized cache rings reach (about n_batch tokens
  // behind the last evaluated one): then the n kept tokens are evaluated
  // again from the start, and the current logits become those after them.
  void rewind(int64_t n);
  void reset() { rewind(0); }

  const Model& model() const;
  const SessionParams& params() const;  // with defaults resolved

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
