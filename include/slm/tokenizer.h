// slm::Tokenizer — text <-> token ids with a model's vocabulary, and
// slm::Detokenizer, which turns a token stream into whole UTF-8 text.
//
// Ownership: a Tokenizer belongs to its Model (Model::tokenizer()) and lives
// as long as the Model. Thread-safety: every method is const and may be
// called from any number of threads. Errors: slm::Error (e.g. an id out of
// range).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slm {

using TokenId = int32_t;

class Tokenizer {
 public:
  // Text -> ids. add_bos: prepend BOS when the model's metadata asks for it.
  // parse_special: "<|user|>" etc. become their control tokens (else plain text).
  std::vector<TokenId> encode(std::string_view text, bool add_bos = true, bool parse_special = true) const;
  // Ids -> text (control tokens such as BOS are left out).
  std::string decode(const std::vector<TokenId>& ids) const;
  // One token's text as it appears inside a sequence (may be part of a UTF-8 character).
  std::string piece(TokenId id) const;

  int32_t n_vocab() const;
  std::optional<TokenId> bos() const;
  std::optional<TokenId> eos() const;
  bool is_control(TokenId id) const;  // BOS, EOS, <|end|>, ...

  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  ~Tokenizer();
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Streams token ids to text: push() returns only complete UTF-8 characters
// (a character split across tokens comes out whole), flush() whatever is
// left. One per stream; not thread-safe. Keeps a reference to the tokenizer.
class Detokenizer {
 public:
  explicit Detokenizer(const Tokenizer& tokenizer);
  ~Detokenizer();
  std::string push(TokenId id);
  std::string flush();
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
