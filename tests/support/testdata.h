// Test helpers: the reference data folder (../shared/testdata by default,
// SLM_TESTDATA overrides), the slm binary, temporary files.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slm::test {

// The reference data folder, or "" when it does not exist.
std::string testdata_dir();

// Skips the current test, saying where the data was looked for, when the
// reference data folder is absent (never when it is present).
#define SLM_REQUIRE_TESTDATA()                                                                         \
  do {                                                                                                 \
    if (::slm::test::testdata_dir().empty()) {                                                         \
      GTEST_SKIP() << "reference data not found (set SLM_TESTDATA or configure SLM_TESTDATA_DIR); looked in " \
                   << ::slm::test::testdata_search_note();                                             \
    }                                                                                                  \
  } while (0)
std::string testdata_search_note();

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
