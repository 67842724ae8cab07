// The request queue and the worker that runs it (include/slm/engine.h).
#include "slm/engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "slm/error.h"

namespace slm {

struct Engine::Impl {
  struct Job {
    EngineRequest request;
    TokenCallback on_text;
    std::promise<GenerateResult> result;
  };
  struct Slot {
    std::unique_ptr<Session> session;
    uint64_t last_used = 0;  // a counter: higher = used more recently
  };

  std::shared_ptr<const Model> model;
  EngineParams params;
  std::vector<Slot> slots;
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Job>> queue;
  bool stopping = false;
  bool busy = false;
  uint64_t uses = 0;
  EngineStats totals;  // the counters; queue and busy are read live
  int64_t kv_tokens = 0;  // the slots' positions, counted by the worker after each request
  std::thread worker;

  // The slot whose cache starts with the longest part of the prompt's
  // tokens; ties: the least recently used.
  Slot& pick(const EngineRequest& r) {
    if (slots.size() == 1) return slots[0];
    std::vector<TokenId> tokens;
    try {
      tokens = r.messages.empty() ? model->tokenizer().encode(r.prompt, r.params.add_bos)
                                  : model->chat_template().tokenize(model->chat_template().render(r.messages));
    } catch (const Error&) {
      // generate() reports the problem; any slot will do.
    }
    Slot* best = &slots[0];
    size_t best_common = 0;
    for (Slot& s : slots) {
      const auto& held = s.session->tokens();
      size_t common = 0;
      while (common < held.size() && common < tokens.size() && held[common] == tokens[common]) ++common;
      if (common > best_common || (common == best_common && s.last_used < best->last_used)) {
        best = &s;
        best_common = common;
      }
    }
    return *best;
  }

  void run() {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        job = std::move(queue.front());
        queue.pop_front();
        busy = true;
      }
      Slot& slot = pick(job->request);
      {
        std::lock_guard<std::mutex> lock(mutex);
        slot.last_used = ++uses;
      }
      const TokenCallback& user = job->on_text;
      const TokenCallback on_text = [&](std::string_view piece) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          if (stopping) return false;
        }
        return !user || user(piece);
      };
      // The counters are updated before the result is handed over: whoever
      // waits on it then sees this request done in stats().
      std::optional<GenerateResult> result;
      std::exception_ptr error;
      try {
        result = job->request.messages.empty()
                     ? generate(*slot.session, job->request.prompt, job->request.params, on_text)
                     : generate(*slot.session, job->request.messages, job->request.params, on_text);
      } catch (...) {
        error = std::current_exception();
      }
      int64_t held = 0;
      for (const Slot& s : slots) held += s.session->n_past();
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (result) {
          totals.prompt_tokens += result->n_prompt;
          totals.reused_tokens += result->n_reused;
          totals.generated_tokens += result->n_generated;
          totals.generate_seconds += result->generate_seconds;
        }
        ++totals.requests_done;
        kv_tokens = held;
        busy = false;
      }
      if (result)
        job->result.set_value(std::move(*result));
      else
        job->result.set_exception(error);
    }
  }
};

Engine::Engine(std::shared_ptr<const Model> model, const EngineParams& params) : impl_(std::make_unique<Impl>()) {
  if (!model) throw Error("Engine: no model");
  if (params.slots < 1) throw Error("Engine: at least one slot is needed");
  if (params.max_queue < 0) throw Error("Engine: max_queue must not be negative");
  Impl& m = *impl_;
  m.model = std::move(model);
  m.params = params;
  for (int i = 0; i < params.slots; ++i)
    m.slots.push_back({std::make_unique<Session>(m.model, params.session), 0});
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
    if (impl_->stopping || static_cast<int>(impl_->queue.size()) >= impl_->params.max_queue + (impl_->busy ? 0 : 1))
      return std::nullopt;
    impl_->queue.push_back(std::move(job));
  }
  impl_->wake.notify_one();
  return result;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  EngineStats s = impl_->totals;
  s.queued = static_cast<int>(impl_->queue.size());
  s.busy = impl_->busy;
  s.kv_capacity = static_cast<int64_t>(impl_->slots.size()) * impl_->slots[0].session->n_ctx();
  s.kv_tokens = impl_->kv_tokens;
  return s;
}

const Model& Engine::model() const { return *impl_->model; }
int64_t Engine::n_ctx() const { return impl_->slots[0].session->n_ctx(); }

}  // namespace slm
