#include "support/testdata.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace slm::test {
namespace fs = std::filesystem;

namespace {
std::string configured_dir() {
  if (const char* env = std::getenv("SLM_TESTDATA"); env != nullptr && *env != '\0') return env;
  return SLM_TESTDATA_DEFAULT;
}
}  // namespace

std::string testdata_dir() {
  const std::string dir = configured_dir();
  return fs::is_directory(dir) ? dir : std::string();
}

std::string testdata_search_note() { return configured_dir(); }

bool testdata_required() {
  const char* env = std::getenv("SLM_TESTDATA_REQUIRED");
  return env != nullptr && std::string(env) == "1";
}

std::vector<std::string> model_files() {
  std::vector<std::string> out;
  const std::string dir = testdata_dir();
  if (dir.empty()) return out;
  for (const auto& e : fs::directory_iterator(fs::path(dir) / "models")) {
    if (e.path().extension() == ".gguf") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string temp_path(const std::string& name) {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("slm-test-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return (dir / name).string();
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

CommandResult run_command(const std::string& command, bool merge_stderr) {
  CommandResult r;
  const std::string full = merge_stderr ? command + " 2>&1" : command;
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string slm_binary() {
  const char* env = std::getenv("SLM_BIN");
  return env != nullptr ? env : "slm";
}

}  // namespace slm::test
