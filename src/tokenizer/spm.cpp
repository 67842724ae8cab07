#include "tokenizer/spm.h"

#include <fmt/format.h>

#include <queue>

#include "tokenizer/utf8.h"

namespace slm::text {
namespace {

// One symbol of the merge: a contiguous run of the escaped text, linked to its
// neighbours. n == 0 marks a symbol merged into its left neighbour.
struct Symbol {
  int prev;
  int next;
  size_t start;
  size_t n;
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes at push time; a mismatch later means the entry is stale
};

// Highest score first; on ties the leftmost pair (as SentencePiece).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmModel::SpmModel(const std::vector<std::string>& tokens, std::vector<float> scores, const TokenIndex& index)
    : scores_(std::move(scores)) {
  for (int b = 0; b < 256; ++b) {
    const auto it = index.find(fmt::format("<0x{:02X}>", b));
    byte_tokens_[b] = it == index.end() ? -1 : it->second;
  }
  // Can words be merged independently? Only if no piece has "▁" right after
  // another character (SentencePiece's split_by_whitespace vocabularies).
  words_are_independent_ = true;
  for (const std::string& t : tokens) {
    for (size_t at = t.find(kSpaceMarker, 1); at != std::string::npos; at = t.find(kSpaceMarker, at + 1)) {
      if (!(at >= kSpaceMarker.size() && t.compare(at - kSpaceMarker.size(), kSpaceMarker.size(), kSpaceMarker) == 0)) {
        words_are_independent_ = false;
      }
    }
  }
}

void SpmModel::emit_bytes(std::string_view piece, TokenId unk, std::vector<TokenId>& out) const {
  for (char c : piece) {
    const TokenId id = byte_tokens_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      out.push_back(id);
    } else if (unk >= 0) {
      out.push_back(unk);
    }
  }
}

void SpmModel::encode(std::string_view raw, const TokenIndex& index, TokenId unk, std::vector<TokenId>& out) const {
  // Escape spaces as "▁" (SentencePiece's whitespace marker).
  std::string text;
  text.reserve(raw.size() + raw.size() / 4);
  for (char c : raw) {
    if (c == ' ') {
      text += kSpaceMarker;
    } else {
      text += c;
    }
  }
  if (!words_are_independent_) {
    merge_chunk(text, index, unk, out);
    return;
  }
  // No piece has "▁" after another character, so no merge can cross the
  // start of a word ("▁" after a non-"▁"): merging each word on its own
  // gives exactly the whole-text result, in time linear in the text.
  const std::string_view view(text);
  size_t begin = 0;
  for (size_t pos = 1; pos < view.size(); ++pos) {
    if (view.compare(pos, kSpaceMarker.size(), kSpaceMarker) == 0 &&
        !(pos >= kSpaceMarker.size() &&
          view.compare(pos - kSpaceMarker.size(), kSpaceMarker.size(), kSpaceMarker) == 0)) {
      merge_chunk(view.substr(begin, pos - begin), index, unk, out);
      begin = pos;
    }
  }
  merge_chunk(view.substr(begin), index, unk, out);
}

void SpmModel::merge_chunk(std::string_view view, const TokenIndex& index, TokenId unk,
                           std::vector<TokenId>& out) const {
  auto find = [&](std::string_view t) -> std::optional<TokenId> {
    const auto it = index.find(t);
    return it == index.end() ? std::nullopt : std::optional<TokenId>(it->second);
  };
  // One symbol per UTF-8 character. A byte that does not start a valid
  // character stands alone (judging by the lead byte only, as some engines
  // do, would let an invalid byte swallow the following "▁" marker).
  std::vector<Symbol> symbols;
  symbols.reserve(view.size());
  for (size_t pos = 0; pos < view.size();) {
    const int valid = utf8_valid_prefix(view.substr(pos));
    const size_t n = valid > 0 ? static_cast<size_t>(valid) : 1;
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, index + 1, pos, n});
    pos += n;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[left].n + symbols[right].n;
    const auto id = find(view.substr(symbols[left].start, size));
    if (!id) return;
    queue.push({left, right, scores_[*id], size});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = view.substr(symbols[i].start, symbols[i].n);
    if (const auto id = find(piece)) {
      out.push_back(*id);
    } else {
      emit_bytes(piece, unk, out);  // byte fallback: <0xNN> per byte
    }
  }
}

std::string SpmModel::decode_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
      out += ' ';
      i += kSpaceMarker.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

}  // namespace slm::text
