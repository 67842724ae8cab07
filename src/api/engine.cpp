// The request queue and the worker that runs it (include/slm/engine.h):
// continuous batching over the slots of one multi-sequence context.
#include "slm/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "api/generation.h"
#include "api/internal.h"
#include "model/forward.h"
#include "slm/error.h"

namespace slm {

struct Engine::Impl {
  struct Job {
    EngineRequest request;
    TokenCallback on_text;
    std::promise<GenerateResult> result;
  };
  // A sequence of a context: its cache, what the cache holds, and the
  // request running in it (none: idle, the cache kept for prefix reuse).
  struct Slot {
    model::Context* ctx = nullptr;
    int seq = 0;
    std::vector<TokenId> tokens;  // what the cache holds, in order
    uint64_t last_used = 0;       // a counter: higher = used more recently
    std::unique_ptr<Job> job;
    std::unique_ptr<detail::Generation> gen;
    std::optional<TokenId> next_token;  // sampled, evaluated in the next step
    bool last = false;                  // next_token is the answer's last
    std::chrono::steady_clock::time_point prompt_start;
    bool prefilling() const { return job && tokens.size() < gen->prompt().size(); }
  };

  std::shared_ptr<const Model> model;
  EngineParams params;
  // CPU: one context whose sequences are the slots, evaluated together. A
  // backend that runs one sequence per context (CUDA) gets a context per
  // slot, each step evaluating them one after the other.
  std::vector<std::unique_ptr<model::Context>> contexts;
  std::vector<Slot> slots;
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Job>> queue;
  bool stopping = false;
  int running = 0;  // slots with a request
  uint64_t uses = 0;
  EngineStats totals;     // the counters; queue and running are read live
  int64_t kv_tokens = 0, kv_active = 0;  // the slots' positions (all, running ones'): see count_kv()
  std::thread worker;

  // Counts the slots' positions for stats(); the worker calls it with the
  // mutex held (stats() cannot read the slots themselves).
  void count_kv() {
    kv_tokens = kv_active = 0;
    for (const Slot& s : slots) {
      kv_tokens += static_cast<int64_t>(s.tokens.size());
      if (s.job) kv_active += static_cast<int64_t>(s.tokens.size());
    }
  }

  bool is_stopping() {
    std::lock_guard<std::mutex> lock(mutex);
    return stopping;
  }

  // The idle slot whose cache starts with the longest part of the prompt;
  // ties: the least recently used.
  Slot* pick(const std::vector<TokenId>& prompt) {
    Slot* best = nullptr;
    size_t best_common = 0;
    for (Slot& s : slots) {
      if (s.job) continue;
      size_t common = 0;
      while (common < s.tokens.size() && common < prompt.size() && s.tokens[common] == prompt[common]) ++common;
      if (!best || common > best_common || (common == best_common && s.last_used < best->last_used)) {
        best = &s;
        best_common = common;
      }
    }
    return best;
  }

  // Puts a request into an idle slot: its prompt is checked, the slot's
  // cache rewound to what the prompt shares with it. A request that cannot
  // run fails here.
  void start(std::unique_ptr<Job> job) {
    try {
      TokenCallback on_text = [this, user = job->on_text](std::string_view piece) {
        return !is_stopping() && (!user || user(piece));
      };
      const EngineRequest& r = job->request;
      auto gen = r.messages.empty() ? detail::Generation::for_prompt(*model, r.prompt, r.params, std::move(on_text))
                                    : detail::Generation::for_chat(*model, r.messages, r.params, std::move(on_text));
      const int64_t n_ctx = contexts[0]->n_ctx();
      if (static_cast<int64_t>(gen->prompt().size()) > n_ctx)
        throw Error(fmt::format("the prompt has {} tokens but the context holds {}", gen->prompt().size(), n_ctx));
      Slot& slot = *pick(gen->prompt());
      int64_t common = gen->reuse(r.cache_prompt ? slot.tokens : std::vector<TokenId>{});
      if (!slot.ctx->can_rewind(common, slot.seq)) common = gen->reuse({});  // past the sliding-window rings
      slot.ctx->rewind(common, slot.seq);
      slot.tokens.resize(static_cast<size_t>(common));
      slot.gen = std::move(gen);
      slot.next_token.reset();
      slot.last = false;
      slot.prompt_start = std::chrono::steady_clock::now();
      std::lock_guard<std::mutex> lock(mutex);
      slot.last_used = ++uses;
      slot.job = std::move(job);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        --running;
        ++totals.requests_done;
      }
      job->result.set_exception(std::current_exception());
    }
  }

  // The request in `slot` is over: its result (or `error`) is handed over,
  // the slot becomes idle (its cache kept). The counters are updated before
  // the result is handed over: whoever waits on it then sees it in stats().
  void end(Slot& slot, std::exception_ptr error = nullptr) {
    std::optional<GenerateResult> result;
    if (!error) {
      try {
        result = slot.gen->finish();  // may call the callback (held-back text)
      } catch (...) {
        error = std::current_exception();
      }
    }
    std::unique_ptr<Job> job = std::move(slot.job);
    slot.gen.reset();
    slot.next_token.reset();
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (result) {
        totals.prompt_tokens += result->n_prompt;
        totals.reused_tokens += result->n_reused;
        totals.generated_tokens += result->n_generated;
        totals.generate_seconds += result->generate_seconds;
      }
      ++totals.requests_done;
      --running;
      count_kv();
    }
    if (result)
      job->result.set_value(std::move(*result));
    else
      job->result.set_exception(error);
  }

  // The slot's request after the logits of its last evaluated token: the
  // next token to evaluate, or its end.
  void advance(Slot& slot, const float* logits, int64_t n_vocab) {
    try {
      const int64_t n_free = slot.ctx->n_ctx() - static_cast<int64_t>(slot.tokens.size());
      const auto step = slot.gen->next(logits, n_vocab, n_free);
      if (!step.token) return end(slot);
      slot.next_token = step.token;
      slot.last = step.last;
    } catch (...) {
      end(slot, std::current_exception());  // the callback threw
    }
  }

  // One pass per context: every decoding slot's next token, then prompt
  // chunks of the prefilling slots (oldest request first) up to n_batch
  // tokens in all — so a long prompt is evaluated over several steps while
  // the other answers keep streaming.
  void step() {
    if (is_stopping()) {
      for (Slot& s : slots)
        if (s.job) s.gen->cancel(), end(s);
      return;
    }
    const auto V = static_cast<int64_t>(model->info().n_vocab);
    std::vector<model::BatchToken> batch;
    std::vector<Slot*> rows;  // whose logits each wanted row is
    std::vector<float> logits;
    for (const auto& ctx : contexts) {
      batch.clear();
      rows.clear();
      std::vector<Slot*> members, prefills;
      for (Slot& s : slots)
        if (s.job && s.ctx == ctx.get()) members.push_back(&s);
      for (Slot* s : members) {
        if (!s->next_token) continue;
        batch.push_back({*s->next_token, static_cast<int64_t>(s->tokens.size()), s->seq, true});
        rows.push_back(s);
        s->tokens.push_back(*s->next_token);
        s->next_token.reset();
      }
      for (Slot* s : members)
        if (s->prefilling()) prefills.push_back(s);
      std::sort(prefills.begin(), prefills.end(), [](const Slot* a, const Slot* b) { return a->last_used < b->last_used; });
      const auto budget = static_cast<size_t>(ctx->params().n_batch);
      for (Slot* s : prefills) {
        const std::vector<TokenId>& prompt = s->gen->prompt();
        while (batch.size() < budget && s->tokens.size() < prompt.size()) {
          const bool prompt_end = s->tokens.size() + 1 == prompt.size();
          batch.push_back({prompt[s->tokens.size()], static_cast<int64_t>(s->tokens.size()), s->seq, prompt_end});
          if (prompt_end) rows.push_back(s);
          s->tokens.push_back(prompt[s->tokens.size()]);
        }
      }
      if (batch.empty()) continue;
      try {
        ctx->evaluate_batch(batch, logits);
      } catch (...) {
        // Nothing was evaluated, or the caches are in doubt: every request in
        // the batch fails and its slot starts empty.
        const std::exception_ptr error = std::current_exception();
        for (Slot* s : members) {
          if (std::none_of(batch.begin(), batch.end(), [&](const model::BatchToken& b) { return b.seq == s->seq; }))
            continue;
          s->tokens.clear();
          s->ctx->rewind(0, s->seq);
          end(*s, error);
        }
        continue;
      }
      for (size_t i = 0; i < rows.size(); ++i) {
        Slot& s = *rows[i];
        if (!s.job) continue;
        if (s.last) {
          end(s);
          continue;
        }
        if (s.tokens.size() == s.gen->prompt().size())  // the prompt's end
          s.gen->set_prompt_seconds(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - s.prompt_start).count());
        advance(s, logits.data() + static_cast<int64_t>(i) * V, V);
      }
    }
    std::lock_guard<std::mutex> lock(mutex);
    count_kv();
  }

  // EngineParams::gather_quiet_ms: more arrivals for the first step of an
  // idle engine, until the queue has been quiet that long or fills the slots.
  void gather(std::unique_lock<std::mutex>& lock) {
    if (params.gather_quiet_ms <= 0 || params.gather_max_ms <= 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(params.gather_max_ms);
    const auto quiet = std::chrono::milliseconds(params.gather_quiet_ms);
    for (size_t seen = queue.size(); !stopping && seen < slots.size(); seen = queue.size()) {
      const auto until = std::min(deadline, std::chrono::steady_clock::now() + quiet);
      if (!wake.wait_until(lock, until, [&] { return stopping || queue.size() > seen; })) return;
    }
  }

  void run() {
    for (;;) {
      std::vector<std::unique_ptr<Job>> arrived;
      {
        std::unique_lock<std::mutex> lock(mutex);
        if (running == 0) {
          wake.wait(lock, [&] { return stopping || !queue.empty(); });
          gather(lock);
        }
        if (stopping && running == 0) return;  // stop() failed the queued ones
        while (!stopping && !queue.empty() && running < static_cast<int>(slots.size())) {
          arrived.push_back(std::move(queue.front()));
          queue.pop_front();
          ++running;
        }
      }
      for (auto& job : arrived) start(std::move(job));
      step();
    }
  }
};

Engine::Engine(std::shared_ptr<const Model> model, const EngineParams& params) : impl_(std::make_unique<Impl>()) {
  if (!model) throw Error("Engine: no model");
  if (params.slots < 1) throw Error("Engine: at least one slot is needed");
  if (params.max_queue < 0) throw Error("Engine: max_queue must not be negative");
  const SessionParams& sp = params.session;
  if (sp.n_ctx < 0) throw Error(fmt::format("Engine: n_ctx must be >= 0 (got {})", sp.n_ctx));
  if (sp.n_threads < 0) throw Error(fmt::format("Engine: n_threads must be >= 0 (got {})", sp.n_threads));
  Impl& m = *impl_;
  m.model = std::move(model);
  m.params = params;
  const model::Model& core = *m.model->impl().model;
  model::ContextParams cp;
  cp.n_ctx = sp.n_ctx;
  cp.n_batch = sp.n_batch;
  cp.n_threads = sp.n_threads;
  cp.k_type = model::kv_dtype(sp.type_k);
  cp.v_type = model::kv_dtype(sp.type_v);
  const bool batched = core.device() == model::Device::cpu;
  cp.n_seq = batched ? params.slots : 1;
  for (int i = 0; i < (batched ? 1 : params.slots); ++i) m.contexts.push_back(std::make_unique<model::Context>(core, cp));
  m.slots.resize(static_cast<size_t>(params.slots));
  for (int i = 0; i < params.slots; ++i) {
    m.slots[static_cast<size_t>(i)].ctx = m.contexts[batched ? 0 : static_cast<size_t>(i)].get();
    m.slots[static_cast<size_t>(i)].seq = batched ? i : 0;
  }
  m.worker = std::thread([&m] { m.run(); });
}

Engine::~Engine() {
  stop();
  if (impl_->worker.joinable()) impl_->worker.join();
}

void Engine::stop() {
  std::deque<std::unique_ptr<Impl::Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
    dropped.swap(impl_->queue);
  }
  impl_->wake.notify_all();
  for (auto& job : dropped)
    job->result.set_exception(std::make_exception_ptr(Error("the engine stopped before this request ran")));
}

std::optional<std::future<GenerateResult>> Engine::submit(EngineRequest request, TokenCallback on_text) {
  auto job = std::make_unique<Impl::Job>();
  job->request = std::move(request);
  job->on_text = std::move(on_text);
  std::future<GenerateResult> result = job->result.get_future();
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const int idle = static_cast<int>(impl_->slots.size()) - impl_->running;
    if (impl_->stopping || static_cast<int>(impl_->queue.size()) >= impl_->params.max_queue + idle) return std::nullopt;
    impl_->queue.push_back(std::move(job));
  }
  impl_->wake.notify_one();
  return result;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  EngineStats s = impl_->totals;
  s.queued = static_cast<int>(impl_->queue.size());
  s.running = impl_->running;
  s.busy = impl_->running > 0;
  s.kv_capacity = static_cast<int64_t>(impl_->slots.size()) * impl_->contexts[0]->n_ctx();
  s.kv_tokens = impl_->kv_tokens;
  s.kv_active_tokens = impl_->kv_active;
  return s;
}

const Model& Engine::model() const { return *impl_->model; }
int64_t Engine::n_ctx() const { return impl_->contexts[0]->n_ctx(); }

}  // namespace slm
