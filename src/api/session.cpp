#include "slm/session.h"

#include <fmt/format.h>

#include "api/internal.h"
#include "core/log.h"
#include "model/forward.h"
#include "slm/error.h"

namespace slm {

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::f32: return "f32";
    case KvType::q8_0: return "q8_0";
    default: return "f16";
  }
}

KvType parse_kv_type(const std::string& name) {
  for (KvType t : {KvType::f16, KvType::f32, KvType::q8_0})
    if (name == kv_type_name(t)) return t;
  throw Error(fmt::format("unknown KV cache type '{}' (f16, f32 or q8_0)", name));
}

struct Session::Impl {
  Impl(std::shared_ptr<const Model> m, const SessionParams& p)
      : model(std::move(m)), ctx(*model->impl().model, to_context(p)) {
    params = p;
    params.n_ctx = ctx.n_ctx();
    params.n_batch = ctx.params().n_batch;
    params.n_threads = ctx.params().n_threads;
  }
  static model::ContextParams to_context(const SessionParams& p) {
    model::ContextParams c;
    c.n_ctx = p.n_ctx;
    c.n_batch = p.n_batch;
    c.n_threads = p.n_threads;
    c.k_type = model::kv_dtype(p.type_k);
    c.v_type = model::kv_dtype(p.type_v);
    return c;
  }
  std::shared_ptr<const Model> model;
  model::Context ctx;
  SessionParams params;
  std::vector<TokenId> tokens;
  std::vector<float> logits;
};

Session::Session(std::shared_ptr<const Model> model, const SessionParams& params) {
  if (!model) throw Error("Session: no model");
  if (params.n_ctx < 0) throw Error(fmt::format("Session: n_ctx must be >= 0 (got {})", params.n_ctx));
  if (params.n_threads < 0) throw Error(fmt::format("Session: n_threads must be >= 0 (got {})", params.n_threads));
  impl_ = std::make_unique<Impl>(std::move(model), params);
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

const std::vector<float>& Session::evaluate(const std::vector<TokenId>& tokens) {
  impl_->ctx.evaluate(tokens.data(), static_cast<int64_t>(tokens.size()), false, impl_->logits);
  impl_->tokens.insert(impl_->tokens.end(), tokens.begin(), tokens.end());
  return impl_->logits;
}

std::vector<float> Session::evaluate_all(const std::vector<TokenId>& tokens) {
  std::vector<float> all;
  impl_->ctx.evaluate(tokens.data(), static_cast<int64_t>(tokens.size()), true, all);
  impl_->tokens.insert(impl_->tokens.end(), tokens.begin(), tokens.end());
  const auto V = static_cast<std::ptrdiff_t>(impl_->model->info().n_vocab);
  impl_->logits.assign(all.end() - V, all.end());
  return all;
}

const std::vector<float>& Session::decode(TokenId token) {
  impl_->ctx.evaluate(&token, 1, false, impl_->logits);
  impl_->tokens.push_back(token);
  return impl_->logits;
}

int64_t Session::n_past() const { return impl_->ctx.n_past(); }
int64_t Session::n_ctx() const { return impl_->ctx.n_ctx(); }
const std::vector<TokenId>& Session::tokens() const { return impl_->tokens; }

void Session::rewind(int64_t n) {
  if (n < 0 || n > n_past()) throw Error(fmt::format("cannot rewind to position {} (at {})", n, n_past()));
  if (impl_->ctx.can_rewind(n)) {
    impl_->ctx.rewind(n);
    impl_->tokens.resize(static_cast<size_t>(n));
    return;
  }
  // The sliding-window rings have moved past what position n needs: evaluate
  // the kept tokens again from the start (as the reference engine does).
  std::vector<TokenId> keep(impl_->tokens.begin(), impl_->tokens.begin() + static_cast<std::ptrdiff_t>(n));
  logger().debug("rewind to {}: the sliding-window cache no longer holds it; evaluating {} tokens again", n, n);
  impl_->ctx.rewind(0);
  impl_->tokens.clear();
  evaluate(keep);
}

const Model& Session::model() const { return *impl_->model; }
const SessionParams& Session::params() const { return impl_->params; }

}  // namespace slm
