// slm::generate — the common case in one call: prompt (or conversation) in,
// streamed text out.
//
// The session ends up holding the prompt followed by the answer. Tokens the
// session already holds that match the start of the new prompt are reused,
// so a conversation re-sent with one more message evaluates only the new
// tokens. Thread-safety: as Session. Errors: slm::Error (prompt too long for
// the context, ...); an exception thrown by the callback propagates.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "slm/chat.h"
#include "slm/sampler.h"
#include "slm/session.h"

namespace slm {

struct GenerateParams {
  SamplerParams sampling;
  int64_t max_tokens = 512;            // answer length limit (also capped by the context)
  std::vector<std::string> stop;       // extra stop texts (not included in the answer)
  bool add_bos = true;                 // for plain prompts: BOS as the model's metadata asks
  bool ignore_eos = false;             // generate past end-of-text / end-of-turn (until max_tokens or stop)
};

enum class StopReason { eos, stop_text, max_tokens, context_full, callback };

struct GenerateResult {
  std::string text;
  int64_t n_prompt = 0;      // tokens in the prompt
  int64_t n_reused = 0;      // of those, already in the session's cache
  int64_t n_generated = 0;
  StopReason stop = StopReason::eos;
  uint64_t seed = 0;         // the sampler's seed (the random one when none was given)
  double prompt_seconds = 0;
  double generate_seconds = 0;
};

// Receives each piece of text as it is produced (whole UTF-8 characters;
// empty when a token shows no text yet, so the caller can still stop);
// return false to stop generating.
using TokenCallback = std::function<bool(std::string_view piece)>;

GenerateResult generate(Session& session, const std::string& prompt, const GenerateParams& params = {},
                        const TokenCallback& on_text = {});
// Renders the conversation with the model's chat template (adding the
// assistant prompt) and stops on the template's end-of-turn tokens.
GenerateResult generate(Session& session, const std::vector<ChatMessage>& messages, const GenerateParams& params = {},
                        const TokenCallback& on_text = {});

}  // namespace slm
