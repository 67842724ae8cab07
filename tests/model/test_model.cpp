// The transformer runtime against the independent float64 logits of every
// testdata model, on every kernel path and thread count; batching, rewind,
// context overflow and malformed models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "cpu/kernels.h"
#include "gguf/gguf_writer.h"
#include "model/forward.h"
#include "slm/error.h"
#include "support/references.h"
#include "support/testdata.h"

namespace slm::model {
namespace {

// Restores the process-wide kernel path when a test changes it.
struct IsaGuard {
  kernels::Isa saved = kernels::active_kernels().isa;
  ~IsaGuard() { kernels::set_active_isa(saved); }
};

TEST(ModelReference, LogitsArgmaxAndGreedyOnEveryPathAndThreadCount) {
  SLM_REQUIRE_TESTDATA();
  IsaGuard guard;
  const auto refs = references();
  ASSERT_EQ(refs.size(), test::expected::kReferences);
  for (const Reference& r : refs) {
    const auto model = Model::load(r.model);
    const size_t V = static_cast<size_t>(model->hparams().n_vocab);
    for (kernels::Isa isa : kernels::available_isas()) {
      kernels::set_active_isa(isa);
      for (int threads : {1, 2}) {
        SCOPED_TRACE(r.name + " on " + std::string(kernels::isa_name(isa)) + ", " + std::to_string(threads) + " threads");
        ContextParams p;
        p.n_ctx = 512;  // the reference's context (it decides LongRoPE factors)
        p.n_threads = threads;
        Context ctx(*model, p);
        std::vector<float> logits;
        ctx.evaluate(r.tokens.data(), static_cast<int64_t>(r.tokens.size()), true, logits);
        ASSERT_EQ(logits.size(), r.tokens.size() * V);
        const double err = rel_rms(logits, r.logits);
        EXPECT_LE(err, r.tolerance);
        // Against the independent engine's own logits, in the same units: by
        // the triangle inequality |slm - engine| <= |slm - f64| + |f64 - engine|.
        EXPECT_LE(rel_rms(logits, r.engine, &r.logits), r.tolerance + r.engine_vs_f64) << "vs logits_engine";
        RecordProperty(r.name + "_" + std::string(kernels::isa_name(isa)) + "_t" + std::to_string(threads),
                       std::to_string(err));
        expect_clear_argmaxes_match(logits, r, V);
        if (r.exact_type) {
          // Greedy continuation one token at a time through the decode path.
          std::vector<float> last(logits.end() - static_cast<std::ptrdiff_t>(V), logits.end());
          std::vector<int32_t> greedy;
          for (size_t i = 0; i < r.greedy.size(); ++i) {
            const auto next = static_cast<int32_t>(argmax(last, V));
            greedy.push_back(next);
            if (i + 1 < r.greedy.size()) ctx.evaluate(&next, 1, false, last);
          }
          EXPECT_EQ(greedy, r.greedy);
        }
      }
    }
  }
}

// Splitting a prompt into batches changes which tokens share a GEMM call,
// never the arithmetic done for any one token: every output is the same dot
// products in the same order (tiles and two-row kernels accumulate each
// (row, token) pair alone), and attention reads the same cache rows. So the
// logits must be bit-identical, on every path.
TEST(ModelReference, PrefillBatchSizesGiveIdenticalLogits) {
  SLM_REQUIRE_TESTDATA();
  IsaGuard guard;
  const auto refs = references();
  ASSERT_EQ(refs.size(), test::expected::kReferences);
  for (const Reference& r : refs) {
    const auto model = Model::load(r.model);
    for (kernels::Isa isa : kernels::available_isas()) {
      kernels::set_active_isa(isa);
      SCOPED_TRACE(r.name + " on " + std::string(kernels::isa_name(isa)));
      auto run = [&](int64_t batch) {
        ContextParams p;
        p.n_ctx = 512;
        p.n_batch = batch;
        p.n_threads = 1;  // thread counts are ThreadCountsGiveIdenticalLogits' business
        Context ctx(*model, p);
        std::vector<float> logits;
        ctx.evaluate(r.tokens.data(), static_cast<int64_t>(r.tokens.size()), true, logits);
        return logits;
      };
      const auto whole = run(512);
      for (int64_t batch : {1, 7}) EXPECT_EQ(run(batch), whole) << "batch " << batch;  // 24-token prompts
    }
  }
}

// A prefill long enough that every projection's GEMM crosses its L2 token
// chunks (matmul_token_chunk: 128-480 tokens for these widths with a 512 KiB
// L2, twice that with 1 MiB or more) against the
// same tokens decoded one at a time: identical logits at every position —
// with the f16 cache, and with the q8_0 one (GQA; and sliding windows with
// soft-capping on gemma2).
TEST(ModelReference, LongPrefillEqualsTokenByTokenDecode) {
  SLM_REQUIRE_TESTDATA();
  const int64_t n = 1000;
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = static_cast<int32_t>((i * 193 + 7) % 512);
  const std::pair<const char*, DType> cases[] = {{"phi3-tiny", DType::F16},          {"phi3-tiny-q4_0", DType::F16},
                                                 {"llama-tiny-q4_0", DType::F16},    {"gemma2-tiny-q4_k_m", DType::F16},
                                                 {"llama-tiny-q4_0", DType::Q8_0},   {"gemma2-tiny-q4_k_m", DType::Q8_0}};
  for (const auto& [stem, kv] : cases) {
    SCOPED_TRACE(std::string(stem) + " " + std::string(dtype_name(kv)) + " cache");
    const auto model = Model::load(test::testdata_dir() + "/models/" + stem + ".gguf");
    const size_t V = static_cast<size_t>(model->hparams().n_vocab);
    ContextParams p;
    p.n_ctx = 1024;
    p.n_batch = n;
    p.n_threads = 1;
    p.k_type = p.v_type = kv;
    Context whole(*model, p), one(*model, p);
    std::vector<float> prefill, step;
    whole.evaluate(tokens.data(), n, true, prefill);
    ASSERT_EQ(prefill.size(), static_cast<size_t>(n) * V);
    for (int64_t i = 0; i < n; ++i) {
      one.evaluate(&tokens[static_cast<size_t>(i)], 1, false, step);
      ASSERT_TRUE(std::equal(step.begin(), step.end(), prefill.begin() + static_cast<std::ptrdiff_t>(i * V)))
          << "position " << i;
    }
  }
}

// Threads split rows and heads, never a sum: any thread count gives the same
// bits as one thread — automatic (0), 3 (uneven splits), and more threads
// than there are 16-row units in the smallest projection (256 rows = 16).
TEST(ModelReference, ThreadCountsGiveIdenticalLogits) {
  SLM_REQUIRE_TESTDATA();
  const std::vector<int32_t> tokens = {3, 77, 140, 9, 300, 41, 500, 2, 18, 260, 99, 7, 64};
  for (const char* stem : {"phi3-tiny", "gemma2-tiny", "gemma-tiny-q4_k_m", "llama-tiny-q4_0"}) {
    SCOPED_TRACE(stem);
    const auto model = Model::load(test::testdata_dir() + "/models/" + stem + ".gguf");
    auto run = [&](int threads) {
      ContextParams p;
      p.n_ctx = 64;
      p.n_threads = threads;
      Context ctx(*model, p);
      std::vector<float> logits, next;
      ctx.evaluate(tokens.data(), static_cast<int64_t>(tokens.size()), true, logits);
      const int32_t t = 5;
      ctx.evaluate(&t, 1, false, next);  // and the decode path
      logits.insert(logits.end(), next.begin(), next.end());
      return logits;
    };
    const auto single = run(1);
    for (int threads : {0, 2, 3, 40}) EXPECT_EQ(run(threads), single) << threads << " threads";
  }
}

TEST(ModelContext, RewindContinuesLikeAFreshRun) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(test::testdata_dir() + "/models/gemma2-tiny.gguf");  // sliding window + softcaps
  const std::vector<int32_t> a = {5, 17, 200, 33, 401, 9, 77, 301, 12, 45, 8, 99};
  const std::vector<int32_t> b = {5, 17, 200, 33, 401, 9, 250, 251, 252, 253};  // shares 6 tokens with a
  ContextParams p;
  p.n_ctx = 64;
  Context fresh(*model, p), reused(*model, p);
  std::vector<float> want, got;
  fresh.evaluate(b.data(), static_cast<int64_t>(b.size()), true, want);
  reused.evaluate(a.data(), static_cast<int64_t>(a.size()), true, got);
  reused.rewind(6);
  EXPECT_EQ(reused.n_past(), 6);
  reused.evaluate(b.data() + 6, static_cast<int64_t>(b.size() - 6), true, got);
  const size_t V = static_cast<size_t>(model->hparams().n_vocab);
  const std::vector<float> want_tail(want.begin() + static_cast<std::ptrdiff_t>(6 * V), want.end());
  EXPECT_LE(rel_rms(got, want_tail), 1e-5);
  EXPECT_THROW(reused.rewind(11), Error);  // beyond n_past
}

// Sliding-window layers keep a ring of W + n_batch - 1 positions instead of
// the whole context: the same logits as a full cache, far past the ring's
// length, and less memory. Rewinding further back than the rings reach is
// refused by the Context (Session re-evaluates instead: tests/api).
TEST(ModelContext, SlidingWindowRingsGiveTheFullCacheLogits) {
  SLM_REQUIRE_TESTDATA();
  for (const char* stem : {"gemma3-tiny", "gemma2-tiny-q8_0"}) {  // windows of 8 on 6 of 7 / 2 of 4 layers
    SCOPED_TRACE(stem);
    const auto model = Model::load(test::testdata_dir() + "/models/" + stem + ".gguf");
    std::vector<int32_t> tokens(100);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 11) % 512);
    ContextParams p;
    p.n_ctx = 128;
    p.n_threads = 1;
    p.n_batch = 128;  // rings of 8 + 128 - 1 >= n_ctx: every layer holds the whole context
    Context full(*model, p);
    p.n_batch = 4;  // rings of 11 rows
    Context ring(*model, p);
    EXPECT_LT(ring.kv_bytes(), full.kv_bytes());
    std::vector<float> want, got;
    full.evaluate(tokens.data(), 100, true, want);
    ring.evaluate(tokens.data(), 100, true, got);
    EXPECT_EQ(got, want);
    // Rewind: within the ring's reach, fine and identical; further, refused.
    // Rings of 11 after 100 positions hold 89..99; position n needs n-7..n-1.
    EXPECT_TRUE(ring.can_rewind(96));
    EXPECT_FALSE(ring.can_rewind(95));
    EXPECT_FALSE(ring.can_rewind(50));
    EXPECT_THROW(ring.rewind(50), Error);
    EXPECT_EQ(ring.n_past(), 100);
    ring.rewind(96);
    full.rewind(96);
    ring.evaluate(tokens.data() + 10, 5, true, got);
    full.evaluate(tokens.data() + 10, 5, true, want);
    EXPECT_EQ(got, want);
    EXPECT_TRUE(ring.can_rewind(0));
  }
}

TEST(ModelContext, OverflowIsAnErrorAndEvaluatesNothing) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(test::testdata_dir() + "/models/phi3-tiny.gguf");
  ContextParams p;
  p.n_ctx = 16;
  Context ctx(*model, p);
  std::vector<int32_t> tokens(10, 7);
  std::vector<float> logits;
  ctx.evaluate(tokens.data(), 10, false, logits);
  try {
    ctx.evaluate(tokens.data(), 7, false, logits);
    FAIL() << "expected an overflow error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit the context"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ctx.n_past(), 10);
  ctx.evaluate(tokens.data(), 6, false, logits);  // exactly fills it
  EXPECT_EQ(ctx.n_past(), 16);
  const int32_t bad = 512;
  Context other(*model, p);
  EXPECT_THROW(other.evaluate(&bad, 1, false, logits), Error);
  EXPECT_EQ(other.n_past(), 0);
}

TEST(ModelContext, F32CacheAgreesWithF16Cache) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(test::testdata_dir() + "/models/llama-tiny.gguf");
  const std::vector<int32_t> t = {1, 40, 41, 300, 2, 17, 18, 19};
  ContextParams p;
  p.n_ctx = 32;
  Context c16(*model, p);
  p.k_type = p.v_type = DType::F32;
  Context c32(*model, p);
  EXPECT_EQ(c32.kv_bytes(), 2 * c16.kv_bytes());
  std::vector<float> a, b;
  c16.evaluate(t.data(), 8, true, a);
  c32.evaluate(t.data(), 8, true, b);
  EXPECT_LE(rel_rms(a, b), 2e-3);  // f16 rounding of K/V only
  EXPECT_GT(rel_rms(a, b), 0.0);   // and it is really a different cache type
}

// q8_0 K and V (and each alone): about half the bytes of f16 (34 bytes per
// 32 values against 64), logits close to the f16 cache's.
TEST(ModelContext, Q8CacheAgreesWithF16Cache) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(test::testdata_dir() + "/models/llama-tiny.gguf");
  std::vector<int32_t> t;
  for (int i = 0; i < 40; ++i) t.push_back((i * 37 + 11) % 500);
  ContextParams p;
  p.n_ctx = 64;
  Context c16(*model, p);
  std::vector<float> want;
  c16.evaluate(t.data(), static_cast<int64_t>(t.size()), true, want);
  for (auto [k, v] : {std::pair{DType::Q8_0, DType::Q8_0}, {DType::Q8_0, DType::F16}, {DType::F16, DType::Q8_0}}) {
    SCOPED_TRACE(std::string(dtype_name(k)) + " K, " + std::string(dtype_name(v)) + " V");
    p.k_type = k;
    p.v_type = v;
    Context c8(*model, p);
    const double halves = (k == DType::Q8_0) + (v == DType::Q8_0);
    EXPECT_EQ(c8.kv_bytes(), static_cast<size_t>(static_cast<double>(c16.kv_bytes()) * (1.0 - halves / 2.0 * 30.0 / 64.0)));
    std::vector<float> got;
    c8.evaluate(t.data(), static_cast<int64_t>(t.size()), true, got);
    EXPECT_LE(rel_rms(got, want), 2e-2);  // 8-bit rounding of K/V (f16 alone: 2e-3 above)
    EXPECT_GT(rel_rms(got, want), 0.0);
  }
}

// What a cache type cannot do is refused by name.
TEST(ModelContext, CacheTypesThatCannotWorkAreRefused) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(test::testdata_dir() + "/models/llama-tiny.gguf");
  ContextParams p;
  p.n_ctx = 64;
  p.k_type = DType::Q4_0;
  try {
    Context c(*model, p);
    FAIL() << "a Q4_0 cache was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_0 is not a KV cache type"), std::string::npos) << e.what();
  }
}

// Sequences evaluated together (evaluate_batch) give each token the logits
// it gets when its sequence runs alone: prompts in chunks beside other
// sequences' decode steps, passes split at n_batch, a sequence in two runs of
// one batch, wanted rows in the middle of a pass. Bit-identical, on GQA,
// MQA with sliding-window rings (window 8, ring 8 + 15) and soft-capping.
TEST(ModelContext, SequencesBatchedTogetherGetTheirOwnLogits) {
  SLM_REQUIRE_TESTDATA();
  const int kSeqs = 3;
  const int64_t kLen[kSeqs] = {70, 45, 58};       // tokens of each sequence
  const int64_t kPrompt[kSeqs] = {30, 7, 1};      // of those, the prompt; the rest come one per step
  for (const char* stem : {"llama-tiny-q4_0", "gemma2-tiny-q4_k_m", "gemma3-tiny-q8_0", "phi3-tiny"}) {
    const auto model = Model::load(test::testdata_dir() + "/models/" + stem + ".gguf");
    const size_t V = static_cast<size_t>(model->hparams().n_vocab);
    std::vector<std::vector<int32_t>> tokens(kSeqs);
    for (int s = 0; s < kSeqs; ++s)
      for (int64_t i = 0; i < kLen[s]; ++i) tokens[static_cast<size_t>(s)].push_back(static_cast<int32_t>((i * (61 + 40 * s) + 5 * s + 3) % 256));
    for (int threads : {1, 2}) {
      SCOPED_TRACE(std::string(stem) + ", " + std::to_string(threads) + " threads");
      ContextParams p;
      p.n_ctx = 128;
      p.n_batch = 16;
      p.n_threads = threads;
      std::vector<std::vector<float>> alone(kSeqs);
      for (int s = 0; s < kSeqs; ++s) {
        Context c(*model, p);
        c.evaluate(tokens[static_cast<size_t>(s)].data(), kLen[s], true, alone[static_cast<size_t>(s)]);
      }
      p.n_seq = kSeqs;
      Context together(*model, p);
      std::vector<int64_t> done(kSeqs, 0);
      int checked_rows = 0;
      for (int step = 0; std::any_of(done.begin(), done.end(), [&](int64_t d) { return d < 70; }); ++step) {
        std::vector<BatchToken> batch;
        // Sequences in a different order each step; a prompt in chunks of up
        // to 9 (its last row wanted, and every third), the rest one a step.
        for (int k = 0; k < kSeqs; ++k) {
          const int s = (k + step) % kSeqs;
          const auto su = static_cast<size_t>(s);
          const int64_t take = done[su] < kPrompt[s] ? std::min<int64_t>(9, kPrompt[s] - done[su]) : 1;
          for (int64_t i = 0; i < take && done[su] < kLen[s]; ++i, ++done[su]) {
            const bool last = i == take - 1;
            batch.push_back({tokens[su][static_cast<size_t>(done[su])], done[su], s, last || done[su] % 3 == 0});
          }
        }
        if (step % 4 == 1 && done[0] < kLen[0]) {  // sequence 0 again, after the others
          batch.push_back({tokens[0][static_cast<size_t>(done[0])], done[0], 0, true});
          ++done[0];
        }
        if (batch.empty()) break;
        std::vector<float> logits;
        together.evaluate_batch(batch, logits);
        size_t row = 0;
        for (const BatchToken& b : batch) {
          if (!b.logits) continue;
          const float* want = alone[static_cast<size_t>(b.seq)].data() + static_cast<size_t>(b.pos) * V;
          ASSERT_TRUE(std::equal(want, want + V, logits.begin() + static_cast<std::ptrdiff_t>(row * V)))
              << "step " << step << ", sequence " << b.seq << " position " << b.pos;
          ++row, ++checked_rows;
        }
        ASSERT_EQ(logits.size(), row * V);
      }
      for (int s = 0; s < kSeqs; ++s) EXPECT_EQ(together.n_past(s), kLen[s]);
      EXPECT_GT(checked_rows, 100);
    }
  }
}

// A batch that cannot be evaluated as given is refused whole: nothing moves.
TEST(ModelContext, BatchesOutOfOrderOrBeyondTheContextAreRefused) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(test::testdata_dir() + "/models/llama-tiny.gguf");
  ContextParams p;
  p.n_ctx = 8;
  p.n_seq = 2;
  Context c(*model, p);
  std::vector<float> logits;
  c.evaluate_batch({{5, 0, 0, true}, {6, 0, 1, true}}, logits);
  auto refused = [&](const std::vector<BatchToken>& batch, const std::string& why) {
    try {
      c.evaluate_batch(batch, logits);
      ADD_FAILURE() << "accepted; expected: " << why;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
    EXPECT_EQ(c.n_past(0), 1);
    EXPECT_EQ(c.n_past(1), 1);
  };
  refused({{7, 1, 0, false}, {7, 3, 0, true}}, "position 3 of sequence 0, which holds 2 positions");
  refused({{7, 1, 1, false}, {7, 0, 0, true}}, "position 0 of sequence 0, which holds 1 positions");
  refused({{7, 1, 2, true}}, "sequence 2 does not exist (the context has 2)");
  refused({{7, 1, 0, true}, {9999, 1, 1, true}}, "token id 9999 at index 1 is out of range");
  std::vector<BatchToken> long_one;
  for (int64_t i = 1; i <= 8; ++i) long_one.push_back({7, i, 1, false});
  refused(long_one, "sequence 1 does not fit the context: 9 positions would be needed, it holds 8");
  EXPECT_THROW(c.rewind(0, 2), Error);
  c.rewind(0, 1);
  EXPECT_EQ(c.n_past(0), 1);
  EXPECT_EQ(c.n_past(1), 0);
}

// ---- malformed models: each edit of a valid file gets an error naming it.

std::string rewrite(const std::string& src, const std::string& name,
                    const std::function<void(const gguf::GgufFile&, gguf::GgufWriter&)>& edit) {
  const gguf::GgufFile in(src);
  gguf::GgufWriter w;
  for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
  edit(in, w);
  const std::string out = test::temp_path(name);
  w.write(out);
  return out;
}

void add_all_tensors(const gguf::GgufFile& in, gguf::GgufWriter& w, const std::string& skip = "",
                     const std::string& reshape = "") {
  for (const auto& t : in.tensors()) {
    if (t.name == skip) continue;
    if (t.name == reshape) {
      std::vector<int64_t> ne = t.ne;
      ne[1] /= 2;
      w.add_tensor(t.name, t.type, ne, in.tensor_data(t), t.n_bytes / 2);
    } else {
      w.add_tensor(t.name, t.type, t.ne, in.tensor_data(t), t.n_bytes);
    }
  }
}

void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    Model::load(path);
    FAIL() << "loading " << path << " should fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ModelLoad, ErrorsNameWhatIsWrong) {
  SLM_REQUIRE_TESTDATA();
  const std::string src = test::testdata_dir() + "/models/phi3-tiny.gguf";
  expect_load_error(rewrite(src, "arch.gguf",
                            [](const auto& in, auto& w) {
                              w.set("general.architecture", gguf::Value::string("mamba"));
                              add_all_tensors(in, w);
                            }),
                    "unsupported architecture 'mamba'");
  expect_load_error(rewrite(src, "missing.gguf", [](const auto& in, auto& w) { add_all_tensors(in, w, "blk.1.ffn_down.weight"); }),
                    "missing tensor 'blk.1.ffn_down.weight'");
  expect_load_error(rewrite(src, "shape.gguf", [](const auto& in, auto& w) { add_all_tensors(in, w, "", "blk.0.attn_qkv.weight"); }),
                    "tensor 'blk.0.attn_qkv.weight' has shape [256 x 384], expected [256 x 768]");
  expect_load_error(rewrite(src, "key.gguf",
                            [](const auto& in, auto& w) {
                              w.remove("phi3.block_count");
                              add_all_tensors(in, w);
                            }),
                    "missing metadata key 'phi3.block_count'");
  expect_load_error(rewrite(src, "heads.gguf",
                            [](const auto& in, auto& w) {
                              w.set("phi3.attention.head_count_kv", gguf::Value::scalar<uint32_t>(3));
                              add_all_tensors(in, w);
                            }),
                    "head_count_kv = 3 must divide head_count = 8");
  // A file written with general.alignment 2 whose F32 data is not 4-byte
  // aligned: refused with the fix, never read misaligned.
  bool misaligned_seen = false;
  for (int pad = 0; pad < 4 && !misaligned_seen; ++pad) {
    const std::string path = rewrite(src, "align" + std::to_string(pad) + ".gguf", [&](const auto& in, auto& w) {
      w.set("general.alignment", gguf::Value::scalar<uint32_t>(2));
      w.set("test.pad", gguf::Value::string(std::string(static_cast<size_t>(pad), 'x')));
      add_all_tensors(in, w);
    });
    if (gguf::GgufFile(path).tensors()[0].file_offset % 4 == 0) continue;
    misaligned_seen = true;
    expect_load_error(path, "rewrite the file with general.alignment 32");
  }
  EXPECT_TRUE(misaligned_seen);
  // Gemma 3 without one of its QK-norm tensors.
  expect_load_error(rewrite(test::testdata_dir() + "/models/gemma3-tiny.gguf", "gemma3_no_qnorm.gguf",
                            [](const auto& in, auto& w) { add_all_tensors(in, w, "blk.3.attn_k_norm.weight"); }),
                    "missing tensor 'blk.3.attn_k_norm.weight'");
  // A weight type with no kernel (IQ4_NL) is refused by name.
  expect_load_error(rewrite(src, "type.gguf",
                            [](const auto& in, auto& w) {
                              for (const auto& t : in.tensors()) {
                                if (t.name == "blk.0.ffn_down.weight") {
                                  const uint64_t bytes = row_bytes(DType::IQ4_NL, 512) * 256;
                                  w.add_tensor(t.name, DType::IQ4_NL, t.ne, std::vector<uint8_t>(bytes));
                                } else {
                                  w.add_tensor(t.name, t.type, t.ne, in.tensor_data(t), t.n_bytes);
                                }
                              }
                            }),
                    "type IQ4_NL");
}

}  // namespace
}  // namespace slm::model

namespace slm::model {
namespace {

// LongRoPE (phi3 128k): the long factors apply only when the session's
// context exceeds rope.scaling.original_context_length; attn_factor scales
// both rotated components. Built by adding factor tensors to phi3-tiny.
TEST(ModelLongRope, FactorsFollowTheContextRule) {
  SLM_REQUIRE_TESTDATA();
  const std::string src = test::testdata_dir() + "/models/phi3-tiny.gguf";
  const int n_half = 16;  // rope.dimension_count 32
  auto with_factors = [&](float short_f, float long_f, float attn, const std::string& name) {
    return rewrite(src, name, [&](const gguf::GgufFile& in, gguf::GgufWriter& w) {
      w.set("phi3.rope.scaling.original_context_length", gguf::Value::scalar<uint32_t>(64));
      w.set("phi3.rope.scaling.attn_factor", gguf::Value::scalar<float>(attn));
      add_all_tensors(in, w);
      std::vector<float> s(n_half, short_f), l(n_half, long_f);
      std::vector<uint8_t> sb(n_half * 4), lb(n_half * 4);
      std::memcpy(sb.data(), s.data(), sb.size());
      std::memcpy(lb.data(), l.data(), lb.size());
      w.add_tensor("rope_factors_short.weight", DType::F32, {n_half}, sb);
      w.add_tensor("rope_factors_long.weight", DType::F32, {n_half}, lb);
    });
  };
  const std::vector<int32_t> tokens = {4, 90, 17, 300, 22, 5, 61, 7, 200, 11};
  auto logits = [&](const std::string& path, int64_t n_ctx) {
    const auto m = Model::load(path);
    ContextParams p;
    p.n_ctx = n_ctx;
    Context ctx(*m, p);
    std::vector<float> out;
    ctx.evaluate(tokens.data(), static_cast<int64_t>(tokens.size()), true, out);
    return out;
  };
  const auto plain = logits(src, 32);
  // Neutral short factors and attn_factor 1: identical to no LongRoPE at a
  // context within the original one...
  const std::string neutral = with_factors(1.0f, 4.0f, 1.0f, "rope_neutral.gguf");
  EXPECT_EQ(logits(neutral, 32), plain);
  // ...while past it the long factors (4) change the rotation.
  EXPECT_GT(rel_rms(logits(neutral, 128), plain), 1e-3);
  // Long factors equal to the short ones: the context no longer matters.
  const std::string same = with_factors(2.0f, 2.0f, 1.0f, "rope_same.gguf");
  EXPECT_EQ(logits(same, 128), logits(same, 32));
  EXPECT_GT(rel_rms(logits(same, 32), plain), 1e-3);
  // attn_factor scales q and k: different logits from the same factors.
  const std::string scaled = with_factors(1.0f, 1.0f, 1.2f, "rope_scaled.gguf");
  EXPECT_GT(rel_rms(logits(scaled, 32), plain), 1e-3);
}

}  // namespace
}  // namespace slm::model
