// slm quantize IN.gguf OUT.gguf TYPE [--allow-requantize] [-t N]
//
// Rewrites a model with its weights in another type. TYPE: q4_0, q4_1, q5_0,
// q5_1, q8_0, q4_k_m, q5_k_m, q6_k, f16, bf16, f32. The mix (docs/quantize.md):
//   - 1-D tensors (norms, RoPE factors) stay F32;
//   - the output projection (output.weight, or token_embd.weight when the
//     output is tied to it) is Q6_K for every quantized type below Q8_0;
//   - _m types: attn_v / attn_qkv and ffn_down get Q6_K on the first and last
//     eighth of the layers and every third layer between;
//   - a row length the type's block does not divide falls back to a type
//     whose block does (said on stderr).
// All metadata is copied; general.file_type is updated. The input is never
// overwritten (the output is written beside it and renamed).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli_util.h"
#include "commands.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "slm/error.h"

namespace slm::cli {
namespace {

struct QuantizeOptions {
  std::string in, out, type;
  bool allow_requantize = false;
  int threads = 0;
};

struct Target {
  DType base;
  bool k_mix;          // the _m rule for attn_v / ffn_down
  uint32_t file_type;  // general.file_type
};

Target parse_target(const std::string& name) {
  std::string t = name;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (t == "q4_0") return {DType::Q4_0, false, 2};
  if (t == "q4_1") return {DType::Q4_1, false, 3};
  if (t == "q5_0") return {DType::Q5_0, false, 8};
  if (t == "q5_1") return {DType::Q5_1, false, 9};
  if (t == "q8_0") return {DType::Q8_0, false, 7};
  if (t == "q4_k_m") return {DType::Q4_K, true, 15};
  if (t == "q5_k_m") return {DType::Q5_K, true, 17};
  if (t == "q6_k") return {DType::Q6_K, false, 18};
  if (t == "f16") return {DType::F16, false, 1};
  if (t == "bf16") return {DType::BF16, false, 32};
  if (t == "f32") return {DType::F32, false, 0};
  throw Error(fmt::format("unknown quantization type '{}' (expected q4_0, q4_1, q5_0, q5_1, q8_0, q4_k_m, q5_k_m, "
                          "q6_k, f16, bf16 or f32)",
                          name));
}

// The layers that get more bits in the _m mixes: the first and last eighth
// and every third layer in between (the reference quantizer's rule).
bool more_bits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

int layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::atoi(name.c_str() + 4);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A type whose block divides the row length, when the wanted one does not.
DType fallback(DType wanted, int64_t cols) {
  auto fits = [&](DType t) { return cols % static_cast<int64_t>(traits(t).block_size) == 0; };
  if (fits(wanted)) return wanted;
  DType alt = DType::F16;
  if (wanted == DType::Q4_K) alt = DType::Q5_0;
  if (wanted == DType::Q5_K) alt = DType::Q5_1;
  if (wanted == DType::Q6_K) alt = DType::Q8_0;
  return fits(alt) ? alt : DType::F16;
}

DType choose_type(const gguf::TensorInfo& t, const Target& target, bool tied_output, int n_layer) {
  if (t.ne.size() < 2) return DType::F32;
  const bool quantized = target.base != DType::F32 && target.base != DType::F16 && target.base != DType::BF16;
  DType type = target.base;
  const bool output = t.name == "output.weight" || (tied_output && t.name == "token_embd.weight");
  if (quantized && output && target.base != DType::Q8_0) type = DType::Q6_K;
  if (target.k_mix && (ends_with(t.name, ".attn_v.weight") || ends_with(t.name, ".attn_qkv.weight") ||
                       ends_with(t.name, ".ffn_down.weight"))) {
    const int layer = layer_of(t.name);
    if (layer >= 0 && more_bits(layer, n_layer)) type = DType::Q6_K;
  }
  return type;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (stat(a.c_str(), &sa) != 0 || stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int run_quantize(const QuantizeOptions& o) {
  const Target target = parse_target(o.type);
  if (o.in == o.out || same_file(o.in, o.out))
    throw Error(fmt::format("the output '{}' is the input: slm quantize never overwrites its input", o.out));
  const gguf::GgufFile in(o.in);
  bool input_quantized = false;
  for (const auto& t : in.tensors()) {
    if (!kernels::can_dequantize(t.type))
      throw Error(fmt::format("{}: tensor '{}' has type {}, which slm cannot read", o.in, t.name, dtype_name(t.type)));
    if (traits(t.type).is_quantized) input_quantized = true;
  }
  if (input_quantized && !o.allow_requantize)
    throw Error(fmt::format("{} is already quantized; requantizing loses quality twice (pass --allow-requantize to do it anyway)",
                            o.in));
  const int n_layer = static_cast<int>(in.get_int(in.arch_key("block_count"), 0));
  const bool tied = in.find_tensor("output.weight") == nullptr;
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  gguf::GgufWriter w;
  for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
  w.set("general.file_type", gguf::Value::scalar<uint32_t>(target.file_type));
  const bool quantized = traits(target.base).is_quantized;
  if (quantized) w.set("general.quantization_version", gguf::Value::scalar<uint32_t>(2));

  uint64_t total_in = 0, total_out = 0;
  for (const auto& t : in.tensors()) total_in += t.n_bytes;
  std::atomic<uint64_t> done{0};
  const bool show_progress = isatty(STDERR_FILENO);
  for (const auto& t : in.tensors()) {
    const int64_t cols = t.ne[0];
    const int64_t rows = static_cast<int64_t>(t.n_rows());
    const DType wanted = choose_type(t, target, tied, n_layer);
    const DType type = fallback(wanted, cols);
    if (type != wanted)
      fmt::print(stderr, "{}: row length {} does not fit {} blocks; using {}\n", t.name, cols, dtype_name(wanted),
                 dtype_name(type));
    const auto out_row = static_cast<size_t>(row_bytes(type, static_cast<uint64_t>(cols)));
    const auto in_row = static_cast<size_t>(row_bytes(t.type, static_cast<uint64_t>(cols)));
    const uint8_t* src = in.tensor_data(t);
    const uint64_t n_bytes = out_row * static_cast<uint64_t>(rows);
    total_out += n_bytes;
    const gguf::TensorInfo* info = &t;
    w.add_tensor(t.name, type, t.ne, n_bytes, [=, &done](uint8_t* dst) {
      if (type == info->type) {  // nothing to convert
        std::memcpy(dst, src, n_bytes);
      } else {
        parallel_for(rows, threads, [&](int64_t r0, int64_t r1) {
          std::vector<float> row(static_cast<size_t>(cols));
          for (int64_t r = r0; r < r1; ++r) {
            kernels::dequantize_row(info->type, src + static_cast<size_t>(r) * in_row, row.data(), cols);
            kernels::quantize_row(type, row.data(), dst + static_cast<size_t>(r) * out_row, cols);
          }
        });
      }
      done += info->n_bytes;
      if (show_progress)
        fmt::print(stderr, "\rquantizing {:3.0f}%  {:<40.40}", 100.0 * static_cast<double>(done) / static_cast<double>(total_in),
                   info->name);
    });
  }
  w.write(o.out);
  if (show_progress) fmt::print(stderr, "\r{:60}\r", "");
  fmt::print(stderr, "wrote {}: {} tensors, {:.2f} MiB -> {:.2f} MiB ({})\n", o.out, in.tensors().size(),
             static_cast<double>(total_in) / (1 << 20), static_cast<double>(total_out) / (1 << 20), o.type);
  return 0;
}

}  // namespace

Command add_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* sub = app.add_subcommand("quantize", "Write a model with its weights in another type");
  auto args = std::make_shared<std::vector<std::string>>();
  auto model = std::make_shared<std::string>();
  sub->add_option("args", *args,
                  "INPUT OUTPUT TYPE (INPUT may come as -m instead); TYPE: q4_0, q4_1, q5_0, q5_1, q8_0, q4_k_m, q5_k_m, "
                  "q6_k, f16, bf16 or f32")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("-m,--model", *model, "Input GGUF model (instead of the first argument)");
  sub->add_flag("--allow-requantize", o->allow_requantize, "Allow an already quantized input");
  sub->add_option("-t,--threads", o->threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  return [o, args, model] {
    // slm quantize IN OUT TYPE, or slm quantize -m IN OUT TYPE.
    const size_t want = model->empty() ? 3 : 2;
    if (args->size() != want)
      throw UsageError(fmt::format("quantize takes {}OUTPUT TYPE; got {} argument{}", model->empty() ? "INPUT " : "",
                              args->size(), args->size() == 1 ? "" : "s"));
    o->in = model->empty() ? (*args)[0] : *model;
    o->out = (*args)[want - 2];
    o->type = (*args)[want - 1];
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o->in, ec)) throw Error(fmt::format("{}: no such model file", o->in));
    return run_quantize(*o);
  };
}

}  // namespace slm::cli
