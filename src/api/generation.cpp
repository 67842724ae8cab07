#include "api/generation.h"

#include <algorithm>

#include "slm/chat.h"
#include "slm/error.h"
#include "slm/model.h"

namespace slm::detail {
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

}  // namespace

std::unique_ptr<Generation> Generation::for_prompt(const Model& model, const std::string& prompt,
                                                   const GenerateParams& params, TokenCallback on_text) {
  const Tokenizer& tok = model.tokenizer();
  std::unordered_set<TokenId> stops;
  if (tok.eos() && !params.ignore_eos) stops.insert(*tok.eos());
  return std::unique_ptr<Generation>(
      new Generation(model, tok.encode(prompt, params.add_bos, true), std::move(stops), params.stop, params, std::move(on_text)));
}

std::unique_ptr<Generation> Generation::for_chat(const Model& model, const std::vector<ChatMessage>& messages,
                                                 const GenerateParams& params, TokenCallback on_text) {
  const ChatTemplate& tpl = model.chat_template();
  std::vector<TokenId> prompt = tpl.tokenize(tpl.render(messages, true));
  std::unordered_set<TokenId> stops;
  std::vector<std::string> texts;
  if (!params.ignore_eos) {
    for (TokenId t : tpl.stop_tokens()) stops.insert(t);
    if (auto eos = model.tokenizer().eos()) stops.insert(*eos);
    texts = tpl.stop_texts();
  }
  texts.insert(texts.end(), params.stop.begin(), params.stop.end());
  return std::unique_ptr<Generation>(
      new Generation(model, std::move(prompt), std::move(stops), std::move(texts), params, std::move(on_text)));
}

Generation::Generation(const Model& model, std::vector<TokenId> prompt, std::unordered_set<TokenId> stop_tokens,
                       std::vector<std::string> stop_texts, const GenerateParams& params, TokenCallback on_text)
    : prompt_(std::move(prompt)),
      stop_tokens_(std::move(stop_tokens)),
      stop_texts_(std::move(stop_texts)),
      max_tokens_(params.max_tokens),
      on_text_(std::move(on_text)),
      sampler_(params.sampling),
      detok_(model.tokenizer()) {
  if (prompt_.empty()) throw Error("generate: the prompt is empty (no tokens)");
  if (params.max_tokens < 0) throw Error("generate: max_tokens must be >= 0");
  stop_texts_.erase(std::remove(stop_texts_.begin(), stop_texts_.end(), std::string()), stop_texts_.end());
  result_.n_prompt = static_cast<int64_t>(prompt_.size());
  result_.seed = sampler_.seed();
  result_.stop = StopReason::max_tokens;
  for (TokenId t : prompt_) sampler_.accept(t);
}

int64_t Generation::reuse(const std::vector<TokenId>& held) {
  size_t common = 0;
  while (common < held.size() && common < prompt_.size() && held[common] == prompt_[common]) ++common;
  result_.n_reused = static_cast<int64_t>(std::min(common, prompt_.size() - 1));
  return result_.n_reused;
}

Generation::Step Generation::next(const float* logits, int64_t n_vocab, int64_t n_free) {
  if (steps_ == 0) started_ = std::chrono::steady_clock::now();
  if (over_) return {};
  if (steps_ >= max_tokens_) return over_ = true, Step{};
  if (n_free == 0) {
    result_.stop = StopReason::context_full;
    return over_ = true, Step{};
  }
  ++steps_;
  const TokenId tok = sampler_.sample(logits, n_vocab);
  sampler_.accept(tok);
  if (stop_tokens_.count(tok)) {
    // Keep the end-of-turn token in the cache: the next turn's rendered
    // prompt contains it, so its prefix still matches.
    result_.stop = StopReason::eos;
    over_ = true;
    return {tok, true};
  }
  ++result_.n_generated;
  pending_ += detok_.push(tok);
  std::string out;
  size_t first_stop = std::string::npos;  // the earliest stop text wins, whatever its list position
  for (const std::string& s : stop_texts_) first_stop = std::min(first_stop, pending_.find(s));
  if (first_stop != std::string::npos) {
    out = pending_.substr(0, first_stop);
    pending_.clear();
    result_.stop = StopReason::stop_text;
    over_ = true;
  } else {
    const size_t hold = held_back(pending_, stop_texts_);
    out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
  }
  result_.text += out;
  // Called even with an empty piece (a token that shows no text yet), so a
  // caller can stop a model that keeps producing invisible tokens.
  if (on_text_ && !on_text_(out) && !over_) {
    result_.stop = StopReason::callback;
    over_ = true;
  }
  return {tok, over_};
}

GenerateResult Generation::finish() {
  if (steps_ == 0) started_ = std::chrono::steady_clock::now();
  if (result_.stop != StopReason::stop_text && result_.stop != StopReason::callback) {
    pending_ += detok_.flush();
    if (!pending_.empty()) {
      result_.text += pending_;
      if (on_text_) on_text_(pending_);
    }
  }
  pending_.clear();
  over_ = true;
  result_.generate_seconds = since(started_);
  return result_;
}

}  // namespace slm::detail
