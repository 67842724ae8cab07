#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <queue>

#include "core/log.h"
#include "gguf/gguf_reader.h"
#include "slm/error.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

namespace slm::text {
namespace {

// A symbol of the word being merged: bytes [start, start + n) of the
// byte-encoded word; n == 0 once merged into its left neighbour.
struct Symbol {
  int prev, next;
  size_t start, n;
};

struct Pair {
  int left, right;
  int32_t rank;
  size_t size;  // bytes of left + right when queued: a mismatch later means stale
};

// Lowest rank first; on ties the leftmost pair.
struct PairOrder {
  bool operator()(const Pair& a, const Pair& b) const { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); }
};

}  // namespace

BpeModel::BpeModel(const gguf::GgufFile& file) {
  const std::string& path = file.path();
  const auto pre_name = file.get_string("tokenizer.ggml.pre");
  if (!pre_name) logger().warn("{}: no tokenizer.ggml.pre: using the 'default' pre-tokenizer (answers may degrade)", path);
  pre_ = find_pretokenizer(pre_name.value_or("default"));
  if (pre_ == nullptr)
    throw Error(fmt::format("{}: unknown pre-tokenizer '{}' (tokenizer.ggml.pre; slm knows {})", path, *pre_name,
                            pretokenizer_names()));
  if (!file.has("tokenizer.ggml.merges"))
    throw Error(fmt::format("{}: byte-level BPE vocabulary without tokenizer.ggml.merges", path));
  const std::vector<std::string> merges = file.get_strings("tokenizer.ggml.merges");
  if (merges.empty()) throw Error(fmt::format("{}: tokenizer.ggml.merges is empty or not a string array", path));
  ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 >= m.size())
      throw Error(fmt::format("{}: merge {} ('{}') is not two texts separated by a space", path, i, m));
    std::string key = m.substr(0, space) + '\n' + m.substr(space + 1);
    ranks_.emplace(std::move(key), static_cast<int32_t>(i));  // the first of a duplicate pair wins
  }
}

int32_t BpeModel::rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left).append(1, '\n').append(right);
  const auto it = ranks_.find(key);
  return it == ranks_.end() ? -1 : it->second;
}

void BpeModel::encode(std::string_view text, const TokenIndex& index, TokenId unk, std::vector<TokenId>& out) const {
  const std::vector<uint32_t> cps = to_codepoints(text);
  std::string bytes, word;
  for (const auto& [b, e] : pretokenize(*pre_, cps)) {
    bytes.clear();
    for (size_t i = b; i < e; ++i) append_utf8(cps[i], bytes);
    word.clear();
    for (char c : bytes) append_utf8(byte_to_codepoint(static_cast<uint8_t>(c)), word);
    merge_word(word, index, unk, out);
  }
}

void BpeModel::merge_word(const std::string& word, const TokenIndex& index, TokenId unk,
                          std::vector<TokenId>& out) const {
  if (pre_->ignore_merges) {
    if (const auto it = index.find(word); it != index.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const std::string_view view(word);
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < view.size();) {
    const int n = utf8_valid_prefix(view.substr(pos));  // byte-encoded text is valid UTF-8
    const int index_of = static_cast<int>(symbols.size());
    symbols.push_back({index_of - 1, index_of + 1, pos, static_cast<size_t>(n > 0 ? n : 1)});
    pos += symbols.back().n;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<Pair, std::vector<Pair>, PairOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    const int32_t rk = rank(view.substr(l.start, l.n), view.substr(r.start, r.n));
    if (rk >= 0) queue.push({left, right, rk, l.n + r.n});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(p.left)];
    Symbol& r = symbols[static_cast<size_t>(p.right)];
    if (l.n == 0 || r.n == 0 || l.n + r.n != p.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = p.left;
    try_add(l.prev, p.left);
    try_add(p.left, l.next);
  }
  for (int i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const std::string_view piece = view.substr(symbols[static_cast<size_t>(i)].start, symbols[static_cast<size_t>(i)].n);
    if (const auto it = index.find(piece); it != index.end()) {
      out.push_back(it->second);
      continue;
    }
    // Not a token (a vocabulary whose merges produce texts it lacks): one
    // token per byte symbol, the unknown token where even that is missing.
    // Real vocabularies do lack some byte symbols (SmolLM2 and StarCoder have
    // none for several control bytes); without an unknown token such bytes
    // are dropped, as the reference engine does.
    for (size_t pos = 0; pos < piece.size();) {
      const size_t n = static_cast<size_t>(std::max(1, utf8_valid_prefix(piece.substr(pos))));
      const auto it = index.find(piece.substr(pos, n));
      if (it != index.end()) {
        out.push_back(it->second);
      } else if (unk >= 0) {
        out.push_back(unk);
      }
      pos += n;
    }
  }
}

std::string BpeModel::decode_text(std::string_view token_text) {
  std::string out;
  for (uint32_t cp : to_codepoints(token_text)) {
    const int b = codepoint_to_byte(cp);
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      append_utf8(cp, out);  // not a byte symbol: keep the character
    }
  }
  return out;
}

}  // namespace slm::text
