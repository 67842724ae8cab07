// slm serve: an OpenAI-compatible HTTP API (and a small chat page) over
// slm::Engine. Requests are checked field by field here; the engine queues
// them and runs them on its slots (include/slm/engine.h).
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "gen_options.h"
#include "serve_page.h"
#include "serve_request.h"
#include "slm/slm.h"

namespace slm::cli {
namespace {

using nlohmann::json;

constexpr size_t kConnectionThreads = 64;

struct ServeOptions : GenOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 1;
  int max_queue = 64;
  std::string api_key;
  int64_t max_body_mib = 8;
};

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

std::string finish_reason(StopReason r) {
  return r == StopReason::max_tokens || r == StopReason::context_full ? "length" : "stop";
}

json usage(const GenerateResult& r) {
  return {{"prompt_tokens", r.n_prompt},
          {"completion_tokens", r.n_generated},
          {"total_tokens", r.n_prompt + r.n_generated},
          {"prompt_tokens_details", {{"cached_tokens", r.n_reused}}}};
}

// ---- streaming: the engine's worker hands pieces to the HTTP thread that
// writes the response.

struct Stream {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::string> pieces;
  std::atomic<bool> gone{false};  // the client went away: stop generating
};

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

// cpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed
// when Debian built its library, so defining it here changes nothing). A
// burst of clients overflows that queue: the kernel drops their handshakes,
// they wait a second and retry, and some end up reset. Listening again on
// the bound socket raises the backlog to the system's maximum.
class HttpServer : public httplib::Server {
 public:
  bool widen_backlog() { return ::listen(svr_sock_, SOMAXCONN) == 0; }
};

class Server {
 public:
  Server(const ServeOptions& o, std::shared_ptr<const Model> model)
      : o_(o),
        model_(std::move(model)),
        name_(model_->info().name.empty() ? model_->info().architecture : model_->info().name),
        engine_(model_, engine_params(o)),
        defaults_(generate_params(o)),
        created_(std::time(nullptr)) {}

  int run() {
    HttpServer svr;
    svr.set_payload_max_length(static_cast<size_t>(o_.max_body_mib) << 20);
    svr.set_read_timeout(15, 0);   // a client that sends its request slower than this is dropped
    // Enough connection threads that a few slow or idle clients (each holds
    // one until its timeout) do not keep the others waiting.
    svr.new_task_queue = [] { return new httplib::ThreadPool(kConnectionThreads); };
    svr.set_write_timeout(60, 0);
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (o_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      const std::string given = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : std::string();
      if (constant_time_equal(given, o_.api_key)) return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, {401, "a valid API key is required: Authorization: Bearer KEY", "", "authentication_error"});
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        send_error(res, {500, fmt::format("internal error: {}", e.what()), "", "server_error"});
      } catch (...) {
        send_error(res, {500, "internal error", "", "server_error"});
      }
    });
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;  // a handler's own error
      const std::string what = res.status == 404   ? fmt::format("no such endpoint: {} {}", req.method, req.path)
                               : res.status == 413 ? "the request body is too large"
                                                   : fmt::format("HTTP {}", res.status);
      send_error(res, {res.status, what, ""});
    });

    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kChatPage, "text/html"); });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      const json list = {{"object", "list"},
                         {"data", {{{"id", name_}, {"object", "model"}, {"created", created_}, {"owned_by", "slm"}}}}};
      res.set_content(list.dump(), "application/json");
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { metrics(res); });
    svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) { guarded(res, [&] { tokenize(req, res); }); });
    svr.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) { guarded(res, [&] { detokenize(req, res); }); });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { complete(req, res, true); });
    });
    svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { complete(req, res, false); });
    });

    const int port = o_.port == 0 ? svr.bind_to_any_port(o_.host) : (svr.bind_to_port(o_.host, o_.port) ? o_.port : -1);
    if (port < 0) throw Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", o_.host, o_.port));
    if (!svr.widen_backlog()) throw Error(fmt::format("cannot listen on {}:{}: {}", o_.host, port, std::strerror(errno)));
    fmt::print(stderr, "slm serve: {} on http://{}:{} ({} slot{}, context {}); Ctrl-C stops\n", name_, o_.host, port,
               o_.parallel, o_.parallel == 1 ? "" : "s", engine_.n_ctx());
    std::fflush(stderr);
    // SIGINT / SIGTERM: stop the engine (running answers end, their streams
    // close properly), then the listener.
    std::thread signals([this, &svr] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGUSR1);
      int sig = 0;
      sigwait(&set, &sig);
      if (sig == SIGUSR1) return;  // the listener ended first
      engine_.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // streams write their last chunk
      svr.stop();
    });
    svr.listen_after_bind();
    engine_.stop();
    pthread_kill(signals.native_handle(), SIGUSR1);
    signals.join();
    fmt::print(stderr, "slm serve: stopped\n");
    return 0;
  }

 private:
  static EngineParams engine_params(const ServeOptions& o) {
    EngineParams p;
    p.session = session_params(o);
    p.slots = o.parallel;
    p.max_queue = o.max_queue;
    return p;
  }

  template <typename Fn>
  void guarded(httplib::Response& res, Fn&& fn) {
    try {
      fn();
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, bad("", e.what()));
    }
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    if (!body.contains("content") || !body["content"].is_string()) throw bad("content", "'content' must be a string");
    const bool special = boolean(body, "add_special", false), parse = boolean(body, "parse_special", true);
    const auto ids = model_->tokenizer().encode(body["content"].get<std::string>(), special, parse);
    res.set_content(json({{"tokens", ids}}).dump(), "application/json");
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    if (!body.contains("tokens") || !body["tokens"].is_array()) throw bad("tokens", "'tokens' must be an array of token ids");
    std::vector<TokenId> ids;
    const int64_t vocab = model_->tokenizer().n_vocab();
    for (const json& t : body["tokens"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab)
        throw bad("tokens", fmt::format("'tokens' must hold token ids from 0 to {}", vocab - 1));
      ids.push_back(static_cast<TokenId>(t.get<int64_t>()));
    }
    res.set_content(json({{"content", model_->tokenizer().decode(ids)}}).dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
  }

  void metrics(httplib::Response& res) {
    const EngineStats s = engine_.stats();
    const double tps = s.generate_seconds > 0 ? static_cast<double>(s.generated_tokens) / s.generate_seconds : 0.0;
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double value) {
      out += fmt::format("# HELP slm_{0} {1}\n# TYPE slm_{0} {2}\nslm_{0} {3}\n", name, help, type, value);
    };
    metric("requests_total", "counter", "Requests answered (including failed and stopped ones)",
           static_cast<double>(s.requests_done));
    metric("prompt_tokens_total", "counter", "Prompt tokens, reused ones included", static_cast<double>(s.prompt_tokens));
    metric("prompt_tokens_reused_total", "counter", "Prompt tokens found in a slot's cache",
           static_cast<double>(s.reused_tokens));
    metric("generated_tokens_total", "counter", "Tokens generated", static_cast<double>(s.generated_tokens));
    metric("generate_tokens_per_second", "gauge", "Generated tokens per second of generation", tps);
    metric("queue_length", "gauge", "Requests waiting", s.queued);
    metric("requests_running", "gauge", "Requests being answered", s.running);
    metric("kv_cache_tokens", "gauge", "Positions held in the slots' KV caches (kept for prefix reuse)",
           static_cast<double>(s.kv_tokens));
    metric("kv_cache_active_tokens", "gauge", "Positions held by the slots answering a request",
           static_cast<double>(s.kv_active_tokens));
    metric("kv_cache_capacity_tokens", "gauge", "Positions the slots' KV caches can hold",
           static_cast<double>(s.kv_capacity));
    res.set_content(out, "text/plain; version=0.0.4");
  }

  // /v1/chat/completions (chat) and /v1/completions.
  void complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    const json body = parse_body(req.body);
    EngineRequest request;
    request.params = generation(body, defaults_, o_.n_predict > 0 ? o_.n_predict : engine_.n_ctx());
    if (chat)
      request.messages = messages_of(body);
    else
      request.prompt = prompt_of(body);
    request.cache_prompt = boolean(body, "cache_prompt", true);  // llama-server's name
    const bool stream = boolean(body, "stream", false);
    bool include_usage = false;
    if (body.contains("stream_options") && !body["stream_options"].is_null()) {
      if (!body["stream_options"].is_object()) throw bad("stream_options", "'stream_options' must be an object");
      include_usage = boolean(body["stream_options"], "include_usage", false);
    }
    // A prompt that cannot fit is refused before anything is sent.
    const ChatTemplate& tpl = model_->chat_template();
    const size_t n_prompt = chat ? tpl.tokenize(tpl.render(request.messages)).size()
                                 : model_->tokenizer().encode(request.prompt, request.params.add_bos).size();
    if (static_cast<int64_t>(n_prompt) >= engine_.n_ctx())
      throw bad(chat ? "messages" : "prompt",
                fmt::format("the prompt takes {} tokens; the context holds {} (start slm serve with a larger -c)",
                            n_prompt, engine_.n_ctx()));

    const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id_.fetch_add(1));
    const int64_t created = std::time(nullptr);
    const char* object = chat ? "chat.completion" : "text_completion";
    if (!stream) {
      auto result = engine_.submit(std::move(request));
      if (!result) return busy(res);
      const GenerateResult r = result->get();  // slm::Error: a 400 naming it
      json choice = {{"index", 0}, {"finish_reason", finish_reason(r.stop)}};
      if (chat)
        choice["message"] = {{"role", "assistant"}, {"content", r.text}};
      else
        choice["text"] = r.text, choice["logprobs"] = nullptr;
      const json out = {{"id", id},           {"object", object},         {"created", created},
                        {"model", name_},     {"choices", json::array({choice})}, {"usage", usage(r)}};
      res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
      return;
    }

    auto state = std::make_shared<Stream>();
    auto result = engine_.submit(std::move(request), [state](std::string_view piece) {
      if (!piece.empty()) {
        std::lock_guard<std::mutex> lock(state->mutex);
        state->pieces.emplace_back(piece);
      }
      state->wake.notify_one();
      return !state->gone.load();
    });
    if (!result) return busy(res);
    auto future = std::make_shared<std::future<GenerateResult>>(std::move(*result));
    const std::string model = name_;
    const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
    auto chunk = [=](const json& choice_fields, const json& finish) {
      json choice = choice_fields;
      choice["index"] = 0;
      choice["finish_reason"] = finish;
      if (!chat) choice["logprobs"] = nullptr;
      const json c = {{"id", id}, {"object", chunk_object}, {"created", created}, {"model", model},
                      {"choices", json::array({choice})}};
      return "data: " + c.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
    };
    auto started = std::make_shared<bool>(false);
    auto quiet_since = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
    res.set_chunked_content_provider(
        "text/event-stream",
        [=](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& text) {
            if (!sink.write(text.data(), text.size())) {
              state->gone = true;
              return false;
            }
            return true;
          };
          if (!*started) {
            *started = true;
            if (chat && !send(chunk({{"delta", {{"role", "assistant"}, {"content", ""}}}}, nullptr))) return false;
          }
          for (;;) {
            std::deque<std::string> pieces;
            {
              std::unique_lock<std::mutex> lock(state->mutex);
              state->wake.wait_for(lock, std::chrono::milliseconds(100), [&] { return !state->pieces.empty(); });
              pieces.swap(state->pieces);
            }
            for (const std::string& p : pieces) {
              const json fields = chat ? json{{"delta", {{"content", p}}}} : json{{"text", p}};
              if (!send(chunk(fields, nullptr))) return false;
            }
            if (!pieces.empty()) {
              *quiet_since = std::chrono::steady_clock::now();
              continue;
            }
            if (future->wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
              // Waiting (queued, or a long prompt): an SSE comment now and
              // then, which clients ignore, finds out whether this one is
              // still there — a failed write is how a departure shows.
              if (std::chrono::steady_clock::now() - *quiet_since > std::chrono::seconds(1)) {
                if (!send(": waiting\n\n")) return false;
                *quiet_since = std::chrono::steady_clock::now();
              }
              continue;
            }
            {
              std::lock_guard<std::mutex> lock(state->mutex);
              if (!state->pieces.empty()) continue;
            }
            try {
              const GenerateResult r = future->get();
              const json empty = chat ? json{{"delta", json::object()}} : json{{"text", ""}};
              if (!send(chunk(empty, finish_reason(r.stop)))) return false;
              if (include_usage) {
                const json u = {{"id", id},       {"object", chunk_object}, {"created", created},
                                {"model", model}, {"choices", json::array()}, {"usage", usage(r)}};
                if (!send("data: " + u.dump() + "\n\n")) return false;
              }
            } catch (const std::exception& e) {
              const std::string error = "data: " + error_body({500, e.what(), "", "server_error"}).dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
              if (!send(error)) return false;
            }
            send("data: [DONE]\n\n");
            sink.done();
            return true;
          }
        },
        [state](bool) { state->gone = true; });
  }

  static void busy(httplib::Response& res) {
    res.set_header("Retry-After", "1");
    send_error(res, {503, "the server is busy: too many requests are waiting; retry later", "", "server_busy"});
  }

  ServeOptions o_;
  std::shared_ptr<const Model> model_;
  std::string name_;
  Engine engine_;
  GenerateParams defaults_;
  int64_t created_;
  std::atomic<uint64_t> next_id_{1};
};

int run_serve(const ServeOptions& o) {
  if (o.parallel < 1 || o.parallel > 64) throw UsageError("-np must be from 1 to 64");
  // SIGINT / SIGTERM go to the signal thread only: blocked here, before any
  // thread (the engine's, the HTTP pool's, the compute pool's) is created.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Server server(o, load_model(o));
  return server.run();
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* sub = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API (and a chat page)");
  add_gen_options(sub, *o);
  sub->add_option("model_arg", o->model_positional, "MODEL: a model file or name (the same as -m)");
  sub->add_option("--host", o->host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  sub->add_option("--port", o->port, "Port (0: any free one, printed at start)")->capture_default_str()
      ->check(CLI::Range(0, 65535));
  sub->add_option("--parallel", o->parallel, "Slots (also -np): conversations whose prompts stay cached")->capture_default_str();
  sub->add_option("--max-queue", o->max_queue, "Requests that may wait; more get HTTP 503")->capture_default_str()
      ->check(CLI::Range(0, 100000));
  sub->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' (also SLM_API_KEY)")
      ->envname("SLM_API_KEY");
  sub->add_option("--max-body-mib", o->max_body_mib, "Largest request body in MiB")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  return [o] { return run_serve(*o); };
}

}  // namespace slm::cli
