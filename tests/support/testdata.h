// Test helpers: the reference data folder (../shared/testdata by default,
// SLM_TESTDATA overrides), the slm binary, temporary files.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slm::test {

// The reference data folder, or "" when it does not exist.
std::string testdata_dir();

// When the reference data folder is absent: skips the current test, saying
// where the data was looked for — or fails it when SLM_TESTDATA_REQUIRED=1
// (CI sets it: there the data must be present, and 48 skipped tests would
// hide that it is not). Never skips when the folder is present.
#define SLM_REQUIRE_TESTDATA()                                                                          \
  do {                                                                                                  \
    if (::slm::test::testdata_dir().empty()) {                                                          \
      if (::slm::test::testdata_required())                                                             \
        FAIL() << "reference data not found and SLM_TESTDATA_REQUIRED is set; looked in "               \
               << ::slm::test::testdata_search_note();                                                  \
      GTEST_SKIP() << "reference data not found (set SLM_TESTDATA or configure SLM_TESTDATA_DIR); looked in " \
                   << ::slm::test::testdata_search_note();                                              \
    }                                                                                                   \
  } while (0)
std::string testdata_search_note();
bool testdata_required();

// What ../shared/testdata holds: tests that loop over its files and cases
// assert these counts, so an empty, renamed or truncated data file cannot
// make a test pass vacuously. A change to the data updates them here.
namespace expected {
constexpr size_t kModelFiles = 30;          // models/*.gguf
constexpr size_t kManifestModels = 29;      // manifest.json (every model but phi3-tiny-vocab-q8_0)
constexpr size_t kReferences = 29;          // reference/*.public.json and reference/gemma3/*.public.json
constexpr size_t kDequantEntries = 17;      // dequant.json
constexpr size_t kTextPrompts = 3;          // reference/phi3-tiny-vocab-q8_0.text.json prompts
constexpr size_t kPhi3Cases = 12;           // tokenizer/phi3_cases.json
constexpr size_t kVocabCases = 46;          // tokenizer/*.inp / *.out cases, each vocabulary
constexpr size_t kChatTemplateCases = 16;   // chat/chat_templates.json, all families
constexpr size_t kMoreChatTemplateCases = 12;  // chat/chat_templates_more.json, all families
}  // namespace expected

// Every *.gguf under testdata/models, sorted.
std::vector<std::string> model_files();

// A fresh path in a per-process temporary directory.
std::string temp_path(const std::string& name);

std::vector<uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);

// Runs a shell command, capturing stdout (and stderr when merge_stderr).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_command(const std::string& command, bool merge_stderr = false);

// Path of the slm binary under test (SLM_BIN, set by CTest).
std::string slm_binary();

}  // namespace slm::test
