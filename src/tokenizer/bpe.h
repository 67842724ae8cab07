// Byte-level BPE (tokenizer.ggml.model = "gpt2": Llama 3, SmolLM2, Qwen 2,
// Phi-4-mini, GPT-2): the model-specific half of the tokenizer; the shared
// half (vocabulary, special tokens, BOS/EOS, decoding) is Tokenizer.
// ../shared/docs/tokenizer-bpe.md is the spec: pre-tokenize (§4), byte-encode
// each word (§3), merge pairs lowest rank first, leftmost on ties (§5).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"

namespace slm::gguf {
class GgufFile;
}  // namespace slm::gguf

namespace slm::text {

using TokenId = int32_t;
using TokenIndex = std::unordered_map<std::string_view, TokenId>;

class BpeModel {
 public:
  // Reads tokenizer.ggml.pre and tokenizer.ggml.merges. Throws slm::Error
  // for an unknown pre-tokenizer (naming it and the known ones), missing
  // merges, or a malformed merge entry.
  explicit BpeModel(const gguf::GgufFile& file);

  const PreTokenizer& pre() const { return *pre_; }
  // Appends the ids of one raw-text fragment (no special tokens in it).
  void encode(std::string_view text, const TokenIndex& index, TokenId unk, std::vector<TokenId>& out) const;
  // The bytes a NORMAL token's byte-level text stands for.
  static std::string decode_text(std::string_view token_text);

 private:
  void merge_word(const std::string& word, const TokenIndex& index, TokenId unk, std::vector<TokenId>& out) const;
  int32_t rank(std::string_view left, std::string_view right) const;

  const PreTokenizer* pre_ = nullptr;
  std::unordered_map<std::string, int32_t> ranks_;  // "left\nright" -> merge rank ('\n' never occurs in a byte-level text)
};

}  // namespace slm::text
