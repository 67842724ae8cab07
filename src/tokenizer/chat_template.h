// Chat prompt formats of the instruction-tuned model families, built in
// (no Jinja interpreter): chosen by recognising the model's
// tokenizer.chat_template, or by name.
//
// Rendering matches the official templates byte for byte, with two
// documented departures where the official template would fail the user
// (see docs/chat-templates.md):
//  - Gemma's template raises an error on a system message; slm puts the
//    system text at the start of the first user turn, separated by a blank
//    line (with no user turn, the system text is the user turn).
//  - Phi-3's template silently drops system messages; slm renders them as a
//    <|system|> turn, as Phi-3.5 does (and as llama.cpp and Ollama do).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace slm::gguf {
class GgufFile;
}  // namespace slm::gguf

// Internal text layer; the public API wraps it (include/slm/tokenizer.h).
namespace slm::text {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFormat {
  kPhi3,     // <s><|user|>\n...<|end|>\n<|assistant|>\n
  kPhi35,    // Phi-3.5: no BOS text, <|system|> supported
  kPhi4,     // Phi-4-mini: <|system|>...<|end|><|user|>...<|end|><|assistant|> (no newlines)
  kGemma,    // <bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n
  kLlama3,   // <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n...<|eot_id|>
  kLlama31,  // Llama 3.1 / 3.2: Llama 3 plus the dated system header
  kChatML,   // <|im_start|>user\n...<|im_end|>\n
  kQwen2,    // Qwen 2 / 2.5: ChatML with a default system prompt when none is given
  kSmolLM,   // SmolLM2-Instruct: ChatML with its own default system prompt
};

std::string_view chat_format_name(ChatFormat format);
// "phi3", "phi3.5", "phi4", "gemma", "llama3", "llama3.1", "chatml", "qwen2", "smollm".
std::optional<ChatFormat> chat_format_from_name(std::string_view name);
std::vector<std::string_view> chat_format_names();
// Recognises a Jinja chat template; nullopt when it is none of the above.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFormat format) : format_(format) {}

  // The model's own format: from tokenizer.chat_template when recognised,
  // else by architecture (phi3 -> Phi-3, gemma/gemma2 -> Gemma, llama ->
  // Llama 3 when the vocabulary has <|eot_id|>), else ChatML.
  static ChatTemplate for_model(const gguf::GgufFile& file, const Tokenizer* tokenizer = nullptr);

  ChatFormat format() const { return format_; }
  std::string_view name() const { return chat_format_name(format_); }

  // The prompt text for a conversation. add_generation_prompt opens the
  // assistant's turn. Roles other than system/user/assistant, or a system
  // message anywhere but first, throw slm::Error.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

  // Texts that end the assistant's turn ("<|end|>", "<end_of_turn>", ...).
  std::vector<std::string> stop_texts() const;
  // Those resolved in a vocabulary, plus its EOS.
  std::vector<TokenId> stop_tokens(const Tokenizer& tokenizer) const;

 private:
  ChatFormat format_;
};

}  // namespace slm::text
