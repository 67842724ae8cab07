// slm synth --preset NAME [--type f32|f16|bf16|q4_0|...] OUT.gguf: a random-weight
// model with a real model's shapes, metadata keys and tensor names, for
// benchmarks and tests (no download needed).
//
// Presets are JSON files in models/presets/ (hyperparameters from the
// published configs). The vocabulary is synthetic but of the right size and
// kind: <unk>, <s>, </s>, the 256 byte tokens, then made-up pieces.
// Weights are uniform with standard deviation 1/sqrt(fan-in), so activations
// stay finite through any number of layers.
#include <algorithm>
#include <thread>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/dtype.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "core/fp16.h"
#include "gguf/gguf_writer.h"
#include "slm/error.h"

namespace slm::cli {
namespace {

namespace fs = std::filesystem;
using gguf::GgufWriter;
using gguf::Value;
using nlohmann::json;

struct SynthOptions {
  std::string preset;
  std::string type = "f16";
  std::string out;
  uint64_t seed = 42;
  std::string presets_dir;
  bool list = false;
};

// The hyperparameters a preset gives (names follow the GGUF keys).
struct Preset {
  std::string name;
  std::string arch;
  uint32_t context_length = 4096;
  uint32_t n_embd = 0;
  uint32_t n_ff = 0;
  uint32_t n_layer = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim = 0;  // 0: n_embd / n_head
  uint32_t n_vocab = 0;
  uint32_t rope_dims = 0;  // 0: head_dim
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  uint32_t sliding_window = 0;
  uint32_t original_context_length = 0;  // phi3 LongRoPE
  float rope_attn_factor = 0.0f;         // phi3 LongRoPE; 0 = absent
  float attn_softcap = 0.0f;             // gemma2
  float final_softcap = 0.0f;            // gemma2
  float rope_freq_base_swa = 0.0f;       // gemma3 local layers; 0 = absent (10000)
  float rope_scaling_factor = 0.0f;      // gemma3 global layers, linear; 0 = absent
  bool tied_output = false;
};

template <class T>
void get_to(const json& j, const char* key, T& out) {
  if (j.contains(key)) out = j.at(key).get<T>();
}

Preset parse_preset(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open preset", path.string()));
  Preset p;
  try {
    const json j = json::parse(in);
    p.name = j.at("name").get<std::string>();
    p.arch = j.at("architecture").get<std::string>();
    p.n_embd = j.at("embedding_length").get<uint32_t>();
    p.n_ff = j.at("feed_forward_length").get<uint32_t>();
    p.n_layer = j.at("block_count").get<uint32_t>();
    p.n_head = j.at("head_count").get<uint32_t>();
    p.n_head_kv = j.at("head_count_kv").get<uint32_t>();
    p.n_vocab = j.at("vocab_size").get<uint32_t>();
    get_to(j, "context_length", p.context_length);
    get_to(j, "head_dim", p.head_dim);
    get_to(j, "rope_dimension_count", p.rope_dims);
    get_to(j, "rope_freq_base", p.rope_freq_base);
    get_to(j, "layer_norm_rms_epsilon", p.rms_eps);
    get_to(j, "sliding_window", p.sliding_window);
    get_to(j, "original_context_length", p.original_context_length);
    get_to(j, "rope_scaling_attn_factor", p.rope_attn_factor);
    get_to(j, "attn_logit_softcapping", p.attn_softcap);
    get_to(j, "final_logit_softcapping", p.final_softcap);
    get_to(j, "rope_freq_base_swa", p.rope_freq_base_swa);
    get_to(j, "rope_scaling_factor", p.rope_scaling_factor);
    get_to(j, "tied_output", p.tied_output);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: bad preset: {}", path.string(), e.what()));
  }
  if (p.arch != "phi3" && p.arch != "gemma" && p.arch != "gemma2" && p.arch != "gemma3" && p.arch != "llama") {
    throw Error(fmt::format("{}: unknown architecture '{}' (expected phi3, gemma, gemma2, gemma3 or llama)",
                            path.string(), p.arch));
  }
  if (p.n_head == 0 || p.n_head_kv == 0 || p.n_head % p.n_head_kv != 0) {
    throw Error(fmt::format("{}: head_count {} must be a positive multiple of head_count_kv {}", path.string(),
                            p.n_head, p.n_head_kv));
  }
  if (p.head_dim == 0) p.head_dim = p.n_embd / p.n_head;
  if (p.rope_dims == 0) p.rope_dims = p.head_dim;
  if (p.n_vocab < 4 + 256 || p.n_embd == 0 || p.n_ff == 0 || p.n_layer == 0) {
    throw Error(fmt::format("{}: sizes must be positive and the vocabulary at least 260 tokens", path.string()));
  }
  return p;
}

std::vector<fs::path> preset_dirs(const std::string& override_dir) {
  if (!override_dir.empty()) return {override_dir};
  return {SLM_PRESETS_DIR, SLM_INSTALLED_PRESETS_DIR};
}

fs::path find_preset(const SynthOptions& o) {
  std::vector<std::string> tried;
  for (const fs::path& dir : preset_dirs(o.presets_dir)) {
    const fs::path p = dir / (o.preset + ".json");
    if (fs::exists(p)) return p;
    tried.push_back(dir.string());
  }
  throw Error(fmt::format("no preset '{}' in {} (see `slm synth --list`)", o.preset, fmt::join(tried, ", ")));
}

// Deterministic, fast generator (splitmix64): the same seed gives the same file.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f; }  // [-1, 1)

 private:
  uint64_t state_;
};

// The special tokens and their ids follow each family's real vocabulary:
// SentencePiece order <unk> <s> </s> for Phi-3 and Llama, <pad> <eos> <bos>
// <unk> for Gemma (whose tokenizer also adds no space prefix).
void add_vocab(GgufWriter& w, const Preset& p) {
  const bool gemma = p.arch.rfind("gemma", 0) == 0;  // gemma, gemma2, gemma3
  // SentencePiece token types: 1 normal, 2 unknown, 3 control, 6 byte.
  struct Special {
    const char* text;
    int32_t type;
  };
  const std::vector<Special> specials = gemma ? std::vector<Special>{{"<pad>", 3}, {"<eos>", 3}, {"<bos>", 3}, {"<unk>", 2}}
                                              : std::vector<Special>{{"<unk>", 2}, {"<s>", 3}, {"</s>", 3}};
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  tokens.reserve(p.n_vocab);
  for (const Special& s : specials) {
    tokens.push_back(s.text);
    scores.push_back(0.0f);
    types.push_back(s.type);
  }
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    scores.push_back(0.0f);
    types.push_back(6);
  }
  // Phi-3's chat tokens at their real ids (32000 <|endoftext|> ... 32010
  // <|user|>), where the vocabulary is big enough: llama.cpp refuses a Phi-3
  // vocabulary without <|endoftext|>, and side-by-side benchmarks load these
  // files in both engines.
  std::map<uint32_t, std::string> chat_tokens;
  if (p.arch == "phi3" && p.n_vocab >= 32011) {
    const char* names[] = {"<|endoftext|>",   "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
                           "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>",
                           "<|placeholder5|>", "<|placeholder6|>", "<|user|>"};
    for (uint32_t i = 0; i < 11; ++i) chat_tokens[32000 + i] = names[i];
  }
  for (uint32_t i = static_cast<uint32_t>(tokens.size()); i < p.n_vocab; ++i) {
    if (const auto it = chat_tokens.find(i); it != chat_tokens.end()) {
      tokens.push_back(it->second);
      scores.push_back(0.0f);
      types.push_back(3);
      continue;
    }
    tokens.push_back(fmt::format("\xE2\x96\x81tok{}", i));  // "▁tok<i>"
    scores.push_back(-static_cast<float>(i));
    types.push_back(1);
  }
  w.set("tokenizer.ggml.model", Value::string("llama"));
  w.set("tokenizer.ggml.pre", Value::string("default"));
  w.set("tokenizer.ggml.tokens", Value::string_array(std::move(tokens)));
  w.set("tokenizer.ggml.scores", Value::array(scores));
  w.set("tokenizer.ggml.token_type", Value::array(types));
  w.set("tokenizer.ggml.bos_token_id", Value::scalar(uint32_t{gemma ? 2u : 1u}));
  w.set("tokenizer.ggml.eos_token_id", Value::scalar(uint32_t{gemma ? 1u : 2u}));
  w.set("tokenizer.ggml.unknown_token_id", Value::scalar(uint32_t{gemma ? 3u : 0u}));
  if (gemma) {
    w.set("tokenizer.ggml.padding_token_id", Value::scalar(uint32_t{0}));
    w.set("tokenizer.ggml.add_space_prefix", Value::scalar(false));
  }
  w.set("tokenizer.ggml.add_bos_token", Value::scalar(true));
  w.set("tokenizer.ggml.add_eos_token", Value::scalar(false));
}

void add_metadata(GgufWriter& w, const Preset& p, uint32_t file_type) {
  const std::string a = p.arch + ".";
  w.set("general.architecture", Value::string(p.arch));
  w.set("general.name", Value::string(p.name + " (synthetic, random weights)"));
  w.set(a + "context_length", Value::scalar(p.context_length));
  w.set(a + "embedding_length", Value::scalar(p.n_embd));
  w.set(a + "feed_forward_length", Value::scalar(p.n_ff));
  w.set(a + "block_count", Value::scalar(p.n_layer));
  w.set(a + "attention.head_count", Value::scalar(p.n_head));
  w.set(a + "attention.head_count_kv", Value::scalar(p.n_head_kv));
  w.set(a + "attention.layer_norm_rms_epsilon", Value::scalar(p.rms_eps));
  if (p.arch == "gemma" || p.arch == "gemma2") {
    w.set(a + "attention.key_length", Value::scalar(p.head_dim));
    w.set(a + "attention.value_length", Value::scalar(p.head_dim));
  } else if (p.arch == "gemma3") {  // what the converter writes (no rope.dimension_count)
    w.set(a + "attention.key_length", Value::scalar(p.head_dim));
    w.set(a + "attention.value_length", Value::scalar(p.head_dim));
    w.set(a + "rope.freq_base", Value::scalar(p.rope_freq_base));
    if (p.rope_freq_base_swa > 0) w.set(a + "rope.freq_base_swa", Value::scalar(p.rope_freq_base_swa));
    if (p.rope_scaling_factor > 0) {
      w.set(a + "rope.scaling.type", Value::string("linear"));
      w.set(a + "rope.scaling.factor", Value::scalar(p.rope_scaling_factor));
    }
    w.set(a + "attention.sliding_window", Value::scalar(p.sliding_window));
  } else {
    w.set(a + "rope.dimension_count", Value::scalar(p.rope_dims));
    w.set(a + "rope.freq_base", Value::scalar(p.rope_freq_base));
  }
  if (p.arch == "phi3") {
    w.set(a + "rope.scaling.original_context_length",
          Value::scalar(p.original_context_length ? p.original_context_length : p.context_length));
    if (p.rope_attn_factor > 0) w.set(a + "rope.scaling.attn_factor", Value::scalar(p.rope_attn_factor));
    w.set(a + "attention.sliding_window", Value::scalar(p.sliding_window));
  }
  if (p.arch == "gemma2") {
    w.set(a + "attn_logit_softcapping", Value::scalar(p.attn_softcap));
    w.set(a + "final_logit_softcapping", Value::scalar(p.final_softcap));
    w.set(a + "attention.sliding_window", Value::scalar(p.sliding_window));
  }
  if (p.arch == "llama") w.set(a + "vocab_size", Value::scalar(p.n_vocab));
  w.set("general.file_type", Value::scalar(file_type));
}

// What one tensor holds: random weights with std 1/sqrt(fan_in), a norm
// (all ones), or LongRoPE factors (ones: the neutral rescale).
enum class Fill { kWeight, kOnes };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  Fill fill;
};

std::vector<TensorSpec> tensor_table(const Preset& p) {
  const int64_t e = p.n_embd, ff = p.n_ff, v = p.n_vocab;
  const int64_t q = static_cast<int64_t>(p.n_head) * p.head_dim;
  const int64_t kv = static_cast<int64_t>(p.n_head_kv) * p.head_dim;
  std::vector<TensorSpec> t;
  t.push_back({"token_embd.weight", {e, v}, Fill::kWeight});
  if (p.arch == "phi3" && p.rope_attn_factor > 0) {
    t.push_back({"rope_factors_long.weight", {p.rope_dims / 2}, Fill::kOnes});
    t.push_back({"rope_factors_short.weight", {p.rope_dims / 2}, Fill::kOnes});
  }
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    t.push_back({b + "attn_norm.weight", {e}, Fill::kOnes});
    if (p.arch == "phi3") {
      t.push_back({b + "attn_qkv.weight", {e, q + 2 * kv}, Fill::kWeight});
      t.push_back({b + "ffn_up.weight", {e, 2 * ff}, Fill::kWeight});  // gate | up
    } else {
      t.push_back({b + "attn_q.weight", {e, q}, Fill::kWeight});
      t.push_back({b + "attn_k.weight", {e, kv}, Fill::kWeight});
      t.push_back({b + "attn_v.weight", {e, kv}, Fill::kWeight});
      t.push_back({b + "ffn_gate.weight", {e, ff}, Fill::kWeight});
      t.push_back({b + "ffn_up.weight", {e, ff}, Fill::kWeight});
    }
    t.push_back({b + "attn_output.weight", {q, e}, Fill::kWeight});
    t.push_back({b + "ffn_norm.weight", {e}, Fill::kOnes});
    t.push_back({b + "ffn_down.weight", {ff, e}, Fill::kWeight});
    if (p.arch == "gemma3") {
      t.push_back({b + "attn_q_norm.weight", {static_cast<int64_t>(p.head_dim)}, Fill::kOnes});
      t.push_back({b + "attn_k_norm.weight", {static_cast<int64_t>(p.head_dim)}, Fill::kOnes});
    }
    if (p.arch == "gemma2" || p.arch == "gemma3") {
      t.push_back({b + "post_attention_norm.weight", {e}, Fill::kOnes});
      t.push_back({b + "post_ffw_norm.weight", {e}, Fill::kOnes});
    }
  }
  t.push_back({"output_norm.weight", {e}, Fill::kOnes});
  const bool tied = p.tied_output || p.arch == "gemma" || p.arch == "gemma2" || p.arch == "gemma3";
  if (!tied) t.push_back({"output.weight", {e, v}, Fill::kWeight});
  return t;
}

// general.file_type for a model whose 2-D tensors are all `type`.
uint32_t synth_file_type(DType type) {
  switch (type) {
    case DType::F32: return 0;    // ALL_F32
    case DType::F16: return 1;    // MOSTLY_F16
    case DType::Q4_0: return 2;   // MOSTLY_Q4_0
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q4_K: return 14;  // MOSTLY_Q4_K_S
    case DType::Q5_K: return 16;  // MOSTLY_Q5_K_S
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

// The type a tensor gets in a synth file of `type`: 1-D tensors stay f32, as
// converted models keep them; a row that does not fit the type's block
// falls back to f16.
DType tensor_type(const TensorSpec& spec, DType type) {
  if (spec.ne.size() == 1) return DType::F32;
  if (spec.ne[0] % static_cast<int64_t>(traits(type).block_size) != 0) return DType::F16;
  return type;
}

uint64_t n_elements(const TensorSpec& spec) {
  uint64_t n = 1;
  for (int64_t d : spec.ne) n *= static_cast<uint64_t>(d);
  return n;
}

// One line per preset: its parameter count and the bytes of its weights in
// the common types (the vocabulary and metadata add a few hundred KiB).
void list_presets(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  const DType types[] = {DType::F16, DType::Q8_0, DType::Q6_K, DType::Q4_K, DType::Q4_0};
  fmt::print("{:<16} {:<7} {:>9}", "preset", "arch", "params");
  for (DType t : types) fmt::print(" {:>10}", dtype_name(t));
  fmt::print("\n");
  auto human = [](double v, const char* const units[], double step) {
    int u = 0;
    while (v >= step * 0.9995 && units[u + 1] != nullptr) v /= step, ++u;  // 999.7 M prints as 1.00 B
    return fmt::format("{:.{}f} {}", v, v < 10 ? 2 : v < 100 ? 1 : 0, units[u]);
  };
  static const char* const kCount[] = {"", "K", "M", "B", nullptr};
  static const char* const kBytes[] = {"B", "KiB", "MiB", "GiB", nullptr};
  for (const fs::path& f : files) {
    const Preset p = parse_preset(f);
    const auto table = tensor_table(p);
    uint64_t params = 0;
    for (const TensorSpec& spec : table) params += n_elements(spec);
    fmt::print("{:<16} {:<7} {:>9}", f.stem().string(), p.arch, human(static_cast<double>(params), kCount, 1000));
    for (DType t : types) {
      uint64_t bytes = 0;
      for (const TensorSpec& spec : table)
        bytes += row_bytes(tensor_type(spec, t), static_cast<uint64_t>(spec.ne[0])) * (n_elements(spec) / static_cast<uint64_t>(spec.ne[0]));
      fmt::print(" {:>10}", human(static_cast<double>(bytes), kBytes, 1024));
    }
    fmt::print("\n");
  }
}

int run_synth(const SynthOptions& o) {
  if (o.list) {
    for (const fs::path& dir : preset_dirs(o.presets_dir)) {
      if (!fs::is_directory(dir)) continue;
      list_presets(dir);
      return 0;
    }
    throw Error("no presets directory found");
  }
  if (o.preset.empty() || o.out.empty()) throw Error("synth needs --preset NAME and an output path");
  const Preset p = parse_preset(find_preset(o));

  const auto dtype = dtype_from_name(o.type);
  if (!dtype || !kernels::can_quantize(*dtype))
    throw Error(fmt::format("synth --type '{}' is not supported (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, "
                            "q4_k, q5_k, q6_k)",
                            o.type));
  const uint32_t file_type = synth_file_type(*dtype);
  GgufWriter w;
  add_metadata(w, p, file_type);
  add_vocab(w, p);
  uint64_t seed = o.seed;
  for (const TensorSpec& spec : tensor_table(p)) {
    const DType type = tensor_type(spec, *dtype);
    const int64_t cols = spec.ne[0];
    int64_t rows = 1;
    for (size_t i = 1; i < spec.ne.size(); ++i) rows *= spec.ne[i];
    const auto row_size = static_cast<size_t>(row_bytes(type, static_cast<uint64_t>(cols)));
    const float scale = std::sqrt(3.0f / static_cast<float>(cols));  // uniform(-a, a): std = a/sqrt(3)
    const uint64_t tensor_seed = seed++;
    const Fill fill = spec.fill;
    w.add_tensor(spec.name, type, spec.ne, row_size * static_cast<uint64_t>(rows), [=](uint8_t* dst) {
      // Rows are independent (one generator per row), so the threads split them.
      parallel_for(rows, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())),
                   [&](int64_t r0, int64_t r1) {
                     std::vector<float> row(static_cast<size_t>(cols));
                     for (int64_t r = r0; r < r1; ++r) {
                       Rng rng(tensor_seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(r));
                       for (float& x : row) x = fill == Fill::kOnes ? 1.0f : rng.uniform() * scale;
                       kernels::quantize_row(type, row.data(), dst + static_cast<size_t>(r) * row_size, cols);
                     }
                   });
    });
  }
  w.write(o.out);
  fmt::print(stderr, "wrote {} ({} preset, {}, {} tensors)\n", o.out, p.name, o.type, w.n_tensors());
  return 0;
}

}  // namespace

Command add_synth(CLI::App& app) {
  auto opts = std::make_shared<SynthOptions>();
  CLI::App* sub = app.add_subcommand("synth", "Write a random-weight model with a real model's shapes (for tests and benchmarks)");
  sub->add_option("--preset", opts->preset, "Preset name (a JSON file in models/presets)");
  sub->add_option("--type", opts->type, "Weight type of 2-D tensors: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k")->capture_default_str();
  sub->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  sub->add_option("--presets-dir", opts->presets_dir, "Read presets from this directory");
  sub->add_flag("--list", opts->list, "List the available presets with their parameter counts and weight sizes per type");
  sub->add_option("out", opts->out, "Output GGUF path");
  return [opts]() { return run_synth(*opts); };
}

}  // namespace slm::cli
