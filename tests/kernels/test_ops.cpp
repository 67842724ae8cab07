// Elementwise ops, rmsnorm, RoPE and attention: every ISA against the scalar
// reference, and the reference against the math written out in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "cpu/attention.h"
#include "kernel_test_util.h"
#include "slm/error.h"

namespace slm::kernels {
namespace {

using testing::gaussian;

// Lengths around every vector width (4, 8, 16) and a model-sized one.
const int64_t kLengths[] = {1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 100, 257, 3072};

// Relative tolerance of the vector exp/tanh (a few ulp) and of reordered
// float sums.
constexpr double kOpRelTol = 2e-6;

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], rel * std::fabs(want[i]) + abs) << what << " at " << i;
}

// Runs an out-of-place elementwise op on both tables over unaligned data.
void check_unary(const char* name, void (*KernelTable::*op)(const float*, float*, int64_t), double abs) {
  for (Isa isa : testing::simd_isas()) {
    for (int64_t n : kLengths) {
      auto x = gaussian(static_cast<size_t>(n) + 1, static_cast<uint32_t>(n), 3.0f);
      if (n > 10) x[3] = 40.0f, x[4] = -40.0f, x[5] = 100.0f, x[6] = -100.0f;  // saturation
      std::vector<float> want(static_cast<size_t>(n)), got(want.size());
      (ref::table().*op)(x.data() + 1, want.data(), n);  // +1 float: not vector-aligned
      (kernel_table(isa).*op)(x.data() + 1, got.data(), n);
      expect_close(got, want, kOpRelTol, abs, std::string(name) + " " + testing::isa_label(isa) + " n=" + std::to_string(n));
    }
  }
}

TEST(KernelOps, SiluAndGelu) {
  check_unary("silu", &KernelTable::silu, 1e-7);
  // tanh(x) as 1 - 2/(e^2x + 1) is accurate to ~1e-7 absolute near 0.
  check_unary("gelu", &KernelTable::gelu, 2e-7);
}

TEST(KernelOps, ReferenceFormulas) {
  const KernelTable& r = ref::table();
  const float x[] = {-3.0f, -0.5f, 0.0f, 0.25f, 2.0f};
  float out[5];
  r.silu(x, out, 5);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(out[i], x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))), 1e-6);
  r.gelu(x, out, 5);
  for (int i = 0; i < 5; ++i) {
    const double t = x[i];
    EXPECT_NEAR(out[i], 0.5 * t * (1 + std::tanh(std::sqrt(2 / M_PI) * (t + 0.044715 * t * t * t))), 1e-6);
  }
  float s[] = {1.0f, 2.0f, 3.0f};
  r.softmax(s, 3);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(s[0], std::exp(1.0) / z, 1e-7);
  EXPECT_NEAR(s[2], std::exp(3.0) / z, 1e-7);
  float c[] = {100.0f, -10.0f};
  r.softcap(c, 30.0f, 2);
  EXPECT_NEAR(c[0], 30 * std::tanh(100.0 / 30), 1e-5);
  EXPECT_NEAR(c[1], 30 * std::tanh(-10.0 / 30), 1e-5);
  const float v[] = {3.0f, 4.0f}, w[] = {1.0f, 2.0f};
  float n[2];
  r.rmsnorm(v, w, 0.0f, 2, n);
  EXPECT_NEAR(n[0], 3.0 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(n[1], 2 * 4.0 / std::sqrt(12.5), 1e-6);
}

TEST(KernelOps, GatedAndBinaryOps) {
  for (Isa isa : testing::simd_isas()) {
    const KernelTable& k = kernel_table(isa);
    const KernelTable& r = ref::table();
    for (int64_t n : kLengths) {
      const std::string at = testing::isa_label(isa) + " n=" + std::to_string(n);
      const auto g = gaussian(static_cast<size_t>(n) + 1, 1, 2.0f), u = gaussian(static_cast<size_t>(n) + 1, 2);
      std::vector<float> want(static_cast<size_t>(n)), got(want.size());
      r.swiglu(g.data() + 1, u.data() + 1, want.data(), n);
      k.swiglu(g.data() + 1, u.data() + 1, got.data(), n);
      expect_close(got, want, kOpRelTol, 1e-7, "swiglu " + at);
      r.geglu(g.data() + 1, u.data() + 1, want.data(), n);
      k.geglu(g.data() + 1, u.data() + 1, got.data(), n);
      expect_close(got, want, kOpRelTol, 4e-7, "geglu " + at);

      std::vector<float> a(g.begin() + 1, g.end()), b = a;
      r.add(a.data(), u.data() + 1, n);
      k.add(b.data(), u.data() + 1, n);
      expect_close(b, a, 0, 0, "add " + at);  // one rounding either way: identical
      r.scale(a.data(), 0.37f, n);
      k.scale(b.data(), 0.37f, n);
      expect_close(b, a, 0, 0, "scale " + at);

      std::vector<float> c1(g.begin() + 1, g.end()), c2 = c1;
      for (auto& v : c1) v *= 20;
      c2 = c1;
      r.softcap(c1.data(), 30.0f, n);
      k.softcap(c2.data(), 30.0f, n);
      expect_close(c2, c1, kOpRelTol, 30 * 2e-7, "softcap " + at);

      std::vector<float> s1(g.begin() + 1, g.end()), s2 = s1;
      r.softmax(s1.data(), n);
      k.softmax(s2.data(), n);
      expect_close(s2, s1, 4 * kOpRelTol, 1e-9, "softmax " + at);

      const auto w = gaussian(static_cast<size_t>(n), 3);
      r.rmsnorm(u.data() + 1, w.data(), 1e-5f, n, want.data());
      k.rmsnorm(u.data() + 1, w.data(), 1e-5f, n, got.data());
      expect_close(got, want, kOpRelTol, 1e-7, "rmsnorm " + at);

      std::vector<uint16_t> h1(static_cast<size_t>(n)), h2(h1.size());
      r.f32_to_f16(u.data() + 1, h1.data(), n);
      k.f32_to_f16(u.data() + 1, h2.data(), n);
      EXPECT_EQ(h1, h2) << "f32_to_f16 " << at;  // both round to nearest even
    }
  }
}

TEST(KernelOps, RopeBothPairingsPartialRotaryAndFactors) {
  const int n_heads = 3;
  for (int head_dim : {32, 96, 256}) {
    for (int n_rot : {head_dim, head_dim / 2, 24}) {
      std::vector<float> factors(static_cast<size_t>(n_rot / 2));
      for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + 0.5f * static_cast<float>(i);
      std::vector<float> cs(static_cast<size_t>(n_rot / 2)), sn(cs.size());
      const int64_t pos = 1234;
      const float attn = 1.19f;
      rope_angles(pos, n_rot, 10000.0f, factors.data(), attn, cs.data(), sn.data());
      for (bool neox : {true, false}) {
        const auto x = gaussian(static_cast<size_t>(n_heads * head_dim), 9);
        // Direct double-precision math from model-math.md.
        std::vector<double> want(x.begin(), x.end());
        for (int h = 0; h < n_heads; ++h) {
          for (int i = 0; i < n_rot / 2; ++i) {
            const double theta = pos * std::pow(10000.0, -2.0 * i / n_rot) / factors[static_cast<size_t>(i)];
            const int ia = h * head_dim + (neox ? i : 2 * i), ib = h * head_dim + (neox ? i + n_rot / 2 : 2 * i + 1);
            const double a = x[static_cast<size_t>(ia)], b = x[static_cast<size_t>(ib)];
            want[static_cast<size_t>(ia)] = (a * std::cos(theta) - b * std::sin(theta)) * attn;
            want[static_cast<size_t>(ib)] = (a * std::sin(theta) + b * std::cos(theta)) * attn;
          }
        }
        for (Isa isa : available_isas()) {
          std::vector<float> got = x;
          kernel_table(isa).rope(got.data(), n_heads, head_dim, n_rot, cs.data(), sn.data(), neox);
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 2e-6 * (std::fabs(want[i]) + 1))
                << testing::isa_label(isa) << " neox=" << neox << " head_dim=" << head_dim << " n_rot=" << n_rot
                << " at " << i;
        }
      }
    }
  }
}

// A KV cache of n_pos rows of one head (head_dim elements of `type`), the
// values every kernel must see (`values`: the reference dequantizer's).
struct TestCache {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
  size_t row_bytes = 0;
  TestCache(DType type, int64_t n_pos, int head_dim, uint32_t seed) {
    row_bytes = kv_row_bytes(type, head_dim);
    const auto x = gaussian(static_cast<size_t>(n_pos * head_dim), seed);
    bytes.resize(static_cast<size_t>(n_pos) * row_bytes);
    values.resize(x.size());
    for (int64_t j = 0; j < n_pos; ++j) {
      uint8_t* row = bytes.data() + j * row_bytes;
      quantize_row(type, x.data() + j * head_dim, row, head_dim);
      dequantize_row(type, row, values.data() + j * head_dim, head_dim);
    }
  }
};

struct KvCase {
  DType k, v;
};

// AttentionArgs reading K from `kc` (type kt) and V from `vc` (type vt);
// the caller sets the rows, their ranges, the scale and the scratch.
AttentionArgs cache_args(const TestCache& kc, DType kt, const TestCache& vc, DType vt, int head_dim) {
  AttentionArgs a;
  a.k = kc.bytes.data();
  a.v = vc.bytes.data();
  a.k_type = kt;
  a.v_type = vt;
  a.k_row_bytes = kc.row_bytes;
  a.v_row_bytes = vc.row_bytes;
  a.head_dim = head_dim;
  return a;
}
const KvCase kKvCases[] = {{DType::F16, DType::F16}, {DType::F32, DType::F32}, {DType::Q8_0, DType::Q8_0},
                           {DType::Q8_0, DType::F16}, {DType::F16, DType::Q8_0}};

// Several query rows in one call, each with its own key range (one key,
// ranges inside a chunk, across chunk borders, starting mid-chunk), against
// double math on the values the cache holds.
TEST(KernelOps, AttentionMatchesDoubleMathForEveryCacheType) {
  const int64_t n_pos = 200;  // kAttentionChunk = 64: four chunks
  const std::vector<std::pair<int64_t, int64_t>> ranges = {{0, 0}, {0, 63}, {0, 64}, {5, 130}, {63, 64},
                                                           {70, 199}, {128, 191}, {199, 199}, {1, 198}};
  for (int head_dim : {32, 80, 96, 256}) {
    for (const KvCase& kv : kKvCases) {
      if ((kv.k == DType::Q8_0 || kv.v == DType::Q8_0) && head_dim % 32 != 0) continue;
      const TestCache kc(kv.k, n_pos, head_dim, 1), vc(kv.v, n_pos, head_dim, 2);
      for (float cap : {0.0f, 30.0f}) {
        const auto qs = gaussian(ranges.size() * static_cast<size_t>(head_dim), 3, 2.0f);
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        std::vector<const float*> q;
        std::vector<int64_t> first, last;
        for (size_t r = 0; r < ranges.size(); ++r) {
          q.push_back(qs.data() + r * static_cast<size_t>(head_dim));
          first.push_back(ranges[r].first);
          last.push_back(ranges[r].second);
        }
        for (Isa isa : available_isas()) {
          std::vector<float> outs(qs.size(), 1e30f), scratch(attention_scratch_floats(static_cast<int>(ranges.size())));
          std::vector<float*> out;
          for (size_t r = 0; r < ranges.size(); ++r) out.push_back(outs.data() + r * static_cast<size_t>(head_dim));
          AttentionArgs a = cache_args(kc, kv.k, vc, kv.v, head_dim);
          a.n_rows = static_cast<int>(ranges.size());
          a.q = q.data();
          a.out = out.data();
          a.first = first.data();
          a.last = last.data();
          a.scale = scale;
          a.softcap = cap;
          a.scratch = scratch.data();
          kernel_table(isa).attention(a);
          for (size_t r = 0; r < ranges.size(); ++r) {
            std::vector<double> w;
            for (int64_t j = first[r]; j <= last[r]; ++j) {
              double s = 0;
              for (int d = 0; d < head_dim; ++d) s += static_cast<double>(q[r][d]) * kc.values[static_cast<size_t>(j * head_dim + d)];
              s *= scale;
              if (cap > 0) s = cap * std::tanh(s / cap);
              w.push_back(s);
            }
            const double mx = *std::max_element(w.begin(), w.end());
            double z = 0;
            for (auto& s : w) z += (s = std::exp(s - mx));
            for (int d = 0; d < head_dim; ++d) {
              double want = 0;
              for (int64_t j = first[r]; j <= last[r]; ++j)
                want += w[static_cast<size_t>(j - first[r])] / z * vc.values[static_cast<size_t>(j * head_dim + d)];
              ASSERT_NEAR(out[r][d], want, 2e-5)
                  << testing::isa_label(isa) << " K " << dtype_name(kv.k) << " V " << dtype_name(kv.v) << " D=" << head_dim
                  << " cap " << cap << " keys " << first[r] << ".." << last[r] << " d " << d;
            }
          }
        }
      }
    }
  }
}

// A row's result never depends on the rows it shares a call with (the
// property that makes prefill batch sizes and thread counts give identical
// logits): 13-15 rows at once, in blocks of 4 and a tail of 1, 2 or 3 rows,
// against each alone; a head of 36 leaves dims past the last vector.
TEST(KernelOps, AttentionRowsDoNotDependOnTheirBlock) {
  const int64_t n_pos = 300;
  struct Shape {
    int head_dim, rows;
  };
  const Shape shapes[] = {{96, 13}, {96, 14}, {96, 15}, {36, 14}, {36, 15}};
  for (const Shape& shape : shapes) {
    for (const KvCase& kv : kKvCases) {
      const int D = shape.head_dim, R = shape.rows;
      if ((kv.k == DType::Q8_0 || kv.v == DType::Q8_0) && D % 32 != 0) continue;
      const TestCache kc(kv.k, n_pos, D, 11), vc(kv.v, n_pos, D, 12);
      const auto qs = gaussian(static_cast<size_t>(R * D), 13);
      std::vector<const float*> q;
      std::vector<int64_t> first, last;
      for (int r = 0; r < R; ++r) {
        q.push_back(qs.data() + r * D);
        last.push_back(250 + r * 3);           // causal rows of consecutive tokens ...
        first.push_back(r % 3 == 0 ? 0 : 37 * r % 200);  // ... some with a window
      }
      for (Isa isa : available_isas()) {
        auto run = [&](int r0, int n) {
          std::vector<float> outs(static_cast<size_t>(n * D)), scratch(attention_scratch_floats(n));
          std::vector<float*> out;
          for (int r = 0; r < n; ++r) out.push_back(outs.data() + r * D);
          AttentionArgs a = cache_args(kc, kv.k, vc, kv.v, D);
          a.n_rows = n;
          a.q = q.data() + r0;
          a.out = out.data();
          a.first = first.data() + r0;
          a.last = last.data() + r0;
          a.scale = 0.1f;
          a.scratch = scratch.data();
          kernel_table(isa).attention(a);
          return outs;
        };
        const auto together = run(0, R);
        for (int r = 0; r < R; ++r) {
          const auto alone = run(r, 1);
          EXPECT_TRUE(std::equal(alone.begin(), alone.end(), together.begin() + r * D))
              << testing::isa_label(isa) << " K " << dtype_name(kv.k) << " V " << dtype_name(kv.v) << " head " << D
              << " rows " << R << " row " << r;
        }
      }
    }
  }
}

// A ring buffer (position j in row j % ring) gives exactly the attention of
// the plain layout, on every path: the same rows in the same order.
TEST(KernelOps, AttentionOverARingEqualsThePlainLayout) {
  const int D = 40, n_pos = 150, ring = 71;
  const int64_t first = 75, last = 145;
  const auto q = testing::gaussian(D, 31);
  const TestCache kc(DType::F32, n_pos, D, 32), vc(DType::F32, n_pos, D, 33);
  std::vector<float> kr(ring * D), vr(ring * D);
  for (int64_t p = first; p <= last; ++p)
    for (int d = 0; d < D; ++d) {
      kr[static_cast<size_t>((p % ring) * D + d)] = kc.values[static_cast<size_t>(p * D + d)];
      vr[static_cast<size_t>((p % ring) * D + d)] = vc.values[static_cast<size_t>(p * D + d)];
    }
  for (Isa isa : available_isas()) {
    std::vector<float> scratch(attention_scratch_floats(1)), plain(D), ringed(D);
    const float* qp = q.data();
    float* out = plain.data();
    AttentionArgs a;
    a.n_rows = 1;
    a.q = &qp;
    a.out = &out;
    a.first = &first;
    a.last = &last;
    a.k_type = a.v_type = DType::F32;
    a.k_row_bytes = a.v_row_bytes = D * sizeof(float);
    a.head_dim = D;
    a.scale = 0.2f;
    a.scratch = scratch.data();
    a.k = kc.values.data();
    a.v = vc.values.data();
    kernel_table(isa).attention(a);
    a.k = kr.data();
    a.v = vr.data();
    a.ring = ring;
    out = ringed.data();
    kernel_table(isa).attention(a);
    EXPECT_EQ(ringed, plain) << testing::isa_label(isa);
  }
}

// The threaded driver: GQA (4 query heads per KV head), causal positions
// after a prefix, a sliding window; each query against the kernel run on it
// alone, and identical for 1, 2 and 3 threads.
TEST(KernelOps, AttentionDriverSplitsWithoutChangingResults) {
  const int H = 8, KV = 2, D = 64;
  const int64_t n_tokens = 37, pos0 = 90, n_pos = pos0 + n_tokens;
  const auto q = gaussian(static_cast<size_t>(n_tokens * H * D), 41);
  for (int64_t window : {int64_t{0}, int64_t{50}}) {
    std::vector<TestCache> kc, vc;
    std::vector<uint8_t> kall, vall;
    for (int g = 0; g < KV; ++g) {
      kc.emplace_back(DType::Q8_0, n_pos, D, 42 + g);
      vc.emplace_back(DType::F16, n_pos, D, 52 + g);
      kall.insert(kall.end(), kc.back().bytes.begin(), kc.back().bytes.end());
      vall.insert(vall.end(), vc.back().bytes.begin(), vc.back().bytes.end());
    }
    for (Isa isa : available_isas()) {
      const KernelTable& k = kernel_table(isa);
      auto run = [&](int threads) {
        std::vector<float> out(q.size());
        AttentionProblem p;
        p.q = q.data();
        p.q_stride = H * D;
        p.out = out.data();
        p.out_stride = H * D;
        p.n_tokens = n_tokens;
        p.pos0 = pos0;
        p.window = window;
        p.n_head = H;
        p.n_head_kv = KV;
        p.head_dim = D;
        p.k = kall.data();
        p.v = vall.data();
        p.k_head_bytes = kc[0].bytes.size();
        p.v_head_bytes = vc[0].bytes.size();
        p.k_type = DType::Q8_0;
        p.v_type = DType::F16;
        p.scale = 0.125f;
        attention(k, p, threads);
        return out;
      };
      const auto one = run(1);
      EXPECT_EQ(run(2), one) << testing::isa_label(isa);
      EXPECT_EQ(run(3), one) << testing::isa_label(isa);
      for (int64_t t : {int64_t{0}, int64_t{17}, n_tokens - 1})
        for (int h = 0; h < H; ++h) {
          const int g = h / (H / KV);
          const float* qp = q.data() + (t * H + h) * D;
          std::vector<float> want(D), scratch(attention_scratch_floats(1));
          float* wp = want.data();
          const int64_t last = pos0 + t, first = window > 0 ? std::max<int64_t>(0, last - window + 1) : 0;
          AttentionArgs a = cache_args(kc[static_cast<size_t>(g)], DType::Q8_0, vc[static_cast<size_t>(g)], DType::F16, D);
          a.n_rows = 1;
          a.q = &qp;
          a.out = &wp;
          a.first = &first;
          a.last = &last;
          a.scale = 0.125f;
          a.scratch = scratch.data();
          k.attention(a);
          EXPECT_TRUE(std::equal(want.begin(), want.end(), one.begin() + (t * H + h) * D))
              << testing::isa_label(isa) << " window " << window << " token " << t << " head " << h;
        }
    }
  }
}

// Cache types: the row sizes, and what is refused.
TEST(KernelOps, KvCacheTypesAndTheirRowSizes) {
  EXPECT_EQ(kv_row_bytes(DType::F32, 96), 384u);
  EXPECT_EQ(kv_row_bytes(DType::F16, 96), 192u);
  EXPECT_EQ(kv_row_bytes(DType::Q8_0, 96), 102u);  // 3 blocks of 34 bytes
  EXPECT_THROW(kv_row_bytes(DType::Q8_0, 80), Error);
  EXPECT_THROW(kv_row_bytes(DType::Q4_0, 64), Error);
  EXPECT_TRUE(is_kv_type(DType::Q8_0));
  EXPECT_FALSE(is_kv_type(DType::Q4_K));
}

}  // namespace
}  // namespace slm::kernels
