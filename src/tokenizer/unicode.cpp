#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

#include "tokenizer/utf8.h"

namespace slm::text {
namespace {

struct Run {
  uint32_t first, last;
  uint8_t flags;
};

constexpr Run kRuns[] = {
#include "tokenizer/unicode_tables.inc"
};

// bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other
// 68 (controls, space, 0x7F-0xA0, 0xAD), in byte order, to U+0100.. U+0143.
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 0x144> to_byte{};
  ByteMap() {
    to_byte.fill(-1);
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[static_cast<size_t>(b)] = printable ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

uint8_t codepoint_flags(uint32_t cp) {
  const Run* end = kRuns + sizeof(kRuns) / sizeof(kRuns[0]);
  const Run* it = std::upper_bound(kRuns, end, cp, [](uint32_t c, const Run& r) { return c < r.first; });
  if (it == kRuns) return 0;
  --it;
  return cp <= it->last ? it->flags : 0;
}

std::vector<uint32_t> to_codepoints(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const int n = utf8_valid_prefix(s.substr(pos));
    if (n <= 0) {
      out.push_back(0xFFFD);
      ++pos;
      continue;
    }
    const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[pos + i])); };
    uint32_t cp = 0;
    switch (n) {
      case 1: cp = b(0); break;
      case 2: cp = (b(0) & 0x1F) << 6 | (b(1) & 0x3F); break;
      case 3: cp = (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F); break;
      default: cp = (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F); break;
    }
    out.push_back(cp);
    pos += static_cast<size_t>(n);
  }
  return out;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t byte_to_codepoint(uint8_t b) { return byte_map().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) { return cp < 0x144 ? byte_map().to_byte[cp] : -1; }

}  // namespace slm::text
