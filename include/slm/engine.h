// slm::Engine — one model serving many requests (the server's core): a
// queue, a worker thread, and `slots` sessions, each with its own KV cache.
// A request goes to the slot whose cache already holds the longest start of
// its prompt (a shared system prompt, a chat's earlier turns), so only the
// new tokens are evaluated; ties go to the slot used least recently.
//
// Requests run one at a time on the worker thread, in arrival order (no
// batching across requests yet). Thread-safety: every member may be called
// from any thread.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "slm/chat.h"
#include "slm/generate.h"
#include "slm/model.h"
#include "slm/session.h"

namespace slm {

struct EngineParams {
  SessionParams session;  // for each slot
  int slots = 1;          // sessions kept (prompt caches); at least 1
  int max_queue = 64;     // requests waiting beyond the running one; more are refused
};

struct EngineRequest {
  std::vector<ChatMessage> messages;  // a chat: rendered with the model's chat template ...
  std::string prompt;                 // ... or, when messages is empty, a plain prompt
  GenerateParams params;
};

struct EngineStats {
  int64_t requests_done = 0;   // finished (including failed and stopped)
  int64_t prompt_tokens = 0;   // over all requests, reused ones included
  int64_t reused_tokens = 0;   // prompt tokens found in a slot's cache
  int64_t generated_tokens = 0;
  double generate_seconds = 0; // time spent generating (not evaluating prompts)
  int queued = 0;              // waiting now
  bool busy = false;           // a request is running
  int64_t kv_tokens = 0;       // positions held by all slots' caches
  int64_t kv_capacity = 0;     // slots * context
};

class Engine {
 public:
  explicit Engine(std::shared_ptr<const Model> model, const EngineParams& params = {});
  // Stops: the running request's callback sees the end (its generation
  // stops), queued requests fail with slm::Error.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; `on_text` receives its text on the worker thread
  // (return false to stop it, e.g. when the client has gone). The future
  // holds the result or the error (slm::Error: a prompt longer than the
  // context, ...). Nothing (std::nullopt) when the queue is full or the
  // engine is stopping.
  std::optional<std::future<GenerateResult>> submit(EngineRequest request, TokenCallback on_text = {});

  // Ends the work: new requests are refused, the running one is stopped,
  // queued ones fail. The destructor calls it.
  void stop();

  EngineStats stats() const;
  const Model& model() const;
  int64_t n_ctx() const;  // positions per slot

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
