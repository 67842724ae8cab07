// UTF-8 helpers for the tokenizer and the streaming detokenizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace slm::text {

// Length of the complete, valid UTF-8 sequence at the start of `s`:
// > 0  a valid sequence of that many bytes;
// 0    `s` is a valid but unfinished prefix (more bytes may complete it);
// < 0  the first byte cannot start a valid sequence here (-1).
int utf8_valid_prefix(std::string_view s);

// True when all of `s` is valid UTF-8.
bool is_valid_utf8(std::string_view s);

// Accumulates bytes and hands back only whole UTF-8 characters: a character
// whose bytes arrive in several tokens comes out once complete. Bytes that
// can never form a valid character are replaced by U+FFFD.
class Utf8Assembler {
 public:
  // Appends bytes; returns the text that is now complete.
  std::string push(std::string_view bytes);
  // Returns whatever is pending (an unfinished sequence becomes U+FFFD).
  std::string flush();
  bool has_pending() const { return !pending_.empty(); }

 private:
  std::string pending_;
};

}  // namespace slm::text
