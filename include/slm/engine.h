// slm::Engine — one model serving many requests (the server's core): a
// queue, a worker thread, and `slots` sequences, each with its own KV cache.
// A request goes to the idle slot whose cache already holds the longest
// start of its prompt (a shared system prompt, a chat's earlier turns), so
// only the new tokens are evaluated; ties go to the slot used least recently.
//
// Up to `slots` requests run at once, batched: each step of the worker is
// one forward pass over the next token of every answer being generated plus
// chunks of the prompts being read (n_batch tokens in all), so the weights
// are read once for all of them and a long prompt does not stall the other
// answers. Batching is invisible in the results: a request gets the tokens
// it gets alone. (On a backend that runs one sequence per context — CUDA —
// the slots are evaluated one after the other within each step.)
// Requests beyond the slots wait in arrival order. Thread-safety: every
// member may be called from any thread.
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
  SessionParams session;  // for each slot (n_batch: tokens per step, over all slots)
  int slots = 1;          // requests run at once, each slot keeping its prompt cache; at least 1
  int max_queue = 64;     // requests waiting beyond the running one; more are refused
  // An idle engine that receives a request waits until no other has arrived
  // for gather_quiet_ms (at most gather_max_ms in all) before its first step,
  // so requests sent together share it: their prompts are evaluated in one
  // batch, and no answer starts a whole prompt's step behind another.
  // 0: start at once.
  int gather_quiet_ms = 5;
  int gather_max_ms = 20;
};

struct EngineRequest {
  std::vector<ChatMessage> messages;  // a chat: rendered with the model's chat template ...
  std::string prompt;                 // ... or, when messages is empty, a plain prompt
  GenerateParams params;
  bool cache_prompt = true;           // reuse a slot's cached start of the prompt (false: evaluate it all)
};

struct EngineStats {
  int64_t requests_done = 0;   // finished (including failed and stopped)
  int64_t prompt_tokens = 0;   // over all requests, reused ones included
  int64_t reused_tokens = 0;   // prompt tokens found in a slot's cache
  int64_t generated_tokens = 0;
  double generate_seconds = 0; // time spent generating (not evaluating prompts)
  int queued = 0;              // waiting now
  int running = 0;             // being answered now
  bool busy = false;           // running > 0
  int64_t kv_tokens = 0;       // positions held by all slots' caches (idle ones keep theirs: the prompt cache)
  int64_t kv_active_tokens = 0;  // of those, held by slots running a request (0 when idle)
  int64_t kv_capacity = 0;     // slots * context
};

class Engine {
 public:
  explicit Engine(std::shared_ptr<const Model> model, const EngineParams& params = {});
  // Stops: the running requests end (stop reason `callback`), queued ones
  // fail with slm::Error.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; `on_text` receives its text on the worker thread
  // (return false to stop it, e.g. when the client has gone). The future
  // holds the result or the error (slm::Error: a prompt longer than the
  // context, ...). Nothing (std::nullopt) when the queue is full or the
  // engine is stopping.
  std::optional<std::future<GenerateResult>> submit(EngineRequest request, TokenCallback on_text = {});

  // Ends the work: new requests are refused, the running ones are stopped,
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
