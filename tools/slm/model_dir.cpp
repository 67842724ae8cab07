#include "model_dir.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "commands.h"
#include "core/dtype.h"
#include "gguf/gguf_reader.h"
#include "slm/error.h"

namespace slm::cli {
namespace {
namespace fs = std::filesystem;

// The models tools/fetch-models knows (keep the two lists in step). The
// first is the default: SmolLM2 is instruction-tuned; the Gemma 3 270M file
// is the base model, good for completion, not for chat.
struct KnownModel {
  const char* name;
  const char* file;
};
constexpr KnownModel kKnown[] = {
    {"smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"},
    {"gemma3-270m", "gemma-3-270m-q4_k_m.gguf"},
};

std::string short_name(const fs::path& file) {
  for (const KnownModel& k : kKnown)
    if (file.filename() == k.file) return k.name;
  return file.stem().string();
}

}  // namespace

std::string models_dir() {
  if (const char* env = std::getenv("SLM_MODELS"); env != nullptr && *env != '\0') return env;
  const char* home = std::getenv("HOME");
  return (fs::path(home != nullptr ? home : ".") / ".cache" / "slm" / "models").string();
}

std::string resolve_model(const std::string& arg) {
  const fs::path dir = models_dir();
  if (arg.empty()) {
    const fs::path def = dir / kKnown[0].file;
    if (!fs::exists(def))
      throw Error(fmt::format("no model given (-m FILE) and the default model {} is not in {}: fetch it with "
                              "tools/fetch-models from the slm source tree",
                              kKnown[0].name, dir.string()));
    return def.string();
  }
  if (fs::exists(arg) || arg.find('/') != std::string::npos) return arg;
  for (const KnownModel& k : kKnown)
    if (arg == k.name && fs::exists(dir / k.file)) return (dir / k.file).string();
  if (fs::exists(dir / (arg + ".gguf"))) return (dir / (arg + ".gguf")).string();
  return arg;  // the loader names the missing file
}

Command add_list(CLI::App& app) {
  app.add_subcommand("list", "List the models in slm's model folder ($SLM_MODELS)");
  return [] {
    const fs::path dir = models_dir();
    std::vector<fs::path> files;
    if (fs::is_directory(dir))
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".gguf" && e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      fmt::print("no models in {} (tools/fetch-models puts the default ones there)\n", dir.string());
      return 0;
    }
    fmt::print("{:<14} {:>9}  {:<10} {:<16} {:>8}  {}\n", "NAME", "SIZE", "ARCH", "TYPE", "CONTEXT", "FILE");
    for (const fs::path& p : files) {
      try {
        const gguf::GgufFile f(p.string());
        const auto ft = file_type_name(static_cast<uint32_t>(f.get_int("general.file_type", 0)));
        fmt::print("{:<14} {:>7.1f}MB  {:<10} {:<16} {:>8}  {}\n", short_name(p),
                   static_cast<double>(fs::file_size(p)) / 1e6, f.architecture(), ft ? std::string(*ft) : "?",
                   f.get_int(f.arch_key("context_length"), 0), p.filename().string());
      } catch (const Error& e) {
        fmt::print("{:<14} (unreadable: {})\n", short_name(p), e.what());
      }
    }
    return 0;
  };
}

}  // namespace slm::cli
