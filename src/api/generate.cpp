// generate(): prompt in, streamed text out, with prefix reuse — a Session
// driving one detail::Generation (api/generation.h).
#include "slm/generate.h"

#include <fmt/format.h>

#include <chrono>

#include "api/generation.h"
#include "slm/error.h"

namespace slm {
namespace {

GenerateResult run(Session& session, detail::Generation& gen) {
  const std::vector<TokenId>& prompt = gen.prompt();
  // Reuse what the cache already holds.
  const int64_t common = gen.reuse(session.tokens());
  if (static_cast<int64_t>(prompt.size()) > session.n_ctx())
    throw Error(fmt::format("the prompt has {} tokens but the context holds {}", prompt.size(), session.n_ctx()));
  session.rewind(common);

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float>* logits =
      &session.evaluate(std::vector<TokenId>(prompt.begin() + static_cast<std::ptrdiff_t>(common), prompt.end()));
  gen.set_prompt_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  for (;;) {
    const auto step = gen.next(logits->data(), static_cast<int64_t>(logits->size()), session.n_free());
    if (!step.token) break;
    logits = &session.decode(*step.token);
    if (step.last) break;
  }
  return gen.finish();
}

}  // namespace

GenerateResult generate(Session& session, const std::string& prompt, const GenerateParams& params,
                        const TokenCallback& on_text) {
  return run(session, *detail::Generation::for_prompt(session.model(), prompt, params, on_text));
}

GenerateResult generate(Session& session, const std::vector<ChatMessage>& messages, const GenerateParams& params,
                        const TokenCallback& on_text) {
  return run(session, *detail::Generation::for_chat(session.model(), messages, params, on_text));
}

}  // namespace slm
