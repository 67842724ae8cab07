// Tokenizer throughput on mixed text (prose, code, non-Latin scripts), at
// 1 MB and 10 MB to show the scaling (the merge is O(n log n)).
//   bench_tokenizer [--benchmark_filter=...]   (SLM_TESTDATA overrides the data folder)
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "gguf/gguf_reader.h"
#include "tokenizer/tokenizer.h"

namespace {

// A vocabulary from the test data, loaded once (the tokenizer keeps no
// reference to the file).
const slm::text::Tokenizer& vocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<slm::text::Tokenizer>> loaded;
  auto& tok = loaded[name];
  if (!tok) {
    const char* env = std::getenv("SLM_TESTDATA");
    const std::string dir = env != nullptr ? env : SLM_TESTDATA_DEFAULT;
    tok = std::make_unique<slm::text::Tokenizer>(slm::gguf::GgufFile(dir + "/tokenizer/ggml-vocab-" + name + ".gguf"));
  }
  return *tok;
}
const slm::text::Tokenizer& phi3_tokenizer() { return vocab("phi-3"); }
// Byte-level BPE: the GPT-2 vocabulary under SmolLM2's pre-tokenizer.
const slm::text::Tokenizer& bpe_tokenizer() { return vocab("gpt-2-pre-smollm"); }

std::string mixed_text(size_t bytes) {
  static const char* kParts[] = {
      "The quick brown fox jumps over the lazy dog, and then it rests for a while. ",
      "int main(int argc, char** argv) {\n    return argc > 1 ? std::atoi(argv[1]) : 0;\n}\n",
      "\xD0\x9D\xD0\xB5\xD1\x89\xD0\xBE \xD0\xBD\xD0\xB0 \xD0\x91\xD1\x8A\xD0\xBB\xD0\xB3\xD0\xB0\xD1\x80\xD1\x81\xD0\xBA\xD0\xB8. ",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88\xE3\x80\x82 ",
      "Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xE2\x80\x93 \xE2\x80\x9Cquotes\xE2\x80\x9D \xF0\x9F\xA6\x99\n",
      "    for (size_t i = 0; i < n; ++i) sum += x[i] * y[i];  // dot product\n",
  };
  std::string out;
  out.reserve(bytes + 128);
  for (size_t i = 0; out.size() < bytes; ++i) out += kParts[(i * 7 + i / 6) % 6];
  out.resize(bytes);
  return out;
}

// Encodes state.range(0) bytes of mixed text with `tok`.
void encode_mixed_text(benchmark::State& state, const slm::text::Tokenizer& tok) {
  const std::string text = mixed_text(static_cast<size_t>(state.range(0)));
  size_t n_tokens = 0;
  for (auto _ : state) {
    const auto ids = tok.encode(text, false, true);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
  state.counters["tokens"] = static_cast<double>(n_tokens);
}

void BM_Encode(benchmark::State& state) { encode_mixed_text(state, phi3_tokenizer()); }
BENCHMARK(BM_Encode)->Arg(1 << 20)->Arg(10 << 20)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_EncodeBpe(benchmark::State& state) { encode_mixed_text(state, bpe_tokenizer()); }
BENCHMARK(BM_EncodeBpe)->Arg(1 << 20)->Arg(10 << 20)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_Decode(benchmark::State& state) {
  const slm::text::Tokenizer& tok = phi3_tokenizer();
  const auto ids = tok.encode(mixed_text(1 << 20), false, true);
  for (auto _ : state) {
    const std::string text = tok.decode(ids);
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * (1 << 20));
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
