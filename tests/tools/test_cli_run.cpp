// `slm run` as a user runs it.
#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "slm/slm.h"
#include "support/testdata.h"

namespace slm {
namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }
std::string vocab_model() { return test::testdata_dir() + "/models/phi3-tiny-vocab-q8_0.gguf"; }

// --temp 0 reproduces the reference engine's greedy continuation, as text.
TEST(CliRun, GreedyReproducesTheReferenceContinuation) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(test::testdata_dir() + "/reference/phi3-tiny-vocab-q8_0.text.json");
  const auto ref = nlohmann::json::parse(in);
  const auto model = Model::load(vocab_model());
  const auto& p = ref.at("prompts")[0];
  const std::string want = model->tokenizer().decode(p.at("greedy_engine").get<std::vector<TokenId>>());
  const auto r = test::run_command(test::slm_binary() + " run -m " + q(vocab_model()) + " -p " +
                                   q(p.at("text").get<std::string>()) + " --temp 0 -n 16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, want + "\n");
  // --chat wraps the prompt in the template: the second reference prompt.
  const auto& c = ref.at("prompts")[1];
  const auto rc = test::run_command(test::slm_binary() + " run --chat -m " + q(vocab_model()) +
                                    " -p 'What is the capital of France?' --temp 0 -n 16");
  ASSERT_EQ(rc.exit_code, 0) << rc.output;
  EXPECT_EQ(rc.output, model->tokenizer().decode(c.at("greedy_engine").get<std::vector<TokenId>>()) + "\n");
  // -p - reads the prompt from stdin; --stats reports speeds on stderr.
  const auto rs = test::run_command("printf %s " + q(p.at("text").get<std::string>()) + " | " + test::slm_binary() +
                                        " run -m " + q(vocab_model()) + " -p - --temp 0 -n 16 --stats",
                                    true);
  ASSERT_EQ(rs.exit_code, 0) << rs.output;
  EXPECT_EQ(rs.output.rfind(want, 0), 0u) << rs.output;
  EXPECT_NE(rs.output.find("generation: 16 tokens"), std::string::npos) << rs.output;
  EXPECT_NE(rs.output.find("tok/s"), std::string::npos);
}

TEST(CliRun, BadInputGetsOneClearLine) {
  SLM_REQUIRE_TESTDATA();
  const std::string bin = test::slm_binary();
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"run -m /nonexistent.gguf -p hi", "/nonexistent.gguf"},
      {"run -m " + q(vocab_model()), "prompt is empty"},
      {"run -m " + q(vocab_model()) + " -p hi --top-p 2", "--top-p"},
      {"run -m " + q(vocab_model()) + " -p hi --bogus", "--bogus"},
      {"run -m " + q(vocab_model()) + " -p 'one two three four five six seven' -c 4", "context"},
      {"chat -m /no/such/model.gguf", "/no/such/model.gguf"},
      // No -m and no default model in the model folder: how to fetch it.
      {"run -p hi", "tools/fetch-models"},
  };
  for (const Case& c : cases) {
    const auto r = test::run_command("SLM_MODELS=/nonexistent/models " + bin + " " + c.args + " 2>&1 </dev/null");
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << " -> " << r.output;
    // One line, nothing else (stdout and stderr together).
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.args << " -> " << r.output;
    EXPECT_EQ(r.output.rfind("slm: error: ", 0), 0u) << c.args << " -> " << r.output;
  }
  // Usage errors (bad flags, missing or bad values) exit with status 2.
  for (const char* args : {"run --bogus", "chat --bogus", "run -m x -p hi --top-p 2", "info --json", "bench -m x -t zero"}) {
    const auto r = test::run_command(bin + " " + args + " 2>&1 </dev/null");
    EXPECT_EQ(r.exit_code, 2) << args << " -> " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << " -> " << r.output;
  }
}

// -n 0 generates nothing: an empty answer line, exit 0.
TEST(CliRun, NPredictZeroGeneratesNothing) {
  SLM_REQUIRE_TESTDATA();
  const auto r = test::run_command(test::slm_binary() + " run -m " + q(vocab_model()) + " -p 'Hello world' -n 0 --stats", true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("\n", 0), 0u) << r.output;  // the answer line is empty
  EXPECT_NE(r.output.find("generation: 0 tokens"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace slm
