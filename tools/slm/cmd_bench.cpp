// slm bench -m MODEL [-m MODEL...] [-p 512] [-n 128] [-r 5] [-t 1,2] [-o md|json|csv]
//
// Prompt processing (pp: one batched prefill of p tokens) and text generation
// (tg: n tokens one at a time, from an empty context) measured separately,
// after a warm-up, as mean +- stdev over r repetitions, per thread count —
// the rows people compare engines by (pp512, tg128). The machine's read
// bandwidth is measured too, and tg is reported against the roofline
// bandwidth / bytes of weights read per token.
#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
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
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  int reps = 5;
  std::vector<int> threads = {0};
  std::string output = "md";
  int64_t n_batch = 512;
  DeviceOptions device;
};

struct Result {
  std::string model, file_type, isa, cpu, commit, test;
  uint64_t size = 0, params = 0;
  int threads = 0;
  int64_t n_prompt = 0, n_gen = 0;
  double mean = 0, stdev = 0;        // tokens/s
  std::vector<double> samples;
  double bandwidth_gbs = 0;          // measured read bandwidth, this thread count
  double roofline_tps = 0;           // bandwidth / bytes per token (tg rows)
  uint64_t bytes_per_token = 0;
};

void finish(Result& r) {
  double sum = 0;
  for (double s : r.samples) sum += s;
  r.mean = sum / static_cast<double>(r.samples.size());
  double var = 0;
  for (double s : r.samples) var += (s - r.mean) * (s - r.mean);
  r.stdev = r.samples.size() > 1 ? std::sqrt(var / static_cast<double>(r.samples.size() - 1)) : 0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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

nlohmann::json to_json(const Result& r) {
  nlohmann::json j;
  j["model"] = r.model;
  j["size_bytes"] = r.size;
  j["n_params"] = r.params;
  j["file_type"] = r.file_type;
  j["isa"] = r.isa;
  j["threads"] = r.threads;
  j["test"] = r.test;
  j["n_prompt"] = r.n_prompt;
  j["n_gen"] = r.n_gen;
  j["tokens_per_s"] = r.mean;
  j["tokens_per_s_stdev"] = r.stdev;
  j["samples"] = r.samples;
  j["bandwidth_gb_s"] = r.bandwidth_gbs;
  if (r.n_gen > 0) {
    j["bytes_per_token"] = r.bytes_per_token;
    j["roofline_tokens_per_s"] = r.roofline_tps;
    j["roofline_fraction"] = r.mean / r.roofline_tps;
  }
  j["cpu"] = r.cpu;
  j["slm_commit"] = r.commit;
  j["slm_version"] = version_string();
  return j;
}

// md and csv rows go out as each result is ready (a full run takes minutes).
void print_row(const std::string& format, const Result& r, bool first) {
  if (format == "csv") {
    if (first) fmt::print("model,size_bytes,n_params,file_type,isa,threads,test,tokens_per_s,stdev,bandwidth_gb_s,roofline_fraction,cpu,commit\n");
    fmt::print("{},{},{},{},{},{},{},{:.3f},{:.3f},{:.2f},{},\"{}\",{}\n", r.model, r.size, r.params, r.file_type, r.isa,
               r.threads, r.test, r.mean, r.stdev, r.bandwidth_gbs,
               r.n_gen > 0 ? fmt::format("{:.3f}", r.mean / r.roofline_tps) : "", r.cpu, r.commit);
  } else if (format == "md") {
    if (first) {
      fmt::print("| model | size | params | type | isa | threads | test | t/s | roofline |\n");
      fmt::print("| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |\n");
    }
    fmt::print("| {} | {} | {} | {} | {} | {} | {} | {:.2f} ± {:.2f} | {} |\n", r.model, human_size(r.size),
               human_params(r.params), r.file_type, r.isa, r.threads, r.test, r.mean, r.stdev,
               r.n_gen > 0 ? fmt::format("{:.0f}% of {:.1f} t/s", 100 * r.mean / r.roofline_tps, r.roofline_tps) : "");
  }
  std::fflush(stdout);
}

int run_bench(BenchOptions o) {
  if (o.output != "md" && o.output != "json" && o.output != "csv")
    throw Error(fmt::format("-o must be md, json or csv (got '{}')", o.output));
  if (o.n_prompt <= 0 && o.n_gen <= 0) throw Error("nothing to measure: -p and -n are both 0");
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int& t : o.threads)
    if (t <= 0) t = hw;
  Device device = device_of(o.device);
  if (device == Device::automatic) device = cuda_available() ? Device::cuda : Device::cpu;
  const bool gpu = device == Device::cuda;
  // The roofline's bandwidth: the CPU's read bandwidth per thread count, or
  // the GPU's device-to-device copy (bytes read + written).
  std::map<int, double> bandwidth;
  const double gpu_bandwidth = gpu ? model::cuda::copy_bandwidth_gbs() : 0;
  for (int t : o.threads)
    if (!bandwidth.count(t)) bandwidth[t] = gpu ? gpu_bandwidth : kernels::measure_read_bandwidth(t).gb_per_s;

  std::vector<Result> results;
  std::string gpu_label;
  std::mt19937 rng(42);
  for (const std::string& path : o.models) {
    const auto model = model::Model::load(path, gpu ? model::Device::cuda : model::Device::cpu);
    check_gpu_layers(o.device, model->hparams().n_layer);
    const auto& hp = model->hparams();
    const uint64_t bytes = model->weight_bytes();
    Result base;
    base.model = std::filesystem::path(path).filename().string();
    base.size = bytes;
    base.params = model->file().n_parameters();
    const auto ft = file_type_name(static_cast<uint32_t>(model->file().get_int("general.file_type", 0)));
    base.file_type = ft ? std::string(*ft) : "unknown";
    base.isa = gpu ? "cuda" : std::string(kernels::isa_name(kernels::active_kernels().isa));
    base.cpu = gpu ? model->device_name() : cpu_features().cpu_name;
    if (gpu) gpu_label = base.cpu;
    base.commit = build_commit();
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(hp.n_vocab - 1));
    std::vector<int32_t> prompt(static_cast<size_t>(std::max<int64_t>(o.n_prompt, 1)));
    for (auto& t : prompt) t = tok(rng);
    std::vector<float> logits;

    for (int threads : o.threads) {
      model::ContextParams p;
      p.n_ctx = std::max<int64_t>(o.n_prompt + o.n_gen, 16);
      p.n_batch = o.n_batch;
      p.n_threads = threads;
      model::Context ctx(*model, p);
      // Warm-up: touches every weight page and spins up the thread pool.
      ctx.evaluate(prompt.data(), std::min<int64_t>(8, static_cast<int64_t>(prompt.size())), false, logits);
      ctx.rewind(0);
      if (o.n_prompt > 0) {
        Result r = base;
        r.threads = threads;
        r.n_prompt = o.n_prompt;
        r.test = fmt::format("pp{}", o.n_prompt);
        r.bandwidth_gbs = bandwidth[threads];
        for (int rep = 0; rep < o.reps; ++rep) {
          ctx.rewind(0);
          const auto t0 = std::chrono::steady_clock::now();
          ctx.evaluate(prompt.data(), o.n_prompt, false, logits);
          r.samples.push_back(static_cast<double>(o.n_prompt) / seconds_since(t0));
        }
        finish(r);
        print_row(o.output, r, results.empty());
        results.push_back(r);
      }
      if (o.n_gen > 0) {
        Result r = base;
        r.threads = threads;
        r.n_gen = o.n_gen;
        r.test = fmt::format("tg{}", o.n_gen);
        r.bandwidth_gbs = bandwidth[threads];
        r.bytes_per_token = model->bytes_per_token();
        r.roofline_tps = r.bandwidth_gbs * 1e9 / static_cast<double>(model->bytes_per_token());
        for (int rep = 0; rep < o.reps; ++rep) {
          ctx.rewind(0);
          int32_t next = prompt[0];
          const auto t0 = std::chrono::steady_clock::now();
          for (int64_t i = 0; i < o.n_gen; ++i) {
            ctx.evaluate(&next, 1, false, logits);
            next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
          }
          r.samples.push_back(static_cast<double>(o.n_gen) / seconds_since(t0));
        }
        finish(r);
        print_row(o.output, r, results.empty());
        results.push_back(r);
      }
    }
  }

  if (o.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const Result& r : results) out.push_back(to_json(r));
    fmt::print("{}\n", out.dump(2));
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
  auto threads = std::make_shared<std::string>("0");
  CLI::App* sub = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) speed in tokens/s");
  sub->add_option("-m,--model", opts->models, "GGUF model file or name (repeat for several; also positional)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  auto positional = std::make_shared<std::vector<std::string>>();  // merged with -m: CLI11 would let one replace the other
  sub->add_option("models", *positional, "GGUF model files or names")->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("-p,--n-prompt", opts->n_prompt, "Prompt tokens per pp run (0 = skip)")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("-n,--n-gen", opts->n_gen, "Generated tokens per tg run (0 = skip)")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("-r,--repetitions", opts->reps, "Repetitions of each test")->capture_default_str()->check(CLI::Range(1, 1000));
  sub->add_option("-t,--threads", *threads, "Comma-separated thread counts (0 = all cores)")->capture_default_str();
  sub->add_option("-b,--batch", opts->n_batch, "Prefill batch size")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("-o,--output", opts->output, "Output format: md, json or csv")->capture_default_str();
  add_device_options(sub, opts->device);
  return [opts, threads, positional] {
    opts->models.insert(opts->models.end(), positional->begin(), positional->end());
    if (opts->models.empty()) throw UsageError("which model? (slm bench MODEL..., or -m MODEL)");
    for (std::string& m : opts->models) m = resolve_model(m);
    opts->threads.clear();
    for (int64_t t : parse_int_list(*threads, "-t", 0, 1024)) opts->threads.push_back(static_cast<int>(t));
    return run_bench(*opts);
  };
}

}  // namespace slm::cli
