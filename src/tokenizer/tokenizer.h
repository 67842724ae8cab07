// The tokenizer built from a GGUF vocabulary. What every model shares lives
// here: the vocabulary, special tokens and their partition of the text
// (control / user-defined / unknown-typed token texts found in the input
// become those tokens: control and unknown only when parse_special is set,
// user-defined always), BOS/EOS rules, decoding, the streaming
// detokenizer. Two models turn the remaining text fragments into ids:
// SentencePiece (tokenizer.ggml.model = "llama": Phi-3, Gemma, TinyLlama;
// tokenizer/spm.h — with the space prefix before a fragment that follows
// the start or a special token, when the vocabulary asks for one) and
// byte-level BPE ("gpt2": Llama 3, SmolLM2, Qwen 2, Phi-4-mini;
// tokenizer/bpe.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"
#include "tokenizer/utf8.h"

namespace slm::gguf {
class GgufFile;
}  // namespace slm::gguf

// Internal text layer; the public API wraps it (include/slm/tokenizer.h).
namespace slm::text {

// tokenizer.ggml.token_type values (SentencePiece piece types).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Tokenizer {
 public:
  // Reads the vocabulary from a model or vocabulary-only file. Throws
  // slm::Error for a tokenizer model other than "llama" / "gpt2", missing or
  // inconsistent arrays, special ids outside the vocabulary, and (BPE) an
  // unknown pre-tokenizer, missing or malformed merges or duplicate tokens.
  explicit Tokenizer(const gguf::GgufFile& file);
  // Movable, not copyable: the lookup index views the token strings.
  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text -> ids, exactly as the reference tokenizer: add_special adds BOS
  // (and EOS) as the vocabulary's metadata asks, even when the text itself
  // starts with BOS text; parse_special recognises control-token texts such
  // as "<|user|>".
  std::vector<TokenId> encode(std::string_view text, bool add_special = true, bool parse_special = true) const;

  // A rendered chat prompt -> ids: special tokens parsed, and BOS added only
  // when the metadata asks for it and the prompt does not already begin with
  // it (chat templates often write their own BOS text; two BOS tokens is a
  // classic bug that degrades answers).
  std::vector<TokenId> encode_chat(std::string_view rendered) const;

  // The bytes a token stands for: "▁" -> " ", <0xNN> -> that byte; control
  // tokens give "" unless render_special.
  std::string token_to_piece(TokenId id, bool render_special = false) const;

  // ids -> bytes, dropping the space SentencePiece put in front of the first
  // piece (add_space_prefix vocabularies), as the original decoder does.
  std::string decode(const std::vector<TokenId>& ids, bool render_special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token_text(TokenId id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenType token_type(TokenId id) const { return types_.at(static_cast<size_t>(id)); }
  float token_score(TokenId id) const { return scores_.at(static_cast<size_t>(id)); }
  std::optional<TokenId> find(std::string_view text) const;
  bool is_valid(TokenId id) const { return id >= 0 && id < n_vocab(); }

  std::optional<TokenId> bos() const { return bos_; }
  std::optional<TokenId> eos() const { return eos_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  // Byte-level BPE ("gpt2") rather than SentencePiece; its pre-tokenizer.
  bool byte_level() const { return bpe_ != nullptr; }
  const BpeModel* bpe() const { return bpe_.get(); }
  // Control tokens (<s>, <|end|>, ...) decode to nothing unless rendered;
  // which of them end a turn is the chat template's call (stop_tokens).
  bool is_control(TokenId id) const { return is_valid(id) && token_type(id) == TokenType::kControl; }

 private:
  struct Fragment {
    bool is_token;
    TokenId token;
    std::string_view text;
  };
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string_view, TokenId> index_;  // keys view into tokens_
  std::vector<TokenId> special_tokens_;                   // matched in text, longest first
  std::vector<bool> rstrip_;                              // per token: eat whitespace after it
  std::optional<TokenId> bos_, eos_, unk_;
  bool add_bos_ = true;
  bool add_eos_ = false;
  bool add_space_prefix_ = true;
  // The model that turns text fragments into ids: exactly one is set.
  std::shared_ptr<const SpmModel> spm_;
  std::shared_ptr<const BpeModel> bpe_;
};

// Turns a stream of generated ids into text for display: only complete UTF-8
// characters come out (a character split over byte tokens comes out whole),
// and the leading space of the first piece is dropped as decode() does.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(TokenId id);
  std::string flush() { return utf8_.flush(); }
  // Start a new sequence (e.g. a new answer): the next piece is "first" again.
  void reset() {
    utf8_.flush();
    first_ = true;
  }

 private:
  const Tokenizer& tokenizer_;
  Utf8Assembler utf8_;
  bool first_ = true;
};

}  // namespace slm::text
