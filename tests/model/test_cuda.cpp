// The CUDA backend. Everywhere: what happens without one (a build without
// CUDA, a machine without a GPU) — a clear error, never a crash — and the
// kernels' type dispatch. With a GPU: the kernels against the CPU reference,
// every reference model's logits within its tolerance, greedy continuations
// equal to the CPU's on the float files, batch sizes 1 / 7 / 64 (decode GEMV,
// multi-token GEMV, cuBLAS), long prompts through the sliding-window rings.
// The GPU tests skip, saying why, when no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "core/dtype.h"
#include "core/fp16.h"
#include "cpu/blocks.h"
#include "cpu/kernels.h"
#include "model/cuda/cuda_backend.h"
#include "model/forward.h"
#include "slm/error.h"
#include "slm/model.h"
#include "support/references.h"
#include "support/testdata.h"

#ifdef SLM_HAVE_CUDA
#include <cuda_runtime.h>

#include "cpu/ref/ref.h"
#include "cuda/ops.h"
#endif

namespace slm::model {
namespace {

#define SLM_REQUIRE_GPU()                                        \
  do {                                                           \
    std::string why_;                                            \
    if (!cuda::available(&why_)) GTEST_SKIP() << "no GPU: " << why_; \
  } while (0)

std::string phi3_tiny() { return test::testdata_dir() + "/models/phi3-tiny-q4_0.gguf"; }

TEST(CudaBackend, WithoutAGpuLoadingOnCudaIsAClearError) {
  SLM_REQUIRE_TESTDATA();
  std::string why;
  if (cuda::available(&why)) {
    const auto m = Model::load(phi3_tiny(), Device::cuda);
    EXPECT_EQ(m->device(), Device::cuda);
    EXPECT_EQ(m->device_name().rfind("cuda: ", 0), 0u) << m->device_name();
    return;
  }
  EXPECT_FALSE(why.empty());
  try {
    Model::load(phi3_tiny(), Device::cuda);
    FAIL() << "loading on CUDA without a GPU must fail";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(why), std::string::npos) << msg;
#ifdef SLM_HAVE_CUDA
    EXPECT_NE(msg.find("GPU"), std::string::npos) << msg;
#else
    EXPECT_NE(msg.find("-DSLM_CUDA=ON"), std::string::npos) << msg;
#endif
  }
}

TEST(CudaBackend, PublicApiDeviceChoice) {
  SLM_REQUIRE_TESTDATA();
  ModelParams p;
  p.device = slm::Device::automatic;
  const auto m = slm::Model::load(phi3_tiny(), p);
  EXPECT_EQ(m->info().device.rfind(slm::cuda_available() ? "cuda: " : "cpu (", 0), 0u) << m->info().device;
  p.device = slm::Device::cpu;
  EXPECT_EQ(slm::Model::load(phi3_tiny(), p)->info().device.rfind("cpu (", 0), 0u);
  if (!slm::cuda_available()) {
    p.device = slm::Device::cuda;
    EXPECT_THROW(slm::Model::load(phi3_tiny(), p), Error);
  }
}

#ifdef SLM_HAVE_CUDA

// The formats the device kernels read: the float types and every block
// format a GGUF model file uses, except the activation-only Q8_K / Q8_1.
TEST(CudaKernels, SupportsExactlyTheModelFormats) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                  DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    EXPECT_TRUE(kernels::cuda::supports(t)) << dtype_name(t);
  for (DType t : {DType::Q8_1, DType::Q8_K, DType::IQ4_NL, DType::I8, DType::I32})
    EXPECT_FALSE(kernels::cuda::supports(t)) << dtype_name(t);
}

size_t row_bytes_of(DType t, int64_t K) { return static_cast<size_t>(row_bytes(t, static_cast<uint64_t>(K))); }

// Rows in the file's layout as the device kernels read them (ops.h: device rows).
std::vector<uint8_t> device_rows(DType t, const std::vector<uint8_t>& w, int64_t rows, int64_t K) {
  std::vector<uint8_t> out(kernels::cuda::device_row_bytes(t, K) * static_cast<size_t>(rows));
  kernels::cuda::to_device_rows(t, K, rows, w.data(), row_bytes_of(t, K), out.data());
  return out;
}

// The device rows' layout, as ops.h states it: for the 32-element formats,
// the quants of block i at quant_bytes * i, then each other field as an
// array starting on 16 bytes; rows a multiple of 16 bytes; every other
// format the file's bytes unchanged. Widths whose arrays need padding (5
// blocks) and whose arrays do not (8 blocks).
TEST(CudaKernels, DeviceRowsHoldEveryFieldOfEveryBlockAligned) {
  struct Case {
    DType type;
    size_t block;
    std::vector<std::pair<size_t, size_t>> arrays;  // (offset in the block, bytes per block), in row order
  };
  using kernels::BlockQ4_0, kernels::BlockQ4_1, kernels::BlockQ5_0, kernels::BlockQ5_1, kernels::BlockQ8_0;
  // Q4_1 / Q5_1: d and m, adjacent in the block, are one array of (d, m) pairs.
  static_assert(offsetof(BlockQ4_1, m) == offsetof(BlockQ4_1, d) + 2 && offsetof(BlockQ5_1, m) == offsetof(BlockQ5_1, d) + 2);
  const std::vector<Case> cases = {
      {DType::Q4_0, sizeof(BlockQ4_0), {{offsetof(BlockQ4_0, qs), 16}, {offsetof(BlockQ4_0, d), 2}}},
      {DType::Q4_1, sizeof(BlockQ4_1), {{offsetof(BlockQ4_1, qs), 16}, {offsetof(BlockQ4_1, d), 4}}},
      {DType::Q5_0, sizeof(BlockQ5_0), {{offsetof(BlockQ5_0, qs), 16}, {offsetof(BlockQ5_0, qh), 4}, {offsetof(BlockQ5_0, d), 2}}},
      {DType::Q5_1, sizeof(BlockQ5_1), {{offsetof(BlockQ5_1, qs), 16}, {offsetof(BlockQ5_1, qh), 4}, {offsetof(BlockQ5_1, d), 4}}},
      {DType::Q8_0, sizeof(BlockQ8_0), {{offsetof(BlockQ8_0, qs), 32}, {offsetof(BlockQ8_0, d), 2}}},
  };
  std::mt19937 rng(3);
  for (const Case& c : cases) {
    for (int64_t nb : {5, 8}) {
      SCOPED_TRACE(std::string(dtype_name(c.type)) + ", blocks " + std::to_string(nb));
      const int64_t K = 32 * nb, rows = 3;
      const size_t in_row = row_bytes_of(c.type, K), out_row = kernels::cuda::device_row_bytes(c.type, K);
      std::vector<uint8_t> w(in_row * rows);
      for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
      EXPECT_EQ(out_row % 16, 0u);
      EXPECT_TRUE(kernels::cuda::relaid_out(c.type));
      const auto dev = device_rows(c.type, w, rows, K);
      for (int64_t r = 0; r < rows; ++r) {
        size_t at = 0;  // where the array starts in the device row
        for (const auto& [offset, bytes] : c.arrays) {
          EXPECT_EQ(at % 16, 0u);
          for (int64_t i = 0; i < nb; ++i)
            EXPECT_EQ(std::memcmp(&dev[r * out_row + at + i * bytes], &w[r * in_row + i * c.block + offset], bytes), 0)
                << "row " << r << " block " << i << " field at " << offset;
          at += (static_cast<size_t>(nb) * bytes + 15) / 16 * 16;
        }
        EXPECT_EQ(at, out_row);
      }
    }
  }
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_K, DType::Q6_K}) {
    const int64_t K = 512;
    std::vector<uint8_t> w(row_bytes_of(t, K) * 2);
    for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
    EXPECT_FALSE(kernels::cuda::relaid_out(t)) << dtype_name(t);
    EXPECT_EQ(kernels::cuda::device_row_bytes(t, K), row_bytes_of(t, K)) << dtype_name(t);
    EXPECT_EQ(device_rows(t, w, 2, K), w) << dtype_name(t);
  }
}

// y ([n, rows]) against the double-precision dot of the dequantized weights
// w ([rows, K]) with x ([n, K]), within f32 rounding of the summed magnitudes.
void expect_gemv_result(const std::vector<float>& y, const std::vector<float>& w, const std::vector<float>& x, int n,
                        int64_t rows, int64_t K) {
  for (int tok = 0; tok < n; ++tok)
    for (int64_t r = 0; r < rows; ++r) {
      double dot = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        dot += static_cast<double>(w[r * K + k]) * x[tok * K + k];
        mag += std::fabs(static_cast<double>(w[r * K + k]) * x[tok * K + k]);
      }
      EXPECT_NEAR(y[tok * rows + r], dot, 1e-5 * mag + 1e-6) << "token " << tok << " row " << r;
    }
}

// Device memory for a test.
template <typename T>
struct DevArray {
  T* p = nullptr;
  explicit DevArray(size_t n) { EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess); }
  DevArray(const std::vector<T>& host) : DevArray(host.size()) {
    EXPECT_EQ(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DevArray() { cudaFree(p); }
  std::vector<T> get(size_t n) const {
    std::vector<T> out(n);
    EXPECT_EQ(cudaMemcpy(out.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
};

// Every type: rows quantized by the CPU reference, dequantized on the GPU
// bit-identical to the CPU reference dequantizer; the GEMV (1 and 5 tokens)
// within float rounding of the CPU dot of those dequantized rows.
TEST(CudaKernels, DequantizeAndGemvMatchTheCpuReference) {
  SLM_REQUIRE_GPU();
  const int64_t rows = 37, K = 512;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(rows * K));
  for (float& v : src) v = dist(rng);
  const int n_tok = 5;
  std::vector<float> x(static_cast<size_t>(n_tok * K));
  for (float& v : x) v = dist(rng);
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                  DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(t));
    const size_t row_bytes = row_bytes_of(t, K);
    std::vector<uint8_t> w(row_bytes * rows);
    if (kernels::can_quantize(t)) {
      for (int64_t r = 0; r < rows; ++r) kernels::quantize_row(t, src.data() + r * K, w.data() + r * row_bytes, K);
    } else {
      // Q2_K / Q3_K (no quantizer in slm): random quants and sub-block
      // scales, finite super-block scales.
      ASSERT_TRUE(t == DType::Q2_K || t == DType::Q3_K);
      for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
      const bool q2 = t == DType::Q2_K;
      const size_t block = q2 ? sizeof(kernels::BlockQ2_K) : sizeof(kernels::BlockQ3_K);
      for (size_t at = 0; at < w.size(); at += block) {
        const uint16_t d = f32_to_f16(0.01f), dmin = f32_to_f16(0.002f);
        std::memcpy(&w[at + (q2 ? offsetof(kernels::BlockQ2_K, d) : offsetof(kernels::BlockQ3_K, d))], &d, 2);
        if (q2) std::memcpy(&w[at + offsetof(kernels::BlockQ2_K, dmin)], &dmin, 2);
      }
    }
    std::vector<float> want(src.size());
    for (int64_t r = 0; r < rows; ++r) kernels::dequantize_row(t, w.data() + r * row_bytes, want.data() + r * K, K);

    DevArray<uint8_t> dw(device_rows(t, w, rows, K));
    const size_t dev_row = kernels::cuda::device_row_bytes(t, K);
    DevArray<float> dout(want.size()), dx(x), dy(static_cast<size_t>(n_tok * rows)),
        scratch(kernels::cuda::gemv_scratch_floats(n_tok, K));
    kernels::cuda::dequantize_rows(t, dw.p, dev_row, 0, rows, K, dout.p, nullptr);
    EXPECT_EQ(dout.get(want.size()), want);
    for (int n : {1, n_tok}) {
      kernels::cuda::gemv(t, dw.p, dev_row, rows, K, dx.p, K, n, dy.p, rows, scratch.p, nullptr);
      SCOPED_TRACE("n " + std::to_string(n));
      const auto y = dy.get(static_cast<size_t>(n * rows));
      expect_gemv_result(y, want, x, n, rows, K);
      // Store::add: the same sums added to what y held, one rounding each.
      kernels::cuda::gemv(t, dw.p, dev_row, rows, K, dx.p, K, n, dy.p, rows, scratch.p, nullptr,
                          kernels::cuda::Store::add);
      const auto y2 = dy.get(static_cast<size_t>(n * rows));
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y2[i], y[i] + y[i]) << i;
    }
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  }
}

// Rows of 16384 elements and 11 tokens: two launches over the weights (8 + 3
// tokens) reading the re-laid-out activations at their offsets.
TEST(CudaKernels, GemvTakesLongRowsAndMoreTokensThanOneLaunch) {
  SLM_REQUIRE_GPU();
  const int64_t rows = 7, K = 16384;
  const int n = 11;
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(rows * K)), x(static_cast<size_t>(n * K));
  for (float& v : src) v = dist(rng);
  for (float& v : x) v = dist(rng);
  const size_t row_bytes = row_bytes_of(DType::Q4_0, K);
  std::vector<uint8_t> w(row_bytes * rows);
  std::vector<float> want(src.size());
  for (int64_t r = 0; r < rows; ++r) {
    kernels::quantize_row(DType::Q4_0, src.data() + r * K, w.data() + r * row_bytes, K);
    kernels::dequantize_row(DType::Q4_0, w.data() + r * row_bytes, want.data() + r * K, K);
  }
  DevArray<uint8_t> dw(device_rows(DType::Q4_0, w, rows, K));
  DevArray<float> dx(x), dy(static_cast<size_t>(n * rows)), scratch(kernels::cuda::gemv_scratch_floats(n, K));
  kernels::cuda::gemv(DType::Q4_0, dw.p, kernels::cuda::device_row_bytes(DType::Q4_0, K), rows, K, dx.p, K, n, dy.p,
                      rows, scratch.p, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  expect_gemv_result(dy.get(static_cast<size_t>(n * rows)), want, x, n, rows, K);
}

// The int8 GEMV of the 32-element formats: the activations quantized on the
// GPU byte for byte as the CPU reference quantizes them (BlockQ8Act), and
// each output within float rounding of the CPU reference's dot of those
// blocks (dot_q_act: the same integer sums and scales). Odd row counts,
// 1, 5 and 11 tokens (two launches).
TEST(CudaKernels, Int8GemvMatchesTheCpuReference) {
  SLM_REQUIRE_GPU();
  // 41 blocks: less than one chunk per lane; 300: several chunks, the last partial.
  for (int64_t K : {int64_t{32 * 41}, int64_t{32 * 300}}) {
    SCOPED_TRACE("K " + std::to_string(K));
    const int64_t rows = 37;
    const size_t act_row = kernels::act_row_bytes(kernels::ActFormat::q8_32, K);
    std::mt19937 rng(17);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> src(static_cast<size_t>(rows * K)), x(static_cast<size_t>(11 * K));
    for (float& v : src) v = dist(rng);
    for (float& v : x) v = dist(rng);
    x[5] = 0.0f;  // a block of zeros: d = 0
    std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
    const auto& ref = kernels::ref::table();
    for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
      SCOPED_TRACE(dtype_name(t));
      ASSERT_TRUE(kernels::cuda::gemv_q8_supports(t, K));
      EXPECT_FALSE(kernels::cuda::gemv_q8_supports(t, K + 16));
      const size_t row_bytes = row_bytes_of(t, K);
      std::vector<uint8_t> w(row_bytes * rows);
      for (int64_t r = 0; r < rows; ++r) kernels::quantize_row(t, src.data() + r * K, w.data() + r * row_bytes, K);
      DevArray<uint8_t> dw(device_rows(t, w, rows, K));
      const size_t dev_row = kernels::cuda::device_row_bytes(t, K);
      DevArray<float> dx(x), dy(static_cast<size_t>(11 * rows)), scratch(kernels::cuda::gemv_scratch_floats(11, K));
      for (int n : {1, 5, 11}) {
        SCOPED_TRACE("n " + std::to_string(n));
        std::vector<uint8_t> xq(act_row * static_cast<size_t>(n));
        for (int tok = 0; tok < n; ++tok) kernels::ref::quantize_row_q8_act(x.data() + tok * K, xq.data() + tok * act_row, K);
        kernels::cuda::quantize_q8_act(dx.p, K, n, K, scratch.p, nullptr);
        std::vector<float> got_q = scratch.get(xq.size() / sizeof(float) + 1);
        EXPECT_EQ(std::memcmp(got_q.data(), xq.data(), xq.size()), 0) << "8-bit activations differ from the CPU's";
        kernels::cuda::gemv_q8(t, dw.p, dev_row, rows, K, dx.p, K, n, dy.p, rows, scratch.p, nullptr);
        const auto y = dy.get(static_cast<size_t>(n * rows));
        ASSERT_EQ(cudaGetLastError(), cudaSuccess);
        // Store::add: the same sums added to what y held, one rounding each.
        kernels::cuda::gemv_q8(t, dw.p, dev_row, rows, K, dx.p, K, n, dy.p, rows, scratch.p, nullptr,
                               kernels::cuda::Store::add);
        const auto y2 = dy.get(static_cast<size_t>(n * rows));
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y2[i], y[i] + y[i]) << i;
        for (int tok = 0; tok < n; ++tok)
          for (int64_t r = 0; r < rows; ++r) {
            float want = 0;
            ref.types[static_cast<int>(t)].dot(K, w.data() + r * row_bytes, xq.data() + tok * act_row, act_row, 1, &want);
            double mag = 0;  // the summed magnitudes the rounding scales with
            for (int64_t k = 0; k < K; ++k) mag += std::fabs(static_cast<double>(src[r * K + k]) * x[tok * K + k]);
            EXPECT_NEAR(y[tok * rows + r], want, 1e-5 * mag + 1e-6) << "token " << tok << " row " << r;
          }
      }
    }
  }
}

// The norm and the gated activation that also write their outputs' 8-bit
// activations: the f32 outputs equal the plain kernels', the bytes equal
// quantize_q8_act of those outputs.
TEST(CudaKernels, FusedQuantizationEqualsTheSeparatePasses) {
  SLM_REQUIRE_GPU();
  const int n = 3;
  std::mt19937 rng(23);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int dim : {96, 3072, 8192}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    std::vector<float> x(static_cast<size_t>(2 * n * dim)), w(static_cast<size_t>(dim));
    for (float& v : x) v = dist(rng);
    for (float& v : w) v = 1.0f + 0.1f * dist(rng);
    const size_t q_bytes = kernels::act_row_bytes(kernels::ActFormat::q8_32, dim) * n;
    DevArray<float> dx(x), dw(w), plain(static_cast<size_t>(n * dim)), fused(static_cast<size_t>(n * dim)),
        q_fused(q_bytes / sizeof(float)), q_plain(q_bytes / sizeof(float));
    // RMSNorm of n rows.
    kernels::cuda::rmsnorm(dx.p, dim, plain.p, dim, n, 1, dim, dw.p, 1e-5f, nullptr);
    kernels::cuda::rmsnorm_q8(dx.p, dim, fused.p, dim, n, dim, dw.p, 1e-5f, q_fused.p, nullptr);
    kernels::cuda::quantize_q8_act(plain.p, dim, n, dim, q_plain.p, nullptr);
    EXPECT_EQ(fused.get(static_cast<size_t>(n * dim)), plain.get(static_cast<size_t>(n * dim)));
    auto same_bytes = [](const std::vector<float>& a, const std::vector<float>& b) {  // int8 bytes, not floats
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    EXPECT_TRUE(same_bytes(q_fused.get(q_bytes / sizeof(float)), q_plain.get(q_bytes / sizeof(float))));
    // SwiGLU over [gate | up] rows of 2 * dim.
    kernels::cuda::gated(kernels::cuda::GatedAct::silu, dx.p, dx.p + dim, 2 * dim, plain.p, dim, n / 2 + 1, dim, nullptr);
    kernels::cuda::gated_q8(kernels::cuda::GatedAct::silu, dx.p, dx.p + dim, 2 * dim, fused.p, dim, n / 2 + 1, dim,
                            q_fused.p, nullptr);
    kernels::cuda::quantize_q8_act(plain.p, dim, n / 2 + 1, dim, q_plain.p, nullptr);
    const size_t rows = static_cast<size_t>(n / 2 + 1);
    EXPECT_EQ(fused.get(rows * dim), plain.get(rows * dim));
    EXPECT_TRUE(same_bytes(q_fused.get(q_bytes / n * rows / sizeof(float)), q_plain.get(q_bytes / n * rows / sizeof(float))));
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  }
}

// The attention tests' shape: n tokens of `heads` query heads of D dims
// (rows ldq apart) over a cache of kv_heads heads, at the position in *pos0.
kernels::cuda::AttentionShape attention_shape(int n, int heads, int kv_heads, int D, int64_t ldq, const int64_t* pos0) {
  kernels::cuda::AttentionShape s;
  s.n = n;
  s.heads = heads;
  s.kv_heads = kv_heads;
  s.head_dim = D;
  s.ldq = ldq;
  s.kv_dim = int64_t{kv_heads} * D;
  s.pos0 = pos0;
  return s;
}

// Attention that also writes its outputs' 8-bit activations (AttentionShape::
// q8): the outputs equal the plain kernel's, the bytes quantize_q8_act's of
// them — for decode batches (the kernel quantizes as it stores) and a
// batch the tiled kernel takes (a pass after it).
TEST(CudaKernels, AttentionWithActivationsEqualsTheSeparatePasses) {
  SLM_REQUIRE_GPU();
  const int heads = 4, kv_heads = 2, D = 64, rows = 16;
  const int64_t pos0 = 7, width = int64_t{heads} * D;
  std::mt19937 rng(29);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> kc(static_cast<size_t>(rows * kv_heads * D)), vc(kc.size());
  for (uint16_t& h : kc) h = f32_to_f16(dist(rng));
  for (uint16_t& h : vc) h = f32_to_f16(dist(rng));
  std::vector<float> q(static_cast<size_t>(8 * width));
  for (float& v : q) v = dist(rng);
  DevArray<uint16_t> dk(kc), dv(vc);
  DevArray<float> dq(q), plain(q.size()), fused(q.size());
  DevArray<int64_t> dpos(std::vector<int64_t>{pos0});
  const size_t q_floats = kernels::act_row_bytes(kernels::ActFormat::q8_32, width) * 8 / sizeof(float);
  DevArray<float> q_fused(q_floats), q_plain(q_floats);
  for (int n : {1, 3, 6}) {
    SCOPED_TRACE("n " + std::to_string(n));
    ASSERT_EQ(n > kernels::cuda::kAttentionDecodeMax, n == 6);
    kernels::cuda::AttentionShape s = attention_shape(n, heads, kv_heads, D, width, dpos.p);
    s.scale = 0.125f;
    kernels::cuda::attention(s, dq.p, dk.p, dv.p, plain.p, nullptr);
    s.q8 = q_fused.p;
    kernels::cuda::attention(s, dq.p, dk.p, dv.p, fused.p, nullptr);
    kernels::cuda::quantize_q8_act(plain.p, width, n, width, q_plain.p, nullptr);
    const size_t floats = static_cast<size_t>(n * width), q_n = q_floats / 8 * static_cast<size_t>(n);
    const auto want = plain.get(floats);
    EXPECT_EQ(fused.get(floats), want);
    const auto a = q_fused.get(q_n), b = q_plain.get(q_n);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), q_n * sizeof(float)), 0) << "8-bit activations differ";
    EXPECT_GT(*std::max_element(want.begin(), want.end()), 0.0f);  // the outputs are not all zero
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  }
}

// Decode attention over a long context with the keys split among blocks
// (AttentionShape::splits): each output within float rounding of a
// double-precision softmax on the host, with one split and with sixteen
// (chunks of 256 keys merged by the last block), full causal and within a
// sliding window; every merge leaves its counter at zero for the next step.
TEST(CudaKernels, SplitDecodeAttentionMatchesADoubleSoftmax) {
  SLM_REQUIRE_GPU();
  const int heads = 4, kv_heads = 2, D = 64, rows = 1600;
  const int64_t pos0 = 1500, kv_dim = int64_t{kv_heads} * D, width = int64_t{heads} * D;
  const int n = 2;
  const float scale = 0.125f;
  std::mt19937 rng(37);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> kc(static_cast<size_t>(rows * kv_dim)), vc(kc.size());
  for (uint16_t& h : kc) h = f32_to_f16(dist(rng));
  for (uint16_t& h : vc) h = f32_to_f16(dist(rng));
  std::vector<float> q(static_cast<size_t>(n * width));
  for (float& v : q) v = dist(rng);
  DevArray<uint16_t> dk(kc), dv(vc);
  DevArray<float> dq(q), dout(q.size()),
      partials(kernels::cuda::attention_partial_floats(n, heads, D, kernels::cuda::kMaxAttentionSplits));
  DevArray<int64_t> dpos(std::vector<int64_t>{pos0});
  DevArray<unsigned> counters(std::vector<unsigned>(static_cast<size_t>(n * heads), 0u));
  for (int64_t window : {int64_t{0}, int64_t{700}}) {
    // The reference: out[t][h] = sum_j softmax_j(scale * q . k_j) v_j over the token's keys.
    std::vector<double> want(q.size());
    for (int t = 0; t < n; ++t)
      for (int h = 0; h < heads; ++h) {
        const int64_t pos = pos0 + t, first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
        const int64_t g = h / (heads / kv_heads);
        std::vector<double> sc;
        double mx = -1e300;
        for (int64_t j = first; j <= pos; ++j) {
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(q[t * width + h * D + d]) * f16_to_f32(kc[j * kv_dim + g * D + d]);
          sc.push_back(dot * scale);
          mx = std::max(mx, sc.back());
        }
        double sum = 0;
        for (double& v : sc) sum += (v = std::exp(v - mx));
        for (int d = 0; d < D; ++d) {
          double o = 0;
          for (int64_t j = first; j <= pos; ++j) o += sc[j - first] * f16_to_f32(vc[j * kv_dim + g * D + d]);
          want[t * width + h * D + d] = o / sum;
        }
      }
    for (int splits : {1, kernels::cuda::kMaxAttentionSplits}) {
      SCOPED_TRACE("window " + std::to_string(window) + ", splits " + std::to_string(splits));
      kernels::cuda::AttentionShape s = attention_shape(n, heads, kv_heads, D, width, dpos.p);
      s.window = window;
      s.scale = scale;
      s.splits = splits;
      s.partials = partials.p;
      s.counters = counters.p;
      kernels::cuda::attention(s, dq.p, dk.p, dv.p, dout.p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto got = dout.get(q.size());
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-5) << i;
      EXPECT_EQ(counters.get(static_cast<size_t>(n * heads)), std::vector<unsigned>(static_cast<size_t>(n * heads), 0u));
    }
  }
}

// A decode step's RoPE, cache write and attention as one kernel
// (rope_store_attention) give the bits of the two kernels (rope_store, then
// attention): the outputs, their 8-bit activations, every cache byte. f16
// and f32 caches, both RoPE pairings, rotary dims fewer than the head's,
// a ring, two query heads per KV head.
TEST(CudaKernels, RopeFusedIntoAttentionEqualsTheSeparateKernels) {
  SLM_REQUIRE_GPU();
  const int heads = 4, kv_heads = 2, D = 64, n_rot = 32, rows = 12;
  const int64_t pos = 17, kv_dim = int64_t{kv_heads} * D, ldq = int64_t{heads} * D + 2 * kv_dim;  // fused qkv rows
  std::mt19937 rng(31);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> qkv(static_cast<size_t>(ldq)), cos(n_rot / 2), sin(n_rot / 2);
  for (float& v : qkv) v = dist(rng);
  for (int p = 0; p < n_rot / 2; ++p) {
    cos[p] = std::cos(0.3f * static_cast<float>(p + 1));
    sin[p] = std::sin(0.3f * static_cast<float>(p + 1));
  }
  DevArray<int64_t> dpos(std::vector<int64_t>{pos});
  DevArray<float> dcos(cos), dsin(sin);
  for (bool f16 : {true, false}) {
    for (bool neox : {true, false}) {
      SCOPED_TRACE(std::string(f16 ? "f16" : "f32") + (neox ? ", neox" : ", pairs"));
      const size_t cache_floats = static_cast<size_t>(rows * kv_dim) / (f16 ? 2 : 1);
      std::vector<float> cache(cache_floats);
      for (float& v : cache) v = f16 ? 0.0f : dist(rng);
      if (f16)  // random f16 bits for the rows already held
        for (size_t i = 0; i < cache.size(); ++i) {
          const uint32_t lo = f32_to_f16(dist(rng)), hi = f32_to_f16(dist(rng));
          const uint32_t both = lo | (hi << 16);
          std::memcpy(&cache[i], &both, 4);
        }
      const size_t q_floats = kernels::act_row_bytes(kernels::ActFormat::q8_32, int64_t{heads} * D) / sizeof(float);
      std::vector<std::vector<float>> out(2), caches(4), q8(2);
      for (int fused = 0; fused < 2; ++fused) {
        DevArray<float> dqkv(qkv), dk(cache), dv(cache), dout(static_cast<size_t>(heads * D)), dq8(q_floats);
        kernels::cuda::RopeStoreShape r;
        r.n = 1;
        r.heads = heads;
        r.kv_heads = kv_heads;
        r.head_dim = D;
        r.n_rot = n_rot;
        r.ldq = r.ldk = ldq;
        r.rows = rows;
        r.neox = neox;
        r.kv_f16 = f16;
        r.pos0 = dpos.p;
        kernels::cuda::AttentionShape s = attention_shape(1, heads, kv_heads, D, ldq, dpos.p);
        s.ring = rows;
        s.window = rows;
        s.scale = 0.125f;
        s.kv_f16 = f16;
        s.q8 = dq8.p;
        float* q = dqkv.p;
        float* k = q + heads * D;
        float* v = k + kv_dim;
        if (fused) {
          kernels::cuda::rope_store_attention(r, s, q, k, v, dcos.p, dsin.p, dk.p, dv.p, dout.p, nullptr);
        } else {
          kernels::cuda::rope_store(r, q, k, v, dcos.p, dsin.p, dk.p, dv.p, nullptr);
          kernels::cuda::attention(s, q, dk.p, dv.p, dout.p, nullptr);
        }
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        out[fused] = dout.get(static_cast<size_t>(heads * D));
        q8[fused] = dq8.get(q_floats);
        caches[2 * fused] = dk.get(cache_floats);
        caches[2 * fused + 1] = dv.get(cache_floats);
      }
      EXPECT_EQ(out[1], out[0]);
      EXPECT_EQ(std::memcmp(q8[1].data(), q8[0].data(), q8[0].size() * sizeof(float)), 0) << "8-bit activations differ";
      EXPECT_EQ(std::memcmp(caches[2].data(), caches[0].data(), caches[0].size() * sizeof(float)), 0) << "K cache";
      EXPECT_EQ(std::memcmp(caches[3].data(), caches[1].data(), caches[1].size() * sizeof(float)), 0) << "V cache";
      EXPECT_NE(caches[0], cache);  // the step wrote its row
    }
  }
}

// Runs `tokens` through a fresh context; all logits.
std::vector<float> run(const Model& m, const std::vector<int32_t>& tokens, int64_t n_batch, int64_t n_ctx = 512) {
  ContextParams p;
  p.n_ctx = n_ctx;
  p.n_batch = n_batch;
  p.n_threads = 1;
  Context ctx(m, p);
  std::vector<float> logits;
  ctx.evaluate(tokens.data(), static_cast<int64_t>(tokens.size()), true, logits);
  return logits;
}

TEST(CudaReference, EveryReferenceWithinToleranceAtBatchSizes1_7_64) {
  SLM_REQUIRE_TESTDATA();
  SLM_REQUIRE_GPU();
  const auto refs = references();
  ASSERT_EQ(refs.size(), test::expected::kReferences);
  for (const Reference& r : refs) {
    const auto model = Model::load(r.model, Device::cuda);
    const size_t V = static_cast<size_t>(model->hparams().n_vocab);
    for (int64_t batch : {64, 7, 1}) {
      SCOPED_TRACE(r.name + ", batch " + std::to_string(batch));
      const auto logits = run(*model, r.tokens, batch);
      ASSERT_EQ(logits.size(), r.tokens.size() * V);
      const double err = rel_rms(logits, r.logits);
      EXPECT_LE(err, r.tolerance);
      RecordProperty(r.name + "_cuda_b" + std::to_string(batch), std::to_string(err));
      expect_clear_argmaxes_match(logits, r, V);
    }
  }
}

// F32 / F16 files: the greedy continuation through the decode path equals
// the reference engine's, and the CPU's.
TEST(CudaReference, GreedyContinuationEqualsTheCpuOnFloatFiles) {
  SLM_REQUIRE_TESTDATA();
  SLM_REQUIRE_GPU();
  for (const Reference& r : references()) {
    if (!r.exact_type) continue;
    SCOPED_TRACE(r.name);
    auto greedy = [&](Device d) {
      const auto model = Model::load(r.model, d);
      const size_t V = static_cast<size_t>(model->hparams().n_vocab);
      ContextParams p;
      p.n_ctx = 512;
      Context ctx(*model, p);
      std::vector<float> last;
      ctx.evaluate(r.tokens.data(), static_cast<int64_t>(r.tokens.size()), false, last);
      std::vector<int32_t> out;
      for (size_t i = 0; i < r.greedy.size(); ++i) {
        const auto next = static_cast<int32_t>(argmax(last, V));
        out.push_back(next);
        if (i + 1 < r.greedy.size()) ctx.evaluate(&next, 1, false, last);
      }
      return out;
    };
    const auto gpu = greedy(Device::cuda);
    EXPECT_EQ(gpu, r.greedy);
    EXPECT_EQ(gpu, greedy(Device::cpu));
  }
}

// 640 tokens in batches of 100 (cuBLAS), then 40 decoded one at a time
// (GEMV): past the sliding windows of the Gemma 2 / 3 files, so their ring
// rows wrap; every position's logits as the CPU computes them.
TEST(CudaReference, LongPromptsThroughTheRingsAgreeWithTheCpu) {
  SLM_REQUIRE_TESTDATA();
  SLM_REQUIRE_GPU();
  std::vector<int32_t> tokens(680);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 193 + 7) % 512);
  // The README's bars, doubled: each backend may sit on either side of the truth.
  for (auto [stem, tolerance] : {std::pair{"phi3-tiny", 0.004}, {"gemma2-tiny-q4_k_m", 0.08}, {"gemma3-tiny-q8_0", 0.08},
                                 {"llama-tiny-q4_0", 0.08}}) {
    SCOPED_TRACE(stem);
    const std::string path = test::testdata_dir() + "/models/" + stem + ".gguf";
    auto run_split = [&](Device d) {
      const auto model = Model::load(path, d);
      ContextParams p;
      p.n_ctx = 1024;
      p.n_batch = 100;
      Context ctx(*model, p);
      std::vector<float> all, step;
      ctx.evaluate(tokens.data(), 640, true, all);
      for (size_t i = 640; i < tokens.size(); ++i) {
        ctx.evaluate(&tokens[i], 1, false, step);
        all.insert(all.end(), step.begin(), step.end());
      }
      return all;
    };
    const auto cpu = run_split(Device::cpu), gpu = run_split(Device::cuda);
    ASSERT_EQ(gpu.size(), cpu.size());
    EXPECT_LE(rel_rms(gpu, cpu), tolerance);
  }
}

// A decode step is recorded once as a CUDA graph and replayed at every later
// position: the logits of 60 replayed steps (past the Gemma 3 file's
// sliding window, so its ring rows wrap; keys split between attention
// blocks, whose merge counters must be back at zero for each replay) are
// bit-identical to the same steps
// launched one by one (SLM_CUDA_GRAPHS=0), and the int8 GEMV's decode
// agrees with the f32 GEMV's.
TEST(CudaReference, DecodeGraphReplaysExactlyWhatTheLaunchesCompute) {
  SLM_REQUIRE_TESTDATA();
  SLM_REQUIRE_GPU();
  // 300 prompt tokens, then 60 steps: past 256 keys, so the decode
  // attention splits each token's keys between blocks (a 1024 context).
  std::vector<int32_t> tokens(360);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 211 + 5) % 500);
  for (const char* stem : {"llama-tiny-q4_0", "gemma3-tiny-q8_0", "phi3-tiny-q4_0"}) {
    SCOPED_TRACE(stem);
    const auto model = Model::load(test::testdata_dir() + "/models/" + stem + ".gguf", Device::cuda);
    auto decode = [&](const char* graphs, const char* gemv) {
      setenv("SLM_CUDA_GRAPHS", graphs, 1);
      setenv("SLM_CUDA_GEMV", gemv, 1);
      ContextParams p;
      p.n_ctx = 1024;
      Context ctx(*model, p);
      unsetenv("SLM_CUDA_GRAPHS");
      unsetenv("SLM_CUDA_GEMV");
      std::vector<float> all, step;
      ctx.evaluate(tokens.data(), 300, false, step);
      for (size_t i = 300; i < tokens.size(); ++i) {
        ctx.evaluate(&tokens[i], 1, false, step);
        all.insert(all.end(), step.begin(), step.end());
      }
      return all;
    };
    const auto replayed = decode("1", "q8"), launched = decode("0", "q8");
    ASSERT_EQ(replayed.size(), 60 * static_cast<size_t>(model->hparams().n_vocab));
    EXPECT_TRUE(replayed == launched) << "rel rms " << rel_rms(replayed, launched);
    // Both within the quantized files' bar (0.04) of the truth, on either side.
    EXPECT_LE(rel_rms(replayed, decode("1", "f32")), 0.08);
  }
}

#endif  // SLM_HAVE_CUDA

}  // namespace
}  // namespace slm::model
