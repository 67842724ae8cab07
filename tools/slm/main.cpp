// slm: the command-line program. Subcommands live in cmd_*.cpp.
#include <algorithm>
#include <cstdio>
#include <vector>
#include <map>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "core/cpu_features.h"
#include "core/log.h"
#include "cpu/kernels.h"
#include "slm/error.h"
#include "slm/version.h"

int main(int argc, char** argv) {
  CLI::App app{"slm — run small language models (Phi-3, Gemma, Llama) from GGUF files, locally", "slm"};
  app.set_version_flag("--version", std::string("slm ") + slm::version_string());
  app.require_subcommand(1);
  app.fallthrough();  // global flags (-v, --isa) also work after the subcommand
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging to stderr")->configurable(false);
  std::string isa;
  app.add_option("--isa", isa,
                 "Force a kernel path: auto, ref, avx2, avx512, avx512_vnni, neon, neon_dotprod "
                 "(default: SLM_ISA from the environment, else the best this CPU runs)")
      ->configurable(false);

  std::map<CLI::App*, slm::cli::Command> commands;
  auto add = [&](slm::cli::Command (*fn)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    slm::cli::Command run = fn(app);
    commands[app.get_subcommands({})[before]] = std::move(run);
  };
  add(slm::cli::add_info);
  add(slm::cli::add_synth);
  add(slm::cli::add_tokenize);
  add(slm::cli::add_logits);
  add(slm::cli::add_bench);
  add(slm::cli::add_run);
  add(slm::cli::add_chat);
  add(slm::cli::add_quantize);
  add(slm::cli::add_perplexity);
  add(slm::cli::add_list);

  // llama.cpp users type -ngl N; CLI11 reads a one-dash option as one letter.
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args) {
    if (a == "-ngl") a = "--n-gpu-layers";
    else if (a.rfind("-ngl=", 0) == 0) a = "--n-gpu-layers=" + a.substr(5);
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help / --version (exit code 0) print what they print; a real usage
    // error is one line on stderr, like every other failure, naming where
    // the options are listed. Exit status 2: a usage error.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string where = "slm";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    fmt::print(stderr, "slm: error: {} ({} --help lists the options)\n", e.what(), where);
    return 2;
  }
  if (verbose) slm::logger().set_level(spdlog::level::debug);

  try {
    // An ISA the CPU lacks is an error here, before any kernel runs.
    if (!isa.empty()) slm::kernels::set_active_isa(slm::kernels::parse_isa(isa));
    const auto& kernels = slm::kernels::active_kernels();
    slm::logger().debug("kernel path: {} (CPU: {}; {})", slm::kernels::isa_name(kernels.isa),
                        slm::cpu_features().cpu_name, slm::cpu_features().summary());
    for (auto& [sub, run] : commands) {
      if (sub->parsed()) return run();
    }
  } catch (const slm::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "slm: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "slm: internal error: {}\n", e.what());
    return 2;
  }
  return 1;
}
