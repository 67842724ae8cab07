#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <queue>

#include <fmt/format.h>

#include "gguf/gguf_reader.h"
#include "slm/error.h"

namespace slm::text {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string to_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Tokenizer::Tokenizer(const gguf::GgufFile& file) {
  const std::string& path = file.path();
  const auto model = file.get_string("tokenizer.ggml.model");
  if (!model) throw Error(fmt::format("{}: no tokenizer (tokenizer.ggml.model is missing)", path));
  if (*model != "llama" && *model != "gpt2") {
    throw Error(fmt::format(
        "{}: tokenizer model '{}' is not supported (slm reads SentencePiece 'llama' and byte-level BPE 'gpt2')", path,
        *model));
  }
  const bool byte_level = *model == "gpt2";
  tokens_ = file.get_strings("tokenizer.ggml.tokens");
  if (tokens_.empty()) throw Error(fmt::format("{}: tokenizer.ggml.tokens is missing or empty", path));
  if (tokens_.size() > static_cast<size_t>(INT32_MAX)) throw Error(fmt::format("{}: vocabulary too large", path));
  scores_ = file.get_floats("tokenizer.ggml.scores");
  if (scores_.empty()) scores_.assign(tokens_.size(), 0.0f);
  const std::vector<int32_t> types = file.get_ints("tokenizer.ggml.token_type");
  if (scores_.size() != tokens_.size() || (!types.empty() && types.size() != tokens_.size())) {
    throw Error(fmt::format("{}: tokenizer arrays disagree: {} tokens, {} scores, {} types", path, tokens_.size(),
                            scores_.size(), types.size()));
  }
  types_.resize(tokens_.size(), TokenType::kNormal);
  for (size_t i = 0; i < types.size(); ++i) {
    types_[i] = (types[i] >= 0 && types[i] <= 6) ? static_cast<TokenType>(types[i]) : TokenType::kUndefined;
  }

  if (byte_level) {
    // As the reference engine: an empty text gets a placeholder; duplicate
    // texts make ids ambiguous and are refused.
    for (size_t i = 0; i < tokens_.size(); ++i)
      if (tokens_[i].empty()) tokens_[i] = fmt::format("[EMPTY_{}]", i);
  }
  index_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const auto [it, fresh] = index_.try_emplace(tokens_[i], static_cast<TokenId>(i));
    if (fresh) continue;
    if (byte_level)
      throw Error(fmt::format("{}: token {} repeats the text of token {} ('{}')", path, i, it->second, tokens_[i]));
    it->second = static_cast<TokenId>(i);  // SentencePiece: the last one wins, as the reference engine
  }
  if (byte_level) bpe_ = std::make_shared<const BpeModel>(file);

  auto special_id = [&](const char* key, std::optional<TokenId> fallback) -> std::optional<TokenId> {
    const auto v = file.get_int(key);
    if (!v) return fallback && is_valid(*fallback) ? fallback : std::nullopt;
    if (*v < 0 || *v >= n_vocab()) {
      throw Error(fmt::format("{}: {} = {} is outside the vocabulary of {} tokens", path, key, *v, n_vocab()));
    }
    return static_cast<TokenId>(*v);
  };
  // SentencePiece defaults: <unk> 0, <s> 1, </s> 2. Byte-level BPE has no
  // meaningful defaults (the reference engine's 11 is not one): absent
  // keys mean no such token; BOS is added by default only where the
  // pre-tokenizer's family does it (Llama 3).
  bos_ = special_id("tokenizer.ggml.bos_token_id", byte_level ? std::nullopt : std::optional<TokenId>(1));
  eos_ = special_id("tokenizer.ggml.eos_token_id", byte_level ? std::nullopt : std::optional<TokenId>(2));
  unk_ = special_id("tokenizer.ggml.unknown_token_id", byte_level ? std::nullopt : std::optional<TokenId>(0));
  add_bos_ = file.get_bool("tokenizer.ggml.add_bos_token", byte_level ? bpe_->pre().add_bos : true) && bos_.has_value();
  add_eos_ = file.get_bool("tokenizer.ggml.add_eos_token", false) && eos_.has_value();
  add_space_prefix_ = file.get_bool("tokenizer.ggml.add_space_prefix", !byte_level);

  if (!byte_level) spm_ = std::make_shared<const SpmModel>(tokens_, scores_, index_);

  // Tokens recognised inside text, longest first so "<|endoftext|>" wins
  // over any shorter special it contains.
  for (TokenId id = 0; id < n_vocab(); ++id) {
    const TokenType t = types_[id];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !tokens_[id].empty()) {
      special_tokens_.push_back(id);
    }
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                   [&](TokenId a, TokenId b) { return tokens_[a].size() > tokens_[b].size(); });

  // Phi-3's original tokenizer strips whitespace after its added tokens (the
  // "rstrip" flag). GGUF does not store the flag, so — like the reference
  // engine — key it on the model name.
  rstrip_.assign(tokens_.size(), false);
  const std::string name = to_lower(file.get_string("general.name", ""));
  if (name.find("phi3") != std::string::npos || name.find("phi-3") != std::string::npos) {
    for (TokenId id : special_tokens_) rstrip_[id] = true;
    for (const char* t : {"</s>"}) {
      if (const auto id = find(t)) rstrip_[*id] = true;
    }
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (const auto id = find(t)) rstrip_[*id] = false;
    }
  }
}

std::optional<TokenId> Tokenizer::find(std::string_view text) const {
  const auto it = index_.find(text);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({false, -1, text});
  std::vector<Fragment> next;
  for (TokenId id : special_tokens_) {
    const TokenType type = types_[id];
    if (!parse_special && (type == TokenType::kControl || type == TokenType::kUnknown)) continue;
    const std::string& special = tokens_[id];
    next.clear();
    bool changed = false;
    for (const Fragment& f : fragments) {
      if (f.is_token || f.text.size() < special.size()) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      size_t match;
      while (!rest.empty() && (match = rest.find(special)) != std::string_view::npos) {
        changed = true;
        if (match > 0) next.push_back({false, -1, rest.substr(0, match)});
        next.push_back({true, id, {}});
        rest.remove_prefix(match + special.size());
        if (rstrip_[id]) {
          while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
        }
      }
      if (!rest.empty()) next.push_back({false, -1, rest});
    }
    if (changed) fragments.swap(next);
  }
  return fragments;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && add_bos_) out.push_back(*bos_);
  bool after_special = true;  // the start counts: SentencePiece prefixes the first word with a space
  std::string with_prefix;
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.is_token) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    if (bpe_) {
      bpe_->encode(f.text, index_, unk_.value_or(-1), out);
    } else if (add_space_prefix_ && after_special) {
      with_prefix.assign(" ");
      with_prefix.append(f.text);
      spm_->encode(with_prefix, index_, unk_.value_or(-1), out);
    } else {
      spm_->encode(f.text, index_, unk_.value_or(-1), out);
    }
    after_special = false;
  }
  if (add_special && add_eos_) out.push_back(*eos_);
  return out;
}

std::vector<TokenId> Tokenizer::encode_chat(std::string_view rendered) const {
  std::vector<TokenId> ids = encode(rendered, /*add_special=*/false, /*parse_special=*/true);
  if (add_bos_ && (ids.empty() || ids.front() != *bos_)) ids.insert(ids.begin(), *bos_);
  return ids;
}

std::string Tokenizer::token_to_piece(TokenId id, bool render_special) const {
  if (!is_valid(id)) return {};
  const std::string& text = tokens_[static_cast<size_t>(id)];
  switch (types_[static_cast<size_t>(id)]) {
    case TokenType::kNormal: return bpe_ ? BpeModel::decode_text(text) : SpmModel::decode_text(text);
    case TokenType::kByte: {
      // "<0xNN>": the byte NN.
      auto hex = [](char h) { return h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10; };
      if (text.size() != 6 || text.compare(0, 3, "<0x") != 0) return {};
      return std::string(1, static_cast<char>(hex(text[3]) * 16 + hex(text[4])));
    }
    case TokenType::kUserDefined: return text;
    case TokenType::kUnknown: return render_special ? text : std::string(" \xE2\x81\x87 ");  // " ⁇ " as SentencePiece
    default: return render_special ? text : std::string();
  }
}

namespace {
// Byte-fallback tokens can spell the "▁" marker itself (a vocabulary without
// a "▁" piece); SentencePiece turns it back into a space like any other.
void unescape_spaces(std::string& s) {
  for (size_t at; (at = s.find(kSpaceMarker)) != std::string::npos;) s.replace(at, kSpaceMarker.size(), " ");
}
}  // namespace

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool render_special) const {
  std::string out;
  std::string byte_run;  // consecutive byte tokens, unescaped together
  bool first = true;
  auto append = [&](std::string piece) {
    if (piece.empty()) return;
    if (first && add_space_prefix_ && piece.front() == ' ') piece.erase(0, 1);
    first = false;
    out += piece;
  };
  for (TokenId id : ids) {
    if (is_valid(id) && token_type(id) == TokenType::kByte) {
      byte_run += token_to_piece(id);
      continue;
    }
    unescape_spaces(byte_run);
    append(std::move(byte_run));
    byte_run.clear();
    append(token_to_piece(id, render_special));
  }
  unescape_spaces(byte_run);
  append(std::move(byte_run));
  return out;
}

std::string StreamingDetokenizer::push(TokenId id) {
  std::string piece = tokenizer_.token_to_piece(id);
  if (piece.empty()) return {};
  std::string text = utf8_.push(piece);
  if (tokenizer_.is_valid(id) && tokenizer_.token_type(id) == TokenType::kByte) unescape_spaces(text);
  // As decode(): the first piece loses its leading space, even when that
  // leaves nothing (a lone "▁" token), and only the first.
  if (!text.empty()) {
    if (first_ && tokenizer_.add_space_prefix() && text.front() == ' ') text.erase(0, 1);
    first_ = false;
  }
  return text;
}

}  // namespace slm::text
