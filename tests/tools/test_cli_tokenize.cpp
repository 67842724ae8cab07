#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/testdata.h"

namespace slm {
namespace {

using nlohmann::json;

TEST(CliTokenize, JsonIdsAndFlags) {
  SLM_REQUIRE_TESTDATA();
  const std::string cmd = test::slm_binary() + " tokenize -m '" + test::testdata_dir() +
                          "/tokenizer/ggml-vocab-phi-3.gguf' --json ";
  auto r = test::run_command(cmd + "'<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json j = json::parse(r.output);
  EXPECT_EQ(j.at("ids"), json::parse("[1, 32010, 1724, 338, 29871, 29906, 29974, 29906, 29973, 32007, 32001]"));
  EXPECT_EQ(j.at("pieces")[1], "<|user|>");
  r = test::run_command(cmd + "--no-bos --no-special 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(r.output).at("ids"), json::parse("[15043, 3186]"));
  r = test::run_command("printf 'Hello world' | " + cmd + "--no-bos -");
  EXPECT_EQ(json::parse(r.output).at("ids"), json::parse("[15043, 3186]"));
}

// Without a text: a pipe is read (never just BOS for nothing); on a terminal
// it is a usage error. The count says "1 token", "2 tokens". The model may
// come first instead of -m.
TEST(CliTokenize, StdinWithoutATextCountsAndPositionalModel) {
  SLM_REQUIRE_TESTDATA();
  const std::string vocab = "'" + test::testdata_dir() + "/tokenizer/ggml-vocab-phi-3.gguf'";
  auto r = test::run_command("printf 'Hello world' | " + test::slm_binary() + " tokenize " + vocab + " --no-bos 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("15043 '\xE2\x96\x81Hello'"), std::string::npos) << r.output;
  r = test::run_command("printf 'Hello world' | " + test::slm_binary() + " tokenize " + vocab + " --no-bos 2>&1 >/dev/null");
  EXPECT_EQ(r.output, "2 tokens\n");
  r = test::run_command(test::slm_binary() + " tokenize -m " + vocab + " --no-bos Hello 2>&1 >/dev/null");
  EXPECT_EQ(r.output, "1 token\n");
  // script(1): stdin is a terminal, and no text was given.
  r = test::run_command("script -qec \"" + test::slm_binary() + " tokenize -m " + vocab + "\" /dev/null");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("tokenize needs a text"), std::string::npos) << r.output;
  r = test::run_command(test::slm_binary() + " tokenize " + vocab + " one two 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(CliTokenize, ErrorsAreOneLine) {
  auto r = test::run_command(test::slm_binary() + " tokenize -m /no/such.gguf hi 2>&1 >/dev/null");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("/no/such.gguf"), std::string::npos);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

}  // namespace
}  // namespace slm
