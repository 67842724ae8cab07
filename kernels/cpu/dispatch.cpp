// Picks the kernel table: from SLM_ISA / set_active_isa(), else the best
// path this CPU can run. A path is only ever returned after the CPU (and OS)
// check, so a forced path the machine lacks is an Error, never SIGILL.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "core/cpu_features.h"
#include "core/fp16.h"
#include "cpu/blocks.h"
#include "cpu/ref/ref.h"
#include "cpu/tables.h"
#include "slm/error.h"

namespace slm::kernels {
namespace {

constexpr Isa kAllIsas[] = {Isa::ref, Isa::avx2, Isa::avx512, Isa::avx512_vnni, Isa::neon, Isa::neon_dotprod};

bool compiled(Isa isa) {
  switch (isa) {
    case Isa::ref: return true;
#if defined(SLM_HAVE_AVX2)
    case Isa::avx2: return true;
#endif
#if defined(SLM_HAVE_AVX512)
    case Isa::avx512:
    case Isa::avx512_vnni: return true;
#endif
#if defined(SLM_HAVE_NEON)
    case Isa::neon:
    case Isa::neon_dotprod: return true;
#endif
    default: return false;
  }
}

bool cpu_runs(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::ref: return true;
    case Isa::avx2: return f.avx2;
    case Isa::avx512: return f.avx512;
    case Isa::avx512_vnni: return f.avx512_vnni;
    case Isa::neon: return f.neon;
    case Isa::neon_dotprod: return f.neon && f.dotprod;
  }
  return false;
}

const KernelTable& table_unchecked(Isa isa) {
  switch (isa) {
#if defined(SLM_HAVE_AVX2)
    case Isa::avx2: return table_avx2();
#endif
#if defined(SLM_HAVE_AVX512)
    case Isa::avx512: return table_avx512();
    case Isa::avx512_vnni: return table_avx512_vnni();
#endif
#if defined(SLM_HAVE_NEON)
    case Isa::neon: return table_neon();
    case Isa::neon_dotprod: return table_neon_dotprod();
#endif
    default: return ref::table();
  }
}

std::mutex g_mutex;
std::atomic<const KernelTable*> g_active{nullptr};

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::ref: return "ref";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512_vnni: return "avx512_vnni";
    case Isa::neon: return "neon";
    case Isa::neon_dotprod: return "neon_dotprod";
  }
  return "?";
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas)
    if (compiled(isa) && cpu_runs(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() { return available_isas().back(); }

const KernelTable& kernel_table(Isa isa) {
  if (!compiled(isa))
    throw Error("kernel path '" + std::string(isa_name(isa)) + "' is not compiled into this build of slm");
  if (!cpu_runs(isa))
    throw Error("kernel path '" + std::string(isa_name(isa)) + "' cannot run on this CPU (" +
                cpu_features().cpu_name + "; it supports: " + cpu_features().summary() + ")");
  return table_unchecked(isa);
}

Isa parse_isa(std::string_view name) {
  if (name == "auto") return best_isa();
  for (Isa isa : kAllIsas)
    if (isa_name(isa) == name) return isa;
  throw Error("unknown kernel path '" + std::string(name) +
              "' (expected auto, ref, avx2, avx512, avx512_vnni, neon or neon_dotprod)");
}

const KernelTable& active_kernels() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (t) return *t;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_active.load()) {
    const char* env = std::getenv("SLM_ISA");
    const Isa isa = (env && *env) ? parse_isa(env) : best_isa();
    g_active.store(&kernel_table(isa), std::memory_order_release);
  }
  return *g_active.load();
}

void set_active_isa(Isa isa) {
  const KernelTable& t = kernel_table(isa);  // validates before switching
  std::lock_guard<std::mutex> lock(g_mutex);
  g_active.store(&t, std::memory_order_release);
}

int64_t act_block_size(ActFormat f) {
  switch (f) {
    case ActFormat::f32: return 1;
    case ActFormat::q8_32: return kQK;
    case ActFormat::q8_k: return kQK_K;
  }
  return 1;
}

size_t act_row_bytes(ActFormat f, int64_t n) {
  switch (f) {
    case ActFormat::f32: return static_cast<size_t>(n) * sizeof(float);
    case ActFormat::q8_32: return static_cast<size_t>(n / kQK) * sizeof(BlockQ8Act);
    case ActFormat::q8_k: return static_cast<size_t>(n / kQK_K) * sizeof(BlockQ8_KAct);
  }
  return 0;
}

std::string_view act_format_name(ActFormat f) {
  switch (f) {
    case ActFormat::f32: return "f32";
    case ActFormat::q8_32: return "8-bit/32";
    case ActFormat::q8_k: return "8-bit/256";
  }
  return "?";
}

void rope_angles(int64_t pos, int n_rot, float base, const float* factors, float attn_factor, float* cos,
                 float* sin) {
  for (int i = 0; i < n_rot / 2; ++i) {
    double theta = static_cast<double>(pos) * std::pow(static_cast<double>(base), -2.0 * i / n_rot);
    if (factors) theta /= factors[i];
    cos[i] = static_cast<float>(std::cos(theta)) * attn_factor;
    sin[i] = static_cast<float>(std::sin(theta)) * attn_factor;
  }
}

bool can_dequantize(DType type) {
  switch (type) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1:
    case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q8_1: case DType::Q2_K:
    case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::Q8_K:
      return true;
    default: return false;
  }
}

void dequantize_row(DType type, const void* src, float* out, int64_t n) { ref::dequantize_row(type, src, out, n); }

bool can_quantize(DType type) {
  switch (type) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1:
    case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q2_K: case DType::Q3_K:
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    default: return false;
  }
}

bool is_kv_type(DType type) { return type == DType::F32 || type == DType::F16 || type == DType::Q8_0; }

size_t kv_row_bytes(DType type, int64_t head_dim) {
  switch (type) {
    case DType::F32: return static_cast<size_t>(head_dim) * sizeof(float);
    case DType::F16: return static_cast<size_t>(head_dim) * sizeof(uint16_t);
    case DType::Q8_0:
      if (head_dim % kQK != 0)
        throw Error("a q8_0 KV cache needs a head size that is a multiple of " + std::to_string(kQK) +
                    " (this model's is " + std::to_string(head_dim) + ")");
      return static_cast<size_t>(head_dim / kQK) * sizeof(BlockQ8_0);
    default: throw Error(std::string(dtype_name(type)) + " is not a KV cache type (f32, f16 or q8_0)");
  }
}

namespace {

// F16 and BF16: 8 rows x 8 elements per 128-byte block (blocks.h half_x8_index).
size_t half_group_bytes(int64_t cols) { return kInterleave * static_cast<size_t>(cols) * sizeof(uint16_t); }

void pack_half(const uint8_t* src, size_t row_bytes, int64_t cols, void* out) {
  auto* dst = static_cast<uint16_t*>(out);
  const int64_t whole = cols / 8 * 8;  // runs of 8 elements, then the tail (half_x8_index)
  for (int k = 0; k < kInterleave; ++k) {
    const auto* row = reinterpret_cast<const uint16_t*>(src + static_cast<size_t>(k) * row_bytes);
    for (int64_t e = 0; e < whole; e += 8) std::memcpy(dst + half_x8_index(cols, k, e), row + e, 16);
    for (int64_t e = whole; e < cols; ++e) dst[half_x8_index(cols, k, e)] = row[e];
  }
}

void unpack_half(const void* packed, int64_t cols, int r, void* out) {
  const auto* src = static_cast<const uint16_t*>(packed);
  auto* dst = static_cast<uint16_t*>(out);
  const int64_t whole = cols / 8 * 8;
  for (int64_t e = 0; e < whole; e += 8) std::memcpy(dst + e, src + half_x8_index(cols, r, e), 16);
  for (int64_t e = whole; e < cols; ++e) dst[e] = src[half_x8_index(cols, r, e)];
}

// Q4_0 / Q8_0 (blocks.h BlockX8<kQBytes>): per 32 elements the 8 rows'
// f16 scales, then their quant bytes 4 per row per 32-byte step.
template <size_t kQBytes>
size_t x8_32_group_bytes(int64_t cols) {
  return static_cast<size_t>(cols / kQK) * kInterleave * (2 + kQBytes);
}

template <size_t kQBytes>
void pack_x8_32(const uint8_t* src, size_t row_bytes, int64_t cols, void* out) {
  constexpr size_t block = 2 + kQBytes, packed = kInterleave * block;
  auto* dst = static_cast<uint8_t*>(out);
  for (int64_t i = 0; i < cols / kQK; ++i) {
    uint8_t* group = dst + static_cast<size_t>(i) * packed;  // d[8], then qs
    for (int k = 0; k < kInterleave; ++k) {
      const uint8_t* b = src + static_cast<size_t>(k) * row_bytes + static_cast<size_t>(i) * block;
      std::memcpy(group + 2 * k, b, 2);
      for (size_t st = 0; st < kQBytes / 4; ++st) std::memcpy(group + 2 * kInterleave + 32 * st + 4 * k, b + 2 + 4 * st, 4);
    }
  }
}

template <size_t kQBytes>
void unpack_x8_32(const void* packed, int64_t cols, int r, void* out) {
  constexpr size_t block = 2 + kQBytes, group_bytes = kInterleave * block;
  const auto* src = static_cast<const uint8_t*>(packed);
  auto* dst = static_cast<uint8_t*>(out);
  for (int64_t i = 0; i < cols / kQK; ++i) {
    const uint8_t* group = src + static_cast<size_t>(i) * group_bytes;
    uint8_t* b = dst + static_cast<size_t>(i) * block;
    std::memcpy(b, group + 2 * r, 2);
    for (size_t st = 0; st < kQBytes / 4; ++st) std::memcpy(b + 2 + 4 * st, group + 2 * kInterleave + 32 * st + 4 * r, 4);
  }
}

// The K formats: one interleaved block (Group) per 256 elements of 8 rows.
template <typename Group>
size_t k_group_bytes(int64_t cols) {
  return static_cast<size_t>(cols / kQK_K) * sizeof(Group);
}

// The inverse of unpack_scale_min_k4: 8 six-bit scales and mins -> 12 bytes.
void pack_scale_min_k4(const uint8_t* sc, const uint8_t* mn, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
}

// Q4_K / Q5_K block i of 8 rows -> its Q4_Kx8 part, and back.
template <typename Block>
void pack_k4_part(const uint8_t* src, size_t row_bytes, int64_t i, BlockQ4_Kx8& g) {
  for (int k = 0; k < kInterleave; ++k) {
    const Block& b = reinterpret_cast<const Block*>(src + static_cast<size_t>(k) * row_bytes)[i];
    g.d[k] = b.d;
    g.dmin[k] = b.dmin;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(j, b.scales, &sc, &mn);
      g.scales[j][k] = sc;
      g.mins[j / 2][k][j % 2] = mn;
    }
    for (int st = 0; st < kQK_K / 8; ++st) std::memcpy(g.qs + 32 * st + 4 * k, b.qs + 4 * st, 4);
  }
}

template <typename Block>
void unpack_k4_part(const BlockQ4_Kx8& g, int r, Block& b) {
  b.d = g.d[r];
  b.dmin = g.dmin[r];
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = g.scales[j][r];
    mn[j] = g.mins[j / 2][r][j % 2];
  }
  pack_scale_min_k4(sc, mn, b.scales);
  for (int st = 0; st < kQK_K / 8; ++st) std::memcpy(b.qs + 4 * st, g.qs + 32 * st + 4 * r, 4);
}

void pack_q4_k(const uint8_t* src, size_t row_bytes, int64_t cols, void* out) {
  auto* dst = static_cast<BlockQ4_Kx8*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i) pack_k4_part<BlockQ4_K>(src, row_bytes, i, dst[i]);
}

void unpack_q4_k(const void* packed, int64_t cols, int r, void* out) {
  const auto* src = static_cast<const BlockQ4_Kx8*>(packed);
  auto* dst = static_cast<BlockQ4_K*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i) unpack_k4_part(src[i], r, dst[i]);
}

void pack_q5_k(const uint8_t* src, size_t row_bytes, int64_t cols, void* out) {
  auto* dst = static_cast<BlockQ5_Kx8*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i) {
    pack_k4_part<BlockQ5_K>(src, row_bytes, i, dst[i].low);
    for (int k = 0; k < kInterleave; ++k) {
      const auto& b = reinterpret_cast<const BlockQ5_K*>(src + static_cast<size_t>(k) * row_bytes)[i];
      for (int t = 0; t < kQK_K / 32; ++t) std::memcpy(dst[i].qh + 32 * t + 4 * k, b.qh + 4 * t, 4);
    }
  }
}

void unpack_q5_k(const void* packed, int64_t cols, int r, void* out) {
  const auto* src = static_cast<const BlockQ5_Kx8*>(packed);
  auto* dst = static_cast<BlockQ5_K*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i) {
    unpack_k4_part(src[i].low, r, dst[i]);
    for (int t = 0; t < kQK_K / 32; ++t) std::memcpy(dst[i].qh + 4 * t, src[i].qh + 32 * t + 4 * r, 4);
  }
}

void pack_q6_k(const uint8_t* src, size_t row_bytes, int64_t cols, void* out) {
  auto* dst = static_cast<BlockQ6_Kx8*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i) {
    BlockQ6_Kx8& g = dst[i];
    for (int k = 0; k < kInterleave; ++k) {
      const auto& b = reinterpret_cast<const BlockQ6_K*>(src + static_cast<size_t>(k) * row_bytes)[i];
      g.d[k] = b.d;
      for (int j = 0; j < kQK_K / 16; ++j) g.scales[j / 2][k][j % 2] = b.scales[j];
      for (int s = 0; s < kQK_K / 8; ++s) std::memcpy(g.ql + 32 * s + 4 * k, b.ql + 4 * s, 4);
      for (int t = 0; t < kQK_K / 16; ++t) std::memcpy(g.qh + 32 * t + 4 * k, b.qh + 4 * t, 4);
    }
  }
}

void unpack_q6_k(const void* packed, int64_t cols, int r, void* out) {
  const auto* src = static_cast<const BlockQ6_Kx8*>(packed);
  auto* dst = static_cast<BlockQ6_K*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i) {
    const BlockQ6_Kx8& g = src[i];
    BlockQ6_K& b = dst[i];
    b.d = g.d[r];
    for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = g.scales[j / 2][r][j % 2];
    for (int s = 0; s < kQK_K / 8; ++s) std::memcpy(b.ql + 4 * s, g.ql + 32 * s + 4 * r, 4);
    for (int t = 0; t < kQK_K / 16; ++t) std::memcpy(b.qh + 4 * t, g.qh + 32 * t + 4 * r, 4);
  }
}

// A row-interleaved layout: the bytes of a group of 8 rows of `cols`
// elements, 8 plain rows (row_bytes apart) -> a group, and one row back.
struct InterleavedLayout {
  size_t (*group_bytes)(int64_t cols);
  void (*pack)(const uint8_t* rows, size_t row_bytes, int64_t cols, void* out);
  void (*unpack)(const void* packed, int64_t cols, int r, void* out);
};

const InterleavedLayout* interleaved_layout(DType type) {
  static constexpr InterleavedLayout kHalf{half_group_bytes, pack_half, unpack_half};
  static constexpr InterleavedLayout kQ4_0{x8_32_group_bytes<kQK / 2>, pack_x8_32<kQK / 2>, unpack_x8_32<kQK / 2>};
  static constexpr InterleavedLayout kQ8_0{x8_32_group_bytes<kQK>, pack_x8_32<kQK>, unpack_x8_32<kQK>};
  static constexpr InterleavedLayout kQ4_K{k_group_bytes<BlockQ4_Kx8>, pack_q4_k, unpack_q4_k};
  static constexpr InterleavedLayout kQ5_K{k_group_bytes<BlockQ5_Kx8>, pack_q5_k, unpack_q5_k};
  static constexpr InterleavedLayout kQ6_K{k_group_bytes<BlockQ6_Kx8>, pack_q6_k, unpack_q6_k};
  switch (type) {
    case DType::F16:
    case DType::BF16: return &kHalf;
    case DType::Q4_0: return &kQ4_0;
    case DType::Q8_0: return &kQ8_0;
    case DType::Q4_K: return &kQ4_K;
    case DType::Q5_K: return &kQ5_K;
    case DType::Q6_K: return &kQ6_K;
    default: return nullptr;
  }
}

const InterleavedLayout& interleaved_layout_of(DType type) {
  const InterleavedLayout* layout = interleaved_layout(type);
  if (!layout) throw Error("no row-interleaved layout for " + std::string(dtype_name(type)));
  return *layout;
}

}  // namespace

bool can_interleave(DType type) { return interleaved_layout(type) != nullptr; }

size_t x8_group_bytes(DType type, int64_t cols) { return interleaved_layout_of(type).group_bytes(cols); }

void pack_rows_x8(DType type, const void* rows, size_t row_bytes, int64_t cols, void* out) {
  interleaved_layout_of(type).pack(static_cast<const uint8_t*>(rows), row_bytes, cols, out);
}

void unpack_row_x8(DType type, const void* packed, int64_t cols, int r, void* out) {
  interleaved_layout_of(type).unpack(packed, cols, r, out);
}

void quantize_row(DType type, const float* x, void* out, int64_t n) {
  switch (type) {
    case DType::F32: std::copy(x, x + n, static_cast<float*>(out)); return;
    case DType::F16: active_kernels().f32_to_f16(x, static_cast<uint16_t*>(out), n); return;
    case DType::BF16: {
      auto* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(x[i]);
      return;
    }
    case DType::Q4_0: return ref::quantize_row_q4_0(x, out, n);
    case DType::Q4_1: return ref::quantize_row_q4_1(x, out, n);
    case DType::Q5_0: return ref::quantize_row_q5_0(x, out, n);
    case DType::Q5_1: return ref::quantize_row_q5_1(x, out, n);
    case DType::Q8_0: return ref::quantize_row_q8_0(x, out, n);
    case DType::Q2_K: return ref::quantize_row_q2_k(x, out, n);
    case DType::Q3_K: return ref::quantize_row_q3_k(x, out, n);
    case DType::Q4_K: return ref::quantize_row_q4_k(x, out, n);
    case DType::Q5_K: return ref::quantize_row_q5_k(x, out, n);
    case DType::Q6_K: return ref::quantize_row_q6_k(x, out, n);
    default: throw Error("quantize: cannot write tensor type " + std::string(dtype_name(type)));
  }
}

}  // namespace slm::kernels
