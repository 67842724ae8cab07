#include "tokenizer/pretokenize.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace slm::text {
namespace {

struct Range {
  uint32_t first, last;
};

// deepseek-llm's own character classes, as its tokenizer.json carries them
// (tokenizer-bpe.md §4b). The spec's copy of the letter class went through
// Unicode normalisation, which turned six singletons into other code points
// (U+1F7D -> U+03CE, U+1FD3 -> U+0390, U+1FDB -> U+038A, U+1FBE -> U+03B9,
// U+2126 -> U+03A9, U+212A -> 'K'), leaving three ranges reversed and one
// covering 'K'..U+212D; the original code points are restored here.
constexpr Range kDeepseekLetterRanges[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF},
    {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x376}, {0x377, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F},
    {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F},
    {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D},
    {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E},
    {0x2183, 0x2183}, {0x2184, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF2},
    {0x2CF3, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E},
    {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F},
    {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF},
    {0x1E900, 0x1E943}
};
constexpr Range kDeepseekPunctRanges[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}
};
constexpr Range kCjkRanges[] = {
    {0x4E00, 0x9FA5}, {0x800, 0x4E00}, {0xAC00, 0xD7FF}
};

template <size_t N>
bool in_ranges(const Range (&ranges)[N], uint32_t cp) {
  for (const Range& r : ranges)
    if (cp >= r.first && cp <= r.last) return true;
  return false;
}

bool one_of(uint32_t cp, std::string_view ascii) {
  return cp < 128 && ascii.find(static_cast<char>(cp)) != std::string_view::npos;
}

uint32_t ascii_lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

// One piece [b, e) of the text being split; positions past e read as
// "nothing" (no code point, no flags).
class Piece {
 public:
  Piece(const std::vector<uint32_t>& cps, size_t b, size_t e) : cps_(cps), b_(b), e_(e) {}
  size_t end() const { return e_; }
  uint32_t cp(size_t i) const { return i < e_ ? cps_[i] : kNoCodepoint; }
  uint8_t flags(size_t i) const { return i < e_ ? codepoint_flags(cps_[i]) : 0; }
  bool letter(size_t i) const { return (flags(i) & kLetter) != 0; }
  bool number(size_t i) const { return (flags(i) & kNumber) != 0; }
  bool space(size_t i) const { return (flags(i) & kWhitespace) != 0; }
  bool punct(size_t i) const { return (flags(i) & kPunct) != 0; }
  // [^\s\p{L}\p{N}]: any code point that is none of those (unassigned ones too).
  bool other(size_t i) const { return i < e_ && (flags(i) & (kWhitespace | kLetter | kNumber)) == 0; }
  bool newline(size_t i) const { return cp(i) == '\r' || cp(i) == '\n'; }
  // Start of the whitespace run that reaches the end of the piece (e if none).
  size_t trailing_space() const {
    size_t t = e_;
    while (t > b_ && space(t - 1)) --t;
    return t;
  }

 private:
  const std::vector<uint32_t>& cps_;
  size_t b_, e_;
};

template <typename Pred>
size_t run(const Piece& s, size_t i, Pred pred) {
  while (i < s.end() && pred(i)) ++i;
  return i;
}

// 's 't 're 've 'm 'll 'd at pos (case-insensitive or not); end, or pos.
size_t contraction(const Piece& s, size_t pos, bool any_case) {
  if (s.cp(pos) != '\'') return pos;
  auto low = [&](size_t i) { return any_case ? ascii_lower(s.cp(i)) : s.cp(i); };
  const uint32_t a = low(pos + 1), b = low(pos + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return pos + 3;
  return pos;
}

// The whitespace tail shared by the GPT-2 family: \s*[\r\n]+ (when asked),
// then \s+(?!\S), then \s+.
size_t whitespace(const Piece& s, size_t pos, bool newline_runs) {
  size_t n = 0, last_newline = 0;
  while (s.space(pos + n)) {
    if (s.newline(pos + n)) last_newline = pos + n + 1;
    ++n;
  }
  if (newline_runs && last_newline > 0) return last_newline;
  if (n > 1 && pos + n < s.end()) return pos + n - 1;  // leave one space to lead the next word
  return pos + n;
}

size_t match_gpt2(const Piece& s, size_t pos) {
  if (const size_t c = contraction(s, pos, false); c > pos) return c;
  const bool sp = s.cp(pos) == ' ';
  if (s.letter(pos + sp)) return run(s, pos + sp, [&](size_t i) { return s.letter(i); });
  if (s.number(pos + sp)) return run(s, pos + sp, [&](size_t i) { return s.number(i); });
  if (s.other(pos + sp)) return run(s, pos + sp, [&](size_t i) { return s.other(i); });
  const size_t w = whitespace(s, pos, false);
  return w > pos ? w : pos + 1;
}

size_t match_llama3(const Piece& s, size_t pos, size_t max_digits) {
  if (const size_t c = contraction(s, pos, true); c > pos) return c;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!s.newline(pos) && !s.number(pos) && (s.letter(pos) || s.letter(pos + 1)))
    return run(s, pos + 1, [&](size_t i) { return s.letter(i); });
  // \p{N}{1,max_digits}
  if (s.number(pos)) {
    size_t i = pos;
    while (s.number(i) && i - pos < max_digits) ++i;
    return i;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  const bool sp = s.cp(pos) == ' ';
  if (s.other(pos + sp)) {
    const size_t i = run(s, pos + sp, [&](size_t k) { return s.other(k); });
    return run(s, i, [&](size_t k) { return s.newline(k); });
  }
  const size_t w = whitespace(s, pos, true);
  return w > pos ? w : pos + 1;
}

// gpt-4o as the reference engine runs it: letter case is known for ASCII
// only ("upper" = a letter that is not a-z, "lower" = a letter not A-Z, so a
// non-ASCII letter is both), and combining marks are not letters.
size_t match_gpt4o(const Piece& s, size_t pos) {
  auto upper = [&](size_t i) { return s.letter(i) && !(s.cp(i) >= 'a' && s.cp(i) <= 'z'); };
  auto lower = [&](size_t i) { return s.letter(i) && !(s.cp(i) >= 'A' && s.cp(i) <= 'Z'); };
  // [^\r\n\p{L}\p{N}]? then U* W+ C? | U+ W* C? (backtracking as the regex does)
  const size_t start = (pos < s.end() && !s.newline(pos) && !s.letter(pos) && !s.number(pos)) ? pos + 1 : pos;
  const size_t u = run(s, start, upper);
  for (size_t k = u + 1; k-- > start;) {
    if (lower(k)) return contraction(s, run(s, k, lower), true);
  }
  if (u > start) return contraction(s, run(s, u, lower), true);
  if (s.number(pos)) {  // \p{N}{1,3}
    size_t i = pos;
    while (s.number(i) && i - pos < 3) ++i;
    return i;
  }
  const bool sp = s.cp(pos) == ' ';  // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
  if (s.other(pos + sp)) {
    const size_t i = run(s, pos + sp, [&](size_t k) { return s.other(k); });
    return run(s, i, [&](size_t k) { return s.newline(k) || s.cp(k) == '/'; });
  }
  const size_t w = whitespace(s, pos, true);
  return w > pos ? w : pos + 1;
}

// \s?[class]+
template <typename Pred>
size_t space_then_run(const Piece& s, size_t pos, Pred in_class) {
  if (s.space(pos) && pos + 1 < s.end() && in_class(pos + 1)) return run(s, pos + 1, in_class);
  return in_class(pos) ? run(s, pos, in_class) : pos;
}

// Where the match of `rule` starting at `pos` ends; pos when there is none.
size_t match(SplitRule rule, const Piece& s, size_t pos, size_t trailing) {
  auto digit = [&](size_t i) { return s.number(i); };
  switch (rule) {
    case SplitRule::kGpt2: return match_gpt2(s, pos);
    case SplitRule::kLlama3: return match_llama3(s, pos, 3);
    case SplitRule::kQwen2: return match_llama3(s, pos, 1);
    case SplitRule::kGpt4o: return match_gpt4o(s, pos);
    case SplitRule::kDigit: return s.number(pos) ? pos + 1 : pos;
    case SplitRule::kDigits: return run(s, pos, digit);
    case SplitRule::kThreeDigits: {
      auto ascii_digit = [&](size_t i) { return s.cp(i) >= '0' && s.cp(i) <= '9'; };
      return ascii_digit(pos) && ascii_digit(pos + 1) && ascii_digit(pos + 2) ? pos + 3 : pos;
    }
    case SplitRule::kPunctFalcon:
      return run(s, pos, [&](size_t i) { return s.punct(i) || one_of(s.cp(i), "$+<=>^~|`"); });
    case SplitRule::kPunctDefault:
      return run(s, pos, [&](size_t i) { return s.punct(i) || one_of(s.cp(i), "$+<=>^~|"); });
    case SplitRule::kNewline: return s.newline(pos) ? pos + 1 : pos;
    case SplitRule::kSpaceLetters: return space_then_run(s, pos, [&](size_t i) { return s.letter(i); });
    case SplitRule::kSpacePunct: return space_then_run(s, pos, [&](size_t i) { return s.punct(i); });
    case SplitRule::kCjk: return run(s, pos, [&](size_t i) { return in_ranges(kCjkRanges, s.cp(i)); });
    case SplitRule::kDeepseekLetters:
      return space_then_run(s, pos, [&](size_t i) { return in_ranges(kDeepseekLetterRanges, s.cp(i)); });
    case SplitRule::kDeepseekPunct:
      return space_then_run(s, pos, [&](size_t i) { return in_ranges(kDeepseekPunctRanges, s.cp(i)); });
    case SplitRule::kTrailingSpace: return pos == trailing ? s.end() : pos;
  }
  return pos;
}

struct Named {
  std::vector<std::string_view> names;  // the first is the canonical one
  PreTokenizer pre;
};

const std::vector<Named>& table() {
  using R = SplitRule;
  static const std::vector<Named> t = {
      {{"default"}, {"default", {R::kPunctDefault, R::kGpt2, R::kDigits, R::kThreeDigits}}},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"},
       {"llama-bpe", {R::kLlama3}, /*ignore_merges=*/true, /*add_bos=*/true}},
      {{"smollm"}, {"smollm", {R::kDigit, R::kGpt2}}},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
        "modern-bert", "mpt"},
       {"gpt-2", {R::kGpt2}}},
      {{"gpt-4o", "llama4", "kanana2", "talkie"}, {"gpt-4o", {R::kGpt4o}}},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"}, {"qwen2", {R::kQwen2}}},
      {{"starcoder", "refact"}, {"starcoder", {R::kDigit, R::kGpt2}}},
      {{"falcon"}, {"falcon", {R::kPunctFalcon, R::kGpt2, R::kThreeDigits}}},
      {{"deepseek-coder"}, {"deepseek-coder", {R::kNewline, R::kSpaceLetters, R::kSpacePunct, R::kCjk, R::kDigit}}},
      {{"deepseek-llm"},
       {"deepseek-llm",
        {R::kNewline, R::kDeepseekLetters, R::kDeepseekPunct, R::kTrailingSpace, R::kCjk, R::kDigits}}},
  };
  return t;
}

}  // namespace

const PreTokenizer* find_pretokenizer(std::string_view name) {
  for (const Named& n : table())
    if (std::find(n.names.begin(), n.names.end(), name) != n.names.end()) return &n.pre;
  return nullptr;
}

std::string_view pretokenizer_names() {
  return "default, llama-bpe (llama3), smollm, gpt-2, mpt, gpt-4o, qwen2, starcoder, refact, falcon, "
         "deepseek-coder, deepseek-llm";
}

std::vector<std::pair<size_t, size_t>> pretokenize(const PreTokenizer& pre, const std::vector<uint32_t>& cps) {
  std::vector<std::pair<size_t, size_t>> pieces, next;
  if (!cps.empty()) pieces.emplace_back(0, cps.size());
  for (SplitRule rule : pre.rules) {
    next.clear();
    for (const auto& [b, e] : pieces) {
      const Piece s(cps, b, e);
      const size_t trailing = rule == SplitRule::kTrailingSpace ? s.trailing_space() : e;
      size_t gap = b;
      for (size_t p = b; p < e;) {
        const size_t m = std::min(match(rule, s, p, trailing), e);
        if (m > p) {
          if (gap < p) next.emplace_back(gap, p);
          next.emplace_back(p, m);
          p = gap = m;
        } else {
          ++p;
        }
      }
      if (gap < e) next.emplace_back(gap, e);
    }
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace slm::text
