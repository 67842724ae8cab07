#include "tokenizer/utf8.h"

namespace slm::text {
namespace {
constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
bool is_continuation(uint8_t b) { return (b & 0xC0) == 0x80; }
}  // namespace

int utf8_valid_prefix(std::string_view s) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<uint8_t>(s[0]);
  if (b0 < 0x80) return 1;
  size_t len;
  uint32_t min_cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, min_cp = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, min_cp = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, min_cp = 0x10000;
  } else {
    return -1;  // continuation byte, overlong lead C0/C1, or F5..FF
  }
  uint32_t cp = b0 & (0x7F >> len);
  for (size_t i = 1; i < len; ++i) {
    if (i >= s.size()) {
      // Unfinished: valid so far only if the second byte (when present) would
      // not make the sequence overlong or out of range; checked when complete.
      return 0;
    }
    const auto b = static_cast<uint8_t>(s[i]);
    if (!is_continuation(b)) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  return static_cast<int>(len);
}

bool is_valid_utf8(std::string_view s) {
  while (!s.empty()) {
    const int n = utf8_valid_prefix(s);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string Utf8Assembler::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const int n = utf8_valid_prefix(std::string_view(pending_).substr(i));
    if (n > 0) {
      out.append(pending_, i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
    } else if (n == 0) {
      break;  // wait for the rest of this character
    } else {
      out += kReplacement;
      ++i;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Assembler::flush() {
  std::string out;
  if (!pending_.empty()) out = kReplacement;
  pending_.clear();
  return out;
}

}  // namespace slm::text
