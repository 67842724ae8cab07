// Fuzz target: slm serve's request parsing (tools/slm/serve_request.h) on
// arbitrary bodies — what the server runs on every POST before the engine
// sees it. The only acceptable failure is an ApiError (HTTP 400 naming the
// field); a crash, a sanitizer report or any other exception is a bug, and
// what is accepted must be in range.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "serve_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json body = slm::cli::parse_body(text);
    const slm::GenerateParams p = slm::cli::generation(body, slm::GenerateParams{}, 512);
    if (p.max_tokens < 1 || !(p.sampling.temperature >= 0) || !(p.sampling.top_p >= 0 && p.sampling.top_p <= 1))
      std::abort();
    for (const char* key : {"stream", "cache_prompt", "ignore_eos"}) (void)slm::cli::boolean(body, key, false);
    if (body.contains("messages")) {
      for (const auto& m : slm::cli::messages_of(body))
        if (m.role != "system" && m.role != "user" && m.role != "assistant") std::abort();
    } else {
      (void)slm::cli::prompt_of(body);
    }
  } catch (const slm::cli::ApiError& e) {
    if (e.status != 400 || e.message.empty()) std::abort();
  }
  return 0;
}
