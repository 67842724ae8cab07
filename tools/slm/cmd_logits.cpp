// slm logits -m MODEL --tokens 1,2,3 [--greedy N] [--ctx N] [--batch N]
//            [--threads N] [--kv f16|f32]
// Prints {"tokens": [...], "logits": [[...] one row per position], "greedy": [...]}.
// Token ids are used as given (no BOS). The prompt runs as a batched prefill;
// each greedy token then goes through the single-token decode path.
#include <algorithm>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "gen_options.h"
#include "model/forward.h"
#include "slm/error.h"

namespace slm::cli {
namespace {

struct LogitsOptions {
  std::string model;
  std::string tokens;
  int greedy = 0;
  int64_t ctx = 512;
  int64_t batch = 512;
  int threads = 0;
  KvOptions kv;
};


int run_logits(const LogitsOptions& o) {
  std::vector<int32_t> tokens;
  for (int64_t id : parse_int_list(o.tokens, "--tokens", 0, INT32_MAX)) tokens.push_back(static_cast<int32_t>(id));

  const auto model = model::Model::load(o.model);
  model::ContextParams params;
  params.n_ctx = o.ctx;
  params.n_batch = o.batch;
  params.n_threads = o.threads;
  params.k_type = model::kv_dtype(o.kv.type_k());
  params.v_type = model::kv_dtype(o.kv.type_v());
  model::Context ctx(*model, params);
  if (static_cast<int64_t>(tokens.size()) + o.greedy > ctx.n_ctx())
    throw Error(fmt::format("{} prompt tokens + {} greedy tokens do not fit the context of {}", tokens.size(), o.greedy,
                            ctx.n_ctx()));
  std::vector<float> logits;
  ctx.evaluate(tokens.data(), static_cast<int64_t>(tokens.size()), true, logits);
  const auto V = static_cast<size_t>(model->hparams().n_vocab);
  nlohmann::json rows = nlohmann::json::array();
  for (size_t t = 0; t < tokens.size(); ++t)
    rows.push_back(std::vector<float>(logits.begin() + static_cast<std::ptrdiff_t>(t * V),
                                      logits.begin() + static_cast<std::ptrdiff_t>((t + 1) * V)));
  std::vector<int32_t> greedy;
  std::vector<float> last(logits.end() - static_cast<std::ptrdiff_t>(V), logits.end());
  for (int i = 0; i < o.greedy; ++i) {
    const auto next = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    greedy.push_back(next);
    if (i + 1 < o.greedy) ctx.evaluate(&next, 1, false, last);
  }
  nlohmann::json out;
  out["tokens"] = tokens;
  out["logits"] = std::move(rows);
  out["greedy"] = greedy;
  fmt::print("{}\n", out.dump());
  return 0;
}

}  // namespace

Command add_logits(CLI::App& app) {
  auto opts = std::make_shared<LogitsOptions>();
  CLI::App* sub = app.add_subcommand("logits", "Print the logits of a token sequence as JSON (for testing)");
  sub->add_option("-m,--model", opts->model, "GGUF model file")->required();
  sub->add_option("--tokens", opts->tokens, "Comma-separated token ids, used as given (no BOS added)")->required();
  sub->add_option("--greedy", opts->greedy, "Continue greedily for N tokens through the decode path")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("-c,--ctx", opts->ctx, "Context length (positions in the KV cache)")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  sub->add_option("-b,--batch", opts->batch, "Tokens per prefill batch")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("-t,--threads", opts->threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  add_kv_options(sub, opts->kv);
  return [opts] { return run_logits(*opts); };
}

}  // namespace slm::cli
