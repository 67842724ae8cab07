// slm quantize IN.gguf OUT.gguf TYPE [--allow-requantize] [--pure] [-t N]
//
// Rewrites a model with its weights in another type. TYPE: q4_0, q4_1, q5_0,
// q5_1, q8_0, q2_k, q3_k_s/m/l, q4_k_s/m, q5_k_s/m, q6_k, f16, bf16, f32 (the
// table in mixes()). The mix (docs/quantize.md):
//   - 1-D tensors (norms, RoPE factors) stay F32;
//   - the output projection (output.weight, or token_embd.weight when the
//     output is tied to it) is Q6_K for every quantized type below Q8_0;
//   - each mix's rules give attn_v / attn_qkv, attn_output and ffn_down more
//     bits on some layers (--pure: none of this, every 2-D tensor TYPE);
//   - a row length the type's block does not divide falls back to a type
//     whose block does (said on stderr).
// Ctrl-C, SIGTERM or any failure leaves neither OUT nor its temporary file.
// All metadata is copied; general.file_type is updated. The input is never
// overwritten (the output is written beside it and renamed).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <atomic>
#include <chrono>
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
  bool pure = false;  // every 2-D tensor in the base type: no mix
  int threads = 0;
};

// Where a mix gives a tensor more bits than its base type (the reference
// quantizer's rules; docs/quantize.md). A tensor's role, the layers a rule
// covers, and the type it gets; rules are applied in order, the last that
// matches wins.
enum class Role { attn_v, attn_output, ffn_down };  // attn_v: also Phi-3's fused attn_qkv
enum class Layers {
  all,
  more_bits,        // the first and last eighth, and every third layer between
  first_eighth,     // layer < n/8
  first_sixteenth,  // layer < n/16
  first_two,        // layer < 2
  first_four,       // layer < 4
};
struct Rule {
  Role role;
  Layers layers;
  DType type;
  int min_gqa = 1;  // only on models with at least this many query heads per KV head
};

struct Mix {
  const char* name;
  DType base;          // 2-D weights not named by a rule
  uint32_t file_type;  // general.file_type
  std::vector<Rule> rules;
};

const std::vector<Mix>& mixes() {
  using D = DType;
  using L = Layers;
  static const std::vector<Mix> k = {
      {"q4_0", D::Q4_0, 2, {}},
      {"q4_1", D::Q4_1, 3, {}},
      {"q5_0", D::Q5_0, 8, {}},
      {"q5_1", D::Q5_1, 9, {}},
      {"q8_0", D::Q8_0, 7, {}},
      {"q2_k", D::Q2_K, 10,
       {{Role::attn_v, L::all, D::Q3_K}, {Role::attn_v, L::all, D::Q4_K, 4}, {Role::ffn_down, L::all, D::Q3_K},
        {Role::attn_output, L::all, D::Q3_K}}},
      {"q3_k_s", D::Q3_K, 11, {}},
      {"q3_k_m", D::Q3_K, 12,
       {{Role::attn_v, L::all, D::Q4_K}, {Role::attn_v, L::first_two, D::Q5_K}, {Role::ffn_down, L::all, D::Q4_K},
        {Role::ffn_down, L::first_sixteenth, D::Q5_K}, {Role::attn_output, L::all, D::Q4_K}}},
      {"q3_k_l", D::Q3_K, 13,
       {{Role::attn_v, L::all, D::Q5_K}, {Role::ffn_down, L::all, D::Q5_K}, {Role::attn_output, L::all, D::Q5_K}}},
      {"q4_k_s", D::Q4_K, 14, {{Role::attn_v, L::first_four, D::Q5_K}, {Role::ffn_down, L::first_eighth, D::Q5_K}}},
      {"q4_k_m", D::Q4_K, 15, {{Role::attn_v, L::more_bits, D::Q6_K}, {Role::ffn_down, L::more_bits, D::Q6_K}}},
      {"q5_k_s", D::Q5_K, 16, {}},
      {"q5_k_m", D::Q5_K, 17, {{Role::attn_v, L::more_bits, D::Q6_K}, {Role::ffn_down, L::more_bits, D::Q6_K}}},
      {"q6_k", D::Q6_K, 18, {}},
      {"f16", D::F16, 1, {}},
      {"bf16", D::BF16, 32, {}},
      {"f32", D::F32, 0, {}},
  };
  return k;
}

// Names llama-quantize also accepts for a mix.
const std::pair<const char*, const char*> kAliases[] = {{"q3_k", "q3_k_m"}, {"q4_k", "q4_k_m"}, {"q5_k", "q5_k_m"}};

std::string mix_names() {
  std::vector<std::string> names;
  for (const Mix& m : mixes()) names.emplace_back(m.name);
  for (const auto& [alias, mix] : kAliases) names.push_back(fmt::format("{} (= {})", alias, mix));
  return fmt::format("{}", fmt::join(names, ", "));
}

const Mix& parse_mix(const std::string& name) {
  std::string t = name;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& [alias, mix] : kAliases)
    if (t == alias) t = mix;
  for (const Mix& m : mixes())
    if (t == m.name) return m;
  throw Error(fmt::format("unknown quantization type '{}' (expected one of {})", name, mix_names()));
}

bool in_layers(Layers layers, int layer, int n_layer) {
  switch (layers) {
    case Layers::all: return true;
    case Layers::more_bits:
      return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
    case Layers::first_eighth: return layer < n_layer / 8;
    case Layers::first_sixteenth: return layer < n_layer / 16;
    case Layers::first_two: return layer < 2;
    case Layers::first_four: return layer < 4;
  }
  return false;
}

int layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::atoi(name.c_str() + 4);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool has_role(const std::string& name, Role role) {
  switch (role) {
    case Role::attn_v: return ends_with(name, ".attn_v.weight") || ends_with(name, ".attn_qkv.weight");
    case Role::attn_output: return ends_with(name, ".attn_output.weight");
    case Role::ffn_down: return ends_with(name, ".ffn_down.weight");
  }
  return false;
}

// A type whose block divides the row length, when the wanted one does not:
// the 256-element K types fall back to a 32-element type of about the same
// size (the reference quantizer's choices; it writes IQ4_NL for Q2_K / Q3_K,
// which slm does not write: Q4_0, the same size), anything else to F16.
DType fallback(DType wanted, int64_t cols) {
  static const std::pair<DType, DType> kFallbacks[] = {
      {DType::Q2_K, DType::Q4_0}, {DType::Q3_K, DType::Q4_0}, {DType::Q4_K, DType::Q5_0},
      {DType::Q5_K, DType::Q5_1}, {DType::Q6_K, DType::Q8_0},
  };
  auto fits = [&](DType t) { return cols % static_cast<int64_t>(traits(t).block_size) == 0; };
  if (fits(wanted)) return wanted;
  for (const auto& [from, to] : kFallbacks)
    if (from == wanted && fits(to)) return to;
  return DType::F16;
}

struct ModelShape {
  int n_layer = 0;
  int gqa = 1;  // query heads per KV head
  bool tied_output = false;
};

DType choose_type(const gguf::TensorInfo& t, const Mix& mix, bool pure, const ModelShape& shape) {
  if (t.ne.size() < 2) return DType::F32;
  if (pure || !traits(mix.base).is_quantized) return mix.base;
  DType type = mix.base;
  // The output projection: logits are the most sensitive product.
  const bool output = t.name == "output.weight" || (shape.tied_output && t.name == "token_embd.weight");
  if (output && mix.base != DType::Q8_0) type = DType::Q6_K;
  const int layer = layer_of(t.name);
  for (const Rule& r : mix.rules)
    if (layer >= 0 && has_role(t.name, r.role) && in_layers(r.layers, layer, shape.n_layer) && shape.gqa >= r.min_gqa)
      type = r.type;
  return type;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (stat(a.c_str(), &sa) != 0 || stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Ctrl-C / SIGTERM: the signal number, polled while tensors are converted;
// the writer then removes its partial file.
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

// A signal the caller chose to ignore stays ignored (`nohup slm quantize`
// outlives the terminal).
void install_stop_signals() {
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old = {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
  }
}

void throw_if_stopped() {
  if (const int sig = g_stop_signal.load()) throw Interrupted{sig};
}

std::string minutes_seconds(double seconds) {
  const auto s = static_cast<long>(std::max(0.0, seconds) + 0.5);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

int run_quantize(const QuantizeOptions& o) {
  const Mix& mix = parse_mix(o.type);
  if (o.in == o.out || same_file(o.in, o.out))
    throw Error(fmt::format("the output '{}' is the input: slm quantize never overwrites its input", o.out));
  const gguf::GgufFile in(o.in);
  bool input_quantized = false;
  for (const auto& t : in.tensors()) {
    if (!kernels::can_dequantize(t.type))
      throw Error(fmt::format("{}: tensor '{}' has type {}, which slm cannot read", o.in, t.name, dtype_name(t.type)));
    if (traits(t.type).is_quantized) input_quantized = true;
  }
  const bool quantized = traits(mix.base).is_quantized;
  if (input_quantized && quantized && !o.allow_requantize)
    throw Error(fmt::format("{} is already quantized; requantizing loses quality twice (pass --allow-requantize to do it anyway)",
                            o.in));
  if (input_quantized && !quantized)
    fmt::print(stderr,
               "warning: {} is quantized: the {} output holds its quantized weights widened, not the original model's\n",
               o.in, mix.name);
  ModelShape shape;
  shape.n_layer = static_cast<int>(in.get_int(in.arch_key("block_count"), 0));
  const int64_t n_head = in.get_int(in.arch_key("attention.head_count"), 1);
  const int64_t n_head_kv = in.get_int(in.arch_key("attention.head_count_kv"), n_head);
  shape.gqa = n_head_kv > 0 ? static_cast<int>(n_head / n_head_kv) : 1;
  shape.tied_output = in.find_tensor("output.weight") == nullptr;
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  gguf::GgufWriter w;
  for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
  w.set("general.file_type", gguf::Value::scalar<uint32_t>(mix.file_type));
  if (quantized) w.set("general.quantization_version", gguf::Value::scalar<uint32_t>(2));

  uint64_t total_in = 0, total_out = 0;
  for (const auto& t : in.tensors()) total_in += t.n_bytes;
  const size_t n_tensors = in.tensors().size();
  std::atomic<uint64_t> done_bytes{0};
  std::atomic<size_t> done_tensors{0};
  const bool show_progress = isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  for (const auto& t : in.tensors()) {
    const int64_t cols = t.ne[0];
    const int64_t rows = static_cast<int64_t>(t.n_rows());
    const DType wanted = choose_type(t, mix, o.pure, shape);
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
    w.add_tensor(t.name, type, t.ne, n_bytes, [=, &done_bytes, &done_tensors](uint8_t* dst) {
      throw_if_stopped();
      if (type == info->type) {  // nothing to convert
        std::memcpy(dst, src, n_bytes);
      } else {
        parallel_for(rows, threads, [&](int64_t r0, int64_t r1) {
          std::vector<float> row(static_cast<size_t>(cols));
          for (int64_t r = r0; r < r1; ++r) {
            if ((r - r0) % 64 == 0) throw_if_stopped();  // a big tensor is one chunk with one thread
            kernels::dequantize_row(info->type, src + static_cast<size_t>(r) * in_row, row.data(), cols);
            kernels::quantize_row(type, row.data(), dst + static_cast<size_t>(r) * out_row, cols);
          }
        });
      }
      done_bytes += info->n_bytes;
      ++done_tensors;
      if (show_progress) {
        // Rate in tensors/s; the time left from the bytes left at the bytes/s so far.
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() + 1e-9;
        const double fraction = static_cast<double>(done_bytes) / static_cast<double>(std::max<uint64_t>(1, total_in));
        // Under 80 columns, so \r rewrites it on any terminal.
        fmt::print(stderr, "\rquantizing {:3.0f}%  {:>4}/{:<4} {:6.1f} tensors/s  ETA {:>5}  {:<20.20}", 100.0 * fraction,
                   done_tensors.load(), n_tensors, static_cast<double>(done_tensors) / elapsed,
                   minutes_seconds(elapsed * (1.0 - fraction) / std::max(fraction, 1e-9)), info->name);
      }
    });
  }
  install_stop_signals();
  try {
    w.write(o.out);  // removes OUT.tmp on any failure
  } catch (const Interrupted& e) {
    if (show_progress) fmt::print(stderr, "\n");
    fmt::print(stderr, "slm quantize: stopped by {}; {} not written, its partial file removed\n", strsignal(e.signal), o.out);
    throw;
  }
  if (show_progress) fmt::print(stderr, "\r{:79}\r", "");
  fmt::print(stderr, "wrote {}: {} tensors, {:.2f} MiB -> {:.2f} MiB ({}) in {:.1f} s\n", o.out, n_tensors,
             static_cast<double>(total_in) / (1 << 20), static_cast<double>(total_out) / (1 << 20), mix.name,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

}  // namespace

Command add_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* sub = app.add_subcommand("quantize", "Write a model with its weights in another type");
  auto args = std::make_shared<std::vector<std::string>>();
  auto model = std::make_shared<std::string>();
  sub->add_option("args", *args,
                  "INPUT OUTPUT TYPE (INPUT may come as -m instead); TYPE: " + mix_names())
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("-m,--model", *model, "Input GGUF model (instead of the first argument)");
  sub->add_flag("--allow-requantize", o->allow_requantize, "Allow an already quantized input");
  sub->add_flag("--pure", o->pure, "Every 2-D tensor in TYPE's base type (no mix: output and attn_v/ffn_down too)");
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
