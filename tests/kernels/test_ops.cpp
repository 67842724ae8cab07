// Elementwise ops, rmsnorm, RoPE and attention: every ISA against the scalar
// reference, and the reference against the math written out in double.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

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

// Attention for one head over keys [first, last], against double math.
TEST(KernelOps, AttentionF16AndF32CacheWithSoftcap) {
  for (int head_dim : {32, 80, 256}) {
    for (bool f16 : {true, false}) {
      const int64_t n_pos = 45, kv_stride = head_dim * 2 + 3;  // two kv heads + padding: a real stride
      const auto kf = gaussian(static_cast<size_t>(n_pos * kv_stride), 1), vf = gaussian(kf.size(), 2);
      std::vector<uint16_t> kh(kf.size()), vh(vf.size());
      std::vector<float> kq(kf.size()), vq(vf.size());  // the values the kernel actually sees
      for (size_t i = 0; i < kf.size(); ++i) {
        kh[i] = f32_to_f16(kf[i]);
        vh[i] = f32_to_f16(vf[i]);
        kq[i] = f16 ? f16_to_f32(kh[i]) : kf[i];
        vq[i] = f16 ? f16_to_f32(vh[i]) : vf[i];
      }
      const auto q = gaussian(static_cast<size_t>(head_dim), 3);
      for (auto [first, last, cap] : {std::tuple<int64_t, int64_t, float>{0, 0, 0.0f}, {0, 44, 0.0f}, {7, 30, 50.0f},
                                      {40, 44, 0.0f}}) {
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        std::vector<double> w;
        for (int64_t j = first; j <= last; ++j) {
          double s = 0;
          for (int d = 0; d < head_dim; ++d) s += static_cast<double>(q[static_cast<size_t>(d)]) * kq[static_cast<size_t>(j * kv_stride + d + head_dim)];
          s *= scale;
          if (cap > 0) s = cap * std::tanh(s / cap);
          w.push_back(s);
        }
        const double mx = *std::max_element(w.begin(), w.end());
        double z = 0;
        for (auto& s : w) z += (s = std::exp(s - mx));
        std::vector<double> want(static_cast<size_t>(head_dim), 0.0);
        for (int64_t j = first; j <= last; ++j)
          for (int d = 0; d < head_dim; ++d)
            want[static_cast<size_t>(d)] += w[static_cast<size_t>(j - first)] / z * vq[static_cast<size_t>(j * kv_stride + d + head_dim)];
        for (Isa isa : available_isas()) {
          std::vector<float> scores(static_cast<size_t>(n_pos)), out(static_cast<size_t>(head_dim));
          AttentionArgs a;
          a.q = q.data();
          // Second kv head: offset by head_dim elements.
          a.k = f16 ? static_cast<const void*>(kh.data() + head_dim) : static_cast<const void*>(kf.data() + head_dim);
          a.v = f16 ? static_cast<const void*>(vh.data() + head_dim) : static_cast<const void*>(vf.data() + head_dim);
          a.kv_f16 = f16;
          a.kv_stride = kv_stride;
          a.head_dim = head_dim;
          a.first = first;
          a.last = last;
          a.scale = scale;
          a.softcap = cap;
          a.scores = scores.data();
          a.out = out.data();
          kernel_table(isa).attention(a);
          for (int d = 0; d < head_dim; ++d)
            ASSERT_NEAR(out[static_cast<size_t>(d)], want[static_cast<size_t>(d)], 1e-5)
                << testing::isa_label(isa) << " f16=" << f16 << " D=" << head_dim << " keys " << first << ".." << last;
        }
      }
    }
  }
}

// A ring buffer (position j in row j % ring) gives exactly the attention of
// the plain layout, on every path: the same rows in the same order.
TEST(KernelOps, AttentionOverARingEqualsThePlainLayout) {
  const int D = 40, n_pos = 30, ring = 7, first = 21, last = 27;
  const int64_t stride = D;
  const auto q = testing::gaussian(D, 31), k = testing::gaussian(n_pos * D, 32), v = testing::gaussian(n_pos * D, 33);
  std::vector<float> kr(ring * D), vr(ring * D);
  for (int p = first; p <= last; ++p)
    for (int d = 0; d < D; ++d) {
      kr[static_cast<size_t>((p % ring) * D + d)] = k[static_cast<size_t>(p * D + d)];
      vr[static_cast<size_t>((p % ring) * D + d)] = v[static_cast<size_t>(p * D + d)];
    }
  for (Isa isa : available_isas()) {
    std::vector<float> scores(n_pos), plain(D), ringed(D);
    AttentionArgs a;
    a.q = q.data();
    a.kv_f16 = false;
    a.kv_stride = stride;
    a.head_dim = D;
    a.first = first;
    a.last = last;
    a.scale = 0.2f;
    a.scores = scores.data();
    a.k = k.data();
    a.v = v.data();
    a.out = plain.data();
    kernel_table(isa).attention(a);
    a.k = kr.data();
    a.v = vr.data();
    a.ring = ring;
    a.out = ringed.data();
    kernel_table(isa).attention(a);
    EXPECT_EQ(ringed, plain) << testing::isa_label(isa);
  }
}

}  // namespace
}  // namespace slm::kernels
