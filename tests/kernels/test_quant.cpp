// Block formats: hand-built blocks decode to the values the layout comments
// promise, quantizers round-trip within their format's bound, and their
// error is no worse than 1.05x the usual scale-and-round baseline written
// here independently.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

#include "cpu/blocks.h"
#include "kernel_test_util.h"
#include "slm/error.h"

namespace slm::kernels {
namespace {

using testing::gaussian;

TEST(KernelFormats, HandBuiltBlocksDecodeAsDocumented) {
  float y[256];
  {  // Q4_0: element j low nibble, j + 16 high nibble, minus 8.
    BlockQ4_0 b{};
    b.d = f32_to_f16(0.5f);
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    ref::dequantize_row(DType::Q4_0, &b, y, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[j], 0.5f * (j - 8));
      EXPECT_EQ(y[j + 16], 0.5f * (15 - j - 8));
    }
  }
  {  // Q5_1: bit 4 of element j is bit j of qh; plus the minimum.
    BlockQ5_1 b{};
    b.d = f32_to_f16(1.0f);
    b.m = f32_to_f16(-2.0f);
    const uint32_t qh = 0x80000001u;  // elements 0 and 31
    std::memcpy(b.qh, &qh, 4);
    ref::dequantize_row(DType::Q5_1, &b, y, 32);
    EXPECT_EQ(y[0], 16.0f - 2.0f);
    EXPECT_EQ(y[1], -2.0f);
    EXPECT_EQ(y[31], 16.0f - 2.0f);
  }
  {  // Q4_K: sub-block 5's scale / min come from the packed high bits.
    BlockQ4_K b{};
    b.d = f32_to_f16(1.0f);
    b.dmin = f32_to_f16(1.0f);
    uint8_t ls[8] = {1, 2, 3, 4, 5, 33, 7, 63}, lm[8] = {0, 0, 0, 0, 0, 17, 0, 0};
    // scales 0-3 / mins 0-3 in bytes 0-7 low 6 bits; 4-7 split.
    for (int j = 0; j < 4; ++j) b.scales[j] = ls[j], b.scales[j + 4] = lm[j];
    for (int j = 4; j < 8; ++j) {
      b.scales[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      b.scales[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      b.scales[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
    std::fill(b.qs, b.qs + 128, 0x21);  // low nibble 1, high nibble 2
    ref::dequantize_row(DType::Q4_K, &b, y, 256);
    EXPECT_EQ(y[0], 1.0f * 1);            // sub-block 0, q = 1
    EXPECT_EQ(y[32], 2.0f * 2);           // sub-block 1, q = 2
    EXPECT_EQ(y[5 * 32], 33.0f * 2 - 17); // sub-block 5 (high nibbles of group 2)
    EXPECT_EQ(y[7 * 32 + 31], 63.0f * 2); // sub-block 7
  }
  {  // Q6_K: element l + 64 of a half = high nibble of ql[l] | qh bits 4-5.
    BlockQ6_K b{};
    b.d = f32_to_f16(0.25f);
    for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s - 8);
    b.ql[3] = 0xA5;      // element 3: 5, element 67: 10
    b.qh[3] = 0x30;      // element 67 gets bits 4-5 = 3 -> 48 + 10
    ref::dequantize_row(DType::Q6_K, &b, y, 256);
    EXPECT_EQ(y[3], 0.25f * (0 - 8) * (5 - 32));
    EXPECT_EQ(y[67], 0.25f * (4 - 8) * (58 - 32));
    EXPECT_EQ(y[200], 0.25f * (12 - 8) * (0 - 32));
  }
}

// Quantize -> dequantize error per element is at most what the format's
// step allows (half a step plus the scale rounding).
TEST(KernelFormats, QuantizersRoundTripWithinTheirStep) {
  for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4_K, DType::Q5_K,
                     DType::Q6_K, DType::F16, DType::BF16, DType::F32}) {
    const int64_t n = 1024;
    auto x = gaussian(n, 21);
    std::fill(x.begin() + 256, x.begin() + 512, 0.0f);  // an all-zero super-block stays zero
    std::vector<uint8_t> q(row_bytes(type, n));
    quantize_row(type, x.data(), q.data(), n);
    std::vector<float> y(n);
    dequantize_row(type, q.data(), y.data(), n);
    const int64_t block = std::max<int64_t>(32, traits(type).block_size);
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      double lo = 0, hi = 0;
      for (int64_t i = b0; i < b0 + block; ++i) lo = std::min<double>(lo, x[i]), hi = std::max<double>(hi, x[i]);
      const double amax = std::max(-lo, hi), range = hi - lo;
      double bound = 0;  // F32: exact
      switch (type) {
        case DType::F16: bound = amax * std::ldexp(1.0, -11); break;
        case DType::BF16: bound = amax * std::ldexp(1.0, -8); break;
        // Symmetric: the largest magnitude sits on level -half; values on the
        // other side beyond (half - 1) steps clamp, so allow one full step.
        case DType::Q4_0: bound = amax / 8 * 1.01; break;
        case DType::Q5_0: bound = amax / 16 * 1.01; break;
        case DType::Q8_0: bound = amax / 254 + amax * 1e-3; break;  // + f16 rounding of d
        // Affine: half a step, plus the f16 rounding of the minimum.
        case DType::Q4_1: bound = range / 15 * 0.505 + amax * 1e-3; break;
        case DType::Q5_1: bound = range / 31 * 0.505 + amax * 1e-3; break;
        // K formats also round their sub-block scales to 6 / 8 bits.
        case DType::Q4_K: bound = range / 15 * 1.5; break;
        case DType::Q5_K: bound = range / 31 * 1.5; break;
        case DType::Q6_K: bound = amax / 32 * 1.5; break;
        default: break;
      }
      for (int64_t i = b0; i < b0 + block; ++i)
        ASSERT_LE(std::fabs(y[i] - x[i]), bound + 1e-7) << dtype_name(type) << " at " << i;
    }
  }
}

// ---------------------------------------------------------------------------
// Baselines: the textbook scale-and-round per format, written independently
// of the library. They return the dequantized values.

using Baseline = std::function<std::vector<float>(const std::vector<float>&)>;

float round_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

// Symmetric: scale from the largest magnitude, levels [-half, half - 1].
std::vector<float> baseline_symmetric(const std::vector<float>& x, int block, int half) {
  std::vector<float> y(x.size());
  for (size_t b0 = 0; b0 < x.size(); b0 += block) {
    float max = 0;
    for (int i = 0; i < block; ++i)
      if (std::fabs(x[b0 + i]) > std::fabs(max)) max = x[b0 + i];
    const float d = round_f16(max / -static_cast<float>(half));
    for (int i = 0; i < block; ++i) {
      const float q = d != 0 ? std::clamp(std::round(x[b0 + i] / d), -static_cast<float>(half), half - 1.0f) : 0;
      y[b0 + i] = q * d;
    }
  }
  return y;
}

std::vector<float> baseline_q8(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t b0 = 0; b0 < x.size(); b0 += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b0 + i]));
    const float d = round_f16(amax / 127);
    for (int i = 0; i < 32; ++i) y[b0 + i] = d != 0 ? std::round(x[b0 + i] / d) * d : 0;
  }
  return y;
}

// Affine: min and max of the block span the levels.
std::vector<float> baseline_affine(const std::vector<float>& x, int nmax) {
  std::vector<float> y(x.size());
  for (size_t b0 = 0; b0 < x.size(); b0 += 32) {
    const float lo = *std::min_element(x.begin() + b0, x.begin() + b0 + 32);
    const float hi = *std::max_element(x.begin() + b0, x.begin() + b0 + 32);
    const float d = round_f16((hi - lo) / nmax), m = round_f16(lo);
    for (int i = 0; i < 32; ++i)
      y[b0 + i] = d != 0 ? std::clamp(std::round((x[b0 + i] - m) / d), 0.0f, static_cast<float>(nmax)) * d + m : m;
  }
  return y;
}

// K formats with a minimum (Q2_K, Q4_K, Q5_K): per sub-block of `sub`
// elements, search 21 candidate step sizes around (max - min) / nmax for the
// smallest squared error (for Q2_K the absolute error weighted by |x|, what
// its reference quantizer minimizes: with four levels a few outliers would
// otherwise pull the step), then quantize the sub-block scales and mins to
// 0..scale_max against the super-block maxima as the format stores them, and
// round again.
std::vector<float> baseline_k_affine(const std::vector<float>& x, int nmax, int sub = 32, int scale_max = 63,
                                     bool absolute = false) {
  std::vector<float> y(x.size());
  const int n_sub = 256 / sub;
  for (size_t s0 = 0; s0 < x.size(); s0 += 256) {
    float scales[16], mins[16];
    for (int j = 0; j < n_sub; ++j) {
      const float* xs = &x[s0 + sub * j];
      const float lo = std::min(0.0f, *std::min_element(xs, xs + sub)), hi = *std::max_element(xs, xs + sub);
      float best = INFINITY;
      scales[j] = 0, mins[j] = -lo;
      for (int k = -10; k <= 10; ++k) {
        const float step = (hi - lo) / (nmax + 0.1f * k);
        if (!(step > 0)) continue;
        float err = 0;
        for (int i = 0; i < sub; ++i) {
          const float q = std::clamp(std::round((xs[i] - lo) / step), 0.0f, static_cast<float>(nmax));
          const float e = q * step + lo - xs[i];
          err += absolute ? std::fabs(xs[i]) * std::fabs(e) : e * e;
        }
        if (err < best) best = err, scales[j] = step;
      }
    }
    const float max_scale = *std::max_element(scales, scales + n_sub), max_min = *std::max_element(mins, mins + n_sub);
    const float d = round_f16(max_scale / scale_max), dmin = round_f16(max_min / scale_max);
    for (int j = 0; j < n_sub; ++j) {
      const float sc = d > 0 ? std::min<float>(scale_max, std::round(scales[j] / d)) * d : 0;
      const float mn = dmin > 0 ? std::min<float>(scale_max, std::round(mins[j] / dmin)) * dmin : 0;
      for (int i = 0; i < sub; ++i) {
        const float v = x[s0 + sub * j + i];
        const float q = sc > 0 ? std::clamp(std::round((v + mn) / sc), 0.0f, static_cast<float>(nmax)) : 0;
        y[s0 + sub * j + i] = q * sc - mn;
      }
    }
  }
  return y;
}

// Symmetric K formats (Q3_K: levels -4..3, Q6_K: -32..31): per 16-element
// sub-block the step with the smallest squared error among 19 candidates
// around max / half, then signed sub-block scales of -scale_half..scale_half-1
// steps of the super-block's d.
std::vector<float> baseline_k_symmetric(const std::vector<float>& x, int half, int scale_half) {
  std::vector<float> y(x.size());
  const float h = static_cast<float>(half), sh = static_cast<float>(scale_half);
  for (size_t s0 = 0; s0 < x.size(); s0 += 256) {
    float scales[16];
    for (int j = 0; j < 16; ++j) {
      const float* xs = &x[s0 + 16 * j];
      float max = 0;
      for (int i = 0; i < 16; ++i)
        if (std::fabs(xs[i]) > std::fabs(max)) max = xs[i];
      float best = INFINITY;
      scales[j] = 0;
      for (int k = -9; k <= 9; ++k) {
        const float step = max / -(h + 0.1f * k);
        if (step == 0) continue;
        float err = 0;
        for (int i = 0; i < 16; ++i) {
          const float q = std::clamp(std::round(xs[i] / step), -h, h - 1);
          err += (q * step - xs[i]) * (q * step - xs[i]);
        }
        if (err < best) best = err, scales[j] = step;
      }
    }
    float max_scale = 0;
    for (float s : scales)
      if (std::fabs(s) > std::fabs(max_scale)) max_scale = s;
    const float d = round_f16(max_scale / -sh);
    for (int j = 0; j < 16; ++j) {
      const float sc = d != 0 ? std::clamp(std::round(scales[j] / d), -sh, sh - 1) * d : 0;
      for (int i = 0; i < 16; ++i) {
        const float v = x[s0 + 16 * j + i];
        y[s0 + 16 * j + i] = sc != 0 ? std::clamp(std::round(v / sc), -h, h - 1) * sc : 0;
      }
    }
  }
  return y;
}

// Mean absolute error weighted by |x|: large weights matter most.
double weighted_abs_error(const std::vector<float>& x, const std::vector<float>& y) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += std::fabs(static_cast<double>(x[i])) * std::fabs(static_cast<double>(x[i]) - y[i]);
  return s / static_cast<double>(x.size());
}

double rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (static_cast<double>(x[i]) - y[i]) * (x[i] - y[i]);
  return std::sqrt(s / static_cast<double>(x.size()));
}

// Each quantizer's error within 5 % of its baseline's, measured as the error
// the format's quantizer minimizes: RMS, or for Q2_K the absolute error
// weighted by |x|.
TEST(KernelFormats, QuantizerErrorWithinFivePercentOfBaseline) {
  using Metric = double (*)(const std::vector<float>&, const std::vector<float>&);
  struct Case {
    DType type;
    Baseline baseline;
    Metric error = rms_error;
  };
  const std::vector<Case> cases = {
      {DType::Q4_0, [](const auto& x) { return baseline_symmetric(x, 32, 8); }},
      {DType::Q5_0, [](const auto& x) { return baseline_symmetric(x, 32, 16); }},
      {DType::Q8_0, baseline_q8},
      {DType::Q4_1, [](const auto& x) { return baseline_affine(x, 15); }},
      {DType::Q5_1, [](const auto& x) { return baseline_affine(x, 31); }},
      {DType::Q4_K, [](const auto& x) { return baseline_k_affine(x, 15); }},
      {DType::Q5_K, [](const auto& x) { return baseline_k_affine(x, 31); }},
      {DType::Q2_K, [](const auto& x) { return baseline_k_affine(x, 3, 16, 15, true); }, weighted_abs_error},
      {DType::Q3_K, [](const auto& x) { return baseline_k_symmetric(x, 4, 32); }},
      {DType::Q6_K, [](const auto& x) { return baseline_k_symmetric(x, 32, 128); }},
  };
  const size_t n = 256 * 64;
  for (const auto& [type, baseline, error] : cases) {
    for (int dist = 0; dist < 2; ++dist) {
      const auto x = dist == 0 ? gaussian(n, 99) : testing::heavy_tailed(n, 98);
      std::vector<uint8_t> q(row_bytes(type, n));
      quantize_row(type, x.data(), q.data(), static_cast<int64_t>(n));
      std::vector<float> y(n);
      dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(n));
      const double mine = error(x, y), base = error(x, baseline(x));
      EXPECT_LE(mine, 1.05 * base) << dtype_name(type) << (dist ? " heavy-tailed" : " gaussian") << ": " << mine
                                   << " vs baseline " << base;
      RecordProperty(std::string(dtype_name(type)) + (dist ? "_heavy" : "_gauss") + "_ratio",
                     std::to_string(mine / base));
    }
  }
}

TEST(KernelFormats, ActivationQuantizerErrorMatchesBaseline) {
  // 8-bit activations: round-to-nearest on the amax / 127 grid.
  const size_t n = 4096;
  const auto x = testing::heavy_tailed(n, 5);
  std::vector<float> y(n);
  std::vector<uint8_t> q(row_bytes(DType::Q8_K, n));
  ref::quantize_row_q8_k(x.data(), q.data(), n);
  ref::dequantize_row(DType::Q8_K, q.data(), y.data(), n);
  for (size_t b0 = 0; b0 < n; b0 += 256) {
    float amax = 0;
    for (size_t i = b0; i < b0 + 256; ++i) amax = std::max(amax, std::fabs(x[i]));
    for (size_t i = b0; i < b0 + 256; ++i) ASSERT_LE(std::fabs(y[i] - x[i]), amax / 254 * 1.0001f);
  }
  const auto* blocks = reinterpret_cast<const BlockQ8_K*>(q.data());
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += blocks[0].qs[16 * g + i];
    EXPECT_EQ(blocks[0].bsums[g], sum);
  }
  // The K formats' activation blocks: the same d and qs as GGUF Q8_K, and
  // the sums of 16 and of 32 of every block.
  std::vector<uint8_t> qk(act_row_bytes(ActFormat::q8_k, n));
  ref::quantize_row_q8_k_act(x.data(), qk.data(), n);
  const auto* bk = reinterpret_cast<const BlockQ8_KAct*>(qk.data());
  for (size_t b = 0; b < n / 256; ++b) {
    EXPECT_EQ(bk[b].d, blocks[b].d);
    EXPECT_EQ(0, std::memcmp(bk[b].qs, blocks[b].qs, 256));
    for (int g = 0; g < 16; ++g) EXPECT_EQ(bk[b].bsums[g], blocks[b].bsums[g]);
    for (int j = 0; j < 8; ++j) {
      int sum = 0;
      for (int i = 0; i < 32; ++i) sum += bk[b].qs[32 * j + i];
      EXPECT_EQ(bk[b].bsums32[j], sum) << "block " << b << " group " << j;
    }
  }
  std::vector<uint8_t> qa(act_row_bytes(ActFormat::q8_32, n));
  ref::quantize_row_q8_act(x.data(), qa.data(), n);
  const auto* ba = reinterpret_cast<const BlockQ8Act*>(qa.data());
  for (size_t b = 0; b < n / 32; ++b) {
    int sum = 0;
    float amax = 0;
    for (int i = 0; i < 32; ++i) sum += ba[b].qs[i], amax = std::max(amax, std::fabs(x[32 * b + i]));
    EXPECT_EQ(ba[b].s, static_cast<float>(sum) * ba[b].d);
    EXPECT_EQ(ba[b].d, amax / 127.0f);
    for (int i = 0; i < 32; ++i) ASSERT_LE(std::fabs(ba[b].qs[i] * ba[b].d - x[32 * b + i]), amax / 254 * 1.0001f);
  }
}

TEST(KernelFormats, BadLengthsAndTypesAreErrors) {
  float x[48] = {};
  uint8_t out[256];
  EXPECT_THROW(quantize_row(DType::Q4_0, x, out, 48), Error);
  EXPECT_THROW(quantize_row(DType::Q4_K, x, out, 32), Error);
  EXPECT_THROW(quantize_row(DType::IQ4_NL, x, out, 32), Error);
  EXPECT_THROW(dequantize_row(DType::IQ2_XS, out, x, 256), Error);
  EXPECT_FALSE(can_quantize(DType::IQ4_NL));
  EXPECT_TRUE(can_quantize(DType::Q2_K));
  EXPECT_TRUE(can_dequantize(DType::Q3_K));
}

// ---- dispatch

TEST(KernelDispatch, NamesPathsAndRefusesWhatTheCpuLacks) {
  const auto isas = available_isas();
  ASSERT_FALSE(isas.empty());
  std::string names;
  for (Isa isa : isas) names += " " + std::string(isa_name(isa));
  std::printf("kernel paths on this CPU:%s\n", names.c_str());  // shows in CI logs what was tested
  EXPECT_EQ(isas.front(), Isa::ref);
  EXPECT_EQ(best_isa(), isas.back());
  for (Isa isa : isas) {
    EXPECT_EQ(parse_isa(isa_name(isa)), isa);
    EXPECT_EQ(kernel_table(isa).isa, isa);
  }
  EXPECT_EQ(parse_isa("auto"), best_isa());
  EXPECT_THROW(parse_isa("sse9"), Error);
  // Every path this build knows of but the CPU cannot run is an error, not SIGILL.
  for (Isa isa : {Isa::avx2, Isa::avx512, Isa::avx512_vnni, Isa::neon, Isa::neon_dotprod}) {
    if (std::find(isas.begin(), isas.end(), isa) != isas.end()) continue;
    try {
      kernel_table(isa);
      FAIL() << isa_name(isa) << " should be refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(isa_name(isa))), std::string::npos) << e.what();
    }
  }
  const Isa before = active_kernels().isa;
  set_active_isa(Isa::ref);
  EXPECT_EQ(active_kernels().isa, Isa::ref);
  set_active_isa(before);
}

}  // namespace
}  // namespace slm::kernels
