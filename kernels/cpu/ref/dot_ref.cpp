// Reference dot products, one per weight type, against the activation
// format that type pairs with (kernels.h: TypeKernels::act).
//
// Quantized formats are unpacked to integer levels plus per-group scales, and
// the products are summed in integers per group exactly as the SIMD kernels
// do, so the paths differ only in the order of float additions.
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "cpu/blocks.h"
#include "cpu/ref/ref.h"

namespace slm::kernels::ref {
namespace {

template <typename Load>
float dot_float(int64_t n, Load load_w, const float* x) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(load_w(i)) * x[i];
  return static_cast<float>(sum);
}

template <typename RowDot>
void for_each_col(int nx, const void* x, size_t x_stride, float* out, RowDot row_dot) {
  for (int c = 0; c < nx; ++c) out[c] = row_dot(static_cast<const uint8_t*>(x) + c * x_stride);
}

void dot_f32(int64_t n, const void* w, const void* x, size_t xs, int nx, float* out) {
  const auto* wf = static_cast<const float*>(w);
  for_each_col(nx, x, xs, out, [&](const uint8_t* xc) {
    return dot_float(n, [&](int64_t i) { return wf[i]; }, reinterpret_cast<const float*>(xc));
  });
}

void dot_f16(int64_t n, const void* w, const void* x, size_t xs, int nx, float* out) {
  const auto* wh = static_cast<const uint16_t*>(w);
  for_each_col(nx, x, xs, out, [&](const uint8_t* xc) {
    return dot_float(n, [&](int64_t i) { return f16_to_f32(wh[i]); }, reinterpret_cast<const float*>(xc));
  });
}

void dot_bf16(int64_t n, const void* w, const void* x, size_t xs, int nx, float* out) {
  const auto* wh = static_cast<const uint16_t*>(w);
  for_each_col(nx, x, xs, out, [&](const uint8_t* xc) {
    return dot_float(n, [&](int64_t i) { return bf16_to_f32(wh[i]); }, reinterpret_cast<const float*>(xc));
  });
}

// ---- 32-element formats: integer levels (q - zero point) and d, m per block.

struct Levels32 {
  int8_t q[kQK];
  float d;
  float m;  // added per element (Q4_1 / Q5_1), else 0
};

uint32_t load_qh(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void unpack(const BlockQ4_0& b, Levels32& o) {
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>((b.qs[j] & 0xF) - 8);
    o.q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) - 8);
  }
  o.d = f16_to_f32(b.d);
  o.m = 0;
}
void unpack(const BlockQ4_1& b, Levels32& o) {
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>(b.qs[j] & 0xF);
    o.q[j + 16] = static_cast<int8_t>(b.qs[j] >> 4);
  }
  o.d = f16_to_f32(b.d);
  o.m = f16_to_f32(b.m);
}
void unpack(const BlockQ5_0& b, Levels32& o) {
  const uint32_t qh = load_qh(b.qh);
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>(((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16);
    o.q[j + 16] = static_cast<int8_t>(((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
  }
  o.d = f16_to_f32(b.d);
  o.m = 0;
}
void unpack(const BlockQ5_1& b, Levels32& o) {
  const uint32_t qh = load_qh(b.qh);
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4));
    o.q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
  }
  o.d = f16_to_f32(b.d);
  o.m = f16_to_f32(b.m);
}
void unpack(const BlockQ8_0& b, Levels32& o) {
  std::memcpy(o.q, b.qs, kQK);
  o.d = f16_to_f32(b.d);
  o.m = 0;
}

// Against BlockQ8Act: sum_b d_w * d_x * sum(q_w * q_x) + m_w * s_x, with
// q_w the signed level (zero point already subtracted) and m_w the minimum
// of the formats that have one.
template <typename Block>
void dot_q_act(int64_t n, const void* w, const void* x, size_t xs, int nx, float* out) {
  const auto* wb = static_cast<const Block*>(w);
  for (int c = 0; c < nx; ++c) {
    const auto* xb = reinterpret_cast<const BlockQ8Act*>(static_cast<const uint8_t*>(x) + c * xs);
    float sum = 0;
    for (int64_t i = 0; i < n / kQK; ++i) {
      Levels32 l;
      unpack(wb[i], l);
      int isum = 0;
      for (int j = 0; j < kQK; ++j) isum += l.q[j] * xb[i].qs[j];
      sum += l.d * xb[i].d * static_cast<float>(isum) + l.m * xb[i].s;
    }
    out[c] = sum;
  }
}

// ---- K formats: 256 levels, 16 groups of 16 with an integer scale and min
// each; x ≈ d * scale_g * q - dmin * min_g.

struct LevelsK {
  int8_t q[kQK_K];
  int scale[16];
  int min[16];
  float d, dmin;
};

void unpack(const BlockQ2_K& b, LevelsK& o) {
  int e = 0;
  for (int half = 0; half < 2; ++half)
    for (int shift = 0; shift < 8; shift += 2)
      for (int l = 0; l < 32; ++l) o.q[e++] = static_cast<int8_t>((b.qs[32 * half + l] >> shift) & 3);
  for (int g = 0; g < 16; ++g) {
    o.scale[g] = b.scales[g] & 0xF;
    o.min[g] = b.scales[g] >> 4;
  }
  o.d = f16_to_f32(b.d);
  o.dmin = f16_to_f32(b.dmin);
}
void unpack(const BlockQ3_K& b, LevelsK& o) {
  int e = 0;
  for (int half = 0; half < 2; ++half)
    for (int shift = 0, bit = 4 * half; shift < 8; shift += 2, ++bit)
      for (int l = 0; l < 32; ++l)
        o.q[e++] = static_cast<int8_t>(((b.qs[32 * half + l] >> shift) & 3) - (((b.hmask[l] >> bit) & 1) ? 0 : 4));
  int8_t sc[16];
  unpack_scales_q3_k(b.scales, sc);
  for (int g = 0; g < 16; ++g) {
    o.scale[g] = sc[g];
    o.min[g] = 0;
  }
  o.d = f16_to_f32(b.d);
  o.dmin = 0;
}
void unpack(const BlockQ4_K& b, LevelsK& o) {
  for (int grp = 0; grp < 4; ++grp)
    for (int l = 0; l < 32; ++l) {
      o.q[64 * grp + l] = static_cast<int8_t>(b.qs[32 * grp + l] & 0xF);
      o.q[64 * grp + 32 + l] = static_cast<int8_t>(b.qs[32 * grp + l] >> 4);
    }
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    unpack_scale_min_k4(j, b.scales, &sc, &m);
    o.scale[2 * j] = o.scale[2 * j + 1] = sc;
    o.min[2 * j] = o.min[2 * j + 1] = m;
  }
  o.d = f16_to_f32(b.d);
  o.dmin = f16_to_f32(b.dmin);
}
void unpack(const BlockQ5_K& b, LevelsK& o) {
  for (int grp = 0; grp < 4; ++grp)
    for (int l = 0; l < 32; ++l) {
      const int h = b.qh[l];
      o.q[64 * grp + l] = static_cast<int8_t>((b.qs[32 * grp + l] & 0xF) | (((h >> (2 * grp)) & 1) << 4));
      o.q[64 * grp + 32 + l] = static_cast<int8_t>((b.qs[32 * grp + l] >> 4) | (((h >> (2 * grp + 1)) & 1) << 4));
    }
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    unpack_scale_min_k4(j, b.scales, &sc, &m);
    o.scale[2 * j] = o.scale[2 * j + 1] = sc;
    o.min[2 * j] = o.min[2 * j + 1] = m;
  }
  o.d = f16_to_f32(b.d);
  o.dmin = f16_to_f32(b.dmin);
}
void unpack(const BlockQ6_K& b, LevelsK& o) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b.ql + 64 * half;
    const uint8_t* qh = b.qh + 32 * half;
    int8_t* q = o.q + 128 * half;
    for (int l = 0; l < 32; ++l) {
      q[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
  for (int g = 0; g < 16; ++g) {
    o.scale[g] = b.scales[g];
    o.min[g] = 0;
  }
  o.d = f16_to_f32(b.d);
  o.dmin = 0;
}

// Against Q8_K activations: d_x * (d * sum_g scale_g * sum(q * q_x) - dmin * sum_g min_g * bsum_g).
template <typename Block>
void dot_k_q8_k(int64_t n, const void* w, const void* x, size_t xs, int nx, float* out) {
  const auto* wb = static_cast<const Block*>(w);
  for (int c = 0; c < nx; ++c) {
    const auto* xb = reinterpret_cast<const BlockQ8_KAct*>(static_cast<const uint8_t*>(x) + c * xs);
    float sum = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
      LevelsK l;
      unpack(wb[i], l);
      int scaled = 0, mins = 0;
      for (int g = 0; g < 16; ++g) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) isum += l.q[16 * g + j] * xb[i].qs[16 * g + j];
        scaled += l.scale[g] * isum;
        mins += l.min[g] * xb[i].bsums[g];
      }
      sum += xb[i].d * (l.d * static_cast<float>(scaled) - l.dmin * static_cast<float>(mins));
    }
    out[c] = sum;
  }
}

// Row-interleaved Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K / F16 / BF16: each of the 8 rows back to plain
// blocks, then the plain kernel — the packed kernels' specification is the
// plain one.
template <DType kType, typename Block, DotFn kPlain>
void dot_x8(int64_t n, const void* w, const void* x, size_t xs, int nx, float* out) {
  std::vector<Block> row(static_cast<size_t>(n / traits(kType).block_size));
  for (int r = 0; r < kInterleave; ++r) {
    unpack_row_x8(kType, w, n, r, row.data());
    kPlain(n, row.data(), x, xs, nx, out + r * kMaxDotCols);
  }
}

}  // namespace

void fill_dot_table(KernelTable& t) {
  auto set = [&](DType w, DotFn fn, ActFormat act, ConvertRowFn q) {
    t.types[static_cast<int>(w)] = TypeKernels{fn, act, q};
  };
  set(DType::F32, dot_f32, ActFormat::f32, nullptr);
  set(DType::F16, dot_f16, ActFormat::f32, nullptr);
  set(DType::BF16, dot_bf16, ActFormat::f32, nullptr);
  set(DType::Q4_0, dot_q_act<BlockQ4_0>, ActFormat::q8_32, quantize_row_q8_act);
  set(DType::Q5_0, dot_q_act<BlockQ5_0>, ActFormat::q8_32, quantize_row_q8_act);
  set(DType::Q8_0, dot_q_act<BlockQ8_0>, ActFormat::q8_32, quantize_row_q8_act);
  set(DType::Q4_1, dot_q_act<BlockQ4_1>, ActFormat::q8_32, quantize_row_q8_act);
  set(DType::Q5_1, dot_q_act<BlockQ5_1>, ActFormat::q8_32, quantize_row_q8_act);
  set(DType::Q2_K, dot_k_q8_k<BlockQ2_K>, ActFormat::q8_k, quantize_row_q8_k_act);
  set(DType::Q3_K, dot_k_q8_k<BlockQ3_K>, ActFormat::q8_k, quantize_row_q8_k_act);
  set(DType::Q4_K, dot_k_q8_k<BlockQ4_K>, ActFormat::q8_k, quantize_row_q8_k_act);
  set(DType::Q5_K, dot_k_q8_k<BlockQ5_K>, ActFormat::q8_k, quantize_row_q8_k_act);
  set(DType::Q6_K, dot_k_q8_k<BlockQ6_K>, ActFormat::q8_k, quantize_row_q8_k_act);
  t.types[static_cast<int>(DType::Q4_0)].dot_x8 = dot_x8<DType::Q4_0, BlockQ4_0, dot_q_act<BlockQ4_0>>;
  t.types[static_cast<int>(DType::Q8_0)].dot_x8 = dot_x8<DType::Q8_0, BlockQ8_0, dot_q_act<BlockQ8_0>>;
  t.types[static_cast<int>(DType::Q4_K)].dot_x8 = dot_x8<DType::Q4_K, BlockQ4_K, dot_k_q8_k<BlockQ4_K>>;
  t.types[static_cast<int>(DType::Q5_K)].dot_x8 = dot_x8<DType::Q5_K, BlockQ5_K, dot_k_q8_k<BlockQ5_K>>;
  t.types[static_cast<int>(DType::Q6_K)].dot_x8 = dot_x8<DType::Q6_K, BlockQ6_K, dot_k_q8_k<BlockQ6_K>>;
  t.types[static_cast<int>(DType::F16)].dot_x8 = dot_x8<DType::F16, uint16_t, dot_f16>;
  t.types[static_cast<int>(DType::BF16)].dot_x8 = dot_x8<DType::BF16, uint16_t, dot_bf16>;
}

}  // namespace slm::kernels::ref
