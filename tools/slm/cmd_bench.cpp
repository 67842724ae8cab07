// slm bench [MODEL...] [-m MODEL] [-p 512] [-n 128] [-pg 512,128] [-d 0,4096] [-r 5] [-t 1,2]
//           [-o md|json|jsonl|csv]
//
// The tests people compare engines by, as llama.cpp's llama-bench runs them:
// pp (one batched prefill of p tokens), tg (n tokens generated one at a
// time) and pg (p prompt tokens then n generated, timed together), each at a
// context depth d (d tokens already in the KV cache, filled untimed), after
// a warm-up, as mean ± stdev over r repetitions, for every combination of
// the comma lists. Field names in json/jsonl/csv are llama-bench's where the
// meaning is the same (avg_ts, n_prompt, n_depth, ...). The machine's read
// bandwidth is measured too, and tg rows carry the roofline: bandwidth /
// bytes read per token (the weights, and the K/V cache at that depth).
#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <cmath>
#include <ctime>
#include <tuple>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "gen_options.h"
#include "model_dir.h"
#include "core/cpu_features.h"
#include "cpu/kernels.h"
#include "cpu/membw.h"
#include "model/cuda/cuda_backend.h"
#include "model/forward.h"
#include "slm/error.h"
#include "slm/version.h"

namespace slm::cli {
namespace {

struct BenchOptions {
  std::vector<std::string> models;
  std::vector<int64_t> n_prompt = {512};
  std::vector<int64_t> n_gen = {128};
  std::vector<std::pair<int64_t, int64_t>> prompt_gen;  // -pg pairs
  std::vector<int64_t> depth = {0};
  int reps = 5;
  std::vector<int> threads = {0};
  std::string output = "md";
  int64_t n_batch = 512;
  int64_t n_ctx = 0;  // 0: depth + prompt + generated tokens of each test
  KvOptions kv;
  DeviceOptions device;
};

// One test: n_prompt tokens prefilled and n_gen generated (either may be 0)
// at depth n_depth.
struct Test {
  int64_t n_prompt = 0, n_gen = 0, n_depth = 0;
  std::string name() const {
    std::string s = n_prompt > 0 && n_gen > 0 ? fmt::format("pp{}+tg{}", n_prompt, n_gen)
                    : n_prompt > 0            ? fmt::format("pp{}", n_prompt)
                                              : fmt::format("tg{}", n_gen);
    return n_depth > 0 ? fmt::format("{} @ d{}", s, n_depth) : s;
  }
  int64_t tokens() const { return n_prompt + n_gen; }
  int64_t ctx() const { return n_depth + n_prompt + n_gen; }
};

struct Result {
  std::string model_filename, model_type, file_type, backend, isa, cpu, commit, test_time, type_k, type_v;
  uint64_t size = 0, params = 0;
  int threads = 0;
  int64_t n_batch = 0;
  Test test;
  double mean = 0, stdev = 0;  // tokens/s
  std::vector<double> samples_ts, samples_ns;
  double avg_ns = 0, stddev_ns = 0;
  double bandwidth_gbs = 0;    // measured read bandwidth, this thread count
  double roofline_tps = 0;     // bandwidth / bytes per token (tg rows)
  uint64_t bytes_per_token = 0;
};

std::pair<double, double> mean_stdev(const std::vector<double>& v) {
  double sum = 0;
  for (double s : v) sum += s;
  const double mean = sum / static_cast<double>(v.size());
  double var = 0;
  for (double s : v) var += (s - mean) * (s - mean);
  return {mean, v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0};
}

void finish(Result& r) {
  std::tie(r.mean, r.stdev) = mean_stdev(r.samples_ts);
  std::tie(r.avg_ns, r.stddev_ns) = mean_stdev(r.samples_ns);
}

std::string human_size(uint64_t bytes) {
  return bytes >= (1ull << 30) ? fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1ull << 30))
                               : fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1ull << 20));
}

std::string human_params(uint64_t n) {
  if (n >= 1000000000ull) return fmt::format("{:.2f} B", static_cast<double>(n) / 1e9);
  if (n >= 1000000ull) return fmt::format("{:.2f} M", static_cast<double>(n) / 1e6);
  return fmt::format("{}", n);
}

// "3.8B" / "135M": the size part of llama-bench's model_type.
std::string size_label(uint64_t n) {
  if (n >= 1000000000ull) return fmt::format("{:.1f}B", static_cast<double>(n) / 1e9);
  if (n >= 1000000ull) return fmt::format("{:.0f}M", static_cast<double>(n) / 1e6);
  return fmt::format("{}", n);
}

// Fields in llama-bench's order, then slm's; every row has every field (csv
// columns line up), roofline fields null except on tg rows.
nlohmann::ordered_json to_json(const Result& r) {
  nlohmann::ordered_json j;
  // llama-bench's fields (same names, same meaning).
  j["build_commit"] = r.commit;
  j["cpu_info"] = r.cpu;
  j["backends"] = r.backend;
  j["model_filename"] = r.model_filename;
  j["model_type"] = r.model_type;
  j["model_size"] = r.size;
  j["model_n_params"] = r.params;
  j["n_batch"] = r.n_batch;
  j["n_threads"] = r.threads;
  j["type_k"] = r.type_k;
  j["type_v"] = r.type_v;
  j["n_prompt"] = r.test.n_prompt;
  j["n_gen"] = r.test.n_gen;
  j["n_depth"] = r.test.n_depth;
  j["test_time"] = r.test_time;
  j["avg_ns"] = static_cast<uint64_t>(r.avg_ns);
  j["stddev_ns"] = static_cast<uint64_t>(r.stddev_ns);
  j["avg_ts"] = r.mean;
  j["stddev_ts"] = r.stdev;
  j["samples_ns"] = r.samples_ns;
  j["samples_ts"] = r.samples_ts;
  // slm's own.
  j["test"] = r.test.name();
  j["file_type"] = r.file_type;
  j["isa"] = r.isa;
  j["slm_version"] = version_string();
  j["bandwidth_gb_s"] = r.bandwidth_gbs;
  const bool tg = r.test.n_gen > 0 && r.test.n_prompt == 0;
  j["bytes_per_token"] = tg ? nlohmann::ordered_json(r.bytes_per_token) : nlohmann::ordered_json(nullptr);
  j["roofline_ts"] = tg ? nlohmann::ordered_json(r.roofline_tps) : nlohmann::ordered_json(nullptr);
  j["roofline_fraction"] = tg ? nlohmann::ordered_json(r.mean / r.roofline_tps) : nlohmann::ordered_json(nullptr);
  return j;
}

std::string csv_field(const nlohmann::ordered_json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>(), out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  }
  if (v.is_null()) return "";
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ";") + x.dump();
    return "\"" + s + "\"";
  }
  return v.dump();
}

// The markdown table, column-padded like llama-bench's. Rows go out as each
// result is ready (a full run takes minutes).
class Table {
 public:
  void row(const Result& r) {
    std::vector<std::string> cells = {
        r.model_type, human_size(r.size), human_params(r.params), r.backend, std::to_string(r.threads),
        r.test.name(), fmt::format("{:.2f} ± {:.2f}", r.mean, r.stdev),
        r.test.n_gen > 0 && r.test.n_prompt == 0 ? fmt::format("{:.0f} % of {:.1f}", 100 * r.mean / r.roofline_tps, r.roofline_tps)
                                                 : std::string()};
    if (!printed_header_) {
      print(header_);
      std::string rule = "|";
      for (size_t i = 0; i < widths_.size(); ++i)
        rule += " " + (right_[i] ? std::string(widths_[i] - 1, '-') + ":" : std::string(widths_[i], '-')) + " |";
      fmt::print("{}\n", rule);
      printed_header_ = true;
    }
    print(cells);
    std::fflush(stdout);
  }

 private:
  void print(const std::vector<std::string>& cells) {
    std::string line = "|";
    for (size_t i = 0; i < cells.size(); ++i) {
      // Width in code points (the ± is two bytes).
      size_t len = 0;
      for (unsigned char c : cells[i]) len += (c & 0xC0) != 0x80;
      const std::string pad(widths_[i] > len ? widths_[i] - len : 0, ' ');
      line += " " + (right_[i] ? pad + cells[i] : cells[i] + pad) + " |";
    }
    fmt::print("{}\n", line);
  }
  const std::vector<std::string> header_ = {"model", "size", "params", "backend", "threads", "test", "t/s", "roofline t/s"};
  const std::vector<size_t> widths_ = {30, 10, 10, 10, 7, 15, 20, 18};
  const std::vector<bool> right_ = {false, true, true, false, true, true, true, true};
  bool printed_header_ = false;
};

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Every test of the run, in llama-bench's order: prompt sizes, then
// generation lengths, then prompt+generation pairs, each at every depth.
std::vector<Test> tests_of(const BenchOptions& o) {
  std::vector<Test> tests;
  for (int64_t d : o.depth) {
    for (int64_t p : o.n_prompt)
      if (p > 0) tests.push_back({p, 0, d});
    for (int64_t n : o.n_gen)
      if (n > 0) tests.push_back({0, n, d});
    for (const auto& [p, n] : o.prompt_gen) tests.push_back({p, n, d});
  }
  return tests;
}

// Fills the context to `depth` with prompt tokens (untimed), unless it is
// there already and can be rewound to.
void fill_to_depth(model::Context& ctx, const std::vector<int32_t>& tokens, int64_t depth, int64_t& filled,
                   std::vector<float>& logits) {
  if (filled == depth && ctx.n_past() >= depth && ctx.can_rewind(depth)) {
    ctx.rewind(depth);
    return;
  }
  ctx.rewind(0);
  if (depth > 0) ctx.evaluate(tokens.data(), depth, false, logits);
  filled = depth;
}

int run_bench(BenchOptions o) {
  if (o.output != "md" && o.output != "json" && o.output != "jsonl" && o.output != "csv")
    throw UsageError(fmt::format("-o must be md, json, jsonl or csv (got '{}')", o.output));
  const std::vector<Test> tests = tests_of(o);
  if (tests.empty()) throw UsageError("nothing to measure: -p and -n are 0 and no -pg was given");
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int& t : o.threads)
    if (t <= 0) t = hw;
  int64_t max_ctx = 0;
  for (const Test& t : tests) max_ctx = std::max(max_ctx, t.ctx());
  if (o.n_ctx > 0 && max_ctx > o.n_ctx) {
    for (const Test& t : tests)
      if (t.ctx() > o.n_ctx)
        throw UsageError(fmt::format("{} needs a context of {} positions (depth {} + {} tokens), above -c {}",
                                     t.name(), t.ctx(), t.n_depth, t.tokens(), o.n_ctx));
  }
  Device device = device_of(o.device);
  if (device == Device::automatic) device = cuda_available() ? Device::cuda : Device::cpu;
  const bool gpu = device == Device::cuda;
  // The roofline's bandwidth: the CPU's read bandwidth per thread count, or
  // the GPU's device-to-device copy (bytes read + written).
  std::map<int, double> bandwidth;
  const double gpu_bandwidth = gpu ? model::cuda::copy_bandwidth_gbs() : 0;
  for (int t : o.threads)
    if (!bandwidth.count(t)) bandwidth[t] = gpu ? gpu_bandwidth : kernels::measure_read_bandwidth(t).gb_per_s;

  Table table;
  bool first_csv = true;
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  std::string gpu_label;
  std::mt19937 rng(42);
  for (const std::string& path : o.models) {
    const auto model = model::Model::load(path, gpu ? model::Device::cuda : model::Device::cpu);
    check_gpu_layers(o.device, model->hparams().n_layer);
    const auto& hp = model->hparams();
    if (hp.n_ctx_train > 0 && max_ctx > hp.n_ctx_train)
      fmt::print(stderr, "slm bench: warning: {} is tested at {} positions, beyond the {} it was trained for\n",
                 std::filesystem::path(path).filename().string(), max_ctx, hp.n_ctx_train);
    Result base;
    base.model_filename = std::filesystem::path(path).filename().string();
    base.size = model->weight_bytes();
    base.params = model->file().n_parameters();
    const auto ft = file_type_name(static_cast<uint32_t>(model->file().get_int("general.file_type", 0)));
    base.file_type = ft ? short_type_name(*ft) : "unknown";
    base.model_type = fmt::format("{} {} {}", model->arch().name, size_label(base.params), base.file_type);
    base.isa = gpu ? "cuda" : std::string(kernels::isa_name(kernels::active_kernels().isa));
    base.backend = gpu ? "CUDA" : "CPU " + base.isa;
    base.cpu = gpu ? model->device_name() : cpu_features().cpu_name;
    base.n_batch = o.n_batch;
    base.type_k = kv_type_name(o.kv.type_k());
    base.type_v = kv_type_name(o.kv.type_v());
    if (gpu) gpu_label = base.cpu;
    base.commit = build_commit();
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(hp.n_vocab - 1));
    std::vector<int32_t> tokens(static_cast<size_t>(std::max<int64_t>(max_ctx, 8)));
    for (auto& t : tokens) t = tok(rng);
    std::vector<float> logits;

    for (int threads : o.threads) {
      model::ContextParams p;
      p.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::max<int64_t>(max_ctx, 16);
      p.n_batch = o.n_batch;
      p.n_threads = threads;
      p.k_type = model::kv_dtype(o.kv.type_k());
      p.v_type = model::kv_dtype(o.kv.type_v());
      model::Context ctx(*model, p);
      // Warm-up: touches every weight page and starts the thread pool.
      ctx.evaluate(tokens.data(), 8, false, logits);
      int64_t filled = -1;
      for (const Test& test : tests) {
        Result r = base;
        r.threads = threads;
        r.test = test;
        r.test_time = now_iso8601();
        r.bandwidth_gbs = bandwidth[threads];
        // Weights, plus the K/V a generated token reads at its position (the
        // middle of the test's generated tokens): what decode must stream.
        r.bytes_per_token = model->bytes_per_token() + ctx.kv_bytes_read(test.n_depth + test.n_prompt + test.n_gen / 2);
        r.roofline_tps = r.bandwidth_gbs * 1e9 / static_cast<double>(r.bytes_per_token);
        // The prompt comes from the token stream after the depth tokens.
        const int32_t* prompt = tokens.data() + test.n_depth;
        for (int rep = -1; rep < o.reps; ++rep) {  // rep -1: a warm-up run, not counted
          fill_to_depth(ctx, tokens, test.n_depth, filled, logits);
          const auto t0 = std::chrono::steady_clock::now();
          if (test.n_prompt > 0) ctx.evaluate(prompt, test.n_prompt, false, logits);
          int32_t next = test.n_prompt > 0 ? static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin())
                                           : prompt[0];
          for (int64_t i = 0; i < test.n_gen; ++i) {
            ctx.evaluate(&next, 1, false, logits);
            next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
          }
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (rep < 0) continue;
          r.samples_ns.push_back(s * 1e9);
          r.samples_ts.push_back(static_cast<double>(test.tokens()) / s);
        }
        finish(r);
        if (r.samples_ts.size() > 1 && r.stdev > 0.1 * r.mean)
          fmt::print(stderr,
                     "slm bench: warning: {} {} with {} threads varied by {:.0f} % of its mean across {} runs: the "
                     "machine was busy or changing speed; use more repetitions (-r) on a quiet machine\n",
                     r.model_filename, test.name(), threads, 100 * r.stdev / r.mean, r.samples_ts.size());
        const nlohmann::ordered_json j = to_json(r);
        if (o.output == "md") {
          table.row(r);
        } else if (o.output == "jsonl") {
          fmt::print("{}\n", j.dump());
          std::fflush(stdout);
        } else if (o.output == "csv") {
          if (first_csv) {
            std::string head;
            for (const auto& [k, v] : j.items()) head += (head.empty() ? "" : ",") + k;
            fmt::print("{}\n", head);
            first_csv = false;
          }
          std::string line;
          for (const auto& [k, v] : j.items()) line += (line.empty() ? "" : ",") + csv_field(v);
          fmt::print("{}\n", line);
          std::fflush(stdout);
        }
        all.push_back(j);
      }
    }
  }

  if (o.output == "json") {
    fmt::print("{}\n", all.dump(2));
  } else if (o.output == "md") {
    std::string bw;
    for (const auto& [t, gbs] : bandwidth) bw += fmt::format("{}{} threads: {:.1f} GB/s", bw.empty() ? "" : ", ", t, gbs);
    if (gpu)
      fmt::print("\nGPU: {}; device-to-device copy {:.0f} GB/s; slm {} ({})\n", gpu_label, gpu_bandwidth,
                 version_string(), build_commit());
    else
      fmt::print("\nCPU: {}; read bandwidth {}; slm {} ({})\n", cpu_features().cpu_name, bw, version_string(),
                 build_commit());
  }
  return 0;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto opts = std::make_shared<BenchOptions>();
  struct Lists {
    std::string threads = "0", prompt = "512", gen = "128", depth = "0";
    std::vector<std::string> prompt_gen;
    std::vector<std::string> positional;
  };
  auto lists = std::make_shared<Lists>();
  CLI::App* sub = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) speed in tokens/s, as llama-bench does");
  sub->add_option("-m,--model", opts->models, "GGUF model file or name (repeat for several; also positional)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  // Merged with -m: CLI11 would let one replace the other.
  sub->add_option("models", lists->positional, "GGUF model files or names")->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("-p,--n-prompt", lists->prompt, "Prompt sizes of the pp tests, comma-separated (0 = none)")->capture_default_str();
  sub->add_option("-n,--n-gen", lists->gen, "Lengths of the tg tests, comma-separated (0 = none)")->capture_default_str();
  sub->add_option("--pg", lists->prompt_gen, "A prompt+generation test PROMPT,GEN (repeatable; also -pg)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("-d,--n-depth", lists->depth, "Context depths: tokens already in the cache, comma-separated")->capture_default_str();
  sub->add_option("-r,--repetitions", opts->reps, "Repetitions of each test")->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_option("-t,--threads", lists->threads, "Thread counts, comma-separated (0 = all cores)")->capture_default_str();
  sub->add_option("-b,--batch-size", opts->n_batch, "Prefill batch size")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("-c,--ctx-size", opts->n_ctx, "Context size (0 = what each test needs: depth + its tokens)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  add_kv_options(sub, opts->kv);
  sub->add_option("-o,--output", opts->output, "Output format: md, json, jsonl or csv")->capture_default_str();
  add_device_options(sub, opts->device);
  return [opts, lists] {
    opts->models.insert(opts->models.end(), lists->positional.begin(), lists->positional.end());
    if (opts->models.empty()) throw UsageError("which model? (slm bench MODEL..., or -m MODEL)");
    for (std::string& m : opts->models) m = resolve_model(m);
    constexpr int64_t kMaxTokens = int64_t{1} << 20;
    opts->threads.clear();
    for (int64_t t : parse_int_list(lists->threads, "-t", 0, 1024)) opts->threads.push_back(static_cast<int>(t));
    opts->n_prompt = parse_int_list(lists->prompt, "-p", 0, kMaxTokens);
    opts->n_gen = parse_int_list(lists->gen, "-n", 0, kMaxTokens);
    opts->depth = parse_int_list(lists->depth, "-d", 0, kMaxTokens);
    for (const std::string& pg : lists->prompt_gen) {
      const auto v = parse_int_list(pg, "-pg", 1, kMaxTokens);
      if (v.size() != 2) throw UsageError(fmt::format("-pg takes PROMPT,GEN (got '{}')", pg));
      opts->prompt_gen.emplace_back(v[0], v[1]);
    }
    return run_bench(*opts);
  };
}

}  // namespace slm::cli
