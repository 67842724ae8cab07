#include "tokenizer/chat_template.h"

#include <algorithm>

#include <fmt/format.h>

#include "gguf/gguf_reader.h"
#include "slm/error.h"

namespace slm::text {
namespace {

struct FormatName {
  ChatFormat format;
  std::string_view name;
};
constexpr FormatName kNames[] = {
    {ChatFormat::kPhi3, "phi3"},     {ChatFormat::kPhi35, "phi3.5"},     {ChatFormat::kPhi4, "phi4"},
    {ChatFormat::kGemma, "gemma"},   {ChatFormat::kLlama3, "llama3"},    {ChatFormat::kLlama31, "llama3.1"},
    {ChatFormat::kChatML, "chatml"}, {ChatFormat::kQwen2, "qwen2"},     {ChatFormat::kSmolLM, "smollm"},
};

// ChatML variants whose official template injects a system turn when the
// conversation has none: the text, which also identifies the template.
struct DefaultSystem {
  ChatFormat format;
  std::string_view text;
};
constexpr DefaultSystem kDefaultSystems[] = {
    {ChatFormat::kQwen2, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."},
    {ChatFormat::kSmolLM, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
};

std::string_view default_system(ChatFormat format) {
  for (const auto& d : kDefaultSystems)
    if (d.format == format) return d.text;
  return {};
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Jinja's |trim (Python str.strip() on ASCII whitespace).
std::string trim(std::string_view s) {
  const char* ws = " \t\n\r\v\f";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

// Checks roles; returns the system text (or "") and the remaining turns.
std::pair<std::string, std::vector<ChatMessage>> split_system(const std::vector<ChatMessage>& messages) {
  std::string system;
  std::vector<ChatMessage> turns;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role == "system") {
      if (i != 0) throw Error(fmt::format("chat: a system message must come first (found one at position {})", i));
      system = messages[i].content;
    } else if (role == "user" || role == "assistant") {
      turns.push_back(messages[i]);
    } else {
      throw Error(fmt::format("chat: unknown role '{}' (expected system, user or assistant)", role));
    }
  }
  return {system, turns};
}

}  // namespace

std::string_view chat_format_name(ChatFormat format) {
  for (const auto& n : kNames) {
    if (n.format == format) return n.name;
  }
  return "unknown";
}

std::vector<std::string_view> chat_format_names() {
  std::vector<std::string_view> out;
  for (const auto& n : kNames) out.push_back(n.name);
  return out;
}

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
  for (const auto& n : kNames) {
    if (n.name == name) return n.format;
  }
  return std::nullopt;
}

std::optional<ChatFormat> detect_chat_format(std::string_view t) {
  if (contains(t, "<start_of_turn>")) return ChatFormat::kGemma;
  if (contains(t, "<|start_header_id|>")) {
    return contains(t, "Cutting Knowledge Date") ? ChatFormat::kLlama31 : ChatFormat::kLlama3;
  }
  if (contains(t, "<|assistant|>") || contains(t, "<|user|>")) {
    if (contains(t, "'<|' + message['role'] + '|>'")) return ChatFormat::kPhi4;
    if (contains(t, "<|system|>")) return ChatFormat::kPhi35;
    if (contains(t, "<|end|>")) return ChatFormat::kPhi3;
  }
  if (contains(t, "<|im_start|>")) {
    for (const auto& d : kDefaultSystems)
      if (contains(t, d.text)) return d.format;
    return ChatFormat::kChatML;
  }
  return std::nullopt;
}

ChatTemplate ChatTemplate::for_model(const gguf::GgufFile& file, const Tokenizer* tokenizer) {
  if (const auto jinja = file.get_string("tokenizer.chat_template")) {
    if (const auto f = detect_chat_format(*jinja)) return ChatTemplate(*f);
  }
  const std::string& arch = file.architecture();
  if (arch == "phi3") return ChatTemplate(ChatFormat::kPhi3);
  if (arch == "gemma" || arch == "gemma2" || arch == "gemma3") return ChatTemplate(ChatFormat::kGemma);
  if (arch == "llama" && tokenizer != nullptr && tokenizer->find("<|eot_id|>")) {
    return ChatTemplate(ChatFormat::kLlama31);
  }
  return ChatTemplate(ChatFormat::kChatML);
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  const auto [system, turns] = split_system(messages);
  std::string out;
  switch (format_) {
    case ChatFormat::kPhi3:
      // The official template emits the assistant header after every user
      // turn (whatever add_generation_prompt says) and drops system messages;
      // slm keeps the system text as a <|system|> turn (documented departure).
      out = "<s>";
      if (!system.empty()) out += "<|system|>\n" + system + "<|end|>\n";
      for (const ChatMessage& m : turns) {
        if (m.role == "user") {
          out += "<|user|>\n" + m.content + "<|end|>\n<|assistant|>\n";
        } else {
          out += m.content + "<|end|>\n";
        }
      }
      return out;
    case ChatFormat::kPhi35:
      if (!system.empty()) out += "<|system|>\n" + system + "<|end|>\n";
      for (const ChatMessage& m : turns) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      out += add_generation_prompt ? "<|assistant|>\n" : "<|endoftext|>";
      return out;
    case ChatFormat::kPhi4:
      if (!system.empty()) out += "<|system|>" + system + "<|end|>";
      for (const ChatMessage& m : turns) out += "<|" + m.role + "|>" + m.content + "<|end|>";
      out += add_generation_prompt ? "<|assistant|>" : "<|endoftext|>";
      return out;
    case ChatFormat::kGemma: {
      // The official template refuses a system role; slm prepends the system
      // text to the first user turn (documented departure).
      out = "<bos>";
      if (turns.empty() && !system.empty()) {  // a system text alone still reaches the model, as a user turn
        out += "<start_of_turn>user\n" + trim(system) + "<end_of_turn>\n";
      }
      for (size_t i = 0; i < turns.size(); ++i) {
        const ChatMessage& m = turns[i];
        if ((m.role == "user") != (i % 2 == 0)) {
          throw Error("chat: Gemma conversations must alternate user/assistant/user/..., starting with user");
        }
        std::string content = m.content;
        if (i == 0 && !system.empty()) content = system + "\n\n" + content;
        out += "<start_of_turn>" + std::string(m.role == "assistant" ? "model" : "user") + "\n" + trim(content) +
               "<end_of_turn>\n";
      }
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      return out;
    }
    case ChatFormat::kLlama3:
    case ChatFormat::kLlama31:
      out = "<|begin_of_text|>";
      if (format_ == ChatFormat::kLlama31) {
        // The date line is the template's own default (no strftime_now).
        out += "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
               "Today Date: 26 Jul 2024\n\n" +
               trim(system) + "<|eot_id|>";
      } else if (!system.empty()) {
        out += "<|start_header_id|>system<|end_header_id|>\n\n" + trim(system) + "<|eot_id|>";
      }
      for (const ChatMessage& m : turns) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::kChatML:
    case ChatFormat::kQwen2:
    case ChatFormat::kSmolLM: {
      const std::string system_text = system.empty() ? std::string(default_system(format_)) : system;
      if (!system_text.empty()) out += "<|im_start|>system\n" + system_text + "<|im_end|>\n";
      for (const ChatMessage& m : turns) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    }
  }
  return out;
}

std::vector<std::string> ChatTemplate::stop_texts() const {
  switch (format_) {
    case ChatFormat::kPhi3:
    case ChatFormat::kPhi35:
    case ChatFormat::kPhi4: return {"<|end|>", "<|endoftext|>"};
    case ChatFormat::kGemma: return {"<end_of_turn>", "<eos>"};
    case ChatFormat::kLlama3:
    case ChatFormat::kLlama31: return {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"};
    case ChatFormat::kChatML:
    case ChatFormat::kQwen2:
    case ChatFormat::kSmolLM: return {"<|im_end|>", "<|endoftext|>"};
  }
  return {};
}

std::vector<TokenId> ChatTemplate::stop_tokens(const Tokenizer& tokenizer) const {
  std::vector<TokenId> ids;
  for (const std::string& text : stop_texts()) {
    if (const auto id = tokenizer.find(text)) ids.push_back(*id);
  }
  if (tokenizer.eos() && std::find(ids.begin(), ids.end(), *tokenizer.eos()) == ids.end()) {
    ids.push_back(*tokenizer.eos());
  }
  return ids;
}

}  // namespace slm::text
