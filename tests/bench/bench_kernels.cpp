// Kernel speed: GEMV (decode) per weight type against the machine's measured
// read bandwidth, GEMM (prefill, 512 tokens) in GFLOP/s, and attention at
// depth 4096 (decode: K/V GB/s against the read bandwidth; prefill of 512
// tokens: GFLOP/s) per KV cache type. GemvPacked / GemmPacked4 /
// GemmPacked512: the row-interleaved layout the model loader makes, at 1
// token (decode: what `slm bench` tg runs; Gemv/ is the file's layout), 4
// tokens (serving 4 streams) and 512 (prefill).
//
//   bench_kernels [--benchmark_filter=Gemv] [--benchmark_min_time=2]
//   SLM_ISA=avx2 bench_kernels ...      (force a kernel path; default: best)
//
// The GEMV matrix is 3072 x 8192 (Phi-3-mini's ffn_up half: 3072-element
// rows, 8192 of them). Enough copies are cycled that the working set is
// >= 512 MiB, so every iteration streams its weights from DRAM rather than
// from the 32 MiB L3 a single copy would fit in.
#include <chrono>
#include <cstring>
#include <map>
#include <tuple>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "cpu/attention.h"
#include "cpu/matmul.h"
#include "cpu/membw.h"

namespace {

using slm::DType;
namespace k = slm::kernels;

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double gbs = 0;
  for (auto _ : state) gbs = k::measure_read_bandwidth(threads, size_t{512} << 20, 3).gb_per_s;
  state.counters["GB/s"] = gbs;
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(1);

struct Weights {
  std::vector<std::unique_ptr<uint8_t[]>> copies;
  size_t bytes = 0;
};

const Weights& weights(DType type, int64_t cols, int64_t rows, size_t min_total) {
  static std::map<std::tuple<DType, int64_t, int64_t>, Weights> cache;
  auto key = std::make_tuple(type, cols, rows);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Weights w;
  w.bytes = static_cast<size_t>(slm::row_bytes(type, static_cast<uint64_t>(cols))) * static_cast<size_t>(rows);
  // One quantized copy from Gaussian data; the others are byte copies.
  std::vector<float> row(static_cast<size_t>(cols));
  uint64_t state = 12345;
  auto first = std::make_unique<uint8_t[]>(w.bytes);
  const size_t rb = w.bytes / static_cast<size_t>(rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) {  // cheap deterministic noise, roughly N(0, 0.03)
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      v = (static_cast<float>(state >> 40) / 16777216.0f - 0.5f) * 0.1f;
    }
    k::quantize_row(type, row.data(), first.get() + static_cast<size_t>(r) * rb, cols);
  }
  const size_t n_copies = std::max<size_t>(1, (min_total + w.bytes - 1) / w.bytes);
  w.copies.push_back(std::move(first));
  for (size_t c = 1; c < n_copies; ++c) {
    w.copies.push_back(std::make_unique<uint8_t[]>(w.bytes));
    std::memcpy(w.copies.back().get(), w.copies.front().get(), w.bytes);
  }
  return cache.emplace(key, std::move(w)).first->second;
}

// One token against 512 MiB of copies of a weight matrix (cycled, so the
// weights come from memory as in decode): as stored in the file, or (packed)
// re-laid for the row-interleaved kernel as the model loader does — the
// layout decode runs on where the path has one.
void BM_Gemv(benchmark::State& state, DType type, bool packed) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t cols = 3072, rows = 8192;
  const Weights& w = weights(type, cols, rows, size_t{512} << 20);
  const k::KernelTable& kt = k::active_kernels();
  std::vector<k::WeightMatrix> mats;
  std::vector<std::unique_ptr<uint8_t[]>> packed_storage(w.copies.size());
  for (size_t c = 0; c < w.copies.size(); ++c) {
    k::WeightMatrix m = k::make_weight_matrix(w.copies[c].get(), type, cols, rows);
    if (packed) m = k::pack_weight_matrix(kt, m, packed_storage[c], threads);
    mats.push_back(m);
  }
  std::vector<float> x(cols, 0.01f), y(rows);
  std::vector<uint8_t> scratch;
  size_t copy = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    k::matmul(kt, mats[copy], x.data(), 1, y.data(), rows, threads, scratch);
    benchmark::DoNotOptimize(y.data());
    copy = (copy + 1) % w.copies.size();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Bandwidth right after, with the same threads: this VM's bandwidth drifts
  // by tens of percent over minutes, so a number measured once per process
  // would make the ratio meaningless.
  const double bw = k::measure_read_bandwidth(threads, size_t{512} << 20, 3).gb_per_s;
  const double gbs = static_cast<double>(w.bytes) * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w.bytes));
  state.counters["weights_GB/s"] = gbs;
  state.counters["read_bw_GB/s"] = bw;
  state.counters["ratio"] = gbs / bw;
  state.SetLabel(std::string(k::isa_name(kt.isa)));
}

// Weights as loaded (packed: re-laid for the row-interleaved kernel where the
// table has one, as the model loader does) against `tokens` tokens; the
// 3072 x 3072 matrix stays in L3, so this measures the kernel's arithmetic.
void BM_Gemm(benchmark::State& state, DType type, int64_t tokens, bool packed) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t cols = 3072, rows = 3072;
  const Weights& w = weights(type, cols, rows, 0);
  const k::KernelTable& kt = k::active_kernels();
  std::vector<float> x(static_cast<size_t>(cols * tokens)), y(static_cast<size_t>(rows * tokens));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) * 0.01f - 0.08f;
  std::vector<uint8_t> scratch;
  std::unique_ptr<uint8_t[]> packed_storage;
  k::WeightMatrix m = k::make_weight_matrix(w.copies[0].get(), type, cols, rows);
  if (packed) m = k::pack_weight_matrix(kt, m, packed_storage, threads);
  for (auto _ : state) {
    k::matmul(kt, m, x.data(), tokens, y.data(), rows, threads, scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * cols * rows * tokens * static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(std::string(k::isa_name(kt.isa)));
}

// An attention layer's heads: query heads, KV heads, dims per head.
struct AttentionShape {
  int heads, kv_heads, head_dim;
};
// Phi-3-mini: one query head per KV head.
constexpr AttentionShape kPhi3Attention{32, 32, 96};
// Phi-4-mini: groups of 3 query heads per KV head (GQA), 128 dims.
constexpr AttentionShape kPhi4Attention{24, 8, 128};

// One layer's attention over a cache of 4096 positions before the batch;
// decode cycles 8 layers' caches (> L3).
void BM_Attention(benchmark::State& state, DType kv, int64_t tokens, AttentionShape shape) {
  const int threads = static_cast<int>(state.range(0));
  const int H = shape.kv_heads, D = shape.head_dim, HQ = shape.heads;  // H: the cache's heads
  const int64_t depth = 4096, rows = depth + tokens;
  const size_t head_bytes = k::kv_row_bytes(kv, D) * static_cast<size_t>(rows);
  const int layers = tokens == 1 ? 8 : 1;
  std::vector<std::vector<uint8_t>> caches;
  std::vector<float> row(static_cast<size_t>(D));
  for (int l = 0; l < 2 * layers; ++l) {  // K and V of each layer
    std::vector<uint8_t> c(head_bytes * H);
    for (size_t r = 0; r < c.size() / k::kv_row_bytes(kv, D); ++r) {
      for (int d = 0; d < D; ++d) row[static_cast<size_t>(d)] = static_cast<float>((r * 7 + static_cast<size_t>(d) * 13) % 23) * 0.05f - 0.5f;
      k::quantize_row(kv, row.data(), c.data() + r * k::kv_row_bytes(kv, D), D);
    }
    caches.push_back(std::move(c));
  }
  std::vector<float> q(static_cast<size_t>(tokens * HQ * D), 0.03f), out(q.size());
  int layer = 0;
  for (auto _ : state) {
    k::AttentionProblem p;
    p.q = q.data();
    p.q_stride = HQ * D;
    p.out = out.data();
    p.out_stride = HQ * D;
    p.n_tokens = tokens;
    p.pos0 = depth;
    p.n_head = HQ;
    p.n_head_kv = H;
    p.head_dim = D;
    p.k = caches[static_cast<size_t>(2 * layer)].data();
    p.v = caches[static_cast<size_t>(2 * layer + 1)].data();
    p.k_head_bytes = p.v_head_bytes = head_bytes;
    p.k_type = p.v_type = kv;
    p.scale = 0.1f;
    k::attention(k::active_kernels(), p, threads);
    benchmark::DoNotOptimize(out.data());
    layer = (layer + 1) % layers;
  }
  const double kv_bytes = 2.0 * static_cast<double>(head_bytes) * H;
  if (tokens == 1) {
    state.counters["kv_GB/s"] = benchmark::Counter(kv_bytes * static_cast<double>(state.iterations()) / 1e9,
                                                   benchmark::Counter::kIsRate);
  } else {
    const double flops = 4.0 * HQ * D * static_cast<double>(tokens) * (static_cast<double>(depth) + static_cast<double>(tokens) / 2);
    state.counters["GFLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9,
                                                   benchmark::Counter::kIsRate);
  }
  state.SetLabel(std::string(k::isa_name(k::active_kernels().isa)));
}

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                        DType::Q5_1, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

const bool kRegistered = [] {
  for (DType t : kTypes) {
    const std::string name(slm::dtype_name(t));
    benchmark::RegisterBenchmark(("Gemv/" + name).c_str(), BM_Gemv, t, false)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    if (k::can_pack(k::active_kernels(), t, 8192))
      benchmark::RegisterBenchmark(("GemvPacked/" + name).c_str(), BM_Gemv, t, true)
          ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  for (DType t : kTypes) {
    const std::string name(slm::dtype_name(t));
    benchmark::RegisterBenchmark(("Gemm512/" + name).c_str(), BM_Gemm, t, int64_t{512}, false)
        ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  // The loaded layout: prefill, and the 4-token batches of serving 4 streams.
  for (DType t : kTypes) {
    if (!k::can_pack(k::active_kernels(), t, 3072)) continue;
    const std::string name(slm::dtype_name(t));
    for (int64_t tokens : {int64_t{4}, int64_t{512}})
      benchmark::RegisterBenchmark(("GemmPacked" + std::to_string(tokens) + "/" + name).c_str(), BM_Gemm, t, tokens, true)
          ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  for (DType t : {DType::F16, DType::Q8_0}) {
    const std::string name(slm::dtype_name(t));
    benchmark::RegisterBenchmark(("AttentionDecodeAt4096/" + name).c_str(), BM_Attention, t, int64_t{1}, kPhi3Attention)
        ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("AttentionPrefill512At4096/" + name).c_str(), BM_Attention, t, int64_t{512}, kPhi3Attention)
        ->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("AttentionDecodeAt4096Gqa3/" + name).c_str(), BM_Attention, t, int64_t{1}, kPhi4Attention)
        ->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
