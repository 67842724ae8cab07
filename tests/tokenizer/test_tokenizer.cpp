// The tokenizer against the reference tokenizer's outputs on the real Phi-3
// vocabulary (tokenizer/*.inp/.out, phi3_cases.json, the text reference).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "slm/error.h"
#include "support/testdata.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace slm {
using namespace slm::text;  // the internal text layer under test
namespace {

using nlohmann::json;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Phi3Vocab : public ::testing::Test {
 protected:
  void SetUp() override {
    SLM_REQUIRE_TESTDATA();
    file_ = std::make_unique<gguf::GgufFile>(test::testdata_dir() + "/tokenizer/ggml-vocab-phi-3.gguf");
    tok_ = std::make_unique<Tokenizer>(*file_);
  }
  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<Tokenizer> tok_;
};

// Cases are separated by a line "__ggml_vocab_test__"; the .out file has one
// line of ids per case (no BOS, special-token text as plain text).
struct VocabCases {
  std::vector<std::string> texts;
  std::vector<std::vector<TokenId>> ids;
};
VocabCases read_vocab_cases(const std::string& base) {
  VocabCases c;
  const std::string inp = read_text(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0;;) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    c.texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(base + ".out");
  for (std::string line; std::getline(out, line);) {
    std::istringstream ss(line);
    std::vector<TokenId> ids;
    for (TokenId id; ss >> id;) ids.push_back(id);
    c.ids.push_back(ids);
  }
  return c;
}

// Every vocabulary in testdata/tokenizer (SentencePiece Phi-3 and the
// byte-level BPE ones with their pre-tokenizers): every case exact, and
// decode(encode(s)) == s.
TEST(TokenizerVocabs, EveryReferenceVocabularyEveryCase) {
  SLM_REQUIRE_TESTDATA();
  const std::vector<std::pair<std::string, std::string>> vocabs = {
      {"phi-3", "llama"},        {"gpt-2", "gpt2"},         {"starcoder", "gpt2"},
      {"falcon", "gpt2"},        {"mpt", "gpt2"},           {"deepseek-llm", "gpt2"},
      {"gpt-2-pre-llama-bpe", "gpt2"}, {"gpt-2-pre-smollm", "gpt2"}};
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::testdata_dir() + "/tokenizer"))
    if (e.path().extension() == ".gguf") ++files;
  ASSERT_EQ(files, vocabs.size()) << "a vocabulary in testdata/tokenizer is not in this list";
  for (const auto& [name, model] : vocabs) {
    SCOPED_TRACE(name);
    const std::string base = test::testdata_dir() + "/tokenizer/ggml-vocab-" + name + ".gguf";
    const gguf::GgufFile file(base);
    ASSERT_EQ(file.get_string("tokenizer.ggml.model", ""), model);
    const Tokenizer tok(file);
    const VocabCases c = read_vocab_cases(base);
    ASSERT_EQ(c.texts.size(), test::expected::kVocabCases);
    ASSERT_EQ(c.texts.size(), c.ids.size());
    for (size_t i = 0; i < c.texts.size(); ++i) {
      const auto ids = tok.encode(c.texts[i], false, false);
      EXPECT_EQ(ids, c.ids[i]) << "case " << i << ": '" << c.texts[i] << "'";
      EXPECT_EQ(tok.decode(ids), c.texts[i]) << "case " << i;
    }
  }
}

TEST_F(Phi3Vocab, Phi3CasesBothModes) {
  std::ifstream in(test::testdata_dir() + "/tokenizer/phi3_cases.json");
  const json cases = json::parse(in);
  ASSERT_EQ(cases.size(), test::expected::kPhi3Cases);
  for (const json& c : cases) {
    const std::string text = c.at("text");
    EXPECT_EQ(tok_->encode(text, false, false), c.at("plain").get<std::vector<TokenId>>()) << text;
    EXPECT_EQ(tok_->encode(text, true, true), c.at("special").get<std::vector<TokenId>>()) << text;
    EXPECT_EQ(tok_->decode(tok_->encode(text, false, false)), text);
  }
}

TEST_F(Phi3Vocab, SpecialIdsAndFlags) {
  EXPECT_EQ(tok_->n_vocab(), 32064);
  EXPECT_EQ(tok_->bos(), 1);
  EXPECT_EQ(tok_->eos(), 32000);
  EXPECT_TRUE(tok_->add_bos());
  EXPECT_TRUE(tok_->add_space_prefix());
  EXPECT_EQ(tok_->find("<|end|>"), 32007);
  EXPECT_TRUE(tok_->is_control(32007));
  EXPECT_EQ(tok_->token_to_piece(32007), "");
  EXPECT_EQ(tok_->token_to_piece(32007, true), "<|end|>");
  EXPECT_EQ(tok_->token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(tok_->token_to_piece(15043), " Hello");
}

TEST_F(Phi3Vocab, HostileText) {
  // Empty: only BOS, or nothing.
  EXPECT_EQ(tok_->encode("", true, true), std::vector<TokenId>{1});
  EXPECT_TRUE(tok_->encode("", false, false).empty());
  // Invalid UTF-8 and NUL bytes go through byte fallback and come back exactly.
  for (const std::string& s : {std::string("\xFF\xFE abc \xC3", 8), std::string("a\0b\0", 4),
                               std::string("\xE2\x82", 2), std::string("\x80\x80\x80", 3),
                               std::string("\xF4\x90\x80\x80 too big", 12)}) {
    const auto ids = tok_->encode(s, false, false);
    EXPECT_FALSE(ids.empty());
    for (TokenId id : ids) EXPECT_TRUE(tok_->is_valid(id));
    EXPECT_EQ(tok_->decode(ids), s);
  }
  // A 1 MB single line (mixed scripts) encodes and decodes back.
  std::string big;
  while (big.size() < (1u << 20)) big += "The quick brown fox; \xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE \xE6\x97\xA5\xE6\x9C\xAC x=42*y ";
  const auto ids = tok_->encode(big, false, false);
  EXPECT_GT(ids.size(), big.size() / 8);
  EXPECT_EQ(tok_->decode(ids), big);
}

TEST_F(Phi3Vocab, ChatPromptGetsOneBos) {
  const std::string rendered = "<s><|user|>\nHi<|end|>\n<|assistant|>\n";
  const auto plain = tok_->encode(rendered, true, true);  // the reference behaviour: BOS + parsed <s>
  ASSERT_GE(plain.size(), 2u);
  EXPECT_EQ(plain[0], 1);
  EXPECT_EQ(plain[1], 1);
  const auto chat = tok_->encode_chat(rendered);
  EXPECT_EQ(chat, std::vector<TokenId>(plain.begin() + 1, plain.end()));
  EXPECT_EQ(tok_->encode_chat("<|user|>\nHi<|end|>\n<|assistant|>\n").front(), 1);  // added when absent
}

TEST(Tokenizer, TextReferenceOnTheModelFile) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(test::testdata_dir() + "/reference/phi3-tiny-vocab-q8_0.text.json");
  const json ref = json::parse(in);
  const gguf::GgufFile file(test::testdata_dir() + "/" + ref.at("model").get<std::string>());
  const Tokenizer tok(file);
  ASSERT_EQ(ref.at("prompts").size(), test::expected::kTextPrompts);
  for (const json& p : ref.at("prompts")) {
    EXPECT_EQ(tok.encode(p.at("text").get<std::string>(), p.at("add_bos"), p.at("parse_special")),
              p.at("tokens").get<std::vector<TokenId>>())
        << p.at("text");
  }
}

TEST(Tokenizer, NoSpacePrefixVocabulary) {
  SLM_REQUIRE_TESTDATA();
  const gguf::GgufFile file(test::testdata_dir() + "/models/gemma-tiny.gguf");
  const Tokenizer tok(file);
  EXPECT_FALSE(tok.add_space_prefix());
  EXPECT_EQ(tok.bos(), 2);
  const std::string text = "Hi there, \xE2\x9C\x93!";
  const auto ids = tok.encode(text, true, true);
  EXPECT_EQ(ids.front(), 2);
  EXPECT_EQ(tok.decode(ids), text);  // no space invented or removed
}

TEST(Tokenizer, RstripOnlyForPhi3Names) {
  // Same vocabulary, two names: only a Phi-3 name strips whitespace after <|user|>.
  auto make = [](const std::string& name) {
    gguf::GgufWriter w;
    w.set("general.name", gguf::Value::string(name));
    w.set("tokenizer.ggml.model", gguf::Value::string("llama"));
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "<|user|>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a"};
    std::vector<int32_t> types = {2, 3, 3, 3, 1, 1, 1};
    for (int b = 0; b < 256; ++b) {
      tokens.push_back(fmt::format("<0x{:02X}>", b));
      types.push_back(6);
    }
    std::vector<float> scores(tokens.size(), 0.0f);
    w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
    w.set("tokenizer.ggml.scores", gguf::Value::array(scores));
    w.set("tokenizer.ggml.token_type", gguf::Value::array(types));
    const std::string path = test::temp_path(name + ".gguf");
    w.write(path);
    return path;
  };
  const gguf::GgufFile phi(make("Phi-3 mini")), other(make("other"));
  const Tokenizer tphi(phi), tother(other);
  // "<|user|>\na": Phi-3 drops the newline, then "a" gets the space prefix.
  EXPECT_EQ(tphi.encode("<|user|>\na", false, true), (std::vector<TokenId>{3, 6}));
  EXPECT_EQ(tother.encode("<|user|>\na", false, true), (std::vector<TokenId>{3, 4, 7 + 0x0A, 5}));
  // Without parse_special the text is plain for both.
  EXPECT_EQ(tphi.encode("<|user|>", false, false), tother.encode("<|user|>", false, false));
}

// A vocabulary with a piece spanning a word boundary ("a▁b") must be merged
// over the whole text, not word by word.
TEST(Tokenizer, PiecesAcrossWordBoundaries) {
  gguf::GgufWriter w;
  w.set("tokenizer.ggml.model", gguf::Value::string("llama"));
  const std::string m = "\xE2\x96\x81";
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", m, "a", "b", "a" + m, "a" + m + "b", m + "a"};
  std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1};
  std::vector<float> scores = {0, 0, 0, -1, -1, -1, -2, -3, -1};
  w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
  w.set("tokenizer.ggml.scores", gguf::Value::array(scores));
  w.set("tokenizer.ggml.token_type", gguf::Value::array(types));
  w.set("tokenizer.ggml.add_space_prefix", gguf::Value::scalar(false));
  const std::string path = test::temp_path("cross.gguf");
  w.write(path);
  const gguf::GgufFile f(path);
  const Tokenizer tok(f);
  // "a▁b" (no space prefix): a▁ (score -2), then a▁b (-3). Merging word
  // by word ("a", "▁b") would give a, ▁, b instead.
  EXPECT_EQ(tok.encode("a b", false, false), (std::vector<TokenId>{7}));
  EXPECT_EQ(tok.decode({7}), "a b");
}

// Pieces as the pre-tokenizer cuts them (code points back to UTF-8).
std::vector<std::string> pieces(std::string_view pre, const std::string& text) {
  const std::vector<uint32_t> cps = to_codepoints(text);
  std::vector<std::string> out;
  for (const auto& [b, e] : pretokenize(*find_pretokenizer(pre), cps)) {
    std::string s;
    for (size_t i = b; i < e; ++i) append_utf8(cps[i], s);
    out.push_back(s);
  }
  return out;
}

// deepseek-llm's letter class is literal code-point ranges: '_' and '[' are
// not letters (a copy of the class whose 'K'..U+212D range came from Unicode
// normalisation made them so), the Ohm and Kelvin signs are.
TEST(Tokenizer, DeepseekLlmLetterRanges) {
  EXPECT_EQ(pieces("deepseek-llm", "a_b x[i] \xC2\xBD"),
            (std::vector<std::string>{"a", "_", "b", " x", "[", "i", "]", " ", "\xC2\xBD"}));
  EXPECT_EQ(pieces("deepseek-llm", "\xE2\x84\xA6\xE2\x84\xAA!"),  // Ohm sign, Kelvin sign, '!'
            (std::vector<std::string>{"\xE2\x84\xA6\xE2\x84\xAA", "!"}));
  EXPECT_EQ(find_pretokenizer("gpt2"), nullptr);  // the model name, not a pre-tokenizer
}

TEST(Tokenizer, UnsupportedOrBrokenVocabularies) {
  auto load = [](gguf::GgufWriter& w, const std::string& name) {
    const std::string path = test::temp_path(name);
    w.write(path);
    const gguf::GgufFile f(path);
    return Tokenizer(f);
  };
  gguf::GgufWriter none;
  none.set("general.architecture", gguf::Value::string("llama"));
  EXPECT_THROW(load(none, "none.gguf"), Error);
  // Byte-level BPE: each broken piece is an error that names it.
  auto expect_bpe_error = [&](const std::vector<std::string>& tokens, const std::vector<std::string>* merges,
                              const char* pre, const std::string& needle) {
    gguf::GgufWriter w;
    w.set("tokenizer.ggml.model", gguf::Value::string("gpt2"));
    if (pre) w.set("tokenizer.ggml.pre", gguf::Value::string(pre));
    w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
    if (merges) w.set("tokenizer.ggml.merges", gguf::Value::string_array(*merges));
    try {
      load(w, "bpe.gguf");
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::vector<std::string> good_merges = {"a b"}, bad_merges = {"a b", "ab"}, empty_merges = {};
  expect_bpe_error({"a", "b", "ab"}, nullptr, "gpt-2", "without tokenizer.ggml.merges");
  expect_bpe_error({"a", "b", "ab"}, &empty_merges, "gpt-2", "merges is empty");
  expect_bpe_error({"a", "b", "ab"}, &bad_merges, "gpt-2", "merge 1 ('ab') is not two texts");
  expect_bpe_error({"a", "b", "a"}, &good_merges, "gpt-2", "token 2 repeats the text of token 0");
  expect_bpe_error({"a", "b", "ab"}, &good_merges, "gpt2", "unknown pre-tokenizer 'gpt2'");
  gguf::GgufWriter mismatch;
  mismatch.set("tokenizer.ggml.model", gguf::Value::string("llama"));
  mismatch.set("tokenizer.ggml.tokens", gguf::Value::string_array({"a", "b"}));
  mismatch.set("tokenizer.ggml.scores", gguf::Value::array(std::vector<float>{0.0f}));
  EXPECT_THROW(load(mismatch, "mismatch.gguf"), Error);
  gguf::GgufWriter bad_id;
  bad_id.set("tokenizer.ggml.model", gguf::Value::string("llama"));
  bad_id.set("tokenizer.ggml.tokens", gguf::Value::string_array({"a", "b"}));
  bad_id.set("tokenizer.ggml.bos_token_id", gguf::Value::scalar(uint32_t{7}));
  EXPECT_THROW(load(bad_id, "bad_id.gguf"), Error);
}

TEST_F(Phi3Vocab, StreamingDetokenizerEmitsWholeCharacters) {
  // "🦙" has no token: it is four byte tokens, and must come out once, whole.
  const std::string text = "this is \xF0\x9F\xA6\x99.cpp and \xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE";
  const auto ids = tok_->encode(text, true, true);
  StreamingDetokenizer detok(*tok_);
  std::string streamed;
  for (TokenId id : ids) {
    const std::string part = detok.push(id);
    EXPECT_TRUE(is_valid_utf8(part)) << "partial character emitted for token " << id;
    streamed += part;
  }
  streamed += detok.flush();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(streamed, tok_->decode(ids));
  // The bytes of the emoji: nothing until the last one.
  detok.reset();
  EXPECT_EQ(detok.push(243), "");
  EXPECT_EQ(detok.push(162), "");
  EXPECT_EQ(detok.push(169), "");
  EXPECT_EQ(detok.push(156), "\xF0\x9F\xA6\x99");
}

}  // namespace
}  // namespace slm
