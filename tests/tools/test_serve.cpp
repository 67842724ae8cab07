// `slm serve` as a client sees it: a live server process on a free port,
// spoken to over HTTP. Answers (greedy answers equal to the reference
// engine's and to `slm run`), streaming, prefix reuse, the error cases, the
// API key, a client leaving mid-stream, and a clean stop on SIGTERM.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "slm/slm.h"
#include "support/testdata.h"

namespace slm {
namespace {

using nlohmann::json;

std::string vocab_model() { return test::testdata_dir() + "/models/phi3-tiny-vocab-q8_0.gguf"; }

// `slm serve MODEL --port 0 ARGS...`, its port read from the line it prints.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& extra) {
    int err[2];
    if (pipe(err) != 0) return;
    std::vector<std::string> args = {test::slm_binary(), "serve", vocab_model(), "--port", "0", "-c", "512"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      dup2(err[1], STDERR_FILENO);
      close(err[0]);
      close(err[1]);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(err[1]);
    err_ = err[0];
    // "... on http://127.0.0.1:PORT (...": within a minute.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    char buf[4096];
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
      const ssize_t n = read(err_, buf, sizeof buf);
      if (n <= 0) break;
      log_.append(buf, static_cast<size_t>(n));
      const size_t at = log_.find("http://127.0.0.1:");
      if (at != std::string::npos && log_.find(' ', at) != std::string::npos)
        port_ = std::atoi(log_.c_str() + at + std::strlen("http://127.0.0.1:"));
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (err_ >= 0) close(err_);
  }
  int port() const { return port_; }
  const std::string& log() const { return log_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c;
  }
  // SIGTERM, then the exit status (-1: still running after 30 s, or killed).
  int terminate() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int err_ = -1;
  int port_ = 0;
  std::string log_;
};

json post(httplib::Client& c, const std::string& path, const json& body, int* status = nullptr) {
  auto res = c.Post(path.c_str(), body.dump(), "application/json");
  if (!res) return json{{"transport_error", httplib::to_string(res.error())}};
  if (status != nullptr) *status = res->status;
  return json::parse(res->body, nullptr, false);
}

const json kFrance = {{"messages", {{{"role", "user"}, {"content", "What is the capital of France?"}}}},
                      {"temperature", 0},
                      {"max_tokens", 16}};

TEST(Serve, GreedyAnswersEqualTheReferenceEngineAndSlmRun) {
  SLM_REQUIRE_TESTDATA();
  ServeProcess s({});
  ASSERT_GT(s.port(), 0) << s.log();
  auto c = s.client();
  // The reference engine's greedy continuation of the same chat (16 tokens).
  std::ifstream in(test::testdata_dir() + "/reference/phi3-tiny-vocab-q8_0.text.json");
  const auto ref = json::parse(in);
  const auto model = Model::load(vocab_model());
  const std::string want =
      model->tokenizer().decode(ref.at("prompts")[1].at("greedy_engine").get<std::vector<TokenId>>());
  int status = 0;
  const json r = post(c, "/v1/chat/completions", kFrance, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], want);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 16);
  EXPECT_EQ(r["usage"]["total_tokens"], r["usage"]["prompt_tokens"].get<int>() + 16);
  const auto run = test::run_command(test::slm_binary() + " run --chat -m '" + vocab_model() +
                                     "' -p 'What is the capital of France?' --temp 0 -n 16");
  EXPECT_EQ(run.output, want + "\n");
  // The same request again: the whole prompt but its last token is found in
  // the slot's cache, and the answer is the same.
  const json again = post(c, "/v1/chat/completions", kFrance);
  EXPECT_EQ(again["choices"][0]["message"]["content"], want);
  EXPECT_EQ(again["usage"]["prompt_tokens_details"]["cached_tokens"], r["usage"]["prompt_tokens"].get<int>() - 1);
  // Completions: a plain prompt.
  const json done = post(c, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 4}, {"temperature", 0}}, &status);
  EXPECT_EQ(status, 200) << done.dump();
  EXPECT_EQ(done["object"], "text_completion");
  EXPECT_TRUE(done["choices"][0]["text"].is_string());
  // The other endpoints.
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["object"], "model");
  EXPECT_EQ(json::parse(c.Get("/health")->body)["status"], "ok");
  const json tokens = post(c, "/tokenize", {{"content", "Hello world"}});
  ASSERT_TRUE(tokens["tokens"].is_array());
  EXPECT_EQ(post(c, "/detokenize", {{"tokens", tokens["tokens"]}})["content"], "Hello world");
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("slm_requests_total 3"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("slm_queue_length 0"), std::string::npos) << metrics;
  const auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

// Server-sent events: a role chunk, content chunks whose text joins into the
// non-streamed answer, a finish chunk, the usage chunk, [DONE].
// Batching is invisible: 8 requests sent at once to 8 slots (and to 3, so
// some wait and join running batches) each get exactly the answer they get
// when sent alone to a fresh server, which is `slm run --temp 0`'s — with
// the prompt cache on and off (cache_prompt), streamed and not.
TEST(Serve, ConcurrentRequestsGetTheAnswersTheyGetAlone) {
  SLM_REQUIRE_TESTDATA();
  std::vector<json> bodies;
  const char* questions[] = {"What is the capital of France?", "Name three animals.", "Hi", "Tell me a story."};
  for (int i = 0; i < 8; ++i) {
    json b = {{"temperature", 0}, {"max_tokens", 8 + 3 * i}, {"stream", i % 2 == 1}};
    if (i < 4)
      b["messages"] = {{{"role", "system"}, {"content", "Answer briefly."}}, {{"role", "user"}, {"content", questions[i]}}};
    else
      b["prompt"] = std::string("Once upon a time ") + std::to_string(i);
    bodies.push_back(b);
  }
  // One answer: the JSON's text, or the streamed pieces joined.
  auto ask = [](const ServeProcess& s, json body) {
    const bool chat = body.contains("messages");
    auto c = s.client();
    auto res = c.Post(chat ? "/v1/chat/completions" : "/v1/completions", body.dump(), "application/json");
    if (!res || res->status != 200) return std::string("request failed: ") + (res ? res->body : "no response");
    if (!body["stream"].get<bool>()) {
      const json j = json::parse(res->body);
      return chat ? j["choices"][0]["message"]["content"].get<std::string>() : j["choices"][0]["text"].get<std::string>();
    }
    std::string text;
    std::istringstream lines(res->body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("data: {", 0) != 0) continue;
      const json j = json::parse(line.substr(6));
      if (j["choices"].empty()) continue;
      const json& c0 = j["choices"][0];
      if (chat && c0["delta"].contains("content")) text += c0["delta"]["content"].get<std::string>();
      if (!chat && c0.contains("text")) text += c0["text"].get<std::string>();
    }
    return text;
  };
  std::vector<std::string> alone;
  {
    ServeProcess s({"-t", "1"});
    ASSERT_GT(s.port(), 0) << s.log();
    for (const json& b : bodies) alone.push_back(ask(s, b));
  }
  for (int i : {0, 5}) {  // a chat and a plain prompt against slm run
    const json& b = bodies[static_cast<size_t>(i)];
    const std::string args = b.contains("messages") ? " --chat -sys 'Answer briefly.' -p '" + std::string(questions[i]) + "'"
                                                    : " -p '" + b["prompt"].get<std::string>() + "'";
    const auto run = test::run_command(test::slm_binary() + " run -m '" + vocab_model() + "'" + args + " --temp 0 -n " +
                                       std::to_string(b["max_tokens"].get<int>()) + " 2>/dev/null");
    EXPECT_EQ(run.output, alone[static_cast<size_t>(i)] + "\n") << "request " << i;
  }
  for (const char* slots : {"8", "3"}) {
    for (bool cache : {true, false}) {
      SCOPED_TRACE(std::string(slots) + " slots, cache_prompt " + (cache ? "true" : "false"));
      ServeProcess s({"-np", slots, "-t", "2"});
      ASSERT_GT(s.port(), 0) << s.log();
      for (int round = 0; round < 2; ++round) {
        std::vector<std::string> got(bodies.size());
        std::vector<std::thread> clients;
        for (size_t i = 0; i < bodies.size(); ++i) {
          json b = bodies[i];
          b["cache_prompt"] = cache;
          clients.emplace_back([&, i, b] { got[i] = ask(s, b); });
        }
        for (auto& t : clients) t.join();
        for (size_t i = 0; i < bodies.size(); ++i) EXPECT_EQ(got[i], alone[i]) << "request " << i << ", round " << round;
      }
      auto c = s.client();
      auto m = c.Get("/metrics");
      ASSERT_TRUE(m);
      EXPECT_NE(m->body.find("slm_requests_total 16"), std::string::npos) << m->body;
      EXPECT_NE(m->body.find("slm_requests_running 0"), std::string::npos) << m->body;
      EXPECT_EQ(m->body.find("slm_prompt_tokens_reused_total 0\n") == std::string::npos, cache) << m->body;
      EXPECT_EQ(s.terminate(), 0) << s.log();
    }
  }
}

TEST(Serve, StreamsServerSentEvents) {
  SLM_REQUIRE_TESTDATA();
  ServeProcess s({});
  ASSERT_GT(s.port(), 0) << s.log();
  auto c = s.client();
  const std::string want = post(c, "/v1/chat/completions", kFrance)["choices"][0]["message"]["content"];
  json body = kFrance;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  std::vector<std::string> events;
  for (size_t at = 0; at < res->body.size();) {
    const size_t end = res->body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "an event without its blank line";
    events.push_back(res->body.substr(at, end - at));
    at = end + 2;
  }
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "data: [DONE]");
  std::string text;
  std::string finish;
  json usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].rfind("data: ", 0), 0u) << events[i];
    const json e = json::parse(events[i].substr(6));
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    if (e.contains("usage")) {
      usage = e["usage"];
      EXPECT_TRUE(e["choices"].empty());
      continue;
    }
    const json& choice = e["choices"][0];
    if (i == 0) {
      EXPECT_EQ(choice["delta"]["role"], "assistant");
    }
    if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
  }
  EXPECT_EQ(text, want);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 16);
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

// Each wrong field: HTTP 400 and an OpenAI-style error naming it; bodies
// that are not JSON objects, too large, or for no endpoint; unknown fields
// are ignored.
TEST(Serve, RefusesBadRequestsNamingTheField) {
  SLM_REQUIRE_TESTDATA();
  ServeProcess s({"--max-body-mib", "1"});
  ASSERT_GT(s.port(), 0) << s.log();
  auto c = s.client();
  const json user = {{{"role", "user"}, {"content", "hi"}}};
  struct Case {
    std::string body;
    std::string param;  // "" = the error names no field
  };
  const std::vector<Case> cases = {
      {"{not json", ""},
      {"[1, 2]", ""},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"caf\xC3\x28\"}]}", ""},  // invalid UTF-8
      {R"({"messages": "hello"})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({})", "messages"},
      {R"({"messages": [{"role": "tool", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
       "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": {"a": {"b": [[[{}]]]}}}]})", "messages[0].content"},
      // Found by the schemathesis fuzzing: a part whose type is not a string was a 500.
      {R"({"messages": [{"role": "system", "content": [{"type": {}, "text": ""}]}]})", "messages[0].content"},
      {json({{"messages", user}, {"temperature", "hot"}}).dump(), "temperature"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "temperature": 1e308})", "temperature"},
      {json({{"messages", user}, {"max_tokens", -1}}).dump(), "max_tokens"},
      // Found by fuzz_serve_request: JSON reads 0 as unsigned, which skipped the lower bound.
      {R"({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 0})", "max_completion_tokens"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e30})", "max_tokens"},
      {json({{"messages", user}, {"max_tokens", 99999999999999999ull}}).dump(), "max_tokens"},
      {json({{"messages", user}, {"top_p", 2}}).dump(), "top_p"},
      {json({{"messages", user}, {"n", 2}}).dump(), "n"},
      {json({{"messages", user}, {"stop", {1, 2}}}).dump(), "stop"},
      {json({{"messages", user}, {"stream", "yes"}}).dump(), "stream"},
      {json({{"messages", user}, {"seed", 1.5}}).dump(), "seed"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.body);
    auto res = c.Post("/v1/chat/completions", k.body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << res->body;
    const json e = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(e.contains("error")) << res->body;
    EXPECT_EQ(e["error"]["type"], "invalid_request_error");
    EXPECT_FALSE(e["error"]["message"].get<std::string>().empty());
    if (k.param.empty())
      EXPECT_TRUE(e["error"]["param"].is_null()) << res->body;
    else
      EXPECT_EQ(e["error"]["param"], k.param);
  }
  // Completions: a prompt that is not a string; one longer than the context.
  int status = 0;
  json e = post(c, "/v1/completions", {{"prompt", {1, 2, 3}}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(e["error"]["param"], "prompt");
  std::string long_prompt;
  for (int i = 0; i < 600; ++i) long_prompt += "word" + std::to_string(i) + " ";
  e = post(c, "/v1/completions", {{"prompt", long_prompt}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("context holds 512"), std::string::npos) << e.dump();
  // A body over --max-body-mib; an endpoint that does not exist.
  auto big = c.Post("/v1/chat/completions", std::string(2 << 20, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  auto none = c.Get("/v2/nothing");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  EXPECT_TRUE(json::parse(none->body, nullptr, false).contains("error")) << none->body;
  // Unknown fields are ignored.
  json extra = kFrance;
  extra["max_tokens"] = 2;
  extra["user"] = "someone";
  extra["logit_bias_of_the_future"] = {{"x", 1}};
  post(c, "/v1/chat/completions", extra, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

TEST(Serve, ApiKeyGuardsEveryEndpointButHealth) {
  SLM_REQUIRE_TESTDATA();
  ServeProcess s({"--api-key", "sesame", "-np", "2"});  // -np: llama-server's one-dash spelling
  ASSERT_GT(s.port(), 0) << s.log();
  auto c = s.client();
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  int status = 0;
  const json e = post(c, "/v1/chat/completions", kFrance, &status);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(e["error"]["type"], "authentication_error");
  c.set_bearer_token_auth("wrong");
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  c.set_bearer_token_auth("sesame");
  EXPECT_EQ(c.Get("/v1/models")->status, 200);
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("slm_kv_cache_capacity_tokens 1024"), std::string::npos) << "two slots of 512:\n" << metrics;
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

// A client that leaves in the middle of a long answer frees the engine at
// once: the next request is answered, and /metrics shows nothing running.
TEST(Serve, AClientLeavingMidStreamFreesTheEngine) {
  SLM_REQUIRE_TESTDATA();
  ServeProcess s({"-c", "8192", "-t", "1"});
  ASSERT_GT(s.port(), 0) << s.log();
  auto c = s.client();
  // Random weights never end their answer: 8000 tokens take seconds.
  const json body = {{"messages", {{{"role", "user"}, {"content", "Tell me everything."}}}},
                     {"max_tokens", 8000},
                     {"stream", true}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  int chunks = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };  // then hang up
  auto leaving = s.client();
  leaving.send(req);
  EXPECT_GE(chunks, 3);
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  json quick = kFrance;
  quick["max_tokens"] = 2;
  post(c, "/v1/chat/completions", quick, &status);
  EXPECT_EQ(status, 200);
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("slm_requests_running 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("slm_requests_total 2"), std::string::npos) << metrics;
  // The abandoned answer stopped early: far fewer than its 8000 tokens.
  const size_t at = metrics.find("slm_generated_tokens_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::atoi(metrics.c_str() + at + std::strlen("slm_generated_tokens_total ")), 4000) << metrics;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

// A full queue: HTTP 503 with Retry-After, and the request that holds the
// engine still finishes when its client lets it.
TEST(Serve, AFullQueueIsRefusedWithRetryAfter) {
  SLM_REQUIRE_TESTDATA();
  ServeProcess s({"-c", "8192", "-t", "1", "--max-queue", "0"});
  ASSERT_GT(s.port(), 0) << s.log();
  const json body = {{"messages", {{{"role", "user"}, {"content", "Tell me everything."}}}},
                     {"max_tokens", 8000},
                     {"stream", true}};
  std::atomic<bool> streaming{false}, release{false};
  std::thread holder([&] {
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      streaming = true;
      return !release.load();
    };
    auto c = s.client();
    c.send(req);
  });
  for (int i = 0; i < 600 && !streaming; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(streaming.load());
  auto c = s.client();
  auto res = c.Post("/v1/chat/completions", kFrance.dump(), "application/json");
  release = true;
  holder.join();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(res->body, nullptr, false)["error"]["type"], "server_busy") << res->body;
  // Free again once the holder has gone.
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    post(c, "/v1/chat/completions", kFrance, &status);
    if (status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status, 200);
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

// Slowloris: clients that send half a request and stall. The others are
// still served at once, and the stalled connections are closed after the
// read timeout (15 s).
TEST(Serve, HalfRequestsNeitherBlockOthersNorStayOpen) {
  SLM_REQUIRE_TESTDATA();
  ServeProcess s({});
  ASSERT_GT(s.port(), 0) << s.log();
  std::vector<int> stalled;
  for (int i = 0; i < 16; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(s.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string half = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n";
    ASSERT_EQ(write(fd, half.data(), half.size()), static_cast<ssize_t>(half.size()));
    stalled.push_back(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  auto c = s.client();
  int status = 0;
  post(c, "/v1/chat/completions", kFrance, &status);
  EXPECT_EQ(status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10)) << "stalled clients held the server";
  // Each stalled connection ends (the server closes it) within the timeout.
  for (int fd : stalled) {
    timeval tv{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
    }
    EXPECT_EQ(n, 0) << "a stalled connection was not closed by the server";
    close(fd);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(40));
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

}  // namespace
}  // namespace slm
