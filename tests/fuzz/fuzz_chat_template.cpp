// Fuzz target: chat template rendering of arbitrary conversations in every
// format slm knows. Input: the first byte picks the format and whether the
// assistant prompt is added; the rest is messages separated by 0x01, each
// starting with a role byte (system / user / assistant / an unknown role).
// The only acceptable failure is slm::Error (an unknown role, a system
// message that is not first); the rendering must contain every content
// (trimmed), a system text alone included.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "slm/error.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto names = slm::text::chat_format_names();
  if (size == 0) return 0;
  const auto format = slm::text::chat_format_from_name(names[data[0] % names.size()]);
  if (!format) std::abort();
  const bool open_turn = data[0] & 0x80;
  std::vector<slm::text::ChatMessage> messages;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  for (size_t at = 0; at <= rest.size();) {
    size_t end = rest.find('\x01', at);
    if (end == std::string::npos) end = rest.size();
    const std::string field = rest.substr(at, end - at);
    static const char* kRoles[] = {"system", "user", "assistant", "tool"};
    messages.push_back({field.empty() ? "user" : kRoles[static_cast<uint8_t>(field[0]) % 4],
                        field.empty() ? "" : field.substr(1)});
    at = end + 1;
  }
  try {
    const slm::text::ChatTemplate tpl(*format);
    const std::string text = tpl.render(messages, open_turn);
    for (const auto& m : messages) {
      // Some formats trim each content (as their official templates do).
      const size_t b = m.content.find_first_not_of(" \t\n\r\v\f");
      const std::string core = b == std::string::npos ? "" : m.content.substr(b, m.content.find_last_not_of(" \t\n\r\v\f") - b + 1);
      if (text.find(core) == std::string::npos) std::abort();
    }
    (void)tpl.stop_texts();
  } catch (const slm::Error&) {
  }
  return 0;
}
