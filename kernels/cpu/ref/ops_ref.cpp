// Reference elementwise ops, norms, RoPE and attention: plain loops in the
// order the math is written in (../shared/docs/model-math.md).
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "cpu/blocks.h"
#include "cpu/ref/ref.h"

namespace slm::kernels::ref {
namespace {

void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  double sum_sq = 0;
  for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void softmax(float* x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

float silu1(float t) { return t / (1.0f + std::exp(-t)); }

float gelu1(float t) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * t * (1.0f + std::tanh(kSqrt2OverPi * (t + 0.044715f * t * t * t)));
}

void silu(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = silu1(x[i]);
}
void gelu(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu1(x[i]);
}
void swiglu(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = silu1(g[i]) * u[i];
}
void geglu(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu1(g[i]) * u[i];
}
void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}
void scale(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}
void softcap(float* x, float cap, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void rope(float* x, int n_heads, int head_dim, int n_rot, const float* cos, const float* sin, bool neox) {
  const int half = n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      // NeoX pairs dim i with i + n_rot/2; the original (GPT-J) layout pairs 2i with 2i+1.
      const int ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
      const float a = v[ia], b = v[ib];
      v[ia] = a * cos[i] - b * sin[i];
      v[ib] = a * sin[i] + b * cos[i];
    }
  }
}

// Element d of a cached K/V row of type F32, F16 or Q8_0 (blocks of 32
// along the head: the int8 times the block's f16 scale — exact in f32).
float load_kv(DType type, const uint8_t* row, int d) {
  switch (type) {
    case DType::F32: return reinterpret_cast<const float*>(row)[d];
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[d]);
    default: {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + d / kQK;
      return static_cast<float>(b->qs[d % kQK]) * f16_to_f32(b->d);
    }
  }
}

// The specification: each row on its own, softmax over all of its keys at
// once, then the weighted sum of the values.
void attention(const AttentionArgs& a) {
  for (int r = 0; r < a.n_rows; ++r) {
    const int64_t first = a.first[r], n = a.last[r] - first + 1;
    auto key = [&](int64_t j) { return static_cast<const uint8_t*>(a.k) + (a.ring > 0 ? j % a.ring : j) * a.k_row_bytes; };
    auto value = [&](int64_t j) { return static_cast<const uint8_t*>(a.v) + (a.ring > 0 ? j % a.ring : j) * a.v_row_bytes; };
    std::vector<float> w(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      float s = 0;
      for (int d = 0; d < a.head_dim; ++d) s += a.q[r][d] * load_kv(a.k_type, key(first + j), d);
      s *= a.scale;
      if (a.softcap > 0) s = a.softcap * std::tanh(s / a.softcap);
      w[static_cast<size_t>(j)] = s;
    }
    softmax(w.data(), n);
    float* out = a.out[r];
    for (int d = 0; d < a.head_dim; ++d) out[d] = 0;
    for (int64_t j = 0; j < n; ++j)
      for (int d = 0; d < a.head_dim; ++d) out[d] += w[static_cast<size_t>(j)] * load_kv(a.v_type, value(first + j), d);
  }
}

void store_kv(DType type, const float* x, void* out, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float)); break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(out)[i] = f32_to_f16(x[i]);
      break;
    default: quantize_row_q8_0(x, out, n);
  }
}

float read_sum(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

void to_f16(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16(x[i]);
}

KernelTable make_table() {
  KernelTable t;
  t.isa = Isa::ref;
  fill_dot_table(t);
  t.rmsnorm = rmsnorm;
  t.softmax = softmax;
  t.silu = silu;
  t.gelu = gelu;
  t.swiglu = swiglu;
  t.geglu = geglu;
  t.add = add;
  t.scale = scale;
  t.softcap = softcap;
  t.rope = rope;
  t.attention = attention;
  t.store_kv = store_kv;
  t.f32_to_f16 = to_f16;
  t.read_sum = read_sum;
  return t;
}

}  // namespace

const KernelTable& table() {
  static const KernelTable t = make_table();
  return t;
}

}  // namespace slm::kernels::ref
