// slm::ChatTemplate — renders a conversation in the model's chat format
// (Phi-3, Phi-3.5, Phi-4, Gemma, Llama 3 / 3.1, ChatML), detected from the
// file's tokenizer.chat_template or its architecture.
//
// Ownership: belongs to its Model (Model::chat_template()). Thread-safety:
// const, callable from any thread. Errors: slm::Error for a role the format
// cannot express.
#pragma once

#include <string>
#include <vector>

#include "slm/tokenizer.h"

namespace slm {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  std::string name() const;  // "phi3", "gemma", ...
  // Every format name slm knows (ModelParams::chat_template takes one).
  static std::vector<std::string> names();
  // The prompt text, starting with the format's BOS text when it has one;
  // with add_generation_prompt, ending where the assistant's answer begins.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  // Token ids that end an assistant turn (<|end|>, <end_of_turn>, EOS, ...).
  std::vector<TokenId> stop_tokens() const;
  // Texts that end a turn if the model writes them out as plain text.
  std::vector<std::string> stop_texts() const;
  // Tokenizes a rendered prompt: special tokens parsed, BOS added only when
  // the text does not already carry it.
  std::vector<TokenId> tokenize(const std::string& rendered) const;

  struct Impl;
  explicit ChatTemplate(std::unique_ptr<Impl> impl);
  ~ChatTemplate();

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
