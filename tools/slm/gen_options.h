// The generation flags `run`, `chat` and `serve` share, and what they turn
// into: sampler, generation and session parameters, the loaded model.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli_util.h"
#include "slm/generate.h"
#include "slm/model.h"
#include "slm/session.h"

namespace slm::cli {

// The KV cache type flags: --kv TYPE (K and V), and llama.cpp's
// -ctk/--cache-type-k and -ctv/--cache-type-v (each overrides --kv for its
// half). TYPE: f16, f32 or q8_0.
struct KvOptions {
  std::string both, k, v;  // empty: not given
  KvType type_k() const { return parse_kv_type(!k.empty() ? k : !both.empty() ? both : "f16"); }
  KvType type_v() const { return parse_kv_type(!v.empty() ? v : !both.empty() ? both : "f16"); }
};
void add_kv_options(CLI::App* sub, KvOptions& o);

// Flags shared by run, chat and serve.
struct GenOptions {
  std::string model;
  std::string model_positional;  // `slm run MODEL ...`: the same as -m
  int64_t n_predict = -1;  // -1: until end of turn / context
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int repeat_last_n = 64;
  std::string seed = "-1";  // -1, or 0 .. 2^64 - 1 (a random seed printed by --stats can be given back)
  std::vector<std::string> reverse_prompts;  // extra stop texts
  bool ignore_eos = false;
  std::string system;
  std::string chat_template;  // NAME or FILE; empty: the model's
  bool no_mmap = false;
  bool mlock = false;
  int threads = 0;
  int64_t ctx = 0;
  int64_t batch = 512;
  KvOptions kv;
  DeviceOptions device;
};

// Adds the flags to `sub`.
void add_gen_options(CLI::App* sub, GenOptions& o);
// A --seed value: decimal digits only, at most 2^64 - 1.
std::optional<uint64_t> parse_seed(const std::string& v);
SamplerParams sampler_params(const GenOptions& o);
GenerateParams generate_params(const GenOptions& o);
SessionParams session_params(const GenOptions& o);
// The model of -m / the positional argument (or the default model), with
// --chat-template, --no-mmap, --mlock and the device flags applied.
std::shared_ptr<const Model> load_model(const GenOptions& o);

}  // namespace slm::cli
