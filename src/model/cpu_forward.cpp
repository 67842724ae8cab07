#include "model/cpu_forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <new>
#include <optional>
#include <string>

#include "core/fp16.h"
#include "cpu/attention.h"
#include "cpu/parallel.h"
#include "core/memory_available.h"
#include "slm/error.h"

namespace slm::model {

// ---------------------------------------------------------------------------
// KvCache

size_t KvCache::check_fits(const std::vector<int64_t>& rows, int64_t n_ctx, int n_head_kv, int head_dim, DType k_type,
                           DType v_type, int n_seq) {
  const size_t per_position =
      static_cast<size_t>(n_head_kv) * (kernels::kv_row_bytes(k_type, head_dim) + kernels::kv_row_bytes(v_type, head_dim));
  double bytes = 0;
  for (int64_t r : rows) bytes += static_cast<double>(r) * static_cast<double>(per_position);
  bytes *= n_seq;
  const std::string what = n_seq > 1 ? fmt::format("{} sequences of {} positions", n_seq, n_ctx)
                                     : fmt::format("a context of {} positions", n_ctx);
  // Refused before allocating when it could never be backed. (The memory
  // is committed as the cache fills: new[] leaves it untouched, so a short
  // chat with a long context costs only the pages it writes.)
  if (bytes > 256.0 * (1ull << 30))
    throw Error(fmt::format("{} need {:.1f} GiB for the KV cache, above slm's 256 GiB limit: use a smaller context (-c)",
                            what, bytes / (1ull << 30)));
  // A context that fills would need it all: more than the memory there is
  // is refused now rather than failing (or swapping) half-way.
  if (const auto available = available_memory_bytes(); available && bytes > *available)
    throw Error(fmt::format("{} need {:.1f} GiB for the KV cache, and {:.1f} GiB of memory is available: use a smaller "
                            "context (-c)",
                            what, bytes / (1ull << 30), *available / (1ull << 30)));
  return static_cast<size_t>(bytes);
}

KvCache::KvCache(const std::vector<int64_t>& rows, int64_t n_ctx, int n_head_kv, int head_dim, DType k_type,
                 DType v_type)
    : rows_(rows),
      n_ctx_(n_ctx),
      n_head_kv_(n_head_kv),
      head_dim_(head_dim),
      k_type_(k_type),
      v_type_(v_type),
      row_bytes_{kernels::kv_row_bytes(k_type, head_dim), kernels::kv_row_bytes(v_type, head_dim)} {
  const size_t per_position = static_cast<size_t>(n_head_kv) * (row_bytes_[0] + row_bytes_[1]);
  size_t at = 0;
  for (int64_t r : rows_) {
    offset_.push_back(at);
    at += static_cast<size_t>(r) * per_position;
  }
  data_.reset(new (std::nothrow) uint8_t[at]);
  if (!data_ && at > 0)
    throw Error(fmt::format("a context of {} positions needs {:.1f} GiB for its KV cache, which could not be allocated: "
                            "use a smaller context (-c)",
                            n_ctx, static_cast<double>(at) / (1ull << 30)));
  bytes_ = at;
}

uint8_t* KvCache::base(int layer, int which) const {
  const size_t k_bytes = static_cast<size_t>(n_head_kv_) * head_bytes(0, layer);
  return data_.get() + offset_[static_cast<size_t>(layer)] + (which == 0 ? 0 : k_bytes);
}

void KvCache::store(int layer, int which, int64_t pos, const float* row, const kernels::KernelTable& k) {
  const int64_t r = pos % rows(layer);  // the identity for full-context layers (pos < n_ctx)
  uint8_t* head0 = base(layer, which) + static_cast<size_t>(r) * row_bytes_[which];
  for (int g = 0; g < n_head_kv_; ++g)
    k.store_kv(type(which), row + static_cast<int64_t>(g) * head_dim_, head0 + static_cast<size_t>(g) * head_bytes(which, layer),
               head_dim_);
}

// ---------------------------------------------------------------------------
// CpuForward

CpuForward::CpuForward(const Model& model, const ForwardConfig& config, const std::vector<RopeState>& ropes,
                       const kernels::KernelTable& k)
    : Forward(model, ropes), k_(k), n_threads_(config.n_threads) {
  const int KV = static_cast<int>(hp_.n_head_kv), D = static_cast<int>(hp_.head_dim);
  KvCache::check_fits(config.kv_rows, config.n_ctx, KV, D, config.k_type, config.v_type, config.n_seq);
  caches_.reserve(static_cast<size_t>(config.n_seq));
  for (int s = 0; s < config.n_seq; ++s) caches_.emplace_back(config.kv_rows, config.n_ctx, KV, D, config.k_type, config.v_type);
  const auto nb = static_cast<size_t>(config.n_batch);
  const auto E = static_cast<size_t>(hp_.n_embd), F = static_cast<size_t>(hp_.n_ff);
  x_.resize(nb * E);
  xn_.resize(nb * E);
  o_.resize(nb * E);
  q_.resize(nb * static_cast<size_t>(hp_.q_dim() + 2 * hp_.kv_dim()));  // fused qkv output fits too
  kv_k_.resize(nb * static_cast<size_t>(hp_.kv_dim()));
  kv_v_.resize(kv_k_.size());
  attn_.resize(nb * static_cast<size_t>(hp_.q_dim()));
  up_.resize(nb * 2 * F);
  act_.resize(nb * F);
  cos_.resize(ropes_.size() * nb * static_cast<size_t>(hp_.n_rot / 2));
  sin_.resize(cos_.size());
}

size_t CpuForward::kv_bytes() const {
  size_t bytes = 0;
  for (const KvCache& c : caches_) bytes += c.bytes();
  return bytes;
}

size_t CpuForward::scratch_bytes() const {
  size_t floats = x_.size() + xn_.size() + o_.size() + q_.size() + kv_k_.size() + kv_v_.size() + attn_.size() +
                  up_.size() + act_.size() + cos_.size() + sin_.size();
  return floats * sizeof(float) + act_scratch_.capacity();
}

void CpuForward::matmul(const kernels::WeightMatrix& w, const float* in, int64_t n, float* out, int64_t ldy) {
  kernels::matmul(k_, w, in, n, out, ldy, n_threads_, act_scratch_);
}

void CpuForward::project(const kernels::WeightMatrix& w, const float* in, float* out, Store store) {
  const int64_t E = hp_.n_embd;
  if (store == Store::write) {
    matmul(w, in, n_tokens_, out, E);
    return;
  }
  matmul(w, in, n_tokens_, o_.data(), E);
  k_.add(out, o_.data(), n_tokens_ * E);
}

void CpuForward::norm(const float* in, const Weight& w, float* out) {
  const int64_t E = hp_.n_embd;
  for (int64_t t = 0; t < n_tokens_; ++t) k_.rmsnorm(in + t * E, w.vec.data(), hp_.rms_eps, E, out + t * E);
}

void CpuForward::add_residual(const float* o) { k_.add(x_.data(), o, n_tokens_ * hp_.n_embd); }

void CpuForward::embed(const int32_t* tokens) {
  const int64_t n = n_tokens_;
  const Weight& embd = model_.global(Slot::token_embd);
  const int64_t E = hp_.n_embd;
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* row = static_cast<const uint8_t*>(embd.matrix.data) + static_cast<size_t>(tokens[t]) * embd.matrix.row_bytes;
    kernels::dequantize_row(embd.matrix.type, row, x_.data() + t * E, E);
    if (hp_.embd_scale != 1.0f) k_.scale(x_.data() + t * E, hp_.embd_scale, E);
  }
  // RoPE angles once per position and table, shared by every layer and
  // head that uses the table.
  const int half = hp_.n_rot / 2;
  for (size_t r = 0; r < ropes_.size(); ++r) {
    const RopeState& rope = ropes_[r];
    const float* factors = rope.factors.empty() ? nullptr : rope.factors.data();
    for (int64_t t = 0; t < n; ++t) {
      const size_t at = (r * static_cast<size_t>(n) + static_cast<size_t>(t)) * static_cast<size_t>(half);
      kernels::rope_angles(pos(t), hp_.n_rot, hp_.rope_tables[r].base, factors, rope.attn_factor, cos_.data() + at,
                           sin_.data() + at);
    }
  }
}

void CpuForward::attention(int layer, const float* in, float* out, Store store) {
  const int64_t n = n_tokens_, D = hp_.head_dim, H = hp_.n_head, KV = hp_.n_head_kv;
  const int64_t qd = hp_.q_dim(), kvd = hp_.kv_dim();
  // Projections: q rows of ldq floats, k/v rows of ldk floats.
  float *q, *kk, *vv;
  int64_t ldq, ldk;
  if (const Weight& qkv = model_.layer(layer, Slot::attn_qkv)) {  // fused: one row per token = [q | k | v]
    ldq = ldk = qd + 2 * kvd;
    matmul(qkv.matrix, in, n, q_.data(), ldq);
    q = q_.data();
    kk = q + qd;
    vv = q + qd + kvd;
  } else {
    ldq = qd;
    ldk = kvd;
    q = q_.data();
    kk = kv_k_.data();
    vv = kv_v_.data();
    matmul(model_.layer(layer, Slot::attn_q).matrix, in, n, q, ldq);
    matmul(model_.layer(layer, Slot::attn_k).matrix, in, n, kk, ldk);
    matmul(model_.layer(layer, Slot::attn_v).matrix, in, n, vv, ldk);
  }
  // Gemma 3: each q head and each k head RMS-normalised (one [D] weight
  // shared by the heads) before RoPE.
  if (const Weight& qn = model_.layer(layer, Slot::attn_q_norm)) {
    const Weight& kn = model_.layer(layer, Slot::attn_k_norm);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < H; ++h) k_.rmsnorm(q + t * ldq + h * D, qn.vec.data(), hp_.rms_eps, D, q + t * ldq + h * D);
      for (int64_t g = 0; g < KV; ++g) k_.rmsnorm(kk + t * ldk + g * D, kn.vec.data(), hp_.rms_eps, D, kk + t * ldk + g * D);
    }
  }
  const LayerSpec& spec = hp_.layers[static_cast<size_t>(layer)];
  const int half = hp_.n_rot / 2;
  const float* cos_table = cos_.data() + static_cast<size_t>(spec.rope_table) * static_cast<size_t>(n * half);
  const float* sin_table = sin_.data() + static_cast<size_t>(spec.rope_table) * static_cast<size_t>(n * half);
  for (int64_t t = 0; t < n; ++t) {
    const float* c = cos_table + t * half;
    const float* s = sin_table + t * half;
    k_.rope(q + t * ldq, static_cast<int>(H), static_cast<int>(D), hp_.n_rot, c, s, hp_.rope_neox);
    k_.rope(kk + t * ldk, static_cast<int>(KV), static_cast<int>(D), hp_.n_rot, c, s, hp_.rope_neox);
    KvCache& cache = caches_[static_cast<size_t>(seq(t))];
    cache.store(layer, 0, pos(t), kk + t * ldk, k_);
    cache.store(layer, 1, pos(t), vv + t * ldk, k_);
  }
  // Attention: query head h reads KV head h / (H / KV) (kernels/cpu/attention.h),
  // one problem per run of rows of one sequence (their positions follow
  // each other: Context orders a sequence's tokens).
  for (int64_t t0 = 0, t1; t0 < n; t0 = t1) {
    for (t1 = t0 + 1; t1 < n && seq(t1) == seq(t0) && pos(t1) == pos(t1 - 1) + 1;) ++t1;
    const KvCache& cache = caches_[static_cast<size_t>(seq(t0))];
    kernels::AttentionProblem a;
    a.q = q + t0 * ldq;
    a.q_stride = ldq;
    a.out = attn_.data() + t0 * qd;
    a.out_stride = qd;
    a.n_tokens = t1 - t0;
    a.pos0 = pos(t0);
    a.window = spec.window;
    a.n_head = static_cast<int>(H);
    a.n_head_kv = static_cast<int>(KV);
    a.head_dim = static_cast<int>(D);
    a.k = cache.k(layer);
    a.v = cache.v(layer);
    a.k_head_bytes = cache.head_bytes(0, layer);
    a.v_head_bytes = cache.head_bytes(1, layer);
    a.k_type = cache.type(0);
    a.v_type = cache.type(1);
    a.ring = cache.is_ring(layer) ? cache.rows(layer) : 0;
    a.scale = hp_.query_scale;
    a.softcap = hp_.attn_softcap;
    kernels::attention(k_, a, n_threads_);
  }
  project(model_.layer(layer, Slot::attn_output).matrix, attn_.data(), out, store);
}

void CpuForward::gated_mlp(int layer, const float* in, float* out, Activation act, Store store) {
  const int64_t n = n_tokens_, F = hp_.n_ff;
  auto fn = act == Activation::silu ? k_.swiglu : k_.geglu;
  if (const Weight& gate = model_.layer(layer, Slot::ffn_gate)) {
    matmul(gate.matrix, in, n, act_.data(), F);
    matmul(model_.layer(layer, Slot::ffn_up).matrix, in, n, up_.data(), F);
    fn(act_.data(), up_.data(), act_.data(), n * F);
  } else {  // fused: each row = [gate (F) | up (F)]
    matmul(model_.layer(layer, Slot::ffn_up).matrix, in, n, up_.data(), 2 * F);
    for (int64_t t = 0; t < n; ++t) fn(up_.data() + t * 2 * F, up_.data() + t * 2 * F + F, act_.data() + t * F, F);
  }
  project(model_.layer(layer, Slot::ffn_down).matrix, act_.data(), out, store);
}

bool CpuForward::keep_rows(const std::vector<int64_t>& rows) {
  const int64_t E = hp_.n_embd;
  for (size_t i = 0; i < rows.size(); ++i)  // rows increase, so row i is never overwritten before it is moved
    if (rows[i] != static_cast<int64_t>(i))
      std::copy_n(x_.data() + rows[i] * E, E, x_.data() + static_cast<int64_t>(i) * E);
  n_tokens_ = static_cast<int64_t>(rows.size());
  return true;
}

void CpuForward::logits(int64_t first, float* out) {
  const int64_t E = hp_.n_embd, V = hp_.n_vocab, rows = n_tokens_ - first;
  const Weight& norm_w = model_.global(Slot::output_norm);
  for (int64_t t = first; t < n_tokens_; ++t) k_.rmsnorm(x_.data() + t * E, norm_w.vec.data(), hp_.rms_eps, E, xn_.data() + t * E);
  matmul(model_.output_matrix(), xn_.data() + first * E, rows, out, V);
  if (hp_.final_softcap > 0) k_.softcap(out, hp_.final_softcap, rows * V);
}

}  // namespace slm::model
