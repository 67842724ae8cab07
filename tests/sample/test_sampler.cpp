// Each sampler stage on a known distribution, the chain's order, seeding,
// and a histogram of many draws against the softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "sample/stages.h"
#include "slm/error.h"
#include "slm/sampler.h"

namespace slm {
namespace {

using sample::Candidate;

std::vector<Candidate> cands_from_probs(const std::vector<double>& probs) {
  std::vector<Candidate> c;
  for (size_t i = 0; i < probs.size(); ++i) c.push_back({static_cast<TokenId>(i), static_cast<float>(std::log(probs[i])), 0});
  return c;
}

std::vector<TokenId> ids(const std::vector<Candidate>& c) {
  std::vector<TokenId> out;
  for (const auto& x : c) out.push_back(x.id);
  return out;
}

TEST(SamplerStages, TopKKeepsTheKHighestInOrder) {
  auto c = cands_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  sample::top_k(c, 3);
  EXPECT_EQ(ids(c), (std::vector<TokenId>{1, 3, 4}));
  auto all = cands_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  sample::top_k(all, 0);  // off: sorted, nothing dropped
  EXPECT_EQ(ids(all), (std::vector<TokenId>{1, 3, 4, 0, 2}));
}

TEST(SamplerStages, TopPKeepsExactlyTheSmallestSetReachingP) {
  // Sorted: 0.4, 0.3, 0.15, 0.1, 0.05 -> cumulative 0.4, 0.7, 0.85, 0.95, 1.0
  for (auto [p, keep] : std::vector<std::pair<float, size_t>>{{0.3f, 1}, {0.4f, 1}, {0.41f, 2}, {0.7f, 2},
                                                              {0.71f, 3}, {0.9f, 4}, {0.99f, 5}, {1.0f, 5}}) {
    auto c = cands_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
    sample::top_k(c, 0);
    sample::top_p(c, p);
    EXPECT_EQ(c.size(), keep) << "p = " << p;
    if (p >= 1.0f) continue;  // off: nothing computed
    double total = 0, without_last = 0;
    for (const auto& x : c) total += x.p;
    without_last = total - c.back().p;
    EXPECT_GE(total + 1e-6, p) << "p = " << p;       // reaches p
    EXPECT_LT(without_last, p) << "p = " << p;       // and is the smallest such set
  }
}

TEST(SamplerStages, MinPDropsBelowTheFractionOfTheTop) {
  auto c = cands_from_probs({0.5, 0.2, 0.1, 0.09, 0.11});
  sample::min_p(c, 0.2f);  // threshold 0.1: keeps 0.5, 0.2, 0.1, 0.11
  std::sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.id < b.id; });
  EXPECT_EQ(ids(c), (std::vector<TokenId>{0, 1, 2, 4}));
}

TEST(SamplerStages, TemperatureSharpensAndFlattens) {
  auto c = cands_from_probs({0.6, 0.3, 0.1});
  auto hot = c, cold = c;
  sample::temperature(cold, 0.5f);
  sample::temperature(hot, 2.0f);
  sample::softmax(c), sample::softmax(cold), sample::softmax(hot);
  EXPECT_GT(cold[0].p, c[0].p);
  EXPECT_LT(hot[0].p, c[0].p);
  // t = 0.5 squares the probabilities (renormalised).
  const double z = 0.36 + 0.09 + 0.01;
  EXPECT_NEAR(cold[0].p, 0.36 / z, 1e-5);
}

TEST(SamplerStages, PenaltiesFollowTheirFormulas) {
  std::vector<Candidate> c = {{0, 2.0f, 0}, {1, -2.0f, 0}, {2, 1.0f, 0}, {3, 1.0f, 0}};
  sample::penalize(c, {0, 1, 2, 2}, 2.0f, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(c[0].logit, 2.0f / 2 - 0.5f - 0.25f);      // positive: divided
  EXPECT_FLOAT_EQ(c[1].logit, -2.0f * 2 - 0.5f - 0.25f);     // negative: multiplied
  EXPECT_FLOAT_EQ(c[2].logit, 1.0f / 2 - 2 * 0.5f - 0.25f);  // seen twice: frequency counts
  EXPECT_FLOAT_EQ(c[3].logit, 1.0f);                         // unseen: untouched
}

TEST(SamplerChain, TemperatureZeroIsGreedyAfterPenalties) {
  std::vector<float> logits = {0.1f, 3.0f, 2.9f, -1.0f};
  SamplerParams p;
  p.temperature = 0;
  Sampler s(p);
  EXPECT_EQ(s.sample(logits), 1);
  p.repeat_penalty = 1.5f;
  Sampler pen(p);
  pen.accept(1);  // 3.0 / 1.5 = 2.0 < 2.9
  EXPECT_EQ(pen.sample(logits), 2);
}

TEST(SamplerChain, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::vector<float> logits(1000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i)) * 2;
  SamplerParams p;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  p.temperature = 1.5f;
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<TokenId> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(logits));
    s.reset();
    EXPECT_EQ(s.sample(logits), out[0]) << "reset restarts from the seed";
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

// 200k draws from a 6-token softmax: every frequency within 5 standard
// deviations of its probability (a wrong distribution is off by far more;
// a correct one fails this with probability < 1e-5).
TEST(SamplerChain, DrawHistogramMatchesSoftmax) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -3.0f};
  SamplerParams p;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  p.temperature = 1.0f;
  p.seed = 12345;
  Sampler s(p);
  const int n = 200000;
  std::map<TokenId, int> hist;
  for (int i = 0; i < n; ++i) ++hist[s.sample(logits)];
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (size_t i = 0; i < logits.size(); ++i) {
    const double prob = std::exp(logits[i]) / z;
    const double sd = std::sqrt(n * prob * (1 - prob));
    EXPECT_NEAR(hist[static_cast<TokenId>(i)], n * prob, 5 * sd) << "token " << i;
  }
}

TEST(SamplerChain, TruncationStagesRestrictTheDraw) {
  const std::vector<float> logits = {3.0f, 2.9f, 0.0f, -1.0f, 2.8f};
  SamplerParams p;
  p.top_k = 2;
  p.top_p = 1;
  p.min_p = 0;
  p.temperature = 5.0f;  // flat: without top-k every token would appear
  p.seed = 1;
  Sampler s(p);
  for (int i = 0; i < 2000; ++i) {
    const TokenId t = s.sample(logits);
    ASSERT_TRUE(t == 0 || t == 1) << t;
  }
}

// Draws 3000 tokens and returns which ids appeared.
std::set<TokenId> drawn(const std::vector<float>& logits, SamplerParams p, const std::vector<TokenId>& accepted = {}) {
  p.seed = 11;
  Sampler s(p);
  for (TokenId t : accepted) s.accept(t);
  std::set<TokenId> seen;
  for (int i = 0; i < 3000; ++i) seen.insert(s.sample(logits));
  return seen;
}

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

SamplerParams all_stages_off() {
  SamplerParams p;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  p.temperature = 1.0f;
  return p;
}

TEST(SamplerChain, TopPInTheChainKeepsTheNucleus) {
  // Sorted 0.4, 0.3, 0.15, 0.1, 0.05: p = 0.65 keeps {1, 3}.
  const auto logits = log_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  SamplerParams p = all_stages_off();
  EXPECT_EQ(drawn(logits, p).size(), 5u);  // without the stage every token appears
  p.top_p = 0.65f;
  EXPECT_EQ(drawn(logits, p), (std::set<TokenId>{1, 3}));
}

TEST(SamplerChain, MinPInTheChainDropsTheTail) {
  // min_p 0.3 of the top (0.4): threshold 0.12 keeps {1, 3, 4}.
  const auto logits = log_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  SamplerParams p = all_stages_off();
  p.min_p = 0.3f;
  EXPECT_EQ(drawn(logits, p), (std::set<TokenId>{1, 3, 4}));
}

// The documented order: penalties -> top-k -> top-p -> min-p -> temperature.
TEST(SamplerChain, StagesRunInTheDocumentedOrder) {
  const auto logits = log_probs({0.35, 0.25, 0.2, 0.2});
  // top-k before top-p: after top-k 2 the survivors renormalise to 0.583 /
  // 0.417, so top-p 0.55 keeps token 0 alone. (top-p first would keep {0, 1}:
  // 0.35 < 0.55 on the full distribution.)
  SamplerParams p = all_stages_off();
  p.top_k = 2;
  p.top_p = 0.55f;
  EXPECT_EQ(drawn(logits, p), (std::set<TokenId>{0}));
  // Temperature after the truncation: top-p 0.55 on the untempered
  // distribution keeps {0, 1}; tempered first (t = 100, nearly flat) it would
  // need three tokens.
  p = all_stages_off();
  p.top_p = 0.55f;
  p.temperature = 100.0f;
  EXPECT_EQ(drawn(logits, p), (std::set<TokenId>{0, 1}));
  // min-p after temperature would keep everything at t = 100; before it,
  // 0.7 * 0.35 = 0.245 keeps {0, 1}.
  p = all_stages_off();
  p.min_p = 0.7f;
  p.temperature = 100.0f;
  EXPECT_EQ(drawn(logits, p), (std::set<TokenId>{0, 1}));
  // Penalties before top-k: the penalised top token drops out of the top 2,
  // which are then 1 and 2 (2 and 3 tie; the lower id wins). Penalising
  // after top-k would keep {0, 1}.
  p = all_stages_off();
  p.top_k = 2;
  p.presence_penalty = 5.0f;
  EXPECT_EQ(drawn(logits, p, {0}), (std::set<TokenId>{1, 2}));
}

// Penalties look at the last penalty_last_n accepted tokens only.
TEST(SamplerChain, PenaltyWindowIsTheLastNAcceptedTokens) {
  const std::vector<float> logits = {2.0f, 1.5f, 1.0f, 0.5f};
  SamplerParams p;
  p.temperature = 0;  // greedy after penalties
  p.repeat_penalty = 4.0f;
  p.penalty_last_n = 2;
  {
    Sampler s(p);
    s.accept(0);
    EXPECT_EQ(s.sample(logits), 1);  // 2.0 / 4 = 0.5 < 1.5
    s.accept(2);
    EXPECT_EQ(s.sample(logits), 1);  // 0 still in the window {0, 2}
    s.accept(3);
    EXPECT_EQ(s.sample(logits), 0);  // window {2, 3}: 0 has left it
    s.accept(0);
    s.reset();
    EXPECT_EQ(s.sample(logits), 0);  // reset clears the history
  }
  p.penalty_last_n = 0;  // off: nothing is remembered
  Sampler off(p);
  off.accept(0);
  EXPECT_EQ(off.sample(logits), 0);
  // Frequency counts repeats within the window only.
  p.repeat_penalty = 1.0f;
  p.frequency_penalty = 0.3f;
  p.penalty_last_n = 3;
  Sampler freq(p);
  for (TokenId t : {0, 0, 0, 0, 0, 0}) freq.accept(t);  // 3 in the window: 2.0 - 0.9 = 1.1 < 1.5
  EXPECT_EQ(freq.sample(logits), 1);
  p.penalty_last_n = 1;
  Sampler one(p);
  for (TokenId t : {0, 0, 0, 0, 0, 0}) one.accept(t);  // 1 in the window: 2.0 - 0.3 = 1.7 > 1.5
  EXPECT_EQ(one.sample(logits), 0);
}

TEST(SamplerChain, InvalidParametersAreErrors) {
  SamplerParams p;
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.min_p = 1.5f;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.top_k = -1;
  EXPECT_THROW(Sampler{p}, Error);
  Sampler ok;
  EXPECT_THROW(ok.sample(nullptr, 0), Error);
}

}  // namespace
}  // namespace slm
