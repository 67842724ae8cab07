// slm::Sampler — picks the next token from logits.
//
// The chain, in this order (the order llama.cpp uses):
//   1. penalties over the last `penalty_last_n` accepted tokens:
//      repetition (logit / p if > 0, * p if < 0), frequency (- f * count),
//      presence (- p if seen);
//   2. top-k: keep the k highest logits (0 = off);
//   3. top-p: keep the smallest set of most likely tokens whose probability
//      reaches p (1 = off);
//   4. min-p: drop tokens whose probability is below min_p * the top one (0 = off);
//   5. temperature: divide the logits by t;
//   6. a draw from the softmax with the seeded generator.
// temperature <= 0 is greedy: the highest logit after the penalties.
// The same seed and the same logits give the same tokens, always.
//
// Thread-safety: one thread at a time. Errors: slm::Error for invalid params.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "slm/tokenizer.h"

namespace slm {

struct SamplerParams {
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;  // 1 = off
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int penalty_last_n = 64;
  std::optional<uint64_t> seed;  // unset: a random seed
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params = {});
  ~Sampler();
  Sampler(Sampler&&) noexcept;
  Sampler& operator=(Sampler&&) noexcept;

  // Samples from n_vocab logits (not modified).
  TokenId sample(const float* logits, int64_t n_vocab);
  TokenId sample(const std::vector<float>& logits) { return sample(logits.data(), static_cast<int64_t>(logits.size())); }
  // Records a token in the penalty history (prompt tokens too, if they
  // should be penalised).
  void accept(TokenId token);
  // Clears the history and restarts the generator from the seed.
  void reset();
  uint64_t seed() const;
  const SamplerParams& params() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
