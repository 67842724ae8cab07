// One request's generation, step by step: the per-request logic that
// generate(), slm run, slm chat and the Engine's batched slots share —
// sampling, end-of-turn tokens, stop texts, text held back while it could
// still become a stop text, and the streaming detokenizer. Whoever owns the
// KV cache evaluates the prompt and each token next() returns.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "slm/generate.h"
#include "slm/sampler.h"
#include "slm/tokenizer.h"

namespace slm::detail {

class Generation {
 public:
  // A plain prompt (stops at EOS) or a conversation rendered with the
  // model's template (stops at its end-of-turn tokens and texts too).
  // Throws slm::Error for an empty prompt or a negative max_tokens.
  static std::unique_ptr<Generation> for_prompt(const Model& model, const std::string& prompt,
                                                const GenerateParams& params, TokenCallback on_text);
  static std::unique_ptr<Generation> for_chat(const Model& model, const std::vector<ChatMessage>& messages,
                                              const GenerateParams& params, TokenCallback on_text);

  const std::vector<TokenId>& prompt() const { return prompt_; }
  // How many of the prompt's tokens a cache holding `held` can keep: their
  // common start, less one so that at least one token is evaluated (fresh
  // logits). Recorded as the result's n_reused.
  int64_t reuse(const std::vector<TokenId>& held);
  void set_prompt_seconds(double s) { result_.prompt_seconds = s; }

  struct Step {
    std::optional<TokenId> token;  // to evaluate next (it joins the cache); none: the generation is over
    bool last = false;             // after evaluating `token`, the generation is over (no next() call)
  };
  // Given the logits after the last evaluated token and the positions still
  // free in the cache: samples, streams the text that is certain to the
  // callback, and says what to evaluate.
  Step next(const float* logits, int64_t n_vocab, int64_t n_free);
  // Ends it before its next token (the engine is stopping): the result's
  // stop reason is `callback`, as when the callback ends it.
  void cancel() {
    over_ = true;
    result_.stop = StopReason::callback;
  }
  // The result, with the held-back text flushed to the callback where the
  // generation did not end on a stop text or by the callback.
  GenerateResult finish();

 private:
  Generation(const Model& model, std::vector<TokenId> prompt, std::unordered_set<TokenId> stop_tokens,
             std::vector<std::string> stop_texts, const GenerateParams& params, TokenCallback on_text);

  std::vector<TokenId> prompt_;
  std::unordered_set<TokenId> stop_tokens_;
  std::vector<std::string> stop_texts_;
  int64_t max_tokens_;
  TokenCallback on_text_;
  Sampler sampler_;
  Detokenizer detok_;
  std::string pending_;  // produced text not yet passed on (could start a stop text)
  GenerateResult result_;
  int64_t steps_ = 0;
  bool over_ = false;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace slm::detail
