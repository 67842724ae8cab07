// The sampler's stages as separate functions over a candidate list, so each
// can be tested on known distributions (tests/sample). The public
// slm::Sampler (sampler.cpp) chains them in the documented order.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "slm/tokenizer.h"

namespace slm::sample {

struct Candidate {
  TokenId id;
  float logit;
  float p;  // filled by softmax()
};

// Every token of the vocabulary, in id order.
void fill(const float* logits, int64_t n_vocab, std::vector<Candidate>& out);

// Repetition / frequency / presence penalties for the tokens in `history`.
// cands must still be in id order (cands[i].id == i).
void penalize(std::vector<Candidate>& cands, const std::vector<TokenId>& history, float repeat, float frequency,
              float presence);

// Sorts by logit, highest first, and keeps the first k (k <= 0: sort only).
void top_k(std::vector<Candidate>& cands, int k);
// p of every candidate from its logit (numerically stable softmax).
void softmax(std::vector<Candidate>& cands);
// Keeps the smallest prefix (of cands sorted highest first) whose total
// probability reaches p; at least one. Recomputes p first.
void top_p(std::vector<Candidate>& cands, float p);
// Keeps candidates whose probability is at least min_p times the highest.
void min_p(std::vector<Candidate>& cands, float min_p);
void temperature(std::vector<Candidate>& cands, float t);
// Draws one candidate by probability (recomputes p), using one 53-bit
// uniform from rng so results depend only on the seed.
TokenId draw(std::vector<Candidate>& cands, std::mt19937_64& rng);
// The highest logit (ties: lowest id).
TokenId argmax(const std::vector<Candidate>& cands);

}  // namespace slm::sample
