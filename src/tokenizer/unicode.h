// Code points and their Unicode properties, as the byte-level BPE
// pre-tokenizers need them: general-category groups and White_Space, from
// tables generated out of Debian's unicode-data (tools/gen-unicode-tables.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slm::text {

enum CodepointFlag : uint8_t {
  kLetter = 1,      // L*
  kNumber = 2,      // N*
  kPunct = 4,       // P*
  kSymbol = 8,      // S*
  kMark = 16,       // M*
  kSeparator = 32,  // Z*
  kOther = 64,      // C* (assigned)
  kWhitespace = 128,
};

// Flags of a code point; 0 for unassigned ones and for kNoCodepoint.
uint8_t codepoint_flags(uint32_t cp);

constexpr uint32_t kNoCodepoint = 0xFFFFFFFF;  // "past the end" in the splitters

// UTF-8 -> code points. Each byte that does not start a valid sequence
// becomes U+FFFD (never fails).
std::vector<uint32_t> to_codepoints(std::string_view utf8);
void append_utf8(uint32_t cp, std::string& out);

// GPT-2's byte <-> "printable code point" map (byte-level BPE token texts).
uint32_t byte_to_codepoint(uint8_t b);
// The byte a code point stands for, or -1 when it is not in the map.
int codepoint_to_byte(uint32_t cp);

}  // namespace slm::text
