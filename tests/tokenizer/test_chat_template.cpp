// Built-in chat formats against the official templates' renderings.
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf_reader.h"
#include "slm/error.h"
#include "support/testdata.h"
#include "tokenizer/chat_template.h"

namespace slm {
using namespace slm::text;  // the internal text layer under test
namespace {

using nlohmann::json;

std::vector<ChatMessage> messages_of(const json& c) {
  std::vector<ChatMessage> out;
  for (const json& m : c.at("messages")) out.push_back({m.at("role"), m.at("content")});
  return out;
}

bool has_system(const std::vector<ChatMessage>& m) { return !m.empty() && m[0].role == "system"; }

TEST(ChatTemplate, MatchesOfficialRenderings) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(test::testdata_dir() + "/chat/chat_templates.json");
  const json families = json::parse(in);
  const std::map<std::string, ChatFormat> expected_format = {{"phi3", ChatFormat::kPhi3},
                                                             {"phi3.5", ChatFormat::kPhi35},
                                                             {"gemma", ChatFormat::kGemma},
                                                             {"llama3", ChatFormat::kLlama31}};
  int checked = 0;
  for (const auto& [family, spec] : families.items()) {
    SCOPED_TRACE(family);
    const auto format = detect_chat_format(spec.at("template").get<std::string>());
    ASSERT_TRUE(format.has_value());
    ASSERT_EQ(*format, expected_format.at(family));
    const ChatTemplate tmpl(*format);
    for (const json& c : spec.at("cases")) {
      const auto messages = messages_of(c);
      const bool gen = c.at("add_generation_prompt");
      if (c.contains("error")) {
        // Documented departure: Gemma's template refuses a system role; slm
        // merges the system text into the first user turn instead.
        ASSERT_EQ(*format, ChatFormat::kGemma);
        ASSERT_TRUE(has_system(messages));
        std::vector<ChatMessage> merged(messages.begin() + 1, messages.end());
        merged[0].content = messages[0].content + "\n\n" + merged[0].content;
        const std::string got = tmpl.render(messages, gen);
        EXPECT_EQ(got, tmpl.render(merged, gen));
        EXPECT_NE(got.find("<start_of_turn>user\n" + messages[0].content + "\n\n"), std::string::npos) << got;
      } else if (*format == ChatFormat::kPhi3 && has_system(messages)) {
        // Documented departure: the official Phi-3 template drops the system
        // message; slm keeps it as a <|system|> turn right after <s>.
        std::string expected = c.at("rendered");
        expected.insert(3, "<|system|>\n" + messages[0].content + "<|end|>\n");
        EXPECT_EQ(tmpl.render(messages, gen), expected);
      } else {
        EXPECT_EQ(tmpl.render(messages, gen), c.at("rendered").get<std::string>());
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, static_cast<int>(test::expected::kChatTemplateCases));
}

// Llama 3.1 / 3.2 (dated system header) and Qwen 2.5 (ChatML with a default
// system prompt): every case rendered exactly as the official template does.
TEST(ChatTemplate, MatchesMoreOfficialRenderings) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(test::testdata_dir() + "/chat/chat_templates_more.json");
  const json families = json::parse(in);
  const std::map<std::string, ChatFormat> expected_format = {
      {"llama3.1", ChatFormat::kLlama31}, {"llama3.2", ChatFormat::kLlama31}, {"qwen2.5", ChatFormat::kQwen2}};
  ASSERT_EQ(families.size(), expected_format.size());
  size_t checked = 0;
  for (const auto& [family, spec] : families.items()) {
    SCOPED_TRACE(family);
    const auto format = detect_chat_format(spec.at("template").get<std::string>());
    ASSERT_TRUE(format.has_value());
    ASSERT_EQ(*format, expected_format.at(family));
    const ChatTemplate tmpl(*format);
    for (const json& c : spec.at("cases")) {
      EXPECT_EQ(tmpl.render(messages_of(c), c.at("add_generation_prompt")), c.at("rendered").get<std::string>());
      ++checked;
    }
  }
  EXPECT_EQ(checked, test::expected::kMoreChatTemplateCases);
}

// SmolLM2-Instruct's official template (tokenizer-bpe.md §8.1): ChatML that
// injects its default system turn when the conversation has none.
TEST(ChatTemplate, SmolLM2InjectsItsDefaultSystemTurn) {
  const std::string official =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
      "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  const auto format = detect_chat_format(official);
  ASSERT_EQ(format, ChatFormat::kSmolLM);
  const ChatTemplate tmpl(*format);
  EXPECT_EQ(tmpl.render({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(tmpl.render({{"system", "S"}, {"user", "Hi"}}, true),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, DetectsFamiliesAndNames) {
  EXPECT_EQ(detect_chat_format("{% for m in messages %}<|im_start|>{{ m.role }}"), ChatFormat::kChatML);
  EXPECT_EQ(detect_chat_format("{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{{ '<|assistant|>' }}"),
            ChatFormat::kPhi4);
  EXPECT_EQ(detect_chat_format("{{ '<|start_header_id|>' }}"), ChatFormat::kLlama3);
  EXPECT_FALSE(detect_chat_format("{{ messages }}").has_value());
  for (ChatFormat f : {ChatFormat::kPhi3, ChatFormat::kPhi35, ChatFormat::kPhi4, ChatFormat::kGemma,
                       ChatFormat::kLlama3, ChatFormat::kLlama31, ChatFormat::kChatML, ChatFormat::kQwen2,
                       ChatFormat::kSmolLM}) {
    EXPECT_EQ(chat_format_from_name(chat_format_name(f)), f);
  }
  EXPECT_FALSE(chat_format_from_name("vicuna").has_value());
}

TEST(ChatTemplate, OtherFormats) {
  const std::vector<ChatMessage> m = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
  EXPECT_EQ(ChatTemplate(ChatFormat::kChatML).render(m),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
            "Hello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(ChatTemplate(ChatFormat::kPhi4).render(m),
            "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>Hello<|end|><|user|>Bye<|end|><|assistant|>");
  EXPECT_EQ(ChatTemplate(ChatFormat::kLlama3).render({{"user", " Hi "}}),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, BadConversationsAreErrors) {
  const ChatTemplate gemma(ChatFormat::kGemma);
  EXPECT_THROW(gemma.render({{"assistant", "x"}}), Error);                 // must start with user
  EXPECT_THROW(gemma.render({{"user", "a"}, {"user", "b"}}), Error);       // must alternate
  EXPECT_THROW(ChatTemplate(ChatFormat::kChatML).render({{"tool", "x"}}), Error);
  EXPECT_THROW(ChatTemplate(ChatFormat::kPhi35).render({{"user", "x"}, {"system", "late"}}), Error);
}

TEST(ChatTemplate, ModelFileAndStopTokens) {
  SLM_REQUIRE_TESTDATA();
  const gguf::GgufFile file(test::testdata_dir() + "/tokenizer/ggml-vocab-phi-3.gguf");
  const Tokenizer tok(file);
  const ChatTemplate tmpl = ChatTemplate::for_model(file, &tok);
  EXPECT_EQ(tmpl.format(), ChatFormat::kPhi3);
  const auto stops = tmpl.stop_tokens(tok);
  EXPECT_EQ(stops, (std::vector<TokenId>{32007, 32000}));  // <|end|>, <|endoftext|> (= EOS)
  // A rendered prompt tokenizes with exactly one BOS.
  const auto ids = tok.encode_chat(tmpl.render({{"user", "Hello!"}}));
  EXPECT_EQ(ids.front(), 1);
  EXPECT_NE(ids[1], 1);
  EXPECT_EQ(ids.back(), 32001);  // <|assistant|>
  // Architecture fallback when a file has no template.
  const gguf::GgufFile gemma(test::testdata_dir() + "/models/gemma-tiny.gguf");
  EXPECT_EQ(ChatTemplate::for_model(gemma).format(), ChatFormat::kGemma);
}

}  // namespace
}  // namespace slm
