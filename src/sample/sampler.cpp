#include "slm/sampler.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <string>
#include <unordered_map>

#include "sample/stages.h"
#include "slm/error.h"

namespace slm {
namespace sample {

void fill(const float* logits, int64_t n_vocab, std::vector<Candidate>& out) {
  out.resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) out[static_cast<size_t>(i)] = {static_cast<TokenId>(i), logits[i], 0.0f};
}

void penalize(std::vector<Candidate>& cands, const std::vector<TokenId>& history, float repeat, float frequency,
              float presence) {
  if (history.empty() || (repeat == 1.0f && frequency == 0.0f && presence == 0.0f)) return;
  std::unordered_map<TokenId, int> counts;
  for (TokenId t : history) ++counts[t];
  for (const auto& [id, count] : counts) {
    if (id < 0 || static_cast<size_t>(id) >= cands.size()) continue;
    float& l = cands[static_cast<size_t>(id)].logit;
    // Dividing a negative logit would raise it: multiply instead.
    l = l > 0 ? l / repeat : l * repeat;
    l -= static_cast<float>(count) * frequency + presence;
  }
}

void top_k(std::vector<Candidate>& cands, int k) {
  auto higher = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
  if (k > 0 && static_cast<size_t>(k) < cands.size()) {
    std::partial_sort(cands.begin(), cands.begin() + k, cands.end(), higher);
    cands.resize(static_cast<size_t>(k));
  } else {
    std::sort(cands.begin(), cands.end(), higher);
  }
}

void softmax(std::vector<Candidate>& cands) {
  float max = -INFINITY;
  for (const auto& c : cands) max = std::max(max, c.logit);
  double sum = 0;
  for (auto& c : cands) sum += (c.p = std::exp(c.logit - max));
  for (auto& c : cands) c.p = static_cast<float>(c.p / sum);
}

void top_p(std::vector<Candidate>& cands, float p) {
  if (p >= 1.0f || cands.empty()) return;
  softmax(cands);
  double cum = 0;
  size_t keep = cands.size();
  for (size_t i = 0; i < cands.size(); ++i) {
    cum += cands[i].p;
    if (cum >= p) {
      keep = i + 1;
      break;
    }
  }
  cands.resize(keep);
}

void min_p(std::vector<Candidate>& cands, float min_p) {
  if (min_p <= 0.0f || cands.empty()) return;
  float max = -INFINITY;
  for (const auto& c : cands) max = std::max(max, c.logit);
  // p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)
  const float floor = max + std::log(min_p);
  cands.erase(std::remove_if(cands.begin(), cands.end(), [&](const Candidate& c) { return c.logit < floor; }), cands.end());
}

void temperature(std::vector<Candidate>& cands, float t) {
  for (auto& c : cands) c.logit /= t;
}

TokenId draw(std::vector<Candidate>& cands, std::mt19937_64& rng) {
  softmax(cands);
  const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
  double cum = 0;
  for (const auto& c : cands) {
    cum += c.p;
    if (u < cum) return c.id;
  }
  return cands.back().id;  // rounding left u above the total
}

TokenId argmax(const std::vector<Candidate>& cands) {
  size_t best = 0;
  for (size_t i = 1; i < cands.size(); ++i)
    if (cands[i].logit > cands[best].logit) best = i;
  return cands[best].id;
}

}  // namespace sample

struct Sampler::Impl {
  SamplerParams params;
  uint64_t seed = 0;
  std::mt19937_64 rng;
  std::deque<TokenId> recent;  // last penalty_last_n accepted tokens
  std::vector<TokenId> history;
  std::vector<sample::Candidate> cands;
};

Sampler::Sampler(const SamplerParams& params) : impl_(std::make_unique<Impl>()) {
  auto bad = [](const std::string& what) { throw Error("sampler: " + what); };
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) bad("top_p must be in (0, 1]");
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) bad("min_p must be in [0, 1]");
  if (!(params.repeat_penalty > 0.0f)) bad("repeat_penalty must be positive");
  if (params.top_k < 0) bad("top_k must be >= 0");
  if (params.penalty_last_n < 0) bad("penalty_last_n must be >= 0");
  if (!std::isfinite(params.temperature)) bad("temperature must be finite");
  impl_->params = params;
  impl_->seed = params.seed ? *params.seed : std::random_device{}() * 0x100000001ull ^ std::random_device{}();
  reset();
}

Sampler::~Sampler() = default;
Sampler::Sampler(Sampler&&) noexcept = default;
Sampler& Sampler::operator=(Sampler&&) noexcept = default;

void Sampler::reset() {
  impl_->rng.seed(impl_->seed);
  impl_->recent.clear();
}

uint64_t Sampler::seed() const { return impl_->seed; }
const SamplerParams& Sampler::params() const { return impl_->params; }

void Sampler::accept(TokenId token) {
  if (impl_->params.penalty_last_n == 0) return;
  impl_->recent.push_back(token);
  while (impl_->recent.size() > static_cast<size_t>(impl_->params.penalty_last_n)) impl_->recent.pop_front();
}

TokenId Sampler::sample(const float* logits, int64_t n_vocab) {
  if (n_vocab <= 0) throw Error("sampler: no logits");
  const SamplerParams& p = impl_->params;
  auto& c = impl_->cands;
  sample::fill(logits, n_vocab, c);
  impl_->history.assign(impl_->recent.begin(), impl_->recent.end());
  sample::penalize(c, impl_->history, p.repeat_penalty, p.frequency_penalty, p.presence_penalty);
  if (p.temperature <= 0.0f) return sample::argmax(c);
  sample::top_k(c, p.top_k);
  sample::top_p(c, p.top_p);
  sample::min_p(c, p.min_p);
  sample::temperature(c, p.temperature);
  return sample::draw(c, impl_->rng);
}

}  // namespace slm
