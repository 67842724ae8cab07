// Byte-level BPE pre-tokenizers (tokenizer.ggml.pre): how a text fragment is
// cut into words before the merges, exactly as the reference engine does
// (../shared/docs/tokenizer-bpe.md §4). A pre-tokenizer is data: an ordered
// list of rules; each rule refines every current piece, and both its
// matches and the gaps between them stay pieces (nothing is dropped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace slm::text {

enum class SplitRule {
  kGpt2,           // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,         // Llama 3: (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,          // kLlama3 with \p{N} (one digit) for \p{N}{1,3}
  kGpt4o,          // Phi-4-mini / o200k, with the reference engine's ASCII-only letter case
  kDigit,          // \p{N}
  kDigits,         // \p{N}+
  kThreeDigits,    // [0-9][0-9][0-9]
  kPunctFalcon,    // [\p{P}\$\+<=>\^~\|`]+
  kPunctDefault,   // [\p{P}\$\+<=>\^~\|]+
  kNewline,        // [\r\n]
  kSpaceLetters,   // \s?\p{L}+
  kSpacePunct,     // \s?\p{P}+
  kCjk,            // [一-龥ࠀ-一가-퟿]+
  kDeepseekLetters,  // \s?[A-Za-zµÀ-Ö...]+ (deepseek-llm's own letter ranges)
  kDeepseekPunct,    // \s?[!-/:-~！-／：-～‘-‟　-。]+
  kTrailingSpace,    // \s+$
};

struct PreTokenizer {
  std::string_view name;
  std::vector<SplitRule> rules;
  bool ignore_merges = false;  // a word that is itself a token is not merged (Llama 3)
  bool add_bos = false;        // default when tokenizer.ggml.add_bos_token is absent
};

// The pre-tokenizer named by tokenizer.ggml.pre (aliases included), or null.
const PreTokenizer* find_pretokenizer(std::string_view name);
// Every name find_pretokenizer() accepts, for error messages.
std::string_view pretokenizer_names();

// Cuts code points into words: [begin, end) index pairs covering all of them.
std::vector<std::pair<size_t, size_t>> pretokenize(const PreTokenizer& pre, const std::vector<uint32_t>& cps);

}  // namespace slm::text
