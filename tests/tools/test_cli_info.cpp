// `slm info` as a user runs it: the real binary, on the reference files.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/testdata.h"

namespace slm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(CliInfo, JsonMatchesTheManifestForEveryModel) {
  SLM_REQUIRE_TESTDATA();
  std::ifstream in(fs::path(test::testdata_dir()) / "manifest.json");
  const json manifest = json::parse(in);
  ASSERT_EQ(manifest.size(), test::expected::kManifestModels);
  for (const auto& [file, m] : manifest.items()) {
    SCOPED_TRACE(file);
    const std::string path = test::testdata_dir() + "/models/" + file;
    const auto r = test::run_command(test::slm_binary() + " info --json " + q(path));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const json j = json::parse(r.output);
    EXPECT_EQ(j.at("architecture"), m.at("kv").at("general.architecture").at("value"));
    EXPECT_EQ(j.at("version"), m.at("version"));
    EXPECT_EQ(j.at("n_tensors").get<size_t>(), m.at("tensors").size());
    EXPECT_EQ(j.at("n_kv").get<size_t>(), m.at("kv").size());
    EXPECT_EQ(j.at("kv"), m.at("kv"));
    EXPECT_EQ(j.at("tensors"), m.at("tensors"));
    uint64_t n_params = 0;
    for (const json& t : m.at("tensors")) {
      uint64_t n = 1;
      for (const json& d : t.at("ne")) n *= d.get<uint64_t>();
      n_params += n;
    }
    EXPECT_EQ(j.at("n_params").get<uint64_t>(), n_params);
    EXPECT_EQ(j.at("tokenizer").at("vocab_size"), m.at("kv").at("tokenizer.ggml.tokens").at("len"));
    EXPECT_EQ(j.at("file_type"), m.at("kv").at("general.file_type").at("value"));
  }
}

TEST(CliInfo, TextReportNamesArchitectureAndCounts) {
  SLM_REQUIRE_TESTDATA();
  const std::string path = test::testdata_dir() + "/models/gemma2-tiny-q4_k_m.gguf";
  const auto r = test::run_command(test::slm_binary() + " info --tensors " + q(path));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("architecture:  gemma2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Q4_K_M (MOSTLY_Q4_K_M 15)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("block_count"), std::string::npos);
  EXPECT_NE(r.output.find("attn_logit_softcapping"), std::string::npos);
  EXPECT_NE(r.output.find("blk.3.post_ffw_norm.weight"), std::string::npos);
  EXPECT_NE(r.output.find("Q6_K"), std::string::npos);
}

TEST(CliInfo, VocabularyOnlyFile) {
  SLM_REQUIRE_TESTDATA();
  const auto r = test::run_command(test::slm_binary() + " info --json " +
                                   q(test::testdata_dir() + "/tokenizer/ggml-vocab-phi-3.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json j = json::parse(r.output);
  EXPECT_EQ(j.at("n_tensors"), 0);
  EXPECT_EQ(j.at("tokenizer").at("vocab_size"), 32064);
  EXPECT_EQ(j.at("tokenizer").at("chat_template"), true);
}

// Each failure: a non-zero exit and exactly one line on stderr naming the file.
void expect_one_line_error(const std::string& args, const std::string& must_mention, const std::string& prefix = "") {
  const auto r = test::run_command(prefix + test::slm_binary() + " " + args + " 2>&1 >/dev/null");
  EXPECT_NE(r.exit_code, 0) << args;
  ASSERT_FALSE(r.output.empty()) << args;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find(must_mention), std::string::npos) << r.output;
}

TEST(CliInfo, BadFilesGiveOneClearLine) {
  expect_one_line_error("info /no/such/model.gguf", "/no/such/model.gguf");
  expect_one_line_error("info /", "not a regular file");
  const std::string text = test::temp_path("notes.txt");
  test::write_file(text, std::vector<uint8_t>(100, 'x'));
  expect_one_line_error("info " + q(text), "not a GGUF file");
  const std::string unreadable = test::temp_path("unreadable.gguf");
  test::write_file(unreadable, std::vector<uint8_t>(100, 0));
  fs::permissions(unreadable, fs::perms::none);
  // Root reads anything: as root (CI) the command runs with privileges
  // dropped to nobody, so the permission check is real either way.
  const std::string as_user = ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  expect_one_line_error("info " + q(unreadable), "cannot open", as_user);
}

TEST(CliInfo, BadFlagsFailWithNonZeroExit) {
  const auto r = test::run_command(test::slm_binary() + " info --no-such-flag x.gguf", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--no-such-flag"), std::string::npos) << r.output;
  EXPECT_NE(test::run_command(test::slm_binary() + " info", true).exit_code, 0);  // no model
  EXPECT_NE(test::run_command(test::slm_binary(), true).exit_code, 0);            // no subcommand
}

}  // namespace
}  // namespace slm
