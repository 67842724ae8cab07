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
  attention(layer, xn(), x(), Store::add);
  norm(x(), model_.layer(layer, Slot::ffn_norm), xn());
  gated_mlp(layer, xn(), x(), act, Store::add);
}

void Forward::sandwich_norm_block(int layer, Activation act) {
  norm(x(), model_.layer(layer, Slot::attn_norm), xn());
  attention(layer, xn(), o(), Store::write);
  norm(o(), model_.layer(layer, Slot::post_attention_norm), o());
  add_residual(o());
  norm(x(), model_.layer(layer, Slot::ffn_norm), xn());
  gated_mlp(layer, xn(), o(), act, Store::write);
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
  if (p.n_seq < 1 || p.n_seq > 256) throw Error(fmt::format("a context holds 1 to 256 sequences (got {})", p.n_seq));
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
      fwd_(make_forward(model, ForwardConfig{kv_rows_, params_.n_ctx, params_.n_batch, params_.n_threads, params_.k_type, params_.v_type,
                                               params_.n_seq},
                        ropes_)) {
  n_past_.assign(static_cast<size_t>(params_.n_seq), 0);
  valid_from_.assign(static_cast<size_t>(params_.n_seq), std::vector<int64_t>(static_cast<size_t>(model.hparams().n_layer), 0));
  int n_ring = 0;
  int64_t ring_rows = 0;
  for (int l = 0; l < model.hparams().n_layer; ++l)
    if (is_ring(l)) ++n_ring, ring_rows = kv_rows_[static_cast<size_t>(l)];
  const HParams& hp = model.hparams();
  const double full_mib = static_cast<double>(params_.n_seq * hp.n_layer * params_.n_ctx * hp.n_head_kv) *
                          static_cast<double>(kernels::kv_row_bytes(params_.k_type, hp.head_dim) +
                                              kernels::kv_row_bytes(params_.v_type, hp.head_dim)) /
                          (1 << 20);
  logger().debug("context: {} positions{}, batch {}, {} threads, {}; scratch {:.1f} MiB", params_.n_ctx,
                 params_.n_seq > 1 ? fmt::format(" in each of {} sequences", params_.n_seq) : "", params_.n_batch, params_.n_threads, model.device_name(),
                 static_cast<double>(fwd_->scratch_bytes()) / (1 << 20));
  logger().debug("KV cache ({}): {:.1f} MiB — {} layers over the whole context, {} sliding-window layers in rings of {} "
                 "positions ({:.1f} MiB without the rings)",
                 kv_type_name(params_), static_cast<double>(fwd_->kv_bytes()) / (1 << 20),
                 model.hparams().n_layer - n_ring, n_ring, ring_rows, full_mib);
}

size_t Context::checked(int seq) const {
  if (seq < 0 || seq >= params_.n_seq)
    throw Error(fmt::format("sequence {} does not exist (the context has {})", seq, params_.n_seq));
  return static_cast<size_t>(seq);
}

void Context::evaluate(const int32_t* tokens, int64_t n, bool all_logits, std::vector<float>& logits, int seq) {
  if (n <= 0) throw Error("evaluate: no tokens");
  const size_t s = checked(seq);
  if (n_past_[s] + n > params_.n_ctx)
    throw Error(fmt::format("{} tokens do not fit the context: {} of {} positions are used, {} are free", n, n_past_[s],
                            params_.n_ctx, params_.n_ctx - n_past_[s]));
  std::vector<BatchToken> batch(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    batch[static_cast<size_t>(i)] = {tokens[i], n_past_[s] + i, seq, all_logits || i == n - 1};
  evaluate_batch(batch, logits);
}

void Context::evaluate_batch(const std::vector<BatchToken>& batch, std::vector<float>& logits) {
  const HParams& hp = model_.hparams();
  if (batch.empty()) throw Error("evaluate: no tokens");
  // Everything is checked before anything is evaluated.
  std::vector<int64_t> next = n_past_;  // per sequence: the position its next token must have
  int64_t wanted = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchToken& b = batch[i];
    const size_t s = checked(b.seq);
    if (b.token < 0 || b.token >= hp.n_vocab)
      throw Error(fmt::format("token id {} at index {} is out of range (vocabulary of {})", b.token, i, hp.n_vocab));
    if (b.pos != next[s])
      throw Error(fmt::format("token {} of the batch is at position {} of sequence {}, which holds {} positions: "
                              "a sequence continues at its next position",
                              i, b.pos, b.seq, next[s]));
    if (b.pos >= params_.n_ctx)
      throw Error(fmt::format("sequence {} does not fit the context: {} positions would be needed, it holds {}", b.seq,
                              b.pos + 1, params_.n_ctx));
    ++next[s];
    wanted += b.logits;
  }
  const auto V = static_cast<size_t>(hp.n_vocab);
  logits.resize(static_cast<size_t>(wanted) * V);
  float* out = logits.data();
  const auto n = static_cast<int64_t>(batch.size());
  for (int64_t b0 = 0; b0 < n; b0 += params_.n_batch) {
    const int64_t nb = std::min(params_.n_batch, n - b0);
    const BatchToken* pass = batch.data() + b0;
    fwd_->begin(pass, nb);
    for (int l = 0; l < hp.n_layer; ++l) model_.arch().block(*fwd_, l);
    fwd_->finish_layers();
    for (int64_t t = 0; t < nb; ++t) n_past_[static_cast<size_t>(pass[t].seq)] = pass[t].pos + 1;
    for (int s = 0; s < params_.n_seq; ++s)  // rows that wrapped around now hold newer positions
      for (int l = 0; l < hp.n_layer; ++l) {
        int64_t& from = valid_from_[static_cast<size_t>(s)][static_cast<size_t>(l)];
        from = std::max(from, n_past_[static_cast<size_t>(s)] - kv_rows_[static_cast<size_t>(l)]);
      }
    // The rows whose logits are wanted: a suffix of the pass (a prompt's
    // last token, or all of them) goes straight to the output projection;
    // others are gathered first.
    std::vector<int64_t> rows;
    for (int64_t t = 0; t < nb; ++t)
      if (pass[t].logits) rows.push_back(t);
    if (rows.empty()) continue;
    const auto k = static_cast<int64_t>(rows.size());
    if (rows.front() + k == nb) {
      fwd_->logits(rows.front(), out);
    } else if (fwd_->keep_rows(rows)) {
      fwd_->logits(0, out);
    } else {
      all_rows_.resize(static_cast<size_t>(nb - rows.front()) * V);
      fwd_->logits(rows.front(), all_rows_.data());
      for (int64_t i = 0; i < k; ++i)
        std::copy_n(all_rows_.data() + static_cast<size_t>(rows[static_cast<size_t>(i)] - rows.front()) * V, V,
                    out + static_cast<size_t>(i) * V);
    }
    out += static_cast<size_t>(k) * V;
  }
}

uint64_t Context::kv_bytes_read(int64_t pos) const {
  const HParams& hp = model_.hparams();
  const uint64_t per_position = static_cast<uint64_t>(hp.n_head_kv) * (kernels::kv_row_bytes(params_.k_type, hp.head_dim) +
                                                                     kernels::kv_row_bytes(params_.v_type, hp.head_dim));
  uint64_t bytes = 0;
  for (const LayerSpec& l : hp.layers) {
    const int64_t keys = l.window > 0 ? std::min(pos + 1, l.window) : pos + 1;
    bytes += static_cast<uint64_t>(keys) * per_position;
  }
  return bytes;
}

bool Context::can_rewind(int64_t n, int seq) const {
  const size_t s = checked(seq);
  if (n == 0) return true;
  const HParams& hp = model_.hparams();
  for (int l = 0; l < hp.n_layer; ++l) {
    const int64_t window = hp.layers[static_cast<size_t>(l)].window;
    // Position n attends to [n - window + 1, n]; all but n itself must still be held.
    if (is_ring(l) && std::max<int64_t>(0, n - window + 1) < valid_from_[s][static_cast<size_t>(l)]) return false;
  }
  return true;
}

void Context::rewind(int64_t n, int seq) {
  const size_t s = checked(seq);
  if (n < 0 || n > n_past_[s]) throw Error(fmt::format("cannot rewind to position {} (at {})", n, n_past_[s]));
  if (!can_rewind(n, seq))
    throw Error(fmt::format("cannot rewind to position {}: the sliding-window cache no longer holds the positions "
                            "before it (evaluate the tokens again from the start)",
                            n));
  n_past_[s] = n;  // later positions are overwritten before they are read again
  if (n == 0) std::fill(valid_from_[s].begin(), valid_from_[s].end(), 0);
}

}  // namespace slm::model
