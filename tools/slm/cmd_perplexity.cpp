// slm perplexity -m MODEL -f TEXT [-c 512] [-b N] [-t N]
//
// Standard chunked perplexity: the text is tokenized once (BOS as the model
// asks), cut into chunks of c tokens (each starting with BOS when the model
// uses one), and each chunk is evaluated from an empty context; only the
// second half of each chunk is scored, so every scored token has at least
// c/2 tokens of context. Prints the running value per chunk and the final
// estimate exp(mean NLL) with its standard error (delta method:
// PPL * stdev(NLL) / sqrt(N)).
#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli_util.h"
#include "gen_options.h"
#include "commands.h"
#include "model_dir.h"
#include "slm/slm.h"

namespace slm::cli {
namespace {

struct PerplexityOptions {
  std::string model, file;
  std::string model_positional;  // `slm perplexity MODEL ...`: the same as -m
  int64_t ctx = 512;
  int64_t batch = 512;
  int threads = 0;
  int64_t max_chunks = 0;
  KvOptions kv;
};

int run_perplexity(const PerplexityOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", o.file));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!o.model.empty() && !o.model_positional.empty() && o.model != o.model_positional)
    throw UsageError(fmt::format("two models given: -m {} and {}", o.model, o.model_positional));
  const std::string& which = o.model.empty() ? o.model_positional : o.model;
  if (which.empty()) throw UsageError("which model? (slm perplexity MODEL -f TEXT, or -m MODEL)");
  const auto model = Model::load(resolve_model(which));
  const Tokenizer& tok = model->tokenizer();
  const std::vector<TokenId> tokens = tok.encode(text, true, false);
  const int64_t n = o.ctx;
  if (static_cast<int64_t>(tokens.size()) < n)
    throw Error(fmt::format("{}: {} tokens is shorter than one chunk of {} (use a longer text or a smaller -c)", o.file,
                            tokens.size(), n));
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n;
  if (o.max_chunks > 0) n_chunks = std::min(n_chunks, o.max_chunks);
  SessionParams sp;
  sp.n_ctx = n;
  sp.n_batch = o.batch;
  sp.n_threads = o.threads;
  sp.type_k = o.kv.type_k();
  sp.type_v = o.kv.type_v();
  Session session(model, sp);
  const auto V = static_cast<size_t>(model->info().n_vocab);
  const int64_t first = n / 2;  // score positions [first, n - 1): logits of i predict token i + 1
  fmt::print(stderr, "{} tokens, {} chunks of {}, scoring the last {} of each\n", tokens.size(), n_chunks, n, n - 1 - first);
  double sum = 0, sum2 = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::vector<TokenId> chunk(tokens.begin() + c * n, tokens.begin() + (c + 1) * n);
    if (tok.bos()) chunk[0] = *tok.bos();
    session.reset();
    const std::vector<float> logits = session.evaluate_all(chunk);
    for (int64_t i = first; i < n - 1; ++i) {
      const float* row = logits.data() + static_cast<size_t>(i) * V;
      double max = row[0];
      for (size_t v = 1; v < V; ++v) max = std::max<double>(max, row[v]);
      double z = 0;
      for (size_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(row[v]) - max);
      const double nll = std::log(z) + max - row[chunk[static_cast<size_t>(i + 1)]];
      sum += nll;
      sum2 += nll * nll;
      ++count;
    }
    fmt::print("[{}] {:.4f}\n", c + 1, std::exp(sum / static_cast<double>(count)));
    std::fflush(stdout);
  }
  const double mean = sum / static_cast<double>(count);
  const double var = std::max(0.0, sum2 / static_cast<double>(count) - mean * mean) * static_cast<double>(count) /
                     std::max<double>(1.0, static_cast<double>(count - 1));
  const double ppl = std::exp(mean);
  const double err = ppl * std::sqrt(var / static_cast<double>(count));
  fmt::print("Final estimate: PPL = {:.4f} +/- {:.4f} ({} tokens scored)\n", ppl, err, count);
  return 0;
}

}  // namespace

Command add_perplexity(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* sub = app.add_subcommand("perplexity", "Measure a model's perplexity on a text file");
  sub->add_option("-m,--model", o->model, "GGUF model file or name (also positional)");
  sub->add_option("model_arg", o->model_positional, "GGUF model file or name");
  sub->add_option("-f,--file", o->file, "Text file")->required()->check(CLI::ExistingFile);
  sub->add_option("-c,--ctx", o->ctx, "Chunk length in tokens")->capture_default_str()
      ->check(CLI::Range(int64_t{4}, int64_t{1} << 20));
  sub->add_option("-b,--batch", o->batch, "Tokens per batch")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("-t,--threads", o->threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  sub->add_option("--chunks", o->max_chunks, "Score at most this many chunks (0 = all)")->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  add_kv_options(sub, o->kv);
  return [o] { return run_perplexity(*o); };
}

}  // namespace slm::cli
