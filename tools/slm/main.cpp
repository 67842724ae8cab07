// slm: the command-line program. Subcommands live in cmd_*.cpp.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <vector>
#include <map>
#include <string>
#include <system_error>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli_util.h"
#include "commands.h"
#include "core/cpu_features.h"
#include "core/log.h"
#include "cpu/kernels.h"
#include "slm/error.h"
#include "slm/version.h"

namespace {

// The last line a failing run prints: with plain stdio, which cannot throw
// (stderr may itself be a full disk or a closed pipe).
void print_error(const std::string& line) { std::fputs(line.c_str(), stderr); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"slm — run small language models (Phi-3, Gemma, Llama) from GGUF files, locally", "slm"};
  app.set_version_flag("--version", std::string("slm ") + slm::version_string());
  app.require_subcommand(1);
  app.fallthrough();  // global flags (-v, --isa) also work after the subcommand
  // A flag given twice: the last one wins, as in llama.cpp (list options
  // such as bench's -m take every value; they say so themselves).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
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
  add(slm::cli::add_serve);
  add(slm::cli::add_quantize);
  add(slm::cli::add_perplexity);
  add(slm::cli::add_list);

  // llama.cpp's one-dash long flags (-ngl, -sys); CLI11 reads a one-dash
  // option as single letters.
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args) {
    if (a == "--") break;  // what follows is text (a prompt may well be "-sys")
    for (const auto& [dash, long_name] : slm::cli::kOneDashFlags) {
      if (a == dash) a = long_name;
      else if (a.rfind(std::string(dash) + "=", 0) == 0) a = std::string(long_name) + a.substr(std::strlen(dash));
    }
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help / --version (exit code 0) print what they print; a real usage
    // error is one line on stderr, like every other failure, naming where
    // the options are listed (or the closest known flag to a mistyped one).
    // Exit status 2: a usage error.
    if (e.get_exit_code() == 0) return app.exit(e);
    const CLI::App* where_app = &app;
    std::string where = "slm";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name(), where_app = sub;
    const std::string hint = slm::cli::did_you_mean(*where_app, app, e);
    print_error(fmt::format("slm: error: {} ({})\n", e.what(),
                            hint.empty() ? where + " --help lists the options" : "did you mean " + hint + "?"));
    return 2;
  }
  // Output to a closed pipe is an error (EPIPE, reported), not a silent death by SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
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
  } catch (const slm::cli::Interrupted& e) {
    std::fflush(stdout);
    return 128 + e.signal;  // stopped by a signal (130: SIGINT), as a shell reports it
  } catch (const slm::cli::UsageError& e) {
    std::fflush(stdout);
    print_error(fmt::format("slm: error: {}\n", e.what()));
    return 2;
  } catch (const slm::Error& e) {
    std::fflush(stdout);
    print_error(fmt::format("slm: error: {}\n", e.what()));
    return 1;
  } catch (const std::system_error& e) {
    // fmt's writes to a full disk or a closed pipe (SIGPIPE is ignored).
    print_error(fmt::format("slm: error: cannot write the output: {}\n", e.code().message()));
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    print_error(fmt::format("slm: internal error: {}\n", e.what()));
    return 2;
  }
  return 1;
}
