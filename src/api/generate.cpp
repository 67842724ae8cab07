// generate(): prompt in, streamed text out, with prefix reuse and stop
// tokens / stop texts.
#include "slm/generate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "slm/error.h"

namespace slm {
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Length of the longest suffix of `text` that is a proper prefix of a stop
// text: that much must be held back until the next piece decides.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}

GenerateResult run(Session& session, const std::vector<TokenId>& prompt, const std::unordered_set<TokenId>& stop_tokens,
                   std::vector<std::string> stop_texts, const GenerateParams& params, const TokenCallback& on_text) {
  GenerateResult r;
  if (prompt.empty()) throw Error("generate: the prompt is empty (no tokens)");
  if (params.max_tokens < 0) throw Error("generate: max_tokens must be >= 0");
  stop_texts.erase(std::remove(stop_texts.begin(), stop_texts.end(), std::string()), stop_texts.end());
  r.n_prompt = static_cast<int64_t>(prompt.size());
  // Reuse what the cache already holds; at least one token is evaluated so
  // there are fresh logits.
  const auto& held = session.tokens();
  size_t common = 0;
  while (common < held.size() && common < prompt.size() && held[common] == prompt[common]) ++common;
  common = std::min(common, prompt.size() - 1);
  const auto n_new = static_cast<int64_t>(prompt.size() - common);
  if (static_cast<int64_t>(common) + n_new > session.n_ctx())
    throw Error(fmt::format("the prompt has {} tokens but the context holds {}", prompt.size(), session.n_ctx()));
  session.rewind(static_cast<int64_t>(common));
  r.n_reused = static_cast<int64_t>(common);

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float>* logits =
      &session.evaluate(std::vector<TokenId>(prompt.begin() + static_cast<std::ptrdiff_t>(common), prompt.end()));
  r.prompt_seconds = since(t0);

  Sampler sampler(params.sampling);
  r.seed = sampler.seed();
  for (TokenId t : prompt) sampler.accept(t);
  Detokenizer detok(session.model().tokenizer());
  std::string pending;  // produced text not yet passed on (could start a stop text)
  const auto t1 = std::chrono::steady_clock::now();
  r.stop = StopReason::max_tokens;
  bool stopped = false;
  for (int64_t i = 0; i < params.max_tokens && !stopped; ++i) {
    if (session.n_free() == 0) {
      r.stop = StopReason::context_full;
      break;
    }
    const TokenId tok = sampler.sample(*logits);
    sampler.accept(tok);
    if (stop_tokens.count(tok)) {
      // Keep the end-of-turn token in the cache: the next turn's rendered
      // prompt contains it, so its prefix still matches.
      logits = &session.decode(tok);
      r.stop = StopReason::eos;
      break;
    }
    ++r.n_generated;
    pending += detok.push(tok);
    std::string out;
    size_t first_stop = std::string::npos;  // the earliest stop text wins, whatever its list position
    for (const std::string& s : stop_texts) first_stop = std::min(first_stop, pending.find(s));
    if (first_stop != std::string::npos) {
      out = pending.substr(0, first_stop);
      pending.clear();
      r.stop = StopReason::stop_text;
      stopped = true;
    }
    if (!stopped) {
      const size_t hold = held_back(pending, stop_texts);
      out = pending.substr(0, pending.size() - hold);
      pending.erase(0, pending.size() - hold);
    }
    r.text += out;
    // Called even with an empty piece (a token that shows no text yet), so a
    // caller can stop a model that keeps producing invisible tokens.
    const bool go_on = !on_text || on_text(out);
    logits = &session.decode(tok);
    if (!go_on) {
      r.stop = StopReason::callback;
      stopped = true;
    }
  }
  if (r.stop != StopReason::stop_text && r.stop != StopReason::callback) {
    pending += detok.flush();
    if (!pending.empty()) {
      r.text += pending;
      if (on_text) on_text(pending);
    }
  }
  r.generate_seconds = since(t1);
  return r;
}

}  // namespace

GenerateResult generate(Session& session, const std::string& prompt, const GenerateParams& params,
                        const TokenCallback& on_text) {
  const Tokenizer& tok = session.model().tokenizer();
  std::unordered_set<TokenId> stops;
  if (tok.eos() && !params.ignore_eos) stops.insert(*tok.eos());
  return run(session, tok.encode(prompt, params.add_bos, true), stops, params.stop, params, on_text);
}

GenerateResult generate(Session& session, const std::vector<ChatMessage>& messages, const GenerateParams& params,
                        const TokenCallback& on_text) {
  const ChatTemplate& tpl = session.model().chat_template();
  const std::vector<TokenId> prompt = tpl.tokenize(tpl.render(messages, true));
  std::unordered_set<TokenId> stops;
  std::vector<std::string> texts;
  if (!params.ignore_eos) {
    for (TokenId t : tpl.stop_tokens()) stops.insert(t);
    if (auto eos = session.model().tokenizer().eos()) stops.insert(*eos);
    texts = tpl.stop_texts();
  }
  texts.insert(texts.end(), params.stop.begin(), params.stop.end());
  return run(session, prompt, stops, texts, params, on_text);
}

}  // namespace slm
