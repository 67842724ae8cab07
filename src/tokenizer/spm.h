// SentencePiece (tokenizer.ggml.model = "llama": Phi-3, Gemma, Llama 2): the
// model-specific half of the tokenizer; the shared half (vocabulary, special
// tokens, BOS/EOS, decoding) is Tokenizer, the other model BpeModel.
//  1. spaces become U+2581 "▁" (the space prefix is Tokenizer's call);
//  2. characters are merged pairwise, best-scoring pair first (a priority
//     queue: O(n log n)), leftmost on ties;
//  3. whatever is not a piece falls back to byte tokens <0xNN> (or the
//     unknown token).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace slm::text {

using TokenId = int32_t;
using TokenIndex = std::unordered_map<std::string_view, TokenId>;

inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

class SpmModel {
 public:
  // The vocabulary's texts and scores (one per token) and its text index.
  SpmModel(const std::vector<std::string>& tokens, std::vector<float> scores, const TokenIndex& index);

  // Appends the ids of one raw-text fragment (no special tokens in it).
  void encode(std::string_view text, const TokenIndex& index, TokenId unk, std::vector<TokenId>& out) const;
  // The text a NORMAL piece stands for ("▁" -> " ").
  static std::string decode_text(std::string_view token_text);

 private:
  void merge_chunk(std::string_view escaped, const TokenIndex& index, TokenId unk, std::vector<TokenId>& out) const;
  void emit_bytes(std::string_view piece, TokenId unk, std::vector<TokenId>& out) const;

  std::vector<float> scores_;
  TokenId byte_tokens_[256];            // -1 where the vocabulary has none
  bool words_are_independent_ = false;  // see encode
};

}  // namespace slm::text
