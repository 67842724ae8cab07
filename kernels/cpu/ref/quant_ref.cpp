// Reference dequantizers and quantizers for every GGUF block format slm
// reads or writes. Plain scalar code: this file is the specification. The
// dequantizers and quantizers reproduce the reference engine's float
// operations in the same order — w * l * l is (w * l) * l, not w * (l * l) —
// so results are bit-identical (checked against testdata/dequant.json).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "cpu/blocks.h"
#include "cpu/ref/ref.h"
#include "slm/error.h"

namespace slm::kernels::ref {
namespace {

// ---------------------------------------------------------------------------
// Dequantization, one block at a time (y receives the block's elements).

void dequant_q4_0(const BlockQ4_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((b.qs[j] & 0xF) - 8) * d;
    y[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
  }
}

void dequant_q4_1(const BlockQ4_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(b.qs[j] & 0xF) * d + m;
    y[j + kQK / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
  }
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // little-endian host (GGUF is little-endian; slm targets x86-64 and aarch64)
}

void dequant_q5_0(const BlockQ5_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + kQK / 2] = static_cast<float>(hi - 16) * d;
  }
}

void dequant_q5_1(const BlockQ5_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + kQK / 2] = static_cast<float>(hi) * d + m;
  }
}

void dequant_q8_0(const BlockQ8_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

void dequant_q8_1(const BlockQ8_1& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

void dequant_q2_k(const BlockQ2_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  const uint8_t* q = b.qs;
  int is = 0;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {  // two sub-blocks of 16 share each bit pair
        const uint8_t sc = b.scales[is++];
        const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l)
          *y++ = dl * static_cast<float>((q[l + 16 * part] >> shift) & 3) - ml;
      }
    }
  }
}

void dequant_q3_k(const BlockQ3_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  int8_t scales[16];
  unpack_scales_q3_k(b.scales, scales);
  const uint8_t* q = b.qs;
  uint8_t mask = 1;
  int is = 0;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, mask <<= 1) {
      for (int part = 0; part < 2; ++part) {
        const float dl = d * static_cast<float>(scales[is++]);
        for (int l = 16 * part; l < 16 * part + 16; ++l) {
          const int v = ((q[l] >> shift) & 3) - ((b.hmask[l] & mask) ? 0 : 4);
          *y++ = dl * static_cast<float>(v);
        }
      }
    }
  }
}

void dequant_q4_k(const BlockQ4_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  const uint8_t* q = b.qs;
  for (int g = 0; g < 4; ++g, q += 32) {
    uint8_t sc, m;
    unpack_scale_min_k4(2 * g, b.scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    unpack_scale_min_k4(2 * g + 1, b.scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

void dequant_q5_k(const BlockQ5_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  const uint8_t* ql = b.qs;
  uint8_t u1 = 1, u2 = 2;
  for (int g = 0; g < 4; ++g, ql += 32, u1 <<= 2, u2 <<= 2) {
    uint8_t sc, m;
    unpack_scale_min_k4(2 * g, b.scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    unpack_scale_min_k4(2 * g + 1, b.scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
  }
}

void dequant_q6_k(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  const int8_t* sc = b.scales;
  for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

void dequant_q8_k(const BlockQ8_K& b, float* y) {
  for (int j = 0; j < kQK_K; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
}

template <typename Block, void (*Fn)(const Block&, float*), int kN>
void dequant_blocks(const void* src, float* out, int64_t n) {
  const auto* blocks = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / kN; ++i) Fn(blocks[i], out + i * kN);
}

// ---------------------------------------------------------------------------
// Quantization helpers.

float abs_max(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

// The element of largest magnitude, with its sign (first one on ties).
float signed_max(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

void check_multiple(int64_t n, int block, const char* what) {
  if (n % block != 0)
    throw Error(std::string(what) + ": row length " + std::to_string(n) + " is not a multiple of " +
                std::to_string(block));
}

// Symmetric 8-bit: d = amax / 127, q = round(x / d).
void quantize_q8_block(const float* x, int8_t* q, float* d_out) {
  const float amax = abs_max(x, kQK);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j) q[j] = static_cast<int8_t>(nearest_int(x[j] * id));
  *d_out = d;
}

// Affine fit of one sub-block to levels 0..nmax with a search over the scale:
// x ≈ scale * L - offset, offset >= 0 (the minimum is never above zero, so
// zero stays representable). Each candidate inverse scale assigns levels;
// the weighted least-squares (scale, min) for those levels is solved in
// closed form, and the candidate with the smallest weighted error wins —
// squared, or absolute (Q2_K: with four levels a few outliers would
// otherwise pull the scale). Returns the scale; *offset receives -min.
enum class FitError { squared, absolute };
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* levels, float* offset,
                    float rmin, float rdelta, int nstep, FitError norm = FitError::squared) {
  auto penalty = [norm](float diff) { return norm == FitError::absolute ? std::fabs(diff) : diff * diff; };
  float min = *std::min_element(x, x + n);
  const float max = *std::max_element(x, x + n);
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(levels, levels + n, 0);
    *offset = -min;
    return 0.0f;
  }
  float sum_w = 0, sum_x = 0;
  for (int i = 0; i < n; ++i) {
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_err = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
    levels[i] = static_cast<uint8_t>(l);
    best_err += w[i] * penalty(scale * static_cast<float>(l) + min - x[i]);
  }
  uint8_t trial[kQK_K];
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * static_cast<float>(l);
      sum_l2 += w[i] * static_cast<float>(l) * static_cast<float>(l);
      sum_xl += w[i] * static_cast<float>(l) * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {  // keep zero representable: refit the scale alone
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      err += w[i] * penalty(this_scale * static_cast<float>(trial[i]) + this_min - x[i]);
    }
    if (err < best_err) {
      std::copy(trial, trial + n, levels);
      best_err = err;
      scale = this_scale;
      min = this_min;
    }
  }
  *offset = -min;
  return scale;
}

// Symmetric fit to levels -nmax..nmax-1 weighted by x^2 (large values matter
// most), searching 18 scales around nmax / max. Returns the (signed) scale.
float fit_symmetric(int n, int nmax, const float* x) {
  const float max = signed_max(x, n);
  if (std::fabs(max) < 1e-30f) return 0.0f;
  float best_scale = 0, best = -1;
  for (int step = -9; step <= 9; ++step) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    float sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sum_lx += w * x[i] * static_cast<float>(l);
      sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    // Least-squares scale for these levels; the error drops by sum_lx^2 / sum_l2.
    if (sum_l2 > 0 && (best < 0 || sum_lx * sum_lx > best * sum_l2)) {
      best_scale = sum_lx / sum_l2;
      best = best_scale * sum_lx;
    }
  }
  return best_scale;
}

// Symmetric fit to levels -nmax..nmax-1 weighted by x^2, refined level by
// level (Q3_K, whose 8 levels make each one count): start from the levels of
// nmax / max, then move single levels to where the least-squares scale of the
// others puts them while that lowers the error, up to 5 sweeps. levels
// receives l + nmax (0..2*nmax-1). Returns the (signed) scale.
float fit_symmetric_refined(int n, int nmax, const float* x, uint8_t* levels) {
  const float max = signed_max(x, n);
  if (std::fabs(max) < 1e-15f) {  // all (near) zero: any level gives 0 with scale 0
    std::fill(levels, levels + n, 0);
    return 0.0f;
  }
  const float iscale = -static_cast<float>(nmax) / max;
  int l[kQK_K];
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < n; ++i) {
    l[i] = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    const float w = x[i] * x[i];
    sum_lx += w * x[i] * static_cast<float>(l[i]);
    sum_l2 += w * static_cast<float>(l[i]) * static_cast<float>(l[i]);
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sum_lx - w * x[i] * static_cast<float>(l[i]);
      if (slx <= 0) continue;
      float sl2 = sum_l2 - w * static_cast<float>(l[i]) * static_cast<float>(l[i]);
      const int moved = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (moved == l[i]) continue;
      slx += w * x[i] * static_cast<float>(moved);
      sl2 += w * static_cast<float>(moved) * static_cast<float>(moved);
      // The error falls by sum_lx^2 / sum_l2: keep the move if that grows.
      if (sl2 > 0 && slx * slx * sum_l2 > sum_lx * sum_lx * sl2) {
        l[i] = moved;
        sum_lx = slx;
        sum_l2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) levels[i] = static_cast<uint8_t>(l[i] + nmax);
  return sum_lx / sum_l2;
}

// Packs eight 6-bit scales and mins the way unpack_scale_min_k4 reads them.
void pack_scale_min_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* out) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = ls[j];
      out[j + 4] = lm[j];
    } else {
      out[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      out[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      out[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}

// Shared by Q4_K and Q5_K: per 32-element sub-block fit, 6-bit scale/min
// quantization, then the final levels against the quantized scales.
// levels receives 256 values in 0..nmax.
void quantize_k_superblock(const float* x, int nmax, float rmin, float rdelta, int nstep,
                           uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales_out, uint8_t* levels) {
  float scales[8], mins[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, weights, levels + 32 * j, &mins[j], rmin, rdelta, nstep);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::min(63, nearest_int(inv_scale * scales[j])));
    lm[j] = static_cast<uint8_t>(std::min(63, nearest_int(inv_min * mins[j])));
  }
  std::memset(scales_out, 0, 12);
  pack_scale_min_k4(ls, lm, scales_out);
  *d_out = f32_to_f16(max_scale / 63.0f);
  *dmin_out = f32_to_f16(max_min / 63.0f);
  const float d = f16_to_f32(*d_out), dmin = f16_to_f32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float dl = d * ls[j];
    if (dl == 0.0f) continue;  // keep the fitted levels (all map to -min)
    const float dm = dmin * lm[j];
    for (int l = 0; l < 32; ++l)
      levels[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / dl), 0, nmax));
  }
}

}  // namespace

// ---------------------------------------------------------------------------

void dequantize_row(DType type, const void* src, float* out, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(out, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(h[i]);
      return;
    }
    case DType::BF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::Q4_0: return dequant_blocks<BlockQ4_0, dequant_q4_0, kQK>(src, out, n);
    case DType::Q4_1: return dequant_blocks<BlockQ4_1, dequant_q4_1, kQK>(src, out, n);
    case DType::Q5_0: return dequant_blocks<BlockQ5_0, dequant_q5_0, kQK>(src, out, n);
    case DType::Q5_1: return dequant_blocks<BlockQ5_1, dequant_q5_1, kQK>(src, out, n);
    case DType::Q8_0: return dequant_blocks<BlockQ8_0, dequant_q8_0, kQK>(src, out, n);
    case DType::Q8_1: return dequant_blocks<BlockQ8_1, dequant_q8_1, kQK>(src, out, n);
    case DType::Q2_K: return dequant_blocks<BlockQ2_K, dequant_q2_k, kQK_K>(src, out, n);
    case DType::Q3_K: return dequant_blocks<BlockQ3_K, dequant_q3_k, kQK_K>(src, out, n);
    case DType::Q4_K: return dequant_blocks<BlockQ4_K, dequant_q4_k, kQK_K>(src, out, n);
    case DType::Q5_K: return dequant_blocks<BlockQ5_K, dequant_q5_k, kQK_K>(src, out, n);
    case DType::Q6_K: return dequant_blocks<BlockQ6_K, dequant_q6_k, kQK_K>(src, out, n);
    case DType::Q8_K: return dequant_blocks<BlockQ8_K, dequant_q8_k, kQK_K>(src, out, n);
    default: throw Error("dequantize: unsupported tensor type " + std::string(dtype_name(type)));
  }
}

void quantize_row_q8_0(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK, "Q8_0");
  auto* b = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d;
    quantize_q8_block(x + i * kQK, b[i].qs, &d);
    b[i].d = f32_to_f16(d);
  }
}

void quantize_row_q8_act(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK, "8-bit activations");
  auto* b = static_cast<BlockQ8Act*>(out);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d;
    quantize_q8_block(x + i * kQK, b[i].qs, &d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += b[i].qs[j];
    b[i].d = d;
    b[i].s = static_cast<float>(sum) * d;
  }
}

// One Q8_K block's d, qs and 16-element sums (BlockQ8_K and BlockQ8_KAct
// begin alike).
template <typename Block>
void quantize_q8_k_block(const float* xb, Block& b) {
  const float amax = abs_max(xb, kQK_K);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = d;
  for (int j = 0; j < kQK_K; ++j) b.qs[j] = static_cast<int8_t>(nearest_int(xb[j] * id));
  for (int g = 0; g < kQK_K / 16; ++g) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
    b.bsums[g] = static_cast<int16_t>(sum);
  }
}

void quantize_row_q8_k(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK_K, "Q8_K");
  auto* b = static_cast<BlockQ8_K*>(out);
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q8_k_block(x + i * kQK_K, b[i]);
}

void quantize_row_q8_k_act(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK_K, "Q8_K");
  auto* b = static_cast<BlockQ8_KAct*>(out);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_q8_k_block(x + i * kQK_K, b[i]);
    for (int j = 0; j < kQK_K / 32; ++j) {
      int sum = 0;
      for (int e = 0; e < 32; ++e) sum += b[i].qs[32 * j + e];
      b[i].bsums32[j] = static_cast<int16_t>(sum);
    }
  }
}

void quantize_row_q4_0(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK, "Q4_0");
  auto* b = static_cast<BlockQ4_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* xb = x + i * kQK;
    // The largest magnitude maps to level 0 (-8): one more level on its side.
    const float d = signed_max(xb, kQK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::clamp(nearest_int(xb[j] * id) + 8, 0, 15);
      const int hi = std::clamp(nearest_int(xb[j + kQK / 2] * id) + 8, 0, 15);
      b[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void quantize_row_q4_1(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK, "Q4_1");
  auto* b = static_cast<BlockQ4_1*>(out);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* xb = x + i * kQK;
    const float min = *std::min_element(xb, xb + kQK), max = *std::max_element(xb, xb + kQK);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::clamp(nearest_int((xb[j] - min) * id), 0, 15);
      const int hi = std::clamp(nearest_int((xb[j + kQK / 2] - min) * id), 0, 15);
      b[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void quantize_row_q5_0(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK, "Q5_0");
  auto* b = static_cast<BlockQ5_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* xb = x + i * kQK;
    const float d = signed_max(xb, kQK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::clamp(nearest_int(xb[j] * id) + 16, 0, 31);
      const int hi = std::clamp(nearest_int(xb[j + kQK / 2] * id) + 16, 0, 31);
      b[i].qs[j] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

void quantize_row_q5_1(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK, "Q5_1");
  auto* b = static_cast<BlockQ5_1*>(out);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* xb = x + i * kQK;
    const float min = *std::min_element(xb, xb + kQK), max = *std::max_element(xb, xb + kQK);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::clamp(nearest_int((xb[j] - min) * id), 0, 31);
      const int hi = std::clamp(nearest_int((xb[j + kQK / 2] - min) * id), 0, 31);
      b[i].qs[j] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

// Four 2-bit levels of 16 elements: byte j of each 32-byte half holds
// element j of four 32-element groups, lowest bits first.
void pack_2bit_levels(const uint8_t* levels, uint8_t* qs) {
  for (int half = 0; half < 2; ++half)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* lv = levels + 128 * half + l;
      qs[32 * half + l] = static_cast<uint8_t>(lv[0] | (lv[32] << 2) | (lv[64] << 4) | (lv[96] << 6));
    }
}

void quantize_row_q2_k(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK_K, "Q2_K");
  auto* b = static_cast<BlockQ2_K*>(out);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* xb = x + i * kQK_K;
    uint8_t levels[kQK_K];
    float scales[16], mins[16], weights[16];
    float max_scale = 0, max_min = 0;
    for (int s = 0; s < 16; ++s) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(xb[16 * s + l]);
      scales[s] = fit_scale_min(16, 3, xb + 16 * s, weights, levels + 16 * s, &mins[s], -0.5f, 0.1f, 15,
                                FitError::absolute);
      max_scale = std::max(max_scale, scales[s]);
      max_min = std::max(max_min, mins[s]);
    }
    // 4-bit sub-block scales (low nibble) and mins (high nibble) against the
    // super-block's f16 d and dmin.
    std::memset(b[i].scales, 0, sizeof b[i].scales);
    b[i].d = b[i].dmin = 0;
    if (max_scale > 0) {
      const float iscale = 15.0f / max_scale;
      for (int s = 0; s < 16; ++s) b[i].scales[s] = static_cast<uint8_t>(nearest_int(iscale * scales[s]));
      b[i].d = f32_to_f16(max_scale / 15.0f);
    }
    if (max_min > 0) {
      const float iscale = 15.0f / max_min;
      for (int s = 0; s < 16; ++s) b[i].scales[s] |= static_cast<uint8_t>(nearest_int(iscale * mins[s]) << 4);
      b[i].dmin = f32_to_f16(max_min / 15.0f);
    }
    for (int s = 0; s < 16; ++s) {
      const float d = f16_to_f32(b[i].d) * static_cast<float>(b[i].scales[s] & 0xF);
      if (d == 0.0f) continue;  // keep the fitted levels
      const float dm = f16_to_f32(b[i].dmin) * static_cast<float>(b[i].scales[s] >> 4);
      for (int l = 0; l < 16; ++l)
        levels[16 * s + l] = static_cast<uint8_t>(std::clamp(nearest_int((xb[16 * s + l] + dm) / d), 0, 3));
    }
    pack_2bit_levels(levels, b[i].qs);
  }
}

void quantize_row_q3_k(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK_K, "Q3_K");
  auto* b = static_cast<BlockQ3_K*>(out);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* xb = x + i * kQK_K;
    uint8_t levels[kQK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int s = 0; s < 16; ++s) {
      scales[s] = fit_symmetric_refined(16, 4, xb + 16 * s, levels + 16 * s);
      if (std::fabs(scales[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    // 6-bit signed sub-block scales, stored + 32: low nibbles in scales[0..7]
    // (two per byte), the top two bits four to a byte in scales[8..11].
    std::memset(b[i].scales, 0, sizeof b[i].scales);
    b[i].d = 0;
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
      for (int s = 0; s < 16; ++s) {
        const int l = std::clamp(nearest_int(iscale * scales[s]), -32, 31) + 32;
        if (s < 8) b[i].scales[s] = static_cast<uint8_t>(l & 0xF);
        else b[i].scales[s - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        b[i].scales[8 + s % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (s / 4)));
      }
      b[i].d = f32_to_f16(1.0f / iscale);
    }
    int8_t sc[16];
    unpack_scales_q3_k(b[i].scales, sc);
    for (int s = 0; s < 16; ++s) {
      const float d = f16_to_f32(b[i].d) * static_cast<float>(sc[s]);
      if (d == 0.0f) continue;  // keep the fitted levels
      for (int l = 0; l < 16; ++l)
        levels[16 * s + l] = static_cast<uint8_t>(std::clamp(nearest_int(xb[16 * s + l] / d), -4, 3) + 4);
    }
    // The third bit: element j's in bit j / 32 of hmask[j % 32].
    std::memset(b[i].hmask, 0, sizeof b[i].hmask);
    for (int j = 0; j < kQK_K; ++j) {
      if (levels[j] > 3) {
        b[i].hmask[j % 32] |= static_cast<uint8_t>(1 << (j / 32));
        levels[j] -= 4;
      }
    }
    pack_2bit_levels(levels, b[i].qs);
  }
}

void quantize_row_q4_k(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK_K, "Q4_K");
  auto* b = static_cast<BlockQ4_K*>(out);
  uint8_t levels[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_k_superblock(x + i * kQK_K, 15, -1.0f, 0.1f, 20, &b[i].d, &b[i].dmin, b[i].scales, levels);
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l)
        b[i].qs[32 * g + l] = static_cast<uint8_t>(levels[64 * g + l] | (levels[64 * g + 32 + l] << 4));
  }
}

void quantize_row_q5_k(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK_K, "Q5_K");
  auto* b = static_cast<BlockQ5_K*>(out);
  uint8_t levels[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_k_superblock(x + i * kQK_K, 31, -0.5f, 0.1f, 15, &b[i].d, &b[i].dmin, b[i].scales, levels);
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int g = 0; g < 4; ++g) {
      for (int l = 0; l < 32; ++l) {
        const int lo = levels[64 * g + l], hi = levels[64 * g + 32 + l];
        b[i].qs[32 * g + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
      }
    }
  }
}

void quantize_row_q6_k(const float* x, void* out, int64_t n) {
  check_multiple(n, kQK_K, "Q6_K");
  auto* b = static_cast<BlockQ6_K*>(out);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* xb = x + i * kQK_K;
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int s = 0; s < 16; ++s) {
      scales[s] = fit_symmetric(16, 32, xb + 16 * s);
      if (std::fabs(scales[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    std::memset(&b[i], 0, sizeof(BlockQ6_K));
    if (max_abs_scale == 0.0f) continue;  // all zero: d = 0 makes every element 0
    const float iscale = -128.0f / max_scale;
    b[i].d = f32_to_f16(1.0f / iscale);
    for (int s = 0; s < 16; ++s)
      b[i].scales[s] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[s])));
    const float d = f16_to_f32(b[i].d);
    uint8_t levels[kQK_K];
    for (int s = 0; s < 16; ++s) {
      const float ds = d * b[i].scales[s];
      for (int l = 0; l < 16; ++l) {
        const int q = ds != 0.0f ? std::clamp(nearest_int(xb[16 * s + l] / ds), -32, 31) : 0;
        levels[16 * s + l] = static_cast<uint8_t>(q + 32);
      }
    }
    for (int half = 0; half < 2; ++half) {
      const uint8_t* lv = levels + 128 * half;
      uint8_t* ql = b[i].ql + 64 * half;
      uint8_t* qh = b[i].qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        const int q1 = lv[l], q2 = lv[l + 32], q3 = lv[l + 64], q4 = lv[l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

}  // namespace slm::kernels::ref
