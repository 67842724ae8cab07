// Small helpers shared by the subcommands.
#pragma once

#include <csignal>

#include <cstdint>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "slm/error.h"
#include "slm/model.h"

namespace CLI {
class App;
class ParseError;
}  // namespace CLI

namespace slm::cli {

// A usage error found after parsing (missing or conflicting arguments, a bad
// value): main() prints it like CLI11's own and exits with status 2.
struct UsageError : Error {
  using Error::Error;
};

// "1,2,3" -> {1, 2, 3}; any item that is not an integer in [min, max] is an
// error naming the flag and the item.
inline std::vector<int64_t> parse_int_list(const std::string& list, const char* flag, int64_t min, int64_t max) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < min || v > max)
      throw UsageError(fmt::format("{}: '{}' is not valid (expected comma-separated integers from {} to {})", flag, item,
                              min, max));
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

// llama.cpp's flags spelled with one dash and several letters, as the long
// flags slm knows them by (main.cpp rewrites them before parsing).
inline constexpr std::pair<const char*, const char*> kOneDashFlags[] = {
    {"-ngl", "--n-gpu-layers"},
    {"-sys", "--system-prompt"},
    {"-np", "--parallel"},
    {"-pg", "--pg"},
    {"-ctk", "--cache-type-k"},
    {"-ctv", "--cache-type-v"},
};

// "Q4_K_M" for MOSTLY_Q4_K_M, "F32" for ALL_F32: the file type name users type.
inline std::string short_type_name(std::string_view name) {
  for (std::string_view prefix : {"MOSTLY_", "ALL_"})
    if (name.rfind(prefix, 0) == 0) return std::string(name.substr(prefix.size()));
  return std::string(name);
}

// Thrown to stop a command on a signal; main exits 128 + signal (130 for
// Ctrl-C), as a shell reports it.
struct Interrupted {
  int signal = SIGINT;
};


// The known flag closest to the unknown one a parse error names (edit
// distance at most 3, or a known flag that starts with it): "--top-k".
// Empty when the error is not about an unknown flag or nothing is close.
std::string did_you_mean(const CLI::App& sub, const CLI::App& root, const CLI::ParseError& error);

// --device and -ngl / --n-gpu-layers, as every command that runs a model
// takes them (main.cpp turns llama.cpp's one-dash -ngl into --n-gpu-layers).
struct DeviceOptions {
  std::string device = "auto";
  int n_gpu_layers = -1;  // -1: not given
};

template <typename App>
void add_device_options(App* sub, DeviceOptions& o) {
  sub->add_option("--device", o.device,
                  "Where the model runs: cpu, cuda (an NVIDIA GPU) or auto (the GPU when one is usable)")
      ->capture_default_str();
  sub->add_option("--n-gpu-layers", o.n_gpu_layers,
                  "(also -ngl) 0 = the CPU, at least the model's layer count = all on the GPU");
}

inline Device device_of(const DeviceOptions& o) {
  if (o.n_gpu_layers == 0) return Device::cpu;
  if (o.n_gpu_layers > 0) return Device::cuda;
  if (o.device == "cpu") return Device::cpu;
  if (o.device == "cuda") return Device::cuda;
  if (o.device == "auto") return Device::automatic;
  throw UsageError(fmt::format("--device must be cpu, cuda or auto (got '{}')", o.device));
}

// -ngl between 0 and the layer count would split the model across devices,
// which slm cannot do yet: refused rather than silently run elsewhere.
inline void check_gpu_layers(const DeviceOptions& o, int64_t n_layer) {
  if (o.n_gpu_layers > 0 && o.n_gpu_layers < n_layer)
    throw UsageError(fmt::format("-ngl {}: the model has {} layers and slm runs a model wholly on one device: use -ngl 0 "
                            "(CPU) or -ngl {} or more (GPU)",
                            o.n_gpu_layers, n_layer, n_layer));
}

}  // namespace slm::cli
