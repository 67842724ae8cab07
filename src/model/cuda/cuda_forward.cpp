// The CUDA backend: the weights copied to the GPU once at load (CudaWeights,
// owned by the Model), and CudaForward, the Forward pieces as kernels
// (kernels/cuda/ops.h) on one stream, with the KV cache and scratch buffers
// in device memory. Only the logits come back to the host.
//
// Matmuls: up to kGemvMaxTokens tokens run a GEMV (weights read once): int8
// dot products against 8-bit activations for the 32-element formats, as the
// CPU does, the dequantizing f32 GEMV for the others; larger batches
// dequantize the weight rows into an f32 tile and run cuBLAS on them with
// TF32 tensor cores (exact f32 math for F32 weights, which need no tile).
//
// A decode step (one token) is recorded once as a CUDA graph and replayed:
// its launches (8 per layer of a pre-norm model with a fused qkv weight:
// docs/cuda.md) then cost
// one, and everything that changes per token (the token id, its position,
// its RoPE angles) is read from one device buffer uploaded before the
// replay.
//
// Overrides, for measuring and for bisecting: SLM_CUDA_GRAPHS=0 runs decode
// steps launch by launch; SLM_CUDA_GEMV=f32 takes the f32 GEMV for every
// format; SLM_CUDA_SPLITS=N caps the decode attention's blocks per KV head.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "core/dtype.h"
#include "cpu/kernels.h"
#include "cuda/ops.h"
#include "model/cuda/cuda_backend.h"
#include "slm/error.h"

namespace slm::model::cuda {
namespace ops = kernels::cuda;
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(fmt::format("CUDA error in {}: {}", what, cudaGetErrorString(e)));
}

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(fmt::format("cuBLAS error in {}: {}", what, cublasGetStatusString(s)));
}

double mib(size_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// Device memory, freed with its owner.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes > 0) check(cudaMalloc(&p_, bytes), "cudaMalloc");
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p_ != nullptr) cudaFree(p_);
  }
  void* get() const { return p_; }
  float* f() const { return static_cast<float*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory: copies from it are truly asynchronous.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes) {
    if (bytes > 0) check(cudaMallocHost(&p_, bytes), "cudaMallocHost");
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() {
    if (p_ != nullptr) cudaFreeHost(p_);
  }
  uint8_t* get() const { return static_cast<uint8_t*>(p_); }

 private:
  void* p_ = nullptr;
};

// An environment override: unset or empty means the default.
bool env_is(const char* name, std::string_view value) {
  const char* v = std::getenv(name);
  return v != nullptr && value == v;
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return fmt::format("cuda: {} ({:.1f} GiB)", prop.name, static_cast<double>(prop.totalGlobalMem) / (1ull << 30));
}

// Calls fn(weight) for every tensor the model holds.
template <typename Fn>
void for_each_weight(const Model& m, Fn&& fn) {
  for (size_t s = 0; s < static_cast<size_t>(Slot::count); ++s) {
    const auto slot = static_cast<Slot>(s);
    if (!is_layer_slot(slot)) {
      if (const Weight& w = m.global(slot)) fn(w);
      continue;
    }
    for (int l = 0; l < m.hparams().n_layer; ++l)
      if (const Weight& w = m.layer(l, slot)) fn(w);
  }
}

// A matrix's rows as the kernels read them (ops.h: device rows).
size_t device_row_bytes(const kernels::WeightMatrix& m) { return ops::device_row_bytes(m.type, m.cols); }
size_t matrix_bytes(const kernels::WeightMatrix& m) { return device_row_bytes(m) * static_cast<size_t>(m.rows); }

// Copies a matrix to the GPU as device rows, re-laid out on the host in
// pieces of about 64 MiB.
void upload_matrix(const kernels::WeightMatrix& m, void* device) {
  const size_t out_row = device_row_bytes(m);
  if (!ops::relaid_out(m.type)) {  // the file's layout
    check(cudaMemcpy(device, m.data, matrix_bytes(m), cudaMemcpyHostToDevice), "uploading weights");
    return;
  }
  const int64_t piece = std::max<int64_t>(1, static_cast<int64_t>((size_t{64} << 20) / out_row));
  std::vector<uint8_t> staging(static_cast<size_t>(std::min(piece, m.rows)) * out_row);
  for (int64_t r0 = 0; r0 < m.rows; r0 += piece) {
    const int64_t rows = std::min(piece, m.rows - r0);
    ops::to_device_rows(m.type, m.cols, rows, static_cast<const uint8_t*>(m.data) + static_cast<size_t>(r0) * m.row_bytes,
                        m.row_bytes, staging.data());
    check(cudaMemcpy(static_cast<uint8_t*>(device) + static_cast<size_t>(r0) * out_row, staging.data(),
                     static_cast<size_t>(rows) * out_row, cudaMemcpyHostToDevice),
          "uploading weights");
  }
}

// The weights on the GPU, found by the host address of their data (the
// mapped file for matrices, Weight::vec for 1-D tensors).
class CudaWeights final : public BackendWeights {
 public:
  explicit CudaWeights(const Model& m) : name_(device_name(0)) {
    const HParams& hp = m.hparams();
    if (hp.head_dim > 256)
      throw Error(fmt::format("{}: head size {} is above the CUDA attention kernel's 256", m.file().path(), hp.head_dim));
    if (hp.n_embd > ops::kMaxNormDim)
      throw Error(fmt::format("{}: embedding size {} is above the CUDA RMSNorm kernel's {}", m.file().path(), hp.n_embd,
                              ops::kMaxNormDim));
    size_t need = 0;
    for_each_weight(m, [&](const Weight& w) {
      if (w.info->ne.size() == 1) {
        need += w.vec.size() * sizeof(float);
      } else {
        if (!ops::supports(w.matrix.type))
          throw Error(fmt::format("{}: tensor '{}' has type {}, which the CUDA backend cannot compute with",
                                  m.file().path(), w.info->name, dtype_name(w.matrix.type)));

        need += matrix_bytes(w.matrix);
      }
    });
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    const size_t reserve = size_t{256} << 20;  // cuBLAS workspace, scratch, KV cache of a short context
    if (need + reserve > free_bytes)
      throw Error(fmt::format("{}: the weights need {:.0f} MiB of GPU memory (plus {:.0f} MiB to run); {} has {:.0f} "
                              "MiB free",
                              m.file().path(), mib(need), mib(reserve), name_, mib(free_bytes)));
    for_each_weight(m, [&](const Weight& w) {
      const bool vec = w.info->ne.size() == 1;
      const void* host = vec ? static_cast<const void*>(w.vec.data()) : w.matrix.data;
      const size_t bytes = vec ? w.vec.size() * sizeof(float) : matrix_bytes(w.matrix);
      DeviceBuffer buf(bytes);
      if (vec)
        check(cudaMemcpy(buf.get(), host, bytes, cudaMemcpyHostToDevice), "uploading weights");
      else
        upload_matrix(w.matrix, buf.get());
      bytes_ += bytes;
      map_.emplace(host, std::move(buf));
    });
  }

  size_t bytes() const override { return bytes_; }
  std::string name() const override { return name_; }

  const void* matrix(const kernels::WeightMatrix& w) const { return find(w.data); }
  const float* vec(const Weight& w) const { return static_cast<const float*>(find(w.vec.data())); }

 private:
  const void* find(const void* host) const {
    const auto it = map_.find(host);
    if (it == map_.end()) throw Error("CUDA backend: a weight was not uploaded (internal error)");
    return it->second.get();
  }
  std::string name_;
  size_t bytes_ = 0;
  std::unordered_map<const void*, DeviceBuffer> map_;
};

constexpr int64_t kLogitRows = 64;              // rows of logits computed per pass
constexpr int64_t kDequantTile = int64_t{1} << 25;  // floats of the dequantized weight tile (128 MiB)

// The CUDA cache holds f16 or f32, the same for K and V.
bool cuda_kv_f16(const ForwardConfig& c) {
  if (c.k_type != c.v_type || (c.k_type != DType::F16 && c.k_type != DType::F32))
    throw Error(fmt::format("the CUDA backend keeps K and V in f16 or f32 (asked for {} K / {} V): run on the CPU for "
                            "a q8_0 cache (--device cpu)",
                            dtype_name(c.k_type), dtype_name(c.v_type)));
  return c.k_type == DType::F16;
}

class CudaForward final : public Forward {
 public:
  CudaForward(const Model& model, const ForwardConfig& c, const std::vector<RopeState>& ropes)
      : Forward(model, ropes),
        w_(dynamic_cast<const CudaWeights&>(*model.backend_weights())),
        n_ctx_(c.n_ctx),
        kv_f16_(cuda_kv_f16(c)),
        kv_rows_(c.kv_rows) {
    const HParams& hp = hp_;
    const auto nb = static_cast<size_t>(c.n_batch), E = static_cast<size_t>(hp.n_embd),
               F = static_cast<size_t>(hp.n_ff), qd = static_cast<size_t>(hp.q_dim()),
               kvd = static_cast<size_t>(hp.kv_dim());
    // The largest matrix decides the dequantized tile (at most kDequantTile floats).
    int64_t largest = 0;
    int64_t widest = 0;
    for_each_weight(model, [&](const Weight& w) {
      if (w.info->ne.size() != 2) return;
      if (w.matrix.type != DType::F32) largest = std::max(largest, w.matrix.rows * w.matrix.cols);
      widest = std::max(widest, w.matrix.cols);
    });
    size_t kv_need = 0;
    for (int64_t r : kv_rows_) kv_need += 2 * static_cast<size_t>(r) * kvd * (kv_f16_ ? 2 : 4);
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    const size_t scratch = sizeof(float) * (nb * (3 * E + qd + 2 * kvd + qd + 2 * kvd + 3 * F) +
                                            static_cast<size_t>(kLogitRows * hp.n_vocab) +
                                            static_cast<size_t>(std::min(largest, kDequantTile)));
    if (kv_need + scratch > free_bytes)
      throw Error(fmt::format("a context of {} positions needs {:.0f} MiB of GPU memory for its KV cache and {:.0f} "
                              "MiB of scratch; {} has {:.0f} MiB free: use a smaller context (-c)",
                              c.n_ctx, mib(kv_need), mib(scratch), w_.name(), mib(free_bytes)));
    for (int64_t r : kv_rows_) {
      const size_t bytes = static_cast<size_t>(r) * kvd * (kv_f16_ ? 2 : 4);
      k_cache_.emplace_back(bytes);
      v_cache_.emplace_back(bytes);
      kv_bytes_ += 2 * bytes;
    }
    x_ = DeviceBuffer(nb * E * sizeof(float));
    xn_ = DeviceBuffer(nb * E * sizeof(float));
    o_ = DeviceBuffer(nb * E * sizeof(float));
    q_ = DeviceBuffer(nb * (qd + 2 * kvd) * sizeof(float));
    kk_ = DeviceBuffer(nb * kvd * sizeof(float));
    vv_ = DeviceBuffer(nb * kvd * sizeof(float));
    attn_ = DeviceBuffer(nb * qd * sizeof(float));
    up_ = DeviceBuffer(nb * 2 * F * sizeof(float));
    act_ = DeviceBuffer(nb * F * sizeof(float));
    logits_ = DeviceBuffer(static_cast<size_t>(kLogitRows * hp.n_vocab) * sizeof(float));
    tile_ = DeviceBuffer(static_cast<size_t>(std::min(largest, kDequantTile)) * sizeof(float));
    gemv_scratch_ = DeviceBuffer(ops::gemv_scratch_floats(ops::kGemvMaxTokens, widest) * sizeof(float));
    xq_ = DeviceBuffer(ops::gemv_scratch_floats(ops::kGemvMaxTokens, std::max({hp.n_embd, hp.n_ff, hp.q_dim()})) *
                       sizeof(float));
    const size_t step_capacity = step_layout(c.n_batch).bytes;
    step_ = DeviceBuffer(step_capacity);
    host_step_ = PinnedBuffer(step_capacity);
    host_logits_ = PinnedBuffer(static_cast<size_t>(hp.n_vocab) * sizeof(float));
    // Decode attention splits each token's keys among several blocks per KV
    // head at long contexts; SLM_CUDA_SPLITS=N caps them (1: one block).
    attn_splits_ = ops::attention_splits(n_ctx_);
    if (const char* cap = std::getenv("SLM_CUDA_SPLITS"); cap != nullptr && std::atoi(cap) >= 1)
      attn_splits_ = std::min(attn_splits_, std::atoi(cap));
    attn_partials_ = DeviceBuffer(
        ops::attention_partial_floats(ops::kAttentionDecodeMax, static_cast<int>(hp.n_head), static_cast<int>(hp.head_dim),
                                      attn_splits_) *
        sizeof(float));
    attn_counters_ = DeviceBuffer(static_cast<size_t>(ops::kAttentionDecodeMax * hp.n_head) * sizeof(unsigned));
    use_graphs_ = !env_is("SLM_CUDA_GRAPHS", "0");
    q8_gemv_ = !env_is("SLM_CUDA_GEMV", "f32");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    // On the backend's own stream (a non-blocking one: the legacy default
    // stream would not order a plain cudaMemset before its kernels).
    check(cudaMemsetAsync(attn_counters_.get(), 0, attn_counters_.bytes(), stream_), "cudaMemsetAsync");
    check(cudaStreamSynchronize(stream_), "cudaMemsetAsync");
    check(cudaEventCreateWithFlags(&step_uploaded_, cudaEventDisableTiming), "cudaEventCreate");
    check(cublasCreate(&blas_), "cublasCreate");
    check(cublasSetStream(blas_, stream_), "cublasSetStream");
  }

  ~CudaForward() override {
    abandon_capture();
    if (decode_graph_ != nullptr) cudaGraphExecDestroy(decode_graph_);
    cudaEventDestroy(step_uploaded_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  float* x() override { return x_.f(); }
  float* xn() override { return xn_.f(); }
  float* o() override { return o_.f(); }

  void norm(const float* in, const Weight& w, float* out) override {
    if (replaying_) return;
    const int E = static_cast<int>(hp_.n_embd);
    if (fuse_q8(E)) {  // the next matmuls' 8-bit activations come with the norm
      ops::rmsnorm_q8(in, E, out, E, static_cast<int>(n_tokens_), E, w_.vec(w), hp_.rms_eps, xq_.get(), stream_);
      quantized(out, E);
      return;
    }
    ops::rmsnorm(in, E, out, E, static_cast<int>(n_tokens_), 1, E, w_.vec(w), hp_.rms_eps, stream_);
    written(out);
  }

  void add_residual(const float* o) override {
    if (replaying_) return;
    ops::add(x_.f(), o, n_tokens_ * hp_.n_embd, stream_);
    written(x_.f());
  }

  void attention(int layer, const float* in, float* out, Store store) override {
    if (replaying_) return;
    const int n = static_cast<int>(n_tokens_);
    const int64_t D = hp_.head_dim, H = hp_.n_head, KV = hp_.n_head_kv, qd = hp_.q_dim(), kvd = hp_.kv_dim();
    float *q, *kk, *vv;
    int64_t ldq, ldk;
    if (const Weight& qkv = model_.layer(layer, Slot::attn_qkv)) {  // fused: one row per token = [q | k | v]
      ldq = ldk = qd + 2 * kvd;
      matmul(qkv.matrix, in, n_tokens_, q_.f(), ldq);
      q = q_.f();
      kk = q + qd;
      vv = q + qd + kvd;
    } else {
      ldq = qd;
      ldk = kvd;
      q = q_.f();
      kk = kk_.f();
      vv = vv_.f();
      matmul(model_.layer(layer, Slot::attn_q).matrix, in, n_tokens_, q, ldq);
      matmul(model_.layer(layer, Slot::attn_k).matrix, in, n_tokens_, kk, ldk);
      matmul(model_.layer(layer, Slot::attn_v).matrix, in, n_tokens_, vv, ldk);
    }
    if (const Weight& qn = model_.layer(layer, Slot::attn_q_norm)) {  // Gemma 3: per-head QK-RMSNorm before RoPE
      const Weight& kn = model_.layer(layer, Slot::attn_k_norm);
      ops::rmsnorm(q, ldq, q, ldq, n, static_cast<int>(H), static_cast<int>(D), w_.vec(qn), hp_.rms_eps, stream_);
      ops::rmsnorm(kk, ldk, kk, ldk, n, static_cast<int>(KV), static_cast<int>(D), w_.vec(kn), hp_.rms_eps, stream_);
    }
    const LayerSpec& spec = hp_.layers[static_cast<size_t>(layer)];
    const size_t at = static_cast<size_t>(spec.rope_table) * static_cast<size_t>(n_tokens_ * (hp_.n_rot / 2));
    const float* cos = step_float(layout_.cos_at) + at;
    const float* sin = step_float(layout_.sin_at) + at;
    const auto l = static_cast<size_t>(layer);
    ops::RopeStoreShape rs;
    rs.n = n;
    rs.heads = static_cast<int>(H);
    rs.kv_heads = static_cast<int>(KV);
    rs.head_dim = static_cast<int>(D);
    rs.n_rot = hp_.n_rot;
    rs.ldq = ldq;
    rs.ldk = ldk;
    rs.rows = kv_rows_[l];
    rs.neox = hp_.rope_neox;
    rs.kv_f16 = kv_f16_;
    rs.pos0 = step_pos0();

    ops::AttentionShape s;
    s.n = n;
    s.heads = static_cast<int>(H);
    s.kv_heads = static_cast<int>(KV);
    s.head_dim = static_cast<int>(D);
    s.ldq = ldq;
    s.kv_dim = kvd;
    s.pos0 = step_pos0();
    s.window = spec.window;
    s.ring = kv_rows_[l] < n_ctx_ ? kv_rows_[l] : 0;  // a sliding-window ring
    s.scale = hp_.query_scale;
    s.softcap = hp_.attn_softcap;
    s.kv_f16 = kv_f16_;
    s.splits = attn_splits_;
    s.partials = attn_partials_.f();
    s.counters = static_cast<unsigned*>(attn_counters_.get());
    // The output projection's 8-bit activations come with attention when it takes the int8 GEMV.
    const kernels::WeightMatrix& wo = model_.layer(layer, Slot::attn_output).matrix;
    const bool fuse = fuse_q8(qd) && D % 32 == 0 && ops::gemv_q8_supports(wo.type, wo.cols);
    s.q8 = fuse ? xq_.get() : nullptr;
    written(attn_.f());
    ops::rope_store_attention(rs, s, q, kk, vv, cos, sin, k_cache_[l].get(), v_cache_[l].get(), attn_.f(), stream_);
    if (fuse) quantized(attn_.f(), qd);
    matmul(wo, attn_.f(), n_tokens_, out, hp_.n_embd, store);
  }

  void gated_mlp(int layer, const float* in, float* out, Activation act, Store store) override {
    if (replaying_) return;
    const int n = static_cast<int>(n_tokens_);
    const int64_t F = hp_.n_ff;
    const auto g = act == Activation::silu ? ops::GatedAct::silu : ops::GatedAct::gelu;
    const float *gate_out, *up_out;
    int64_t ld;
    if (const Weight& gate = model_.layer(layer, Slot::ffn_gate)) {
      matmul(gate.matrix, in, n_tokens_, act_.f(), F);
      matmul(model_.layer(layer, Slot::ffn_up).matrix, in, n_tokens_, up_.f(), F);
      gate_out = act_.f(), up_out = up_.f(), ld = F;
    } else {  // fused: each row = [gate (F) | up (F)]
      matmul(model_.layer(layer, Slot::ffn_up).matrix, in, n_tokens_, up_.f(), 2 * F);
      gate_out = up_.f(), up_out = up_.f() + F, ld = 2 * F;
    }
    if (fuse_q8(F)) {  // the down projection's 8-bit activations come with the activation
      ops::gated_q8(g, gate_out, up_out, ld, act_.f(), F, n, static_cast<int>(F), xq_.get(), stream_);
      quantized(act_.f(), F);
    } else {
      ops::gated(g, gate_out, up_out, ld, act_.f(), F, n, static_cast<int>(F), stream_);
      written(act_.f());
    }
    matmul(model_.layer(layer, Slot::ffn_down).matrix, act_.f(), n_tokens_, out, hp_.n_embd, store);
  }

  void logits(int64_t first, float* out) override {
    const int64_t E = hp_.n_embd, V = hp_.n_vocab;
    const Weight& norm_w = model_.global(Slot::output_norm);
    for (int64_t r0 = first; r0 < n_tokens_; r0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, n_tokens_ - r0);
      xq_of_ = nullptr;
      const kernels::WeightMatrix& wout = model_.output_matrix();
      if (rows <= ops::kGemvMaxTokens && fuse_q8(E) && ops::gemv_q8_supports(wout.type, wout.cols)) {
        // The output GEMV's 8-bit activations come with the norm.
        ops::rmsnorm_q8(x_.f() + r0 * E, E, xn_.f() + r0 * E, E, static_cast<int>(rows), static_cast<int>(E),
                        w_.vec(norm_w), hp_.rms_eps, xq_.get(), stream_);
        quantized(xn_.f() + r0 * E, E);
      } else {
        ops::rmsnorm(x_.f() + r0 * E, E, xn_.f() + r0 * E, E, static_cast<int>(rows), 1, static_cast<int>(E),
                     w_.vec(norm_w), hp_.rms_eps, stream_);
      }
      matmul(wout, xn_.f() + r0 * E, rows, logits_.f(), V);
      if (hp_.final_softcap > 0) ops::softcap(logits_.f(), hp_.final_softcap, rows * V, stream_);
      const size_t bytes = static_cast<size_t>(rows * V) * sizeof(float);
      if (rows == 1) {  // a decode step: through pinned memory, a truly asynchronous copy
        check(cudaMemcpyAsync(host_logits_.get(), logits_.get(), bytes, cudaMemcpyDeviceToHost, stream_),
              "copying logits");
        check(cudaStreamSynchronize(stream_), "the forward pass");
        std::memcpy(out + (r0 - first) * V, host_logits_.get(), bytes);
      } else {
        check(cudaMemcpyAsync(out + (r0 - first) * V, logits_.get(), bytes, cudaMemcpyDeviceToHost, stream_),
              "copying logits");
        check(cudaStreamSynchronize(stream_), "the forward pass");
      }
    }
    check(cudaGetLastError(), "the forward pass");
  }

  size_t scratch_bytes() const override {
    size_t total = 0;
    for (const DeviceBuffer* b :
         {&x_, &xn_, &o_, &q_, &kk_, &vv_, &attn_, &up_, &act_, &logits_, &tile_, &step_, &gemv_scratch_, &xq_,
          &attn_partials_, &attn_counters_})
      total += b->bytes();
    return total;
  }
  size_t kv_bytes() const override { return kv_bytes_; }

 private:
  void embed(const int32_t* tokens) override {
    abandon_capture();  // a batch that threw before finish_layers()
    replaying_ = false;
    xq_of_ = nullptr;
    const int n = static_cast<int>(n_tokens_);
    // The pinned step buffer is rewritten only once the previous batch's
    // upload has left it.
    check(cudaEventSynchronize(step_uploaded_), "uploading a batch");
    layout_ = step_layout(n_tokens_);
    uint8_t* host = host_step_.get();
    const int64_t pos0 = pos(0);
    std::memcpy(host, &pos0, sizeof pos0);
    std::memcpy(host + layout_.tokens_at, tokens, static_cast<size_t>(n) * sizeof(int32_t));
    // RoPE angles on the host (the CPU backend's function, in double), one
    // table per HParams::rope_tables entry: [table][token][n_rot / 2].
    const int half = hp_.n_rot / 2;
    auto* host_cos = reinterpret_cast<float*>(host + layout_.cos_at);
    auto* host_sin = reinterpret_cast<float*>(host + layout_.sin_at);
    for (size_t r = 0; r < ropes_.size(); ++r) {
      const RopeState& rope = ropes_[r];
      const float* factors = rope.factors.empty() ? nullptr : rope.factors.data();
      for (int64_t t = 0; t < n_tokens_; ++t) {
        const size_t at = (r * static_cast<size_t>(n_tokens_) + static_cast<size_t>(t)) * static_cast<size_t>(half);
        kernels::rope_angles(pos(t), hp_.n_rot, hp_.rope_tables[r].base, factors, rope.attn_factor, host_cos + at,
                             host_sin + at);
      }
    }
    check(cudaMemcpyAsync(step_.get(), host, layout_.bytes, cudaMemcpyHostToDevice, stream_), "uploading a batch");
    check(cudaEventRecord(step_uploaded_, stream_), "uploading a batch");

    graph_step_ = use_graphs_ && n == 1;
    if (graph_step_ && decode_graph_ != nullptr) {  // the step's kernels are recorded: finish_layers() replays them
      replaying_ = true;
      return;
    }
    if (graph_step_) {  // the first decode step: record it (nothing runs until finish_layers())
      check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "recording a decode step");
      capturing_ = true;
    }
    const Weight& embd = model_.global(Slot::token_embd);
    ops::embed(embd.matrix.type, w_.matrix(embd.matrix), device_row_bytes(embd.matrix),
               reinterpret_cast<const int32_t*>(static_cast<uint8_t*>(step_.get()) + layout_.tokens_at), n,
               static_cast<int>(hp_.n_embd), hp_.embd_scale, x_.f(), stream_);
  }

  void finish_layers() override {
    if (capturing_) {
      capturing_ = false;
      cudaGraph_t graph = nullptr;
      check(cudaStreamEndCapture(stream_, &graph), "recording a decode step");
      const cudaError_t e = cudaGraphInstantiate(&decode_graph_, graph, 0);
      cudaGraphDestroy(graph);
      check(e, "instantiating the decode step's graph");
    }
    if (graph_step_) check(cudaGraphLaunch(decode_graph_, stream_), "running the decode step's graph");
    replaying_ = false;
  }

  // Ends a recording left open by an exception, discarding what it holds.
  // The 8-bit activations in xq_ are those of the buffer xq_of_ (rows of
  // xq_k_ floats, this batch): norm() and gated_mlp() write them along with
  // their outputs when the int8 GEMV will read them (a batch of at most
  // kGemvMaxTokens, rows a multiple of 32), so the matmuls on those outputs
  // skip quantizing. Anything else that writes xq_of_ forgets them.
  bool fuse_q8(int64_t K) const { return q8_gemv_ && n_tokens_ <= ops::kGemvMaxTokens && K % 32 == 0; }
  void quantized(const float* buffer, int64_t K) {
    xq_of_ = buffer;
    xq_k_ = K;
  }
  void written(const float* buffer) {
    if (buffer == xq_of_) xq_of_ = nullptr;
  }

  void abandon_capture() {
    if (!capturing_) return;
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream_, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // the capture's error is not the next batch's
  }

  // The per-batch inputs of n tokens, uploaded as one block:
  // [pos0: int64][tokens: n int32][cos: tables * n * half][sin: the same],
  // the angles as [table][token][pair].
  struct StepLayout {
    size_t tokens_at = 0, cos_at = 0, sin_at = 0, bytes = 0;
  };
  StepLayout step_layout(int64_t n) const {
    const size_t angles = ropes_.size() * static_cast<size_t>(n) * static_cast<size_t>(hp_.n_rot / 2);
    StepLayout l;
    l.tokens_at = sizeof(int64_t);
    l.cos_at = (l.tokens_at + static_cast<size_t>(n) * sizeof(int32_t) + 15) / 16 * 16;
    l.sin_at = l.cos_at + angles * sizeof(float);
    l.bytes = l.sin_at + angles * sizeof(float);
    return l;
  }

  const int64_t* step_pos0() const { return static_cast<const int64_t*>(step_.get()); }
  const float* step_float(size_t at) const {
    return reinterpret_cast<const float*>(static_cast<const uint8_t*>(step_.get()) + at);
  }

  // y = W x: [n, K] -> [n, rows] ldy, or y += W x (Store::add).
  void matmul(const kernels::WeightMatrix& m, const float* in, int64_t n, float* out, int64_t ldy,
              Store store = Store::write) {
    const void* w = w_.matrix(m);
    const size_t row_bytes = device_row_bytes(m);
    const auto to = store == Store::add ? ops::Store::add : ops::Store::write;
    written(out);
    if (n <= ops::kGemvMaxTokens) {
      const bool int8 = q8_gemv_ && ops::gemv_q8_supports(m.type, m.cols);
      if (int8 && in == xq_of_ && m.cols == xq_k_)  // quantized by the op that wrote `in`
        ops::gemv_q8_quantized(m.type, w, row_bytes, m.rows, m.cols, xq_.get(), static_cast<int>(n), out, ldy, stream_,
                               to);
      else
        (int8 ? ops::gemv_q8 : ops::gemv)(m.type, w, row_bytes, m.rows, m.cols, in, m.cols, static_cast<int>(n), out,
                                          ldy, gemv_scratch_.f(), stream_, to);
      return;
    }
    // beta 1 adds the product to what out holds (cuBLAS may pick another
    // algorithm for beta 1, so the bits need not equal a product then an add).
    const float one = 1.0f, beta = store == Store::add ? 1.0f : 0.0f;
    // Column-major view: C (rows x n, ldc = ldy) = W^T (rows x K) * X (K x n).
    if (m.type == DType::F32) {
      check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m.rows), static_cast<int>(n),
                         static_cast<int>(m.cols), &one, w, CUDA_R_32F, static_cast<int>(m.cols), in, CUDA_R_32F,
                         static_cast<int>(m.cols), &beta, out, CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx");
      return;
    }
    // TF32 keeps 10 mantissa bits: F16 and BF16 weights exactly, the
    // activations to 5e-4 (the F16 files' tolerance is 3e-3).
    const cublasComputeType_t compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    const int64_t tile_rows = std::max<int64_t>(1, std::min(m.rows, kDequantTile / m.cols));
    for (int64_t r0 = 0; r0 < m.rows; r0 += tile_rows) {
      const int64_t rows = std::min(tile_rows, m.rows - r0);
      ops::dequantize_rows(m.type, w, row_bytes, r0, rows, m.cols, tile_.f(), stream_);
      check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(n),
                         static_cast<int>(m.cols), &one, tile_.get(), CUDA_R_32F, static_cast<int>(m.cols), in,
                         CUDA_R_32F, static_cast<int>(m.cols), &beta, out + r0, CUDA_R_32F, static_cast<int>(ldy),
                         compute, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx");
    }
  }

  const CudaWeights& w_;
  int64_t n_ctx_;
  bool kv_f16_;
  std::vector<int64_t> kv_rows_;
  std::vector<DeviceBuffer> k_cache_, v_cache_;
  size_t kv_bytes_ = 0;
  DeviceBuffer x_, xn_, o_, q_, kk_, vv_, attn_, up_, act_, logits_, tile_, gemv_scratch_;
  DeviceBuffer xq_;     // 8-bit activations of xq_of_ (see fuse_q8)
  int attn_splits_ = 1;  // decode attention (ops::AttentionShape::splits)
  DeviceBuffer attn_partials_, attn_counters_;
  const float* xq_of_ = nullptr;
  int64_t xq_k_ = 0;
  DeviceBuffer step_;   // the batch's inputs (StepLayout)
  StepLayout layout_;   // of the batch being evaluated
  PinnedBuffer host_step_, host_logits_;
  cudaEvent_t step_uploaded_ = nullptr;
  bool use_graphs_ = true, q8_gemv_ = true;
  cudaGraphExec_t decode_graph_ = nullptr;
  bool graph_step_ = false;  // this batch is a decode step run through the graph
  bool capturing_ = false;   // recording the graph: the ops below are captured, not run
  bool replaying_ = false;   // the graph holds this batch's ops: the Forward pieces do nothing
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
};

}  // namespace

bool available(std::string* why_not) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why_not != nullptr)
      *why_not = e != cudaSuccess ? fmt::format("no CUDA GPU is usable: {}", cudaGetErrorString(e))
                                  : std::string("no CUDA GPU is present");
    return false;
  }
  return true;
}

std::unique_ptr<BackendWeights> upload_weights(const Model& model) {
  std::string why;
  if (!available(&why)) throw Error(fmt::format("cannot run {} on CUDA: {}", model.file().path(), why));
  return std::make_unique<CudaWeights>(model);
}

std::unique_ptr<Forward> make_forward(const Model& model, const ForwardConfig& config,
                                      const std::vector<RopeState>& ropes) {
  // Its kernels take a batch as consecutive positions of one cache.
  if (config.n_seq != 1)
    throw Error(fmt::format("the CUDA backend runs one sequence per context (asked for {})", config.n_seq));
  return std::make_unique<CudaForward>(model, config, ropes);
}

double copy_bandwidth_gbs() {
  std::string why;
  if (!available(&why)) throw Error(why);
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer a(bytes), b(bytes);
  check(cudaMemset(a.get(), 1, bytes), "cudaMemset");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  check(cudaMemcpy(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy");  // warm-up
  constexpr int kReps = 10;
  check(cudaEventRecord(start), "cudaEventRecord");
  for (int i = 0; i < kReps; ++i) check(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy");
  check(cudaEventRecord(stop), "cudaEventRecord");
  check(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 2.0 * static_cast<double>(bytes) * kReps / (static_cast<double>(ms) * 1e-3) / 1e9;
}

}  // namespace slm::model::cuda
