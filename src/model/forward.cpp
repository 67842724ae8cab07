#include "model/forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <thread>

#include "core/fp16.h"
#include "core/log.h"
#include "model/cpu_forward.h"
#include "model/cuda/cuda_backend.h"
#include "cpu/parallel.h"
#include "slm/error.h"

namespace slm::model {

// ---------------------------------------------------------------------------
// Forward: the blocks, built from the pieces.

void Forward::pre_norm_block(int layer, Activation act) {
  norm(x(), model_.layer(layer, Slot::attn_norm), xn());
  attention(layer, xn(), o());
  add_residual(o());
  norm(x(), model_.layer(layer, Slot::ffn_norm), xn());
  gated_mlp(layer, xn(), o(), act);
  add_residual(o());
}

void Forward::sandwich_norm_block(int layer, Activation act) {
  norm(x(), model_.layer(layer, Slot::attn_norm), xn());
  attention(layer, xn(), o());
  norm(o(), model_.layer(layer, Slot::post_attention_norm), o());
  add_residual(o());
  norm(x(), model_.layer(layer, Slot::ffn_norm), xn());
  gated_mlp(layer, xn(), o(), act);
  norm(o(), model_.layer(layer, Slot::post_ffw_norm), o());
  add_residual(o());
}

// ---------------------------------------------------------------------------
// The backends

std::unique_ptr<Forward> make_forward(const Model& model, const ForwardConfig& config,
                                      const std::vector<RopeState>& ropes) {
  switch (model.device()) {
    case Device::cpu: return std::make_unique<CpuForward>(model, config, ropes, kernels::active_kernels());
    case Device::cuda: return cuda::make_forward(model, config, ropes);
  }
  throw Error("unknown device");
}

// ---------------------------------------------------------------------------
// Context

DType kv_dtype(KvType t) {
  switch (t) {
    case KvType::f32: return DType::F32;
    case KvType::q8_0: return DType::Q8_0;
    default: return DType::F16;
  }
}

namespace {

// "f16", or "q8_0 K / f16 V" when they differ: for the log.
std::string kv_type_name(const ContextParams& p) {
  auto lower = [](DType t) {
    std::string s(dtype_name(t));
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  return p.k_type == p.v_type ? lower(p.k_type) : lower(p.k_type) + " K / " + lower(p.v_type) + " V";
}

ContextParams resolve(const Model& model, ContextParams p) {
  const HParams& hp = model.hparams();
  if (p.n_ctx <= 0) p.n_ctx = std::min<int64_t>(hp.n_ctx_train, 4096);
  if (p.n_ctx > (int64_t{1} << 24)) throw Error(fmt::format("context length {} is too large", p.n_ctx));
  if (p.n_batch <= 0) throw Error(fmt::format("batch size must be positive (got {})", p.n_batch));
  for (DType t : {p.k_type, p.v_type})
    if (!kernels::is_kv_type(t))
      throw Error(fmt::format("{} is not a KV cache type (f16, f32 or q8_0)", dtype_name(t)));
  kernels::kv_row_bytes(p.k_type, hp.head_dim);  // throws when the head size does not fit the type
  kernels::kv_row_bytes(p.v_type, hp.head_dim);
  p.n_batch = std::min(p.n_batch, p.n_ctx);
  if (p.n_threads <= 0) p.n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return p;
}

}  // namespace

Context::Context(const Model& model, const ContextParams& params)
    : model_(model),
      params_(resolve(model, params)),
      kv_rows_([&] {
        // A sliding-window layer needs the window before the batch's first
        // position plus the batch itself: a ring of W + n_batch - 1 rows.
        std::vector<int64_t> rows;
        for (const LayerSpec& l : model.hparams().layers)
          rows.push_back(l.window > 0 ? std::min(params_.n_ctx, l.window + params_.n_batch - 1) : params_.n_ctx);
        return rows;
      }()),
      ropes_([&] {
        // The file's frequency factors: LongRoPE (phi3 128k) takes the long
        // ones when this context exceeds the original training context, else
        // the short ones (the reference engine's rule); Llama 3's rope_freqs.
        const HParams& hp = model.hparams();
        const bool use_long = params_.n_ctx > hp.rope_orig_ctx && hp.rope_orig_ctx > 0;
        const Weight& longf = model.global(Slot::rope_factors_long);
        const Weight& shortf = model.global(Slot::rope_factors_short);
        const Weight& freqs = model.global(Slot::rope_freqs);
        const std::vector<float>* file_factors = use_long && longf ? &longf.vec
                                                 : shortf          ? &shortf.vec
                                                 : freqs           ? &freqs.vec
                                                                   : nullptr;
        std::vector<RopeState> out;
        for (const RopeTable& table : hp.rope_tables) {
          RopeState r;
          if (table.model_factors && file_factors != nullptr) {
            r.factors = *file_factors;
            r.attn_factor = hp.rope_attn_factor;
          }
          if (table.linear_factor != 1.0f) {  // linear scaling: every pair's divisor times the factor
            r.factors.resize(static_cast<size_t>(hp.n_rot / 2), 1.0f);
            for (float& f : r.factors) f *= table.linear_factor;
          }
          out.push_back(std::move(r));
        }
        return out;
      }()),
      fwd_(make_forward(model, ForwardConfig{kv_rows_, params_.n_ctx, params_.n_batch, params_.n_threads, params_.k_type, params_.v_type},
                        ropes_)) {
  valid_from_.assign(static_cast<size_t>(model.hparams().n_layer), 0);
  int n_ring = 0;
  int64_t ring_rows = 0;
  for (int l = 0; l < model.hparams().n_layer; ++l)
    if (is_ring(l)) ++n_ring, ring_rows = kv_rows_[static_cast<size_t>(l)];
  const HParams& hp = model.hparams();
  const double full_mib = static_cast<double>(hp.n_layer * params_.n_ctx * hp.n_head_kv) *
                          static_cast<double>(kernels::kv_row_bytes(params_.k_type, hp.head_dim) +
                                              kernels::kv_row_bytes(params_.v_type, hp.head_dim)) /
                          (1 << 20);
  logger().debug("context: {} positions, batch {}, {} threads, {}; scratch {:.1f} MiB", params_.n_ctx,
                 params_.n_batch, params_.n_threads, model.device_name(),
                 static_cast<double>(fwd_->scratch_bytes()) / (1 << 20));
  logger().debug("KV cache ({}): {:.1f} MiB — {} layers over the whole context, {} sliding-window layers in rings of {} "
                 "positions ({:.1f} MiB without the rings)",
                 kv_type_name(params_), static_cast<double>(fwd_->kv_bytes()) / (1 << 20),
                 model.hparams().n_layer - n_ring, n_ring, ring_rows, full_mib);
}

void Context::evaluate(const int32_t* tokens, int64_t n, bool all_logits, std::vector<float>& logits) {
  const HParams& hp = model_.hparams();
  if (n <= 0) throw Error("evaluate: no tokens");
  if (n_past_ + n > params_.n_ctx)
    throw Error(fmt::format("{} tokens do not fit the context: {} of {} positions are used, {} are free", n, n_past_,
                            params_.n_ctx, params_.n_ctx - n_past_));
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= hp.n_vocab)
      throw Error(fmt::format("token id {} at index {} is out of range (vocabulary of {})", tokens[i], i, hp.n_vocab));
  logits.resize(static_cast<size_t>((all_logits ? n : 1) * hp.n_vocab));
  for (int64_t b0 = 0; b0 < n; b0 += params_.n_batch) {
    const int64_t nb = std::min(params_.n_batch, n - b0);
    fwd_->begin(tokens + b0, nb, n_past_);
    for (int l = 0; l < hp.n_layer; ++l) model_.arch().block(*fwd_, l);
    fwd_->finish_layers();
    for (int l = 0; l < hp.n_layer; ++l)  // rows that wrapped around now hold newer positions
      valid_from_[static_cast<size_t>(l)] =
          std::max(valid_from_[static_cast<size_t>(l)], n_past_ + nb - kv_rows_[static_cast<size_t>(l)]);
    if (all_logits)
      fwd_->logits(0, logits.data() + b0 * hp.n_vocab);
    else if (b0 + nb == n)
      fwd_->logits(nb - 1, logits.data());
    n_past_ += nb;
  }
}

bool Context::can_rewind(int64_t n) const {
  if (n == 0) return true;
  const HParams& hp = model_.hparams();
  for (int l = 0; l < hp.n_layer; ++l) {
    const int64_t window = hp.layers[static_cast<size_t>(l)].window;
    // Position n attends to [n - window + 1, n]; all but n itself must still be held.
    if (is_ring(l) && std::max<int64_t>(0, n - window + 1) < valid_from_[static_cast<size_t>(l)]) return false;
  }
  return true;
}

void Context::rewind(int64_t n) {
  if (n < 0 || n > n_past_) throw Error(fmt::format("cannot rewind to position {} (at {})", n, n_past_));
  if (!can_rewind(n))
    throw Error(fmt::format("cannot rewind to position {}: the sliding-window cache no longer holds the positions "
                            "before it (evaluate the tokens again from the start)",
                            n));
  n_past_ = n;  // later positions are overwritten before they are read again
  if (n == 0) std::fill(valid_from_.begin(), valid_from_.end(), 0);
}

}  // namespace slm::model
