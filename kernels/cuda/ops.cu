// The CUDA kernels (ops.h says what each computes). Weight rows are read in
// segments of 32 elements: every format dequantizes one segment into
// registers (Segment<T>::load), and the matmul, the embedding and the
// dequantizer are written once over that.
#include <cuda_fp16.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "cpu/blocks.h"
#include "cuda/ops.h"

namespace slm::kernels::cuda {
namespace {

constexpr int kSeg = 32;  // elements per segment

// Overlapped launches (programmatic dependent launch, compute capability
// 9.0+): a kernel may be launched while the one before it in the stream is
// still running. Every kernel here first waits for the previous kernel's
// results (after_previous), then lets the next one launch; so what overlaps
// is a launch and its blocks' setup with the previous kernel's tail — about
// a microsecond per kernel, which at ~15 kernels per layer is much of a
// small model's decode step. SLM_CUDA_PDL=0 turns it off.
__device__ __forceinline__ void after_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaGridDependencySynchronize();
  cudaTriggerProgrammaticLaunchCompletion();
#endif
}

bool overlap_launches() {
  static const bool on = [] {
    const char* env = std::getenv("SLM_CUDA_PDL");
    if (env != nullptr && std::string_view(env) == "0") return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    return major >= 9;
  }();
  return on;
}

// kernel<<<grid, block, shared, stream>>>(args...), overlapped where the GPU can.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute overlap[1];
  overlap[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = overlap;
  config.numAttrs = overlap_launches() ? 1 : 0;
  cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

__device__ __forceinline__ float f16(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
__device__ __forceinline__ float bf16(uint16_t bits) { return __uint_as_float(static_cast<uint32_t>(bits) << 16); }
// a * b + c and a * b - c rounded twice, never fused into one FMA: the
// reference dequantizers are compiled with -ffp-contract=off and the
// dequantized values must be bit-identical to theirs.
__device__ __forceinline__ float mul_add(float a, float b, float c) { return __fadd_rn(__fmul_rn(a, b), c); }
__device__ __forceinline__ float mul_sub(float a, float b, float c) { return __fsub_rn(__fmul_rn(a, b), c); }

// N bytes at p (N a multiple of 4) as little-endian words, read with the
// widest loads p's alignment allows: a warp's lanes then fetch their blocks
// in a few wide loads instead of one load per byte.
template <int N>
__device__ __forceinline__ void load_words(const uint8_t* p, uint32_t* q) {
  const auto at = reinterpret_cast<uintptr_t>(p);
  if (N % 16 == 0 && (at & 15) == 0) {
#pragma unroll
    for (int i = 0; i < N / 16; ++i) {
      const uint4 v = reinterpret_cast<const uint4*>(p)[i];
      q[4 * i] = v.x, q[4 * i + 1] = v.y, q[4 * i + 2] = v.z, q[4 * i + 3] = v.w;
    }
  } else if ((at & 3) == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) q[i] = reinterpret_cast<const uint32_t*>(p)[i];
  } else if ((at & 1) == 0) {
    const auto* h = reinterpret_cast<const uint16_t*>(p);
#pragma unroll
    for (int i = 0; i < N / 4; ++i) q[i] = h[2 * i] | (static_cast<uint32_t>(h[2 * i + 1]) << 16);
  } else {
#pragma unroll
    for (int i = 0; i < N / 4; ++i)
      q[i] = p[4 * i] | (static_cast<uint32_t>(p[4 * i + 1]) << 8) | (static_cast<uint32_t>(p[4 * i + 2]) << 16) |
             (static_cast<uint32_t>(p[4 * i + 3]) << 24);
  }
}

// Byte k of words loaded by load_words.
__device__ __forceinline__ int byte_of(const uint32_t* q, int k) { return static_cast<int>((q[k >> 2] >> (8 * (k & 3))) & 0xFF); }
__device__ __forceinline__ uint16_t half_of(const uint32_t* q, int k) { return static_cast<uint16_t>(q[k >> 1] >> (16 * (k & 1))); }

// ---------------------------------------------------------------------------
// Device rows (ops.h, device_row_bytes): a 32-element format's block fields
// as arrays, in the order split_fields lists them — the quants first, then
// the rest. Each array starts on 16 bytes, so block i's quants are one or
// two aligned 16-byte loads at row + quant_bytes * i.

struct Field {
  int offset, bytes;  // in the file's block struct
};
struct SplitFields {
  int block_bytes = 0, count = 0;  // count 0: the format keeps the file's layout
  Field field[3] = {};
};

__host__ __device__ constexpr SplitFields split_fields(DType t) {
  switch (t) {
    case DType::Q4_0:
      return {sizeof(BlockQ4_0), 2, {{offsetof(BlockQ4_0, qs), 16}, {offsetof(BlockQ4_0, d), 2}}};
    case DType::Q4_1:  // d and m as one 4-byte field
      return {sizeof(BlockQ4_1), 2, {{offsetof(BlockQ4_1, qs), 16}, {offsetof(BlockQ4_1, d), 4}}};
    case DType::Q5_0:
      return {sizeof(BlockQ5_0), 3,
              {{offsetof(BlockQ5_0, qs), 16}, {offsetof(BlockQ5_0, qh), 4}, {offsetof(BlockQ5_0, d), 2}}};
    case DType::Q5_1:
      return {sizeof(BlockQ5_1), 3,
              {{offsetof(BlockQ5_1, qs), 16}, {offsetof(BlockQ5_1, qh), 4}, {offsetof(BlockQ5_1, d), 4}}};
    case DType::Q8_0:
      return {sizeof(BlockQ8_0), 2, {{offsetof(BlockQ8_0, qs), 32}, {offsetof(BlockQ8_0, d), 2}}};
    default: return {};
  }
}

__host__ __device__ constexpr int64_t round16(int64_t bytes) { return (bytes + 15) / 16 * 16; }

// Where field j's array starts in a device row of nb blocks (j = count: the row's size).
__host__ __device__ constexpr int64_t field_start(const SplitFields& f, int j, int64_t nb) {
  int64_t at = 0;
  for (int i = 0; i < j; ++i) at += round16(nb * f.field[i].bytes);
  return at;
}

// Field j of block i in a device row of nb blocks.
template <DType T, int j>
__device__ __forceinline__ const uint8_t* field(const uint8_t* row, int64_t nb, int64_t i) {
  constexpr SplitFields f = split_fields(T);
  static_assert(j < f.count, "the format has no such field");
  return row + field_start(f, j, nb) + i * f.field[j].bytes;
}

// 16 bytes at a 16-byte aligned p as four words.
__device__ __forceinline__ void load16(const uint8_t* p, uint32_t* q) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  q[0] = v.x, q[1] = v.y, q[2] = v.z, q[3] = v.w;
}
__device__ __forceinline__ uint32_t load_u32(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

// Segment<T>::load(row, s, K, w): elements [32 s, 32 s + 32) of a device row
// of K elements into w (elements at or past K, only possible for the float
// types, read as 0). The arithmetic is the reference dequantizer's
// (kernels/cpu/ref/quant_ref.cpp), in the same order.
template <DType T>
struct Segment;

template <>
struct Segment<DType::F32> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) {
    const auto* p = reinterpret_cast<const float*>(row);
    if (s * kSeg + kSeg <= K) {
      uint32_t q[kSeg];
      load_words<kSeg * 4>(row + s * kSeg * 4, q);
#pragma unroll
      for (int i = 0; i < kSeg; ++i) w[i] = __uint_as_float(q[i]);
      return;
    }
#pragma unroll
    for (int i = 0; i < kSeg; ++i) w[i] = s * kSeg + i < K ? p[s * kSeg + i] : 0.0f;
  }
};

template <float (*Convert)(uint16_t)>
__device__ __forceinline__ void load_halves(const uint8_t* row, int64_t s, int64_t K, float* w) {
  if (s * kSeg + kSeg <= K) {
    uint32_t q[kSeg / 2];
    load_words<kSeg * 2>(row + s * kSeg * 2, q);
#pragma unroll
    for (int i = 0; i < kSeg; ++i) w[i] = Convert(half_of(q, i));
    return;
  }
  const auto* p = reinterpret_cast<const uint16_t*>(row);
#pragma unroll
  for (int i = 0; i < kSeg; ++i) w[i] = s * kSeg + i < K ? Convert(p[s * kSeg + i]) : 0.0f;
}

template <>
struct Segment<DType::F16> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) { load_halves<f16>(row, s, K, w); }
};

template <>
struct Segment<DType::BF16> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) { load_halves<bf16>(row, s, K, w); }
};

template <>
struct Segment<DType::Q4_0> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) {
    constexpr DType T = DType::Q4_0;
    const int64_t nb = K / kQK;
    const float d = f16(load_u16(field<T, 1>(row, nb, s)));
    uint32_t q[4];
    load16(field<T, 0>(row, nb, s), q);
#pragma unroll
    for (int j = 0; j < kQK / 2; ++j) {
      w[j] = static_cast<float>((byte_of(q, j) & 0xF) - 8) * d;
      w[j + kQK / 2] = static_cast<float>((byte_of(q, j) >> 4) - 8) * d;
    }
  }
};

template <>
struct Segment<DType::Q4_1> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) {
    constexpr DType T = DType::Q4_1;
    const int64_t nb = K / kQK;
    const uint32_t dm = load_u32(field<T, 1>(row, nb, s));
    const float d = f16(static_cast<uint16_t>(dm)), m = f16(static_cast<uint16_t>(dm >> 16));
    uint32_t q[4];
    load16(field<T, 0>(row, nb, s), q);
#pragma unroll
    for (int j = 0; j < kQK / 2; ++j) {
      w[j] = mul_add(static_cast<float>(byte_of(q, j) & 0xF), d, m);
      w[j + kQK / 2] = mul_add(static_cast<float>(byte_of(q, j) >> 4), d, m);
    }
  }
};

template <>
struct Segment<DType::Q5_0> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) {
    constexpr DType T = DType::Q5_0;
    const int64_t nb = K / kQK;
    const float d = f16(load_u16(field<T, 2>(row, nb, s)));
    const uint32_t qh = load_u32(field<T, 1>(row, nb, s));
    uint32_t q[4];
    load16(field<T, 0>(row, nb, s), q);
#pragma unroll
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (byte_of(q, j) & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int hi = (byte_of(q, j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      w[j] = static_cast<float>(lo - 16) * d;
      w[j + kQK / 2] = static_cast<float>(hi - 16) * d;
    }
  }
};

template <>
struct Segment<DType::Q5_1> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) {
    constexpr DType T = DType::Q5_1;
    const int64_t nb = K / kQK;
    const uint32_t dm = load_u32(field<T, 2>(row, nb, s));
    const float d = f16(static_cast<uint16_t>(dm)), m = f16(static_cast<uint16_t>(dm >> 16));
    const uint32_t qh = load_u32(field<T, 1>(row, nb, s));
    uint32_t q[4];
    load16(field<T, 0>(row, nb, s), q);
#pragma unroll
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (byte_of(q, j) & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int hi = (byte_of(q, j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      w[j] = mul_add(static_cast<float>(lo), d, m);
      w[j + kQK / 2] = mul_add(static_cast<float>(hi), d, m);
    }
  }
};

template <>
struct Segment<DType::Q8_0> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t K, float* w) {
    constexpr DType T = DType::Q8_0;
    const int64_t nb = K / kQK;
    const float d = f16(load_u16(field<T, 1>(row, nb, s)));
    uint32_t q[8];
    load16(field<T, 0>(row, nb, s), q);
    load16(field<T, 0>(row, nb, s) + 16, q + 4);
#pragma unroll
    for (int j = 0; j < kQK; ++j) w[j] = static_cast<float>(static_cast<int8_t>(byte_of(q, j))) * d;
  }
};

// The K formats: segment s is part k = s % 8 of super-block s / 8.

template <>
struct Segment<DType::Q2_K> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t, float* w) {
    const auto& b = reinterpret_cast<const BlockQ2_K*>(row)[s / 8];
    const int k = static_cast<int>(s % 8), half = k / 4, shift = 2 * (k % 4);
    const float d = f16(b.d), dmin = f16(b.dmin);
    uint32_t q[8];
    load_words<32>(b.qs + 32 * half, q);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const uint8_t sc = b.scales[half * 8 + (k % 4) * 2 + l / 16];
      const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
      w[l] = mul_sub(dl, static_cast<float>((byte_of(q, l) >> shift) & 3), ml);
    }
  }
};

template <>
struct Segment<DType::Q3_K> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t, float* w) {
    const auto& b = reinterpret_cast<const BlockQ3_K*>(row)[s / 8];
    const int k = static_cast<int>(s % 8), half = k / 4, shift = 2 * (k % 4);
    const uint32_t mask = 1u << (4 * half + k % 4);
    const float d = f16(b.d);
    int8_t scales[16];
    unpack_scales_q3_k(b.scales, scales);
    uint32_t q[8], hm[8];
    load_words<32>(b.qs + 32 * half, q);
    load_words<32>(b.hmask, hm);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const float dl = d * static_cast<float>(scales[half * 8 + (k % 4) * 2 + l / 16]);
      const int v = ((byte_of(q, l) >> shift) & 3) - ((byte_of(hm, l) & mask) ? 0 : 4);
      w[l] = dl * static_cast<float>(v);
    }
  }
};

template <>
struct Segment<DType::Q4_K> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t, float* w) {
    const auto& b = reinterpret_cast<const BlockQ4_K*>(row)[s / 8];
    const int k = static_cast<int>(s % 8), shift = 4 * (k % 2);
    const float d = f16(b.d), dmin = f16(b.dmin);
    uint8_t sc, m;
    unpack_scale_min_k4(k, b.scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    uint32_t q[8];
    load_words<32>(b.qs + 32 * (k / 2), q);
#pragma unroll
    for (int l = 0; l < 32; ++l) w[l] = mul_sub(d1, static_cast<float>((byte_of(q, l) >> shift) & 0xF), m1);
  }
};

template <>
struct Segment<DType::Q5_K> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t, float* w) {
    const auto& b = reinterpret_cast<const BlockQ5_K*>(row)[s / 8];
    const int k = static_cast<int>(s % 8), shift = 4 * (k % 2);
    const float d = f16(b.d), dmin = f16(b.dmin);
    uint8_t sc, m;
    unpack_scale_min_k4(k, b.scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    uint32_t q[8], qh[8];
    load_words<32>(b.qs + 32 * (k / 2), q);
    load_words<32>(b.qh, qh);
    const int bit = 1 << k;
#pragma unroll
    for (int l = 0; l < 32; ++l)
      w[l] = mul_sub(d1, static_cast<float>(((byte_of(q, l) >> shift) & 0xF) + ((byte_of(qh, l) & bit) ? 16 : 0)), m1);
  }
};

template <>
struct Segment<DType::Q6_K> {
  __device__ static void load(const uint8_t* row, int64_t s, int64_t, float* w) {
    const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[s / 8];
    const int k = static_cast<int>(s % 8), half = k / 4, r = k % 4;
    const float d = f16(b.d);
    uint32_t ql[8], qh[8];
    load_words<32>(b.ql + 64 * half + 32 * (r & 1), ql);
    load_words<32>(b.qh + 32 * half, qh);
    const int8_t* sc = b.scales + 8 * half + 2 * r;
    const int lshift = 4 * (r >> 1), hshift = 2 * r;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int q = (((byte_of(ql, l) >> lshift) & 0xF) | (((byte_of(qh, l) >> hshift) & 3) << 4)) - 32;
      w[l] = d * static_cast<float>(sc[l / 16]) * static_cast<float>(q);
    }
  }
};

// Runs launch.run<T>() for the runtime type; false when the type has no
// Segment (the launcher structs below carry each kernel's arguments).
template <typename Launch>
bool with_type(DType type, const Launch& launch) {
  switch (type) {
    case DType::F32: launch.template run<DType::F32>(); return true;
    case DType::F16: launch.template run<DType::F16>(); return true;
    case DType::BF16: launch.template run<DType::BF16>(); return true;
    case DType::Q4_0: launch.template run<DType::Q4_0>(); return true;
    case DType::Q4_1: launch.template run<DType::Q4_1>(); return true;
    case DType::Q5_0: launch.template run<DType::Q5_0>(); return true;
    case DType::Q5_1: launch.template run<DType::Q5_1>(); return true;
    case DType::Q8_0: launch.template run<DType::Q8_0>(); return true;
    case DType::Q2_K: launch.template run<DType::Q2_K>(); return true;
    case DType::Q3_K: launch.template run<DType::Q3_K>(); return true;
    case DType::Q4_K: launch.template run<DType::Q4_K>(); return true;
    case DType::Q5_K: launch.template run<DType::Q5_K>(); return true;
    case DType::Q6_K: launch.template run<DType::Q6_K>(); return true;
    default: return false;
  }
}

constexpr int kThreads = 256;  // threads per block of the elementwise kernels

__host__ __device__ int64_t segments(int64_t K) { return (K + kSeg - 1) / kSeg; }
unsigned blocks_for(int64_t n, int per_block) { return static_cast<unsigned>((n + per_block - 1) / per_block); }

// ---------------------------------------------------------------------------
// Embedding and dequantization: one thread per segment.

template <DType T>
__global__ void embed_kernel(const uint8_t* table, size_t row_bytes, const int32_t* tokens, int n, int E, float scale,
                             float* x) {
  after_previous();
  const int64_t segs = segments(E);
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n * segs) return;
  const int64_t t = i / segs, s = i % segs;
  float w[kSeg];
  Segment<T>::load(table + static_cast<size_t>(tokens[t]) * row_bytes, s, E, w);
#pragma unroll
  for (int j = 0; j < kSeg; ++j)
    if (s * kSeg + j < E) x[t * E + s * kSeg + j] = scale != 1.0f ? w[j] * scale : w[j];
}

// One segment per thread into a padded tile (thread t's element j at
// t * 33 + j: conflict-free), then the block writes its segments as one
// contiguous run when rows are whole segments (the quantized formats).
constexpr int kDequantThreads = 128;

template <DType T>
__global__ void dequantize_kernel(const uint8_t* w0, size_t row_bytes, int64_t rows, int64_t K, float* out) {
  after_previous();
  __shared__ float tile[kDequantThreads * (kSeg + 1)];
  const int64_t segs = segments(K), total = rows * segs;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kDequantThreads;
  const int64_t i = first + threadIdx.x;
  const int64_t r = i / segs, s = i % segs;
  if (i < total) {
    float w[kSeg];
    Segment<T>::load(w0 + static_cast<size_t>(r) * row_bytes, s, K, w);
#pragma unroll
    for (int j = 0; j < kSeg; ++j) tile[threadIdx.x * (kSeg + 1) + j] = w[j];
  }
  __syncthreads();
  if (K % kSeg == 0) {  // segment i is out[32 i, 32 i + 32)
    const int64_t n = (total - first < kDequantThreads ? total - first : kDequantThreads) * kSeg;
    for (int64_t e = threadIdx.x; e < n; e += blockDim.x) out[first * kSeg + e] = tile[(e / kSeg) * (kSeg + 1) + e % kSeg];
  } else if (i < total) {
    for (int j = 0; j < kSeg && s * kSeg + j < K; ++j) out[r * K + s * kSeg + j] = tile[threadIdx.x * (kSeg + 1) + j];
  }
}

// GEMV. Lane l of a warp takes segments l, l + 32, ... of the warp's two
// rows; each segment is dequantized once (its bytes read with wide loads:
// Segment<T>::load) and multiplied with every token of the batch. The activations
// are first laid out segment-major (xp[t][j][s] = x[t][32 s + j], zero past
// K) so that the 32 lanes reading element j of their segments read 32
// consecutive floats: one cache line per load, served from L1 to every warp
// of the SM (read in place, lane l's 32 floats would touch 32 lines per
// load; staged per block in shared memory, they cost more L2 traffic than
// the weights of a short matrix).

constexpr int kGemvWarps = 8;
constexpr int kRowsPerWarp = 2;  // two rows per warp: each activation read serves both
constexpr int kRowsPerBlock = kGemvWarps * kRowsPerWarp;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void permute_kernel(const float* x, int64_t ldx, int n, int64_t K, float* xp) {
  after_previous();
  const int64_t segs = segments(K);
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // output index
  if (i >= n * segs * kSeg) return;
  const int64_t t = i / (segs * kSeg), j = (i / segs) % kSeg, s = i % segs;
  const int64_t k = s * kSeg + j;
  xp[i] = k < K ? x[t * ldx + k] : 0.0f;
}

template <DType T, int NT>
__global__ void gemv_kernel(const uint8_t* w0, size_t row_bytes, int64_t rows, int64_t K, const float* xp, int n,
                            float* y, int64_t ldy, Store store) {
  const int64_t segs = segments(K);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r0 = (static_cast<int64_t>(blockIdx.x) * kGemvWarps + warp) * kRowsPerWarp;
  const bool live = r0 < rows;  // the same for the whole warp
  const bool two = r0 + 1 < rows;
  const uint8_t* row0 = w0 + static_cast<size_t>(live ? r0 : 0) * row_bytes;
  const uint8_t* row1 = two ? row0 + row_bytes : row0;
  // The first segment's weights before waiting for the previous kernel's
  // results: they do not depend on it, and the loads overlap its tail.
  float wa[kSeg], wb[kSeg];
  if (live && lane < segs) {
    Segment<T>::load(row0, lane, K, wa);
    Segment<T>::load(row1, lane, K, wb);
  }
  after_previous();
  if (!live) return;
  float acc0[NT], acc1[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = 0.0f;
  for (int64_t s = lane; s < segs; s += 32) {
    if (s != lane) {
      Segment<T>::load(row0, s, K, wa);
      Segment<T>::load(row1, s, K, wb);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < n) {
        const float* xt = xp + t * segs * kSeg + s;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int j = 0; j < kSeg; ++j) {
          const float xv = __ldg(xt + j * segs);
          sum0 += wa[j] * xv;
          sum1 += wb[j] * xv;
        }
        acc0[t] += sum0;
        acc1[t] += sum1;
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t < n) {
      const float v0 = warp_sum(acc0[t]), v1 = warp_sum(acc1[t]);
      if (lane == 0) {
        float* out = y + t * ldy + r0;
        out[0] = store == Store::add ? out[0] + v0 : v0;
        if (two) out[1] = store == Store::add ? out[1] + v1 : v1;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// 8-bit activations and the int8 GEMV (dp4a) for the 32-element formats.

// One warp per block of 32 activations: lane j quantizes element j. The
// arithmetic is quantize_q8_block's (kernels/cpu/ref/quant_ref.cpp): d =
// amax / 127, q = round-to-nearest-even(x * (1 / d)), s = sum(q) * d, each
// step rounded as the reference rounds it, so the bytes are identical.
// Lane j of a whole warp holds element j of a block: the warp writes it.
__device__ __forceinline__ void quantize_block(float v, int lane, BlockQ8Act& out) {
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = __fdiv_rn(amax, 127.0f);
  const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
  const int level = __float2int_rn(__fmul_rn(v, id));
  int sum = level;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  out.qs[lane] = static_cast<int8_t>(level);
  if (lane == 0) {
    out.d = d;
    out.s = __fmul_rn(__int2float_rn(sum), d);
  }
}

__global__ void quantize_q8_act_kernel(const float* x, int64_t ldx, int n, int64_t K, BlockQ8Act* q) {
  after_previous();
  const int64_t blocks = K / kQK;
  const int64_t b = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (b >= n * blocks) return;  // the same for the whole warp
  const int64_t t = b / blocks, i = b % blocks;
  quantize_block(x[t * ldx + i * kQK + lane], lane, q[b]);
}

// Levels<T>: weight block i of a device row of nb blocks as the CPU
// reference's unpack() (kernels/cpu/ref/dot_ref.cpp) has it, in two steps:
// load() fetches the block's bytes (Raw: a few registers, so a GEMV can
// have several blocks in flight before it needs them), unpack() turns them
// into levels with the zero point subtracted (or unsigned, for the formats
// with a minimum m), packed four per word: q[k] holds elements 4k .. 4k + 3,
// the order of the activation block's bytes, so q[k] pairs with activation
// word k in dp4a.
template <DType T>
struct Levels;

// Four 1-bit values (bits 0..3 of b) moved to bit 4 of four bytes: the high
// bit of four 5-bit levels.
__device__ __forceinline__ uint32_t high_bits(uint32_t b) { return ((b * 0x00204081u) & 0x01010101u) << 4; }

template <>
struct Levels<DType::Q4_0> {
  static constexpr DType T = DType::Q4_0;
  struct Raw {
    uint32_t qs[4];
    uint16_t d;
  };
  __device__ static Raw load(const uint8_t* row, int64_t nb, int64_t i) {
    Raw r;
    load16(field<T, 0>(row, nb, i), r.qs);
    r.d = load_u16(field<T, 1>(row, nb, i));
    return r;
  }
  __device__ static void unpack(const Raw& r, int* q, float* d, float* m) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      q[k] = static_cast<int>(__vsub4(r.qs[k] & 0x0F0F0F0Fu, 0x08080808u));
      q[k + 4] = static_cast<int>(__vsub4((r.qs[k] >> 4) & 0x0F0F0F0Fu, 0x08080808u));
    }
    *d = f16(r.d);
    *m = 0.0f;
  }
};

template <>
struct Levels<DType::Q4_1> {
  static constexpr DType T = DType::Q4_1;
  struct Raw {
    uint32_t qs[4];
    uint32_t dm;
  };
  __device__ static Raw load(const uint8_t* row, int64_t nb, int64_t i) {
    Raw r;
    load16(field<T, 0>(row, nb, i), r.qs);
    r.dm = load_u32(field<T, 1>(row, nb, i));
    return r;
  }
  __device__ static void unpack(const Raw& r, int* q, float* d, float* m) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      q[k] = static_cast<int>(r.qs[k] & 0x0F0F0F0Fu);
      q[k + 4] = static_cast<int>((r.qs[k] >> 4) & 0x0F0F0F0Fu);
    }
    *d = f16(static_cast<uint16_t>(r.dm));
    *m = f16(static_cast<uint16_t>(r.dm >> 16));
  }
};

template <>
struct Levels<DType::Q5_0> {
  static constexpr DType T = DType::Q5_0;
  struct Raw {
    uint32_t qs[4];
    uint32_t qh;
    uint16_t d;
  };
  __device__ static Raw load(const uint8_t* row, int64_t nb, int64_t i) {
    Raw r;
    load16(field<T, 0>(row, nb, i), r.qs);
    r.qh = load_u32(field<T, 1>(row, nb, i));
    r.d = load_u16(field<T, 2>(row, nb, i));
    return r;
  }
  __device__ static void unpack(const Raw& r, int* q, float* d, float* m) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint32_t lo = (r.qs[k] & 0x0F0F0F0Fu) | high_bits((r.qh >> (4 * k)) & 0xF);
      const uint32_t hi = ((r.qs[k] >> 4) & 0x0F0F0F0Fu) | high_bits((r.qh >> (16 + 4 * k)) & 0xF);
      q[k] = static_cast<int>(__vsub4(lo, 0x10101010u));
      q[k + 4] = static_cast<int>(__vsub4(hi, 0x10101010u));
    }
    *d = f16(r.d);
    *m = 0.0f;
  }
};

template <>
struct Levels<DType::Q5_1> {
  static constexpr DType T = DType::Q5_1;
  struct Raw {
    uint32_t qs[4];
    uint32_t qh;
    uint32_t dm;
  };
  __device__ static Raw load(const uint8_t* row, int64_t nb, int64_t i) {
    Raw r;
    load16(field<T, 0>(row, nb, i), r.qs);
    r.qh = load_u32(field<T, 1>(row, nb, i));
    r.dm = load_u32(field<T, 2>(row, nb, i));
    return r;
  }
  __device__ static void unpack(const Raw& r, int* q, float* d, float* m) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      q[k] = static_cast<int>((r.qs[k] & 0x0F0F0F0Fu) | high_bits((r.qh >> (4 * k)) & 0xF));
      q[k + 4] = static_cast<int>(((r.qs[k] >> 4) & 0x0F0F0F0Fu) | high_bits((r.qh >> (16 + 4 * k)) & 0xF));
    }
    *d = f16(static_cast<uint16_t>(r.dm));
    *m = f16(static_cast<uint16_t>(r.dm >> 16));
  }
};

template <>
struct Levels<DType::Q8_0> {
  static constexpr DType T = DType::Q8_0;
  struct Raw {
    uint32_t qs[8];
    uint16_t d;
  };
  __device__ static Raw load(const uint8_t* row, int64_t nb, int64_t i) {
    Raw r;
    load16(field<T, 0>(row, nb, i), r.qs);
    load16(field<T, 0>(row, nb, i) + 16, r.qs + 4);
    r.d = load_u16(field<T, 1>(row, nb, i));
    return r;
  }
  __device__ static void unpack(const Raw& r, int* q, float* d, float* m) {
#pragma unroll
    for (int k = 0; k < 8; ++k) q[k] = static_cast<int>(r.qs[k]);
    *d = f16(r.d);
    *m = 0.0f;
  }
};

template <DType T>
constexpr bool kHasLevels =
    T == DType::Q4_0 || T == DType::Q4_1 || T == DType::Q5_0 || T == DType::Q5_1 || T == DType::Q8_0;

// A warp computes kRowsPerWarp rows (each activation block it loads serves
// both), its lanes taking the rows' blocks lane, lane + 32, ...; kQ8Warps
// warps per CUDA block. The weights do not depend on the previous kernel,
// so each lane loads its first chunk of them (kChunk<T> blocks of each row)
// before it waits for that kernel's results (after_previous): with
// overlapped launches those loads run during the previous kernel's tail.
// Then chunk by chunk: the levels of each block against every token's
// activation block (dp4a), one f32 accumulator per (row, token), summed
// across the warp at the end.
constexpr int kQ8Warps = 8;
template <DType T>
constexpr int kChunk = T == DType::Q8_0 ? 2 : 4;  // 64 bytes of quants per row and lane

template <DType T, int NT>
__global__ void __launch_bounds__(kQ8Warps * 32)
    gemv_q8_kernel(const uint8_t* w0, size_t row_bytes, int64_t rows, int64_t K, const BlockQ8Act* xq, int n, float* y,
                   int64_t ldy, Store store) {
  using L = Levels<T>;
  constexpr int P = kChunk<T>;
  const int64_t nb = K / kQK;
  const int lane = threadIdx.x % 32;
  const int64_t r0 = (static_cast<int64_t>(blockIdx.x) * kQ8Warps + threadIdx.x / 32) * kRowsPerWarp;
  const uint8_t* row[kRowsPerWarp];  // rows past the end read the last row and are never stored
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) row[r] = w0 + static_cast<size_t>(min(r0 + r, rows - 1)) * row_bytes;
  typename L::Raw raw[P][kRowsPerWarp];
  auto load_chunk = [&](int64_t base) {
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int64_t i = base + lane + 32 * p;
      if (i < nb) {
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) raw[p][r] = L::load(row[r], nb, i);
      }
    }
  };
  load_chunk(0);
  after_previous();
  float acc[kRowsPerWarp][NT];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
  for (int64_t base = 0; base < nb; base += 32 * P) {
    if (base > 0) load_chunk(base);
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int64_t i = base + lane + 32 * p;
      if (i >= nb) continue;
      int q[kRowsPerWarp][8];
      float d[kRowsPerWarp], m[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) L::unpack(raw[p][r], q[r], &d[r], &m[r]);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t < n) {
          const BlockQ8Act& xb = xq[t * nb + i];
          int xw[8];
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const int2 v = reinterpret_cast<const int2*>(xb.qs)[k];
            xw[2 * k] = v.x, xw[2 * k + 1] = v.y;
          }
          const float xd = xb.d, xs = xb.s;
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) {
            int sum = 0;
#pragma unroll
            for (int k = 0; k < 8; ++k) sum = __dp4a(q[r][k], xw[k], sum);
            acc[r][t] += d[r] * xd * static_cast<float>(sum) + m[r] * xs;
          }
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t >= n) break;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float v = warp_sum(acc[r][t]);
      if (lane == 0 && r0 + r < rows) {
        float& out = y[t * ldy + r0 + r];
        out = store == Store::add ? out + v : v;
      }
    }
  }
}

// Shared memory one block may take, opted into per kernel at first use
// (static plus dynamic: gemv_dynamic_bytes() leaves room for the GEMV's own
// static array).
int max_shared_bytes() {
  static const int bytes = [] {
    int device = 0, v = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    return v > 0 ? v : 48 * 1024;
  }();
  return bytes;
}

// ---------------------------------------------------------------------------
// Norms, RoPE, the cache, elementwise.

// One block per row, each thread holding up to kNormPerThread elements in
// registers (as few threads as that allows: fewer warps to gather): the
// row is read once, every load issued before the first is used (a loop over
// memory would wait for each). The weights do not depend on the previous
// kernel: they are loaded before waiting for it.
constexpr int kNormThreads = 1024;
constexpr int kNormPerThread = kMaxNormDim / kNormThreads;

int norm_threads(int dim) {
  const int threads = (dim + kNormPerThread - 1) / kNormPerThread;
  return threads <= 32 ? 32 : (threads + 31) / 32 * 32;
}

// With q (heads = 1, dim a multiple of 32, whole warps): the output rows'
// 8-bit activations too, row t's blocks at q + t * dim / 32 — warp w holds
// elements 32 w .. 32 w + 31 (+ k * blockDim), one block.
__global__ void rmsnorm_kernel(const float* in, int64_t ld_in, float* out, int64_t ld_out, int heads, int dim,
                               const float* w, float eps, BlockQ8Act* q) {
  float wv[kNormPerThread];
#pragma unroll
  for (int k = 0; k < kNormPerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    wv[k] = i < dim ? w[i] : 0.0f;
  }
  after_previous();
  const int t = blockIdx.x / heads, h = blockIdx.x % heads;
  const float* x = in + t * ld_in + static_cast<int64_t>(h) * dim;
  float* y = out + t * ld_out + static_cast<int64_t>(h) * dim;
  float v[kNormPerThread];
  // Each thread's few squares in float, the block's sum in double.
  float part = 0;
#pragma unroll
  for (int k = 0; k < kNormPerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    v[k] = i < dim ? x[i] : 0.0f;
    part += v[k] * v[k];
  }
  double sum = part;
  __shared__ double partial[kNormThreads / 32];
  __shared__ float inv_shared;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) partial[warp] = sum;
  __syncthreads();  // also: every thread has read x before any writes y (in place)
  if (warp == 0) {  // the warps' sums gathered by one warp
    double total = lane < warps ? partial[lane] : 0.0;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
    if (lane == 0) inv_shared = static_cast<float>(1.0 / sqrt(total / dim + eps));
  }
  __syncthreads();
  const float inv = inv_shared;
#pragma unroll
  for (int k = 0; k < kNormPerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < dim) {
      const float yi = v[k] * inv * wv[k];
      y[i] = yi;
      if (q != nullptr) quantize_block(yi, lane, q[static_cast<int64_t>(t) * (dim / kQK) + i / kQK]);
    }
  }
}

// RoPE pair p of a head of D dims: dims (ia, ib) — (p, p + n_rot / 2) for
// neox, else (2p, 2p + 1) — for p < n_rot / 2, the rotated pairs; the
// pairs past them carry dims n_rot .. D unrotated, two by two.
__device__ __forceinline__ void rope_pair(int p, int n_rot, bool neox, int* ia, int* ib) {
  const int half = n_rot / 2;
  if (p < half) {
    *ia = neox ? p : 2 * p;
    *ib = neox ? p + half : 2 * p + 1;
  } else {
    *ia = n_rot + 2 * (p - half);
    *ib = *ia + 1;
  }
}
// (a, b) rotated by the angle with cosine c and sine s, the roundings
// spelled out: the kernels that rotate (rope_store_kernel, attention_kernel)
// give the same bits.
__device__ __forceinline__ void rotate(float& a, float& b, float c, float s) {
  const float ra = __fmaf_rn(a, c, __fmul_rn(-b, s)), rb = __fmaf_rn(a, s, __fmul_rn(b, c));
  a = ra;
  b = rb;
}
// Stores dims (ia, ib) of a cache row (f16 bits or f32).
__device__ __forceinline__ void store_pair(void* cache, bool f16_cache, int64_t at, int ia, int ib, float a, float b) {
  if (f16_cache) {
    static_cast<__half*>(cache)[at + ia] = __float2half_rn(a);
    static_cast<__half*>(cache)[at + ib] = __float2half_rn(b);
  } else {
    static_cast<float*>(cache)[at + ia] = a;
    static_cast<float*>(cache)[at + ib] = b;
  }
}

// One thread per (token, head, pair of dims) over the query heads, then the
// key heads, then the value heads: pair p < n_rot / 2 is a rotated pair,
// the others carry dims n_rot .. D unrotated.
__global__ void rope_store_kernel(RopeStoreShape s, float* q, const float* k, const float* v, const float* cos,
                                  const float* sin, void* k_cache, void* v_cache) {
  after_previous();
  const int D = s.head_dim, pairs = D / 2, half = s.n_rot / 2, all_heads = s.heads + 2 * s.kv_heads;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(s.n) * all_heads * pairs) return;
  const int p = static_cast<int>(i % pairs);
  const int h = static_cast<int>((i / pairs) % all_heads);
  const int64_t t = i / (static_cast<int64_t>(pairs) * all_heads);
  const bool rotated = p < half && h < s.heads + s.kv_heads;  // values are never rotated
  int ia, ib;
  rope_pair(p, s.n_rot, s.neox, &ia, &ib);
  float* qh = nullptr;
  int kv_head = 0;
  const float* src;
  if (h < s.heads) {
    if (!rotated) return;  // query dims past n_rot stay as they are
    qh = q + t * s.ldq + static_cast<int64_t>(h) * D;
    src = qh;
  } else if (h < s.heads + s.kv_heads) {
    kv_head = h - s.heads;
    src = k + t * s.ldk + static_cast<int64_t>(kv_head) * D;
  } else {
    kv_head = h - s.heads - s.kv_heads;
    src = v + t * s.ldk + static_cast<int64_t>(kv_head) * D;
  }
  float a = src[ia], b = src[ib];
  if (rotated) rotate(a, b, cos[t * half + p], sin[t * half + p]);
  if (qh != nullptr) {
    qh[ia] = a;
    qh[ib] = b;
    return;
  }
  void* cache = h < s.heads + s.kv_heads ? k_cache : v_cache;
  const int64_t row = (*s.pos0 + t) % s.rows;
  store_pair(cache, s.kv_f16, row * static_cast<int64_t>(s.kv_heads) * D + static_cast<int64_t>(kv_head) * D, ia, ib,
             a, b);
}

__device__ __forceinline__ float gelu1(float t) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * t * (1.0f + tanhf(kSqrt2OverPi * (t + 0.044715f * t * t * t)));
}
__device__ __forceinline__ float silu1(float t) { return t / (1.0f + expf(-t)); }

// With q (F a multiple of 32: a warp is 32 consecutive outputs of one
// token, one block): the outputs' 8-bit activations too, row t's blocks at
// q + t * F / 32.
__global__ void gated_kernel(GatedAct act, const float* gate, const float* up, int64_t ld_in, float* out,
                             int64_t ld_out, int n, int F, BlockQ8Act* q) {
  after_previous();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * F) return;
  const int64_t t = i / F, f = i % F;
  const float g = gate[t * ld_in + f];
  const float v = (act == GatedAct::silu ? silu1(g) : gelu1(g)) * up[t * ld_in + f];
  out[t * ld_out + f] = v;
  if (q != nullptr) quantize_block(v, threadIdx.x % 32, q[i / kQK]);
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  after_previous();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += x[i];
}

__global__ void softcap_kernel(float* x, float cap, int64_t n) {
  after_previous();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

// ---------------------------------------------------------------------------
// Attention: one block per (token, kv head) — every query head of the group
// in the block, so each K/V row is read once for all of them. Keys go in
// tiles of kTile: thread j scores key j of the tile for each query head;
// then the running max / sum / output of each head are rescaled (online
// softmax) and thread d accumulates output dims d, d + blockDim, ...

constexpr int kAttnThreads = 128;
constexpr int kTile = kAttnThreads;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxGroup = 8;  // query heads per kv head held at once
constexpr int kMaxSplits = kMaxAttentionSplits;

__device__ __forceinline__ float load_kv(const void* base, bool f16_cache, int64_t i) {
  return f16_cache ? __half2float(static_cast<const __half*>(base)[i]) : static_cast<const float*>(base)[i];
}

// A decode step's RoPE and KV-cache write, done by the attention kernel:
// the block of KV head g rotates its query heads as it loads them, rotates
// its key and writes key and value to the cache row before reading the
// cache (one token; rope_store_kernel's arithmetic). k == nullptr: done
// already (rope_store).
struct FusedRope {
  const float* k = nullptr;  // the token's keys and values, [kv_heads * D] each
  const float* v = nullptr;
  const float* cos = nullptr;  // [n_rot / 2]
  const float* sin = nullptr;
  int n_rot = 0;
  bool neox = false;
  int64_t rows = 0;  // of the cache: the row is pos % rows
};

// A token's keys split among the blocks of its KV head (flash-decoding):
// chunks of at least kMinSplitKeys keys (whole tiles), as many chunks as
// s.splits allows. With one chunk its block writes the outputs; with more,
// each block writes its running max, sum and outputs (s.partials) and the
// last block of the head to finish (s.counters) merges them in chunk order:
// the same result whichever block finishes last.
constexpr int kMinSplitKeys = 2 * kTile;

__device__ __forceinline__ int64_t split_chunk(int64_t n_keys, int splits) {
  const int64_t even = (n_keys + splits - 1) / splits;
  const int64_t tiles = (even + kTile - 1) / kTile * kTile;
  return tiles > kMinSplitKeys ? tiles : kMinSplitKeys;
}

__global__ void attention_kernel(AttentionShape s, FusedRope rope, int g0, int group_n, const float* q, void* kc,
                                 void* vc, float* out) {
  const int t = blockIdx.x / s.splits, split = blockIdx.x % s.splits;
  const int g = blockIdx.y;                         // kv head
  const int group = s.heads / s.kv_heads;           // query heads per kv head
  const int D = s.head_dim;
  // The position comes with the batch, not from the previous kernel: a
  // block whose chunk holds no key leaves without waiting for that kernel.
  const int64_t pos = *s.pos0 + t;
  const int64_t first = s.window > 0 ? max(static_cast<int64_t>(0), pos - s.window + 1) : 0;
  const int64_t chunk = split_chunk(pos - first + 1, s.splits);
  const int chunks = static_cast<int>((pos - first + chunk) / chunk);  // that hold keys
  if (split >= chunks) return;
  after_previous();
  const int64_t key_begin = first + split * chunk, key_end = min(pos, key_begin + chunk - 1);
  const bool holds_pos = split == chunks - 1;

  __shared__ float qs[kMaxGroup][kMaxHeadDim];
  __shared__ float p[kMaxGroup][kTile];
  __shared__ float red[kMaxGroup][kAttnThreads / 32];
  __shared__ float m_run[kMaxGroup], l_run[kMaxGroup], rescale[kMaxGroup];

  if (rope.k != nullptr) {  // one token: work items (head, pair) over the query heads, then the key, then the value
    const int pairs = D / 2, half = rope.n_rot / 2;
    const int64_t at = (pos % rope.rows) * s.kv_dim + static_cast<int64_t>(g) * D;
    for (int i = threadIdx.x; i < (group_n + 2) * pairs; i += blockDim.x) {
      const int hh = i / pairs, pair = i % pairs;
      int ia, ib;
      rope_pair(pair, rope.n_rot, rope.neox, &ia, &ib);
      const float* src = hh < group_n ? q + static_cast<int64_t>(g * group + g0 + hh) * D
                         : hh == group_n ? rope.k + static_cast<int64_t>(g) * D
                                         : rope.v + static_cast<int64_t>(g) * D;
      float a = src[ia], b = src[ib];
      if (pair < half && hh <= group_n) rotate(a, b, rope.cos[pair], rope.sin[pair]);
      if (hh < group_n) {
        qs[hh][ia] = a;
        qs[hh][ib] = b;
      } else if (holds_pos) {  // the one block that reads the new row writes it
        store_pair(hh == group_n ? kc : vc, s.kv_f16, at, ia, ib, a, b);
      }
    }
  } else {
    for (int i = threadIdx.x; i < group_n * D; i += blockDim.x) {
      const int hh = i / D, d = i % D;
      qs[hh][d] = q[t * s.ldq + static_cast<int64_t>(g * group + g0 + hh) * D + d];
    }
  }
  if (threadIdx.x < group_n) m_run[threadIdx.x] = -INFINITY, l_run[threadIdx.x] = 0.0f;
  // (The __syncthreads below also makes the block's cache writes visible to its reads.)
  constexpr int kDimsPerThread = kMaxHeadDim / kAttnThreads;
  float acc[kMaxGroup][kDimsPerThread];
#pragma unroll
  for (int hh = 0; hh < kMaxGroup; ++hh)
#pragma unroll
    for (int k = 0; k < kDimsPerThread; ++k) acc[hh][k] = 0.0f;
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t j0 = key_begin; j0 <= key_end; j0 += kTile) {
    const int64_t j = j0 + threadIdx.x;
    const bool live = j <= key_end;
    const int64_t row = s.ring > 0 ? j % s.ring : j;
    // Scores of key j for every query head of the group.
    float sc[kMaxGroup];
#pragma unroll
    for (int hh = 0; hh < kMaxGroup; ++hh) sc[hh] = -INFINITY;
    if (live) {
      const int64_t base = row * s.kv_dim + static_cast<int64_t>(g) * D;
      float dot[kMaxGroup];
#pragma unroll
      for (int hh = 0; hh < kMaxGroup; ++hh) dot[hh] = 0.0f;
      if (s.kv_f16 && D % 8 == 0) {
        // The key row in 16-byte loads, several in flight (the thread's row
        // is its own: one element per load would wait on each in turn).
        // The same products summed in the same order as below.
        const auto* krow = reinterpret_cast<const uint4*>(static_cast<const __half*>(kc) + base);
#pragma unroll 4
        for (int c = 0; c < D / 8; ++c) {
          const uint4 raw = krow[c];
          const auto* h2 = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 kv = __half22float2(h2[e]);
            const int d = 8 * c + 2 * e;
#pragma unroll
            for (int hh = 0; hh < kMaxGroup; ++hh) {
              if (hh < group_n) {
                dot[hh] += qs[hh][d] * kv.x;
                dot[hh] += qs[hh][d + 1] * kv.y;
              }
            }
          }
        }
      } else {
        for (int d = 0; d < D; ++d) {
          const float kv = load_kv(kc, s.kv_f16, base + d);
#pragma unroll
          for (int hh = 0; hh < kMaxGroup; ++hh)
            if (hh < group_n) dot[hh] += qs[hh][d] * kv;
        }
      }
#pragma unroll
      for (int hh = 0; hh < kMaxGroup; ++hh) {
        float v = dot[hh] * s.scale;
        if (s.softcap > 0) v = s.softcap * tanhf(v / s.softcap);
        sc[hh] = v;
      }
    }
    // Tile max per head.
#pragma unroll
    for (int hh = 0; hh < kMaxGroup; ++hh) {
      if (hh >= group_n) break;
      float m = sc[hh];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      if (lane == 0) red[hh][warp] = m;
    }
    __syncthreads();
    if (threadIdx.x < group_n) {
      const int hh = threadIdx.x;
      float m = red[hh][0];
      for (int w = 1; w < kAttnThreads / 32; ++w) m = fmaxf(m, red[hh][w]);
      const float m_new = fmaxf(m_run[hh], m);
      rescale[hh] = expf(m_run[hh] - m_new);  // exp(-inf) = 0 on the first tile
      m_run[hh] = m_new;
    }
    __syncthreads();
    // Probabilities and their sum per head.
#pragma unroll
    for (int hh = 0; hh < kMaxGroup; ++hh) {
      if (hh >= group_n) break;
      const float e = live ? expf(sc[hh] - m_run[hh]) : 0.0f;
      p[hh][threadIdx.x] = e;
      float sum = e;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) red[hh][warp] = sum;
    }
    __syncthreads();
    if (threadIdx.x < group_n) {
      const int hh = threadIdx.x;
      float sum = 0;
      for (int w = 0; w < kAttnThreads / 32; ++w) sum += red[hh][w];
      l_run[hh] = l_run[hh] * rescale[hh] + sum;
    }
    // Output: rescale, then add p_j * V[j] over the tile's keys.
    const int n_keys = static_cast<int>(min(static_cast<int64_t>(kTile), key_end - j0 + 1));
#pragma unroll
    for (int k = 0; k < kDimsPerThread; ++k) {
      const int d = threadIdx.x + k * kAttnThreads;
      if (d >= D) break;
#pragma unroll
      for (int hh = 0; hh < kMaxGroup; ++hh)
        if (hh < group_n) acc[hh][k] *= rescale[hh];
#pragma unroll 8
      for (int jj = 0; jj < n_keys; ++jj) {  // unrolled: the value loads of several keys in flight
        const int64_t jr = j0 + jj;
        const int64_t r = s.ring > 0 ? jr % s.ring : jr;
        const float v = load_kv(vc, s.kv_f16, r * s.kv_dim + static_cast<int64_t>(g) * D + d);
#pragma unroll
        for (int hh = 0; hh < kMaxGroup; ++hh)
          if (hh < group_n) acc[hh][k] += p[hh][jj] * v;
      }
    }
    __syncthreads();  // p, red and rescale are rewritten by the next tile
  }
  // With s.q8 (D a multiple of 32): warp w holds dims 32 w .. 32 w + 31 (+
  // 128 k) of each head, one activation block, quantized as it is stored.
  auto* q8 = static_cast<BlockQ8Act*>(s.q8);
  const int lane_out = threadIdx.x % 32;
  auto store_out = [&](int hh, int d, float v) {
    const int64_t at = t * static_cast<int64_t>(s.heads) * D + static_cast<int64_t>(g * group + g0 + hh) * D + d;
    out[at] = v;
    if (q8 != nullptr) quantize_block(v, lane_out, q8[at / kQK]);
  };
  if (chunks == 1) {
#pragma unroll
    for (int k = 0; k < kDimsPerThread; ++k) {
      const int d = threadIdx.x + k * kAttnThreads;
      if (d >= D) break;
#pragma unroll
      for (int hh = 0; hh < kMaxGroup; ++hh) {
        if (hh >= group_n) break;
        store_out(hh, d, acc[hh][k] / l_run[hh]);
      }
    }
    return;
  }
  // This chunk's state per query head h: max and sum at partials[(t, h, split)],
  // outputs at partials + n * heads * splits * 2 + (t, h, split) * D.
  const int64_t states = static_cast<int64_t>(s.n) * s.heads * s.splits;
  auto state_at = [&](int hh, int c) { return (static_cast<int64_t>(t) * s.heads + g * group + g0 + hh) * s.splits + c; };
  float* acc_part = s.partials + 2 * states;
#pragma unroll
  for (int k = 0; k < kDimsPerThread; ++k) {
    const int d = threadIdx.x + k * kAttnThreads;
    if (d >= D) break;
#pragma unroll
    for (int hh = 0; hh < kMaxGroup; ++hh)
      if (hh < group_n) acc_part[state_at(hh, split) * D + d] = acc[hh][k];
  }
  if (threadIdx.x < group_n) {
    s.partials[2 * state_at(threadIdx.x, split)] = m_run[threadIdx.x];
    s.partials[2 * state_at(threadIdx.x, split) + 1] = l_run[threadIdx.x];
  }
  __threadfence();  // the state is visible device-wide before the count says so
  __syncthreads();
  __shared__ bool last;
  unsigned* counter = s.counters + static_cast<int64_t>(t) * s.heads + g * group + g0;
  if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == static_cast<unsigned>(chunks - 1);
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x == 0) *counter = 0;  // for the next step
  // Merge in chunk order; the states are read from L2 (__ldcg), past any stale L1 line.
  __shared__ float weight[kMaxGroup][kMaxSplits];
  __shared__ float total[kMaxGroup];
  if (threadIdx.x < group_n) {
    const int hh = threadIdx.x;
    float m = -INFINITY;
    for (int c = 0; c < chunks; ++c) m = fmaxf(m, __ldcg(s.partials + 2 * state_at(hh, c)));
    float l = 0.0f;
    for (int c = 0; c < chunks; ++c) {
      const float w = expf(__ldcg(s.partials + 2 * state_at(hh, c)) - m);
      weight[hh][c] = w;
      l += w * __ldcg(s.partials + 2 * state_at(hh, c) + 1);
    }
    total[hh] = l;
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < kDimsPerThread; ++k) {
    const int d = threadIdx.x + k * kAttnThreads;
    if (d >= D) break;
#pragma unroll
    for (int hh = 0; hh < kMaxGroup; ++hh) {
      if (hh >= group_n) break;
      float v = 0.0f;
      for (int c = 0; c < chunks; ++c) v += weight[hh][c] * __ldcg(acc_part + state_at(hh, c) * D + d);
      store_out(hh, d, v / total[hh]);
    }
  }
}

// Attention for batches (prefill): one block per (tile of query rows, kv
// head), a row being one (token, query head of the group) — kRows rows. K and
// V come in tiles of kKeys keys, converted to f32 into shared memory (rows
// padded by one float, so lane j reading key j's element d hits bank
// (j + d) % 32) and reused by every row of the block. Warp w owns rows w,
// w + 4, ...: its lanes score 32 keys of a row, keep the row's running max
// and sum (online softmax) and accumulate the row's output dims lane,
// lane + 32, ...

constexpr int kRows = 16;
constexpr int kKeys = 32;
constexpr int kTiledWarps = 4;
constexpr int kRowsPerTiledWarp = kRows / kTiledWarps;
constexpr int kMaxDimsPerLane = kMaxHeadDim / 32;

__host__ __device__ size_t tiled_shared_floats(int D) {
  return static_cast<size_t>(kRows) * D + 2 * static_cast<size_t>(kKeys) * (D + 1) + static_cast<size_t>(kRows) * kKeys;
}

__global__ void attention_tiled_kernel(AttentionShape s, int heads_per_block, const float* q, const void* kc,
                                       const void* vc, float* out) {
  after_previous();
  extern __shared__ float sh[];
  const int D = s.head_dim, group = s.heads / s.kv_heads;
  const int tokens_per_block = kRows / heads_per_block;
  float* qs = sh;                                   // [kRows][D]
  float* ks = qs + kRows * D;                       // [kKeys][D + 1]
  float* vs = ks + kKeys * (D + 1);                 // [kKeys][D + 1]
  float* ps = vs + kKeys * (D + 1);                 // [kRows][kKeys]
  const int g = blockIdx.y;                                                 // kv head
  const int h0 = g * group + blockIdx.z * heads_per_block;                  // first query head of the block
  const int heads_here = min(heads_per_block, group - static_cast<int>(blockIdx.z) * heads_per_block);
  const int t0 = blockIdx.x * tokens_per_block;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // Row r: token t0 + r / heads_per_block, head h0 + r % heads_per_block;
  // rows past tokens_per_block whole tokens (kRows not a multiple of the
  // group) belong to no token (s.n stands for "none").
  auto row_token = [&](int r) { return r < tokens_per_block * heads_per_block ? t0 + r / heads_per_block : s.n; };
  for (int i = threadIdx.x; i < kRows * D; i += blockDim.x) {
    const int r = i / D, d = i % D, t = row_token(r), hh = r % heads_per_block;
    qs[i] = (t < s.n && hh < heads_here) ? q[t * s.ldq + static_cast<int64_t>(h0 + hh) * D + d] : 0.0f;
  }
  const int t_last = min(s.n - 1, t0 + tokens_per_block - 1);
  const int64_t pos0 = *s.pos0;
  const int64_t pos_first = pos0 + t0, pos_last = pos0 + t_last;
  const int64_t key_begin = s.window > 0 ? max(static_cast<int64_t>(0), pos_first - s.window + 1) : 0;

  float m[kRowsPerTiledWarp], l[kRowsPerTiledWarp], acc[kRowsPerTiledWarp][kMaxDimsPerLane];
#pragma unroll
  for (int i = 0; i < kRowsPerTiledWarp; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < kMaxDimsPerLane; ++k) acc[i][k] = 0.0f;
  }

  for (int64_t j0 = key_begin; j0 <= pos_last; j0 += kKeys) {
    __syncthreads();  // the previous tile's ks / vs / ps are no longer read
    for (int i = threadIdx.x; i < kKeys * D; i += blockDim.x) {
      const int j = i / D, d = i % D;
      const int64_t key = j0 + j;
      float kv_k = 0.0f, kv_v = 0.0f;
      if (key <= pos_last) {
        const int64_t row = s.ring > 0 ? key % s.ring : key;
        const int64_t at = row * s.kv_dim + static_cast<int64_t>(g) * D + d;
        kv_k = load_kv(kc, s.kv_f16, at);
        kv_v = load_kv(vc, s.kv_f16, at);
      }
      ks[j * (D + 1) + d] = kv_k;
      vs[j * (D + 1) + d] = kv_v;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kRowsPerTiledWarp; ++i) {
      const int r = warp + i * kTiledWarps;
      const int t = row_token(r);
      const int64_t pos = pos0 + t;
      const int64_t first = s.window > 0 ? max(static_cast<int64_t>(0), pos - s.window + 1) : 0;
      const int64_t key = j0 + lane;
      float sc = -INFINITY;
      if (t < s.n && key <= pos && key >= first) {
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot += qs[r * D + d] * ks[lane * (D + 1) + d];
        sc = dot * s.scale;
        if (s.softcap > 0) sc = s.softcap * tanhf(sc / s.softcap);
      }
      float tile_max = sc;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, o));
      const float m_new = fmaxf(m[i], tile_max);
      // A row with no live key yet keeps m = -inf: its p and rescale are 0 / 1.
      const float p = m_new == -INFINITY ? 0.0f : expf(sc - m_new);
      const float rescale = m_new == -INFINITY ? 1.0f : expf(m[i] - m_new);
      float sum = p;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      l[i] = l[i] * rescale + sum;
      m[i] = m_new;
      ps[r * kKeys + lane] = p;
      __syncwarp();
#pragma unroll
      for (int k = 0; k < kMaxDimsPerLane; ++k) {
        const int d = lane + 32 * k;
        if (d < D) {
          float a = acc[i][k] * rescale;
          for (int j = 0; j < kKeys; ++j) a += ps[r * kKeys + j] * vs[j * (D + 1) + d];
          acc[i][k] = a;
        }
      }
      __syncwarp();
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerTiledWarp; ++i) {
    const int r = warp + i * kTiledWarps;
    const int t = row_token(r), hh = r % heads_per_block;
    if (t >= s.n || hh >= heads_here) continue;
#pragma unroll
    for (int k = 0; k < kMaxDimsPerLane; ++k) {
      const int d = lane + 32 * k;
      if (d < D) out[t * static_cast<int64_t>(s.heads) * D + static_cast<int64_t>(h0 + hh) * D + d] = acc[i][k] / l[i];
    }
  }
}

struct NoLaunch {
  template <DType T>
  void run() const {}
};

struct EmbedLaunch {
  const uint8_t* table;
  size_t row_bytes;
  const int32_t* tokens;
  int n, E;
  float scale;
  float* x;
  cudaStream_t stream;
  template <DType T>
  void run() const {
    const int64_t work = n * segments(E);
    launch(embed_kernel<T>, blocks_for(work, kThreads), kThreads, 0, stream, table, row_bytes, tokens, n, E, scale, x);
  }
};

struct DequantizeLaunch {
  const uint8_t* first;
  size_t row_bytes;
  int64_t rows, K;
  float* out;
  cudaStream_t stream;
  template <DType T>
  void run() const {
    const int64_t work = rows * segments(K);
    if (work == 0) return;
    launch(dequantize_kernel<T>, blocks_for(work, kDequantThreads), kDequantThreads, 0, stream, first, row_bytes, rows, K, out);
  }
};

struct GemvLaunch {
  const uint8_t* w;
  size_t row_bytes;
  int64_t rows, K;
  const float* x;
  int64_t ldx;
  int n;
  float* y;
  int64_t ldy;
  float* scratch;
  cudaStream_t stream;
  Store store;

  template <DType T>
  void run() const {
    if (rows == 0 || n == 0) return;
    const int64_t padded = segments(K) * kSeg;
    launch(permute_kernel, blocks_for(n * padded, kThreads), kThreads, 0, stream, x, ldx, n, K, scratch);
    const unsigned grid = blocks_for(rows, kRowsPerBlock);
    for (int t0 = 0; t0 < n; t0 += kGemvMaxTokens) {
      const int nt = n - t0 < kGemvMaxTokens ? n - t0 : kGemvMaxTokens;
      const float* xp = scratch + t0 * padded;
      if (nt == 1)
        launch(gemv_kernel<T, 1>, grid, kGemvWarps * 32, 0, stream, w, row_bytes, rows, K, xp, nt, y + t0 * ldy, ldy,
               store);
      else
        launch(gemv_kernel<T, kGemvMaxTokens>, grid, kGemvWarps * 32, 0, stream, w, row_bytes, rows, K, xp, nt,
               y + t0 * ldy, ldy, store);
    }
  }
};

struct GemvQ8Launch {
  const uint8_t* w;
  size_t row_bytes;
  int64_t rows, K;
  const BlockQ8Act* xq;
  int n;
  float* y;
  int64_t ldy;
  cudaStream_t stream;
  Store store;

  template <DType T>
  void run() const {
    if constexpr (kHasLevels<T>) {
      if (rows == 0 || n == 0) return;
      const unsigned grid = blocks_for(rows, kQ8Warps * kRowsPerWarp);
      for (int t0 = 0; t0 < n; t0 += kGemvMaxTokens) {
        const int nt = n - t0 < kGemvMaxTokens ? n - t0 : kGemvMaxTokens;
        const BlockQ8Act* x = xq + t0 * (K / kQK);
        if (nt == 1)
          launch(gemv_q8_kernel<T, 1>, grid, kQ8Warps * 32, 0, stream, w, row_bytes, rows, K, x, nt, y + t0 * ldy,
                 ldy, store);
        else
          launch(gemv_q8_kernel<T, kGemvMaxTokens>, grid, kQ8Warps * 32, 0, stream, w, row_bytes, rows, K, x, nt,
                 y + t0 * ldy, ldy, store);
      }
    }
  }
};

struct HasLevels {
  bool* out;
  template <DType T>
  void run() const {
    *out = kHasLevels<T>;
  }
};

}  // namespace

bool supports(DType type) { return with_type(type, NoLaunch{}); }

size_t device_row_bytes(DType type, int64_t K) {
  const SplitFields f = split_fields(type);
  if (f.count == 0) return static_cast<size_t>(row_bytes(type, static_cast<uint64_t>(K)));
  return static_cast<size_t>(field_start(f, f.count, K / kQK));
}

bool relaid_out(DType type) { return split_fields(type).count > 0; }

void to_device_rows(DType type, int64_t K, int64_t rows, const void* src, size_t src_row_bytes, void* dst) {
  const size_t out_row = device_row_bytes(type, K);
  const SplitFields f = split_fields(type);
  for (int64_t r = 0; r < rows; ++r) {
    const auto* in = static_cast<const uint8_t*>(src) + static_cast<size_t>(r) * src_row_bytes;
    auto* out = static_cast<uint8_t*>(dst) + static_cast<size_t>(r) * out_row;
    if (f.count == 0) {
      std::memcpy(out, in, out_row);
      continue;
    }
    std::memset(out, 0, out_row);  // the padding after each field's array
    const int64_t nb = K / kQK;
    for (int j = 0; j < f.count; ++j) {
      uint8_t* array = out + field_start(f, j, nb);
      const Field& fj = f.field[j];
      for (int64_t i = 0; i < nb; ++i) std::memcpy(array + i * fj.bytes, in + i * f.block_bytes + fj.offset, fj.bytes);
    }
  }
}

size_t gemv_scratch_floats(int n, int64_t K) { return static_cast<size_t>(n) * static_cast<size_t>(segments(K) * kSeg); }

void embed(DType type, const void* table, size_t row_bytes, const int32_t* tokens, int n, int E, float scale, float* x,
           cudaStream_t stream) {
  with_type(type, EmbedLaunch{static_cast<const uint8_t*>(table), row_bytes, tokens, n, E, scale, x, stream});
}

void dequantize_rows(DType type, const void* w, size_t row_bytes, int64_t row0, int64_t rows, int64_t K, float* out,
                     cudaStream_t stream) {
  const auto* first = static_cast<const uint8_t*>(w) + static_cast<size_t>(row0) * row_bytes;
  with_type(type, DequantizeLaunch{first, row_bytes, rows, K, out, stream});
}

void gemv(DType type, const void* w, size_t row_bytes, int64_t rows, int64_t K, const float* x, int64_t ldx, int n,
          float* y, int64_t ldy, float* scratch, cudaStream_t stream, Store store) {
  with_type(type,
            GemvLaunch{static_cast<const uint8_t*>(w), row_bytes, rows, K, x, ldx, n, y, ldy, scratch, stream, store});
}

bool gemv_q8_supports(DType type, int64_t K) {
  bool has = false;
  with_type(type, HasLevels{&has});
  return has && K % kQK == 0;
}

void quantize_q8_act(const float* x, int64_t ldx, int n, int64_t K, void* q, cudaStream_t stream) {
  const int64_t threads = n * (K / kQK) * 32;
  if (threads == 0) return;
  launch(quantize_q8_act_kernel, blocks_for(threads, kThreads), kThreads, 0, stream, x, ldx, n, K, static_cast<BlockQ8Act*>(q));
}

void gemv_q8(DType type, const void* w, size_t row_bytes, int64_t rows, int64_t K, const float* x, int64_t ldx, int n,
             float* y, int64_t ldy, float* scratch, cudaStream_t stream, Store store) {
  quantize_q8_act(x, ldx, n, K, scratch, stream);
  gemv_q8_quantized(type, w, row_bytes, rows, K, scratch, n, y, ldy, stream, store);
}

void gemv_q8_quantized(DType type, const void* w, size_t row_bytes, int64_t rows, int64_t K, const void* xq, int n,
                       float* y, int64_t ldy, cudaStream_t stream, Store store) {
  with_type(type, GemvQ8Launch{static_cast<const uint8_t*>(w), row_bytes, rows, K, static_cast<const BlockQ8Act*>(xq),
                               n, y, ldy, stream, store});
}

void rmsnorm(const float* in, int64_t ld_in, float* out, int64_t ld_out, int n, int heads, int dim, const float* w,
             float eps, cudaStream_t stream) {
  launch(rmsnorm_kernel, static_cast<unsigned>(n * heads), norm_threads(dim), 0, stream, in, ld_in, out, ld_out, heads,
         dim, w, eps, static_cast<BlockQ8Act*>(nullptr));
}

void rmsnorm_q8(const float* in, int64_t ld_in, float* out, int64_t ld_out, int n, int dim, const float* w, float eps,
                void* q, cudaStream_t stream) {
  launch(rmsnorm_kernel, static_cast<unsigned>(n), norm_threads(dim), 0, stream, in, ld_in, out, ld_out, 1, dim, w, eps,
         static_cast<BlockQ8Act*>(q));
}

void rope_store(const RopeStoreShape& s, float* q, const float* k, const float* v, const float* cos, const float* sin,
                void* k_cache, void* v_cache, cudaStream_t stream) {
  const int64_t work = static_cast<int64_t>(s.n) * (s.heads + 2 * s.kv_heads) * (s.head_dim / 2);
  if (work == 0) return;
  launch(rope_store_kernel, blocks_for(work, kThreads), kThreads, 0, stream, s, q, k, v, cos, sin, k_cache, v_cache);
}

// The shape as the kernels can take it: splits within 1 .. kMaxSplits and
// only with their scratch; 8-bit outputs from the decode kernel only for
// head sizes a whole number of warps wide (else a pass after it).
static AttentionShape kernel_shape(const AttentionShape& shape) {
  AttentionShape s = shape;
  if (s.partials == nullptr || s.counters == nullptr || s.splits < 1) s.splits = 1;
  if (s.splits > kMaxSplits) s.splits = kMaxSplits;
  return s;
}

void attention(const AttentionShape& shape, const float* q, const void* k_cache, const void* v_cache, float* out,
               cudaStream_t stream) {
  const AttentionShape s = kernel_shape(shape);
  if (s.q8 != nullptr && s.head_dim % 32 != 0) {  // the kernel's warps would not hold whole blocks: a pass after it
    AttentionShape plain = s;
    plain.q8 = nullptr;
    attention(plain, q, k_cache, v_cache, out, stream);
    const int64_t width = static_cast<int64_t>(s.heads) * s.head_dim;
    if (width % kQK == 0) quantize_q8_act(out, width, s.n, width, s.q8, stream);
    return;
  }
  const int group = s.heads / s.kv_heads;
  if (s.n <= kAttentionDecodeMax) {  // a few tokens: one block per (token, kv head), keys split across threads
    const dim3 grid(static_cast<unsigned>(s.n * s.splits), static_cast<unsigned>(s.kv_heads));
    for (int g0 = 0; g0 < group; g0 += kMaxGroup) {
      const int group_n = group - g0 < kMaxGroup ? group - g0 : kMaxGroup;
      // The kernel only reads the cache here (FusedRope{}).
      launch(attention_kernel, grid, kAttnThreads, 0, stream, s, FusedRope{}, g0, group_n, q, const_cast<void*>(k_cache),
             const_cast<void*>(v_cache), out);
    }
    return;
  }
  if (s.q8 != nullptr) {  // the tiled kernel does not quantize: a pass after it
    AttentionShape plain = s;
    plain.q8 = nullptr;
    attention(plain, q, k_cache, v_cache, out, stream);
    const int64_t width = static_cast<int64_t>(s.heads) * s.head_dim;
    quantize_q8_act(out, width, s.n, width, s.q8, stream);
    return;
  }
  // Batches: query tiles of kRows (token, head) rows, K/V tiles shared by them.
  const int heads_per_block = group < kRows ? group : kRows;
  const int tokens_per_block = kRows / heads_per_block;
  const size_t shared = tiled_shared_floats(s.head_dim) * sizeof(float);
  static const bool configured = [] {
    cudaFuncSetAttribute(attention_tiled_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_shared_bytes());
    return true;
  }();
  (void)configured;
  const dim3 grid(static_cast<unsigned>((s.n + tokens_per_block - 1) / tokens_per_block),
                  static_cast<unsigned>(s.kv_heads),
                  static_cast<unsigned>((group + heads_per_block - 1) / heads_per_block));
  launch(attention_tiled_kernel, grid, kTiledWarps * 32, shared, stream, s, heads_per_block, q, k_cache, v_cache, out);
}

int attention_splits(int64_t n_ctx) {
  const int64_t chunks = (n_ctx + kMinSplitKeys - 1) / kMinSplitKeys;
  return static_cast<int>(chunks < 1 ? 1 : chunks > kMaxSplits ? kMaxSplits : chunks);
}

void rope_store_attention(const RopeStoreShape& r, const AttentionShape& shape, float* q, const float* k,
                          const float* v, const float* cos, const float* sin, void* k_cache, void* v_cache, float* out,
                          cudaStream_t stream) {
  const AttentionShape s = kernel_shape(shape);
  const int group = s.heads / s.kv_heads;
  if (s.n != 1 || group > kMaxGroup || (s.q8 != nullptr && s.head_dim % 32 != 0)) {
    // Separately: the blocks of other tokens / launches need every row first.
    rope_store(r, q, k, v, cos, sin, k_cache, v_cache, stream);
    attention(s, q, k_cache, v_cache, out, stream);
    return;
  }
  FusedRope rope;
  rope.k = k;
  rope.v = v;
  rope.cos = cos;
  rope.sin = sin;
  rope.n_rot = r.n_rot;
  rope.neox = r.neox;
  rope.rows = r.rows;
  launch(attention_kernel, dim3(static_cast<unsigned>(s.splits), static_cast<unsigned>(s.kv_heads)), kAttnThreads, 0,
         stream, s, rope, 0, group, q, k_cache, v_cache, out);
}

void gated(GatedAct act, const float* gate, const float* up, int64_t ld_in, float* out, int64_t ld_out, int n, int F,
           cudaStream_t stream) {
  const int64_t work = static_cast<int64_t>(n) * F;
  launch(gated_kernel, blocks_for(work, kThreads), kThreads, 0, stream, act, gate, up, ld_in, out, ld_out, n, F,
         static_cast<BlockQ8Act*>(nullptr));
}

void gated_q8(GatedAct act, const float* gate, const float* up, int64_t ld_in, float* out, int64_t ld_out, int n, int F,
              void* q, cudaStream_t stream) {
  const int64_t work = static_cast<int64_t>(n) * F;
  launch(gated_kernel, blocks_for(work, kThreads), kThreads, 0, stream, act, gate, up, ld_in, out, ld_out, n, F,
         static_cast<BlockQ8Act*>(q));
}

void add(float* y, const float* x, int64_t n, cudaStream_t stream) {
  launch(add_kernel, blocks_for(n, kThreads), kThreads, 0, stream, y, x, n);
}

void softcap(float* x, float cap, int64_t n, cudaStream_t stream) {
  launch(softcap_kernel, blocks_for(n, kThreads), kThreads, 0, stream, x, cap, n);
}

}  // namespace slm::kernels::cuda
