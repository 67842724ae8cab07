// The public API as a library user sees it (only <slm/slm.h>).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "slm/slm.h"
#include "support/testdata.h"

namespace slm {
namespace {

std::string vocab_model() { return test::testdata_dir() + "/models/phi3-tiny-vocab-q8_0.gguf"; }

nlohmann::json text_reference() {
  std::ifstream in(test::testdata_dir() + "/reference/phi3-tiny-vocab-q8_0.text.json");
  return nlohmann::json::parse(in);
}

TEST(Api, ModelInfoTokenizerAndTemplate) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  const ModelInfo& info = model->info();
  EXPECT_EQ(info.architecture, "phi3");
  EXPECT_EQ(info.n_vocab, 32064);
  EXPECT_EQ(info.n_layer, 2);
  EXPECT_EQ(info.file_type, "MOSTLY_Q8_0");
  EXPECT_GT(info.n_params, 0u);
  const Tokenizer& tok = model->tokenizer();
  const auto ref = text_reference();
  ASSERT_EQ(ref.at("prompts").size(), test::expected::kTextPrompts);
  for (const auto& p : ref.at("prompts")) {
    EXPECT_EQ(tok.encode(p.at("text").get<std::string>()), p.at("tokens").get<std::vector<TokenId>>());
  }
  EXPECT_EQ(tok.decode(tok.encode("Hello world")), "Hello world");
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 32000);
  const ChatTemplate& tpl = model->chat_template();
  EXPECT_EQ(tpl.name(), "phi3");
  const std::string rendered = tpl.render({{"user", "What is the capital of France?"}});
  EXPECT_EQ(tpl.tokenize(rendered), ref.at("prompts")[1].at("tokens").get<std::vector<TokenId>>());
  const auto stops = tpl.stop_tokens();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 32007), stops.end());  // <|end|>
  EXPECT_THROW(tok.piece(40000), Error);
}

TEST(Api, LoadErrorsAndProgress) {
  SLM_REQUIRE_TESTDATA();
  EXPECT_THROW(Model::load("/nonexistent/model.gguf"), Error);
  EXPECT_THROW(Model::load(test::testdata_dir() + "/tokenizer/ggml-vocab-phi-3.gguf"), Error);  // no weights
  std::vector<float> seen;
  ModelParams mp;
  mp.on_progress = [&](float f) { seen.push_back(f); };
  Model::load(vocab_model(), mp);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front(), 0.0f);
  EXPECT_EQ(seen.back(), 1.0f);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

TEST(Api, SessionEvaluateDecodeRewindReset) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  SessionParams sp;
  sp.n_ctx = 64;
  Session s(model, sp);
  EXPECT_EQ(s.n_ctx(), 64);
  const auto prompt = model->tokenizer().encode("Hello world, this is a test");
  const std::vector<float> first = s.evaluate(prompt);
  EXPECT_EQ(s.n_past(), static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(s.tokens(), prompt);
  const std::vector<float> next = s.decode(42);
  EXPECT_EQ(s.n_past(), static_cast<int64_t>(prompt.size()) + 1);
  s.rewind(static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(s.decode(42), next);  // same position, same input: same logits
  s.reset();
  EXPECT_EQ(s.n_past(), 0);
  EXPECT_EQ(s.evaluate(prompt), first);
  const auto all = s.evaluate_all({5, 6});
  EXPECT_EQ(all.size(), 2u * 32064u);
  // Too long: an error, and nothing changes.
  const int64_t before = s.n_past();
  EXPECT_THROW(s.evaluate(std::vector<TokenId>(60, 5)), Error);
  EXPECT_EQ(s.n_past(), before);
  EXPECT_THROW(s.decode(-1), Error);
}

// The reference greedy continuations through the one-call API.
TEST(Api, GenerateGreedyReproducesTheReference) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  const auto ref = text_reference();
  ASSERT_EQ(ref.at("prompts").size(), test::expected::kTextPrompts);
  for (const auto& p : ref.at("prompts")) {
    Session s(model, {});
    GenerateParams gp;
    gp.sampling.temperature = 0;
    gp.max_tokens = 16;
    std::string streamed;
    const auto r = generate(s, p.at("text").get<std::string>(), gp, [&](std::string_view piece) {
      streamed += piece;
      return true;
    });
    const auto want = p.at("greedy_engine").get<std::vector<TokenId>>();
    EXPECT_EQ(r.text, model->tokenizer().decode(want)) << p.at("text");
    EXPECT_EQ(streamed, r.text);
    EXPECT_EQ(r.n_generated, 16);
    EXPECT_EQ(r.stop, StopReason::max_tokens);
    // The session now holds prompt + answer.
    std::vector<TokenId> held = p.at("tokens").get<std::vector<TokenId>>();
    held.insert(held.end(), want.begin(), want.end());
    EXPECT_EQ(s.tokens(), held);
  }
}

TEST(Api, ChatReusesThePrefixAndStopsWhereAsked) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  Session s(model, {});
  GenerateParams gp;
  gp.sampling.seed = 5;
  gp.max_tokens = 12;
  std::vector<ChatMessage> conv = {{"system", "Be brief."}, {"user", "Hi"}};
  auto r1 = generate(s, conv, gp);
  EXPECT_EQ(r1.n_reused, 0);
  conv.push_back({"assistant", r1.text});
  conv.push_back({"user", "And then?"});
  auto r2 = generate(s, conv, gp);
  // The whole first turn is reused, except what re-tokenizes differently.
  EXPECT_GT(r2.n_reused, r1.n_prompt);
  // A callback returning false stops after that piece.
  int calls = 0;
  Session s2(model, {});
  auto r3 = generate(s2, std::string("Once upon a time"), gp, [&](std::string_view) { return ++calls < 3; });
  EXPECT_EQ(r3.stop, StopReason::callback);
  EXPECT_EQ(calls, 3);
  // A stop text ends the answer before it.
  Session s3(model, {});
  GenerateParams greedy;
  greedy.sampling.temperature = 0;
  greedy.max_tokens = 16;
  const auto full = generate(s3, std::string("Hello world, this is a test"), greedy).text;
  ASSERT_GT(full.size(), 10u);
  // Two stop texts, the one listed first occurring later: the earliest wins.
  greedy.stop = {full.substr(full.size() - 3), full.substr(5, 4)};
  Session s4(model, {});
  const auto cut = generate(s4, std::string("Hello world, this is a test"), greedy);
  EXPECT_EQ(cut.stop, StopReason::stop_text);
  EXPECT_EQ(cut.text, full.substr(0, std::min(full.find(greedy.stop[0]), full.find(greedy.stop[1]))));
  EXPECT_LE(cut.text.size(), 5u);
}

std::vector<TokenId> greedy_tokens(const std::shared_ptr<const Model>& model, const std::string& prompt, int n) {
  Session s(model, {});
  GenerateParams gp;
  gp.sampling.temperature = 0;
  gp.max_tokens = n;
  generate(s, prompt, gp);
  const auto& held = s.tokens();
  return std::vector<TokenId>(held.end() - n, held.end());
}

// Prompt tokens count for the penalties: with a strong presence penalty the
// first answer token is the best token that is not in the prompt.
TEST(ApiGenerate, PromptTokensFeedThePenalties) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  // Grow the prompt by its own greedy token until that token is one the
  // prompt already holds (random weights soon repeat themselves).
  std::string prompt = "Hello world, this is a test";
  std::vector<TokenId> ids;
  std::vector<float> logits;
  for (int i = 0; i < 64; ++i) {
    ids = model->tokenizer().encode(prompt);
    Session probe(model, {});
    logits = probe.evaluate(ids);
    const auto next = static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (std::find(ids.begin(), ids.end(), next) != ids.end()) break;
    prompt += model->tokenizer().decode({next});
  }
  auto best = [&](bool skip_prompt) {
    TokenId arg = -1;
    for (TokenId t = 0; t < static_cast<TokenId>(logits.size()); ++t) {
      if (skip_prompt && std::find(ids.begin(), ids.end(), t) != ids.end()) continue;
      if (arg < 0 || logits[static_cast<size_t>(t)] > logits[static_cast<size_t>(arg)]) arg = t;
    }
    return arg;
  };
  const TokenId plain = best(false);
  ASSERT_NE(std::find(ids.begin(), ids.end(), plain), ids.end()) << "the case needs a greedy token from the prompt";
  GenerateParams gp;
  gp.sampling.temperature = 0;
  gp.sampling.presence_penalty = 1000.0f;
  gp.sampling.penalty_last_n = static_cast<int>(ids.size());
  gp.max_tokens = 1;
  Session s(model, {});
  generate(s, prompt, gp);
  EXPECT_EQ(s.tokens().back(), best(true));
  EXPECT_NE(s.tokens().back(), plain);
}

// End of generation, each reason through the API.
TEST(ApiGenerate, StopsOnEosAndWhenTheContextIsFull) {
  SLM_REQUIRE_TESTDATA();
  const std::string prompt = "Hello world, this is a test";
  const auto base = Model::load(vocab_model());
  const std::vector<TokenId> greedy = greedy_tokens(base, prompt, 6);
  // EOS: a copy of the model whose end-of-sequence id is the third greedy
  // token (random weights never pick the real one).
  size_t k = 2;
  while (k < greedy.size() && (greedy[k] == greedy[0] || greedy[k] == greedy[1])) ++k;
  ASSERT_LT(k, greedy.size());
  const std::string eos_path = test::temp_path("eos.gguf");
  {
    const gguf::GgufFile in(vocab_model());
    gguf::GgufWriter w;
    for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
    w.set("tokenizer.ggml.eos_token_id", gguf::Value::scalar<uint32_t>(static_cast<uint32_t>(greedy[k])));
    for (const auto& t : in.tensors()) w.add_tensor(t.name, t.type, t.ne, in.tensor_data(t), t.n_bytes);
    w.write(eos_path);
  }
  const auto model = Model::load(eos_path);
  ASSERT_EQ(model->tokenizer().eos(), greedy[k]);
  GenerateParams gp;
  gp.sampling.temperature = 0;
  gp.max_tokens = 100;
  Session s(model, {});
  const auto r = generate(s, prompt, gp);
  EXPECT_EQ(r.stop, StopReason::eos);
  EXPECT_EQ(r.n_generated, static_cast<int64_t>(k));
  EXPECT_EQ(r.text, model->tokenizer().decode(std::vector<TokenId>(greedy.begin(), greedy.begin() + static_cast<std::ptrdiff_t>(k))));
  EXPECT_EQ(s.tokens().back(), greedy[k]);  // the end token stays in the cache
  // ignore_eos: the same greedy run goes past it, to max_tokens.
  {
    GenerateParams past = gp;
    past.ignore_eos = true;
    past.max_tokens = static_cast<int64_t>(greedy.size());
    Session s2(model, {});
    const auto all = generate(s2, prompt, past);
    EXPECT_EQ(all.stop, StopReason::max_tokens);
    EXPECT_EQ(all.n_generated, static_cast<int64_t>(greedy.size()));
    EXPECT_EQ(all.text, model->tokenizer().decode(greedy));
  }
  // Context full: 5 free positions, 100 tokens asked for.
  const auto prompt_ids = base->tokenizer().encode(prompt);
  SessionParams sp;
  sp.n_ctx = static_cast<int64_t>(prompt_ids.size()) + 5;
  Session small(base, sp);
  const auto full = generate(small, prompt, gp);
  EXPECT_EQ(full.stop, StopReason::context_full);
  EXPECT_EQ(full.n_generated, 5);
  EXPECT_EQ(small.n_free(), 0);
  // max_tokens 0: nothing generated, nothing streamed.
  Session zero(base, {});
  gp.max_tokens = 0;
  int calls = 0;
  const auto none = generate(zero, prompt, gp, [&](std::string_view) { return ++calls > 0; });
  EXPECT_EQ(none.stop, StopReason::max_tokens);
  EXPECT_EQ(none.n_generated, 0);
  EXPECT_EQ(none.text, "");
  EXPECT_EQ(calls, 0);
}

// A stop text that begins in one token and ends in the next: the part in the
// first token is held back, and nothing of the stop text is ever streamed.
TEST(ApiGenerate, StopTextSplitAcrossTokensIsNeverStreamed) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  const std::string prompt = "Once upon a time";
  const std::vector<TokenId> greedy = greedy_tokens(model, prompt, 16);
  const std::string full = model->tokenizer().decode(greedy);
  // Find a token boundary with two characters on each side, where the four
  // characters first occur in the text.
  std::string stop;
  size_t boundary = 0;
  for (size_t k = 1; k + 1 < greedy.size() && stop.empty(); ++k) {
    const std::string before =
        model->tokenizer().decode(std::vector<TokenId>(greedy.begin(), greedy.begin() + static_cast<std::ptrdiff_t>(k)));
    if (before.size() < 2 || full.compare(0, before.size(), before) != 0 || full.size() < before.size() + 2) continue;
    const std::string candidate = full.substr(before.size() - 2, 4);
    if (full.find(candidate) != before.size() - 2) continue;
    if (static_cast<unsigned char>(candidate[0]) >= 0x80 || static_cast<unsigned char>(candidate[3]) >= 0x80) continue;
    stop = candidate;
    boundary = before.size();
  }
  ASSERT_FALSE(stop.empty()) << "no token boundary to split a stop text across in: " << full;
  GenerateParams gp;
  gp.sampling.temperature = 0;
  gp.max_tokens = 16;
  gp.stop = {stop};
  std::string streamed;
  Session s(model, {});
  const auto r = generate(s, prompt, gp, [&](std::string_view piece) {
    streamed += piece;
    return true;
  });
  EXPECT_EQ(r.stop, StopReason::stop_text);
  EXPECT_EQ(r.text, full.substr(0, boundary - 2));
  EXPECT_EQ(streamed, r.text) << "stop text '" << stop << "' leaked";
}

// Session::rewind past what the sliding-window rings hold evaluates the
// kept tokens again: the next logits equal a fresh session's.
TEST(Api, RewindBeyondTheSlidingWindowRingReevaluates) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(test::testdata_dir() + "/models/gemma3-tiny.gguf");
  std::vector<TokenId> tokens(90);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<TokenId>((i * 53 + 5) % 512);
  SessionParams sp;
  sp.n_ctx = 128;
  sp.n_batch = 4;  // rings of 11 rows
  Session s(model, sp);
  s.evaluate(tokens);
  s.rewind(40);
  EXPECT_EQ(s.n_past(), 40);
  EXPECT_EQ(s.tokens(), std::vector<TokenId>(tokens.begin(), tokens.begin() + 40));
  const std::vector<float> next = s.decode(7);
  Session fresh(model, sp);
  std::vector<TokenId> prefix(tokens.begin(), tokens.begin() + 40);
  prefix.push_back(7);
  EXPECT_EQ(fresh.evaluate(prefix), next);
}

// Two sessions on one model in two threads = one after the other.
TEST(Api, TwoSessionsInTwoThreadsMatchSequentialRuns) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  GenerateParams gp;
  gp.sampling.seed = 99;
  gp.max_tokens = 24;
  auto one = [&](const std::string& prompt) {
    SessionParams sp;
    sp.n_threads = 1;
    Session s(model, sp);
    return generate(s, prompt, gp).text;
  };
  const std::string a_seq = one("The weather today"), b_seq = one("In a distant galaxy");
  std::string a_par, b_par;
  std::thread ta([&] { a_par = one("The weather today"); });
  std::thread tb([&] { b_par = one("In a distant galaxy"); });
  ta.join();
  tb.join();
  EXPECT_EQ(a_par, a_seq);
  EXPECT_EQ(b_par, b_seq);
  EXPECT_NE(a_seq, b_seq);
}

TEST(Api, SeededSamplingIsIndependentOfThreadCount) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  GenerateParams gp;
  gp.sampling.seed = 3;
  gp.max_tokens = 20;
  std::string texts[2];
  for (int t : {1, 2}) {
    SessionParams sp;
    sp.n_threads = t;
    Session s(model, sp);
    texts[t - 1] = generate(s, std::string("A story:"), gp).text;
  }
  EXPECT_EQ(texts[0], texts[1]);
}

// ---- slm::Engine: requests batched together.

// Eight requests of different lengths (chats sharing a system prompt, plain
// prompts; answers ending by length and at a stop text) given at once: each
// answer equals the one generate() gives the request alone on a fresh
// Session — with every request in its own slot and with fewer slots than
// requests (some wait, then join running batches), prompts read in chunks
// beside other answers' tokens, prefix reuse on and off, and again on the
// warm caches. The requests really ran together (seen from the callback).
TEST(Engine, ConcurrentRequestsAnswerAsTheyDoAlone) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  std::vector<EngineRequest> requests;
  const char* questions[] = {"What is the capital of France?", "Name three animals.", "Hi",
                             "Write a long story about a dragon who learns to read."};
  for (int i = 0; i < 4; ++i) {
    EngineRequest r;
    r.messages = {{"system", "You are a helpful assistant who answers briefly."}, {"user", questions[i]}};
    requests.push_back(r);
  }
  for (const char* p : {"Once upon a time", "The quick brown fox jumps over", "1, 2, 3,", "A"}) {
    EngineRequest r;
    r.prompt = p;
    requests.push_back(r);
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].params.sampling.temperature = 0;
    requests[i].params.max_tokens = 6 + static_cast<int64_t>(i) * 5;
  }
  SessionParams sp;
  sp.n_ctx = 256;
  sp.n_batch = 16;  // prompts take several steps
  std::vector<GenerateResult> alone;
  for (const EngineRequest& r : requests) {
    Session s(model, sp);
    alone.push_back(r.messages.empty() ? generate(s, r.prompt, r.params) : generate(s, r.messages, r.params));
  }
  // A stop text taken from the middle of one answer.
  ASSERT_GT(alone[5].text.size(), 8u);
  requests[5].params.stop = {alone[5].text.substr(4, 3)};
  {
    Session s(model, sp);
    alone[5] = generate(s, requests[5].prompt, requests[5].params);
    ASSERT_EQ(alone[5].stop, StopReason::stop_text);
  }
  for (int slots : {8, 3}) {
    for (bool reuse : {true, false}) {
      SCOPED_TRACE(std::to_string(slots) + " slots, prefix reuse " + (reuse ? "on" : "off"));
      EngineParams ep;
      ep.session = sp;
      ep.slots = slots;
      Engine engine(model, ep);
      int most_running = 0;
      for (int round = 0; round < 2; ++round) {
        std::vector<std::future<GenerateResult>> results;
        for (EngineRequest r : requests) {
          r.cache_prompt = reuse;
          auto f = engine.submit(r, [&](std::string_view) {
            most_running = std::max(most_running, engine.stats().running);
            return true;
          });
          ASSERT_TRUE(f.has_value());
          results.push_back(std::move(*f));
        }
        for (size_t i = 0; i < requests.size(); ++i) {
          const GenerateResult got = results[i].get();
          EXPECT_EQ(got.text, alone[i].text) << "request " << i << ", round " << round;
          EXPECT_EQ(got.n_generated, alone[i].n_generated) << "request " << i;
          EXPECT_EQ(got.stop, alone[i].stop) << "request " << i;
          EXPECT_EQ(got.n_prompt, alone[i].n_prompt) << "request " << i;
          if (!reuse) {
            EXPECT_EQ(got.n_reused, 0) << "request " << i;
          } else if (slots == 8 && round == 1) {  // its own slot still holds its prompt
            EXPECT_EQ(got.n_reused, got.n_prompt - 1) << "request " << i;
          }
        }
      }
      EXPECT_EQ(most_running, slots) << "the requests did not run together";
      const EngineStats st = engine.stats();
      EXPECT_EQ(st.requests_done, 16);
      EXPECT_EQ(st.running, 0);
      if (reuse) {
        EXPECT_GT(st.reused_tokens, 0);
      } else {
        EXPECT_EQ(st.reused_tokens, 0);
      }
    }
  }
}

// EngineParams::gather_quiet_ms: a request that reaches an idle engine
// shortly after another shares its first step (its first text comes before
// the other's second); with gathering off the first request starts alone.
TEST(Engine, RequestsSentTogetherShareTheFirstStep) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  for (int quiet_ms : {500, 0}) {
    SCOPED_TRACE("gather_quiet_ms " + std::to_string(quiet_ms));
    EngineParams ep;
    ep.session.n_ctx = 128;
    ep.slots = 2;
    ep.gather_quiet_ms = quiet_ms;
    ep.gather_max_ms = 2 * quiet_ms;
    Engine engine(model, ep);
    EngineRequest r;
    r.prompt = "Once upon a time";
    r.params.sampling.temperature = 0;
    r.params.max_tokens = 8;
    r.params.ignore_eos = true;
    std::mutex m;
    std::string order;  // one letter per text piece, in the order they came
    auto record = [&](char who) {
      std::lock_guard<std::mutex> lock(m);
      order += who;
      return true;
    };
    auto a = engine.submit(r, [&](std::string_view) { return record('a'); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto b = engine.submit(r, [&](std::string_view) { return record('b'); });
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->get().n_generated, 8);
    EXPECT_EQ(b->get().n_generated, 8);
    const size_t a_before_b = order.find('b');
    ASSERT_NE(a_before_b, std::string::npos) << order;
    if (quiet_ms > 0)
      EXPECT_LE(a_before_b, 1u) << order;
    else
      EXPECT_GE(a_before_b, 2u) << order;
  }
}

// Stopping ends the running requests (stop reason `callback`), fails the
// waiting ones, and refuses new ones; a prompt longer than the context
// fails alone while the others are answered.
TEST(Engine, StopEndsRunningRequestsAndFailsWaitingOnes) {
  SLM_REQUIRE_TESTDATA();
  const auto model = Model::load(vocab_model());
  EngineParams ep;
  ep.session.n_ctx = 128;
  ep.slots = 2;
  Engine engine(model, ep);
  EngineRequest too_long;
  for (int i = 0; i < 200; ++i) too_long.prompt += "word ";
  EngineRequest endless;
  endless.prompt = "Go on:";
  endless.params.max_tokens = 100000;
  endless.params.ignore_eos = true;
  auto bad = engine.submit(too_long);
  std::atomic<int> pieces{0};
  auto a = engine.submit(endless, [&](std::string_view) { return ++pieces, true; });
  auto b = engine.submit(endless);
  auto waiting = engine.submit(endless);
  ASSERT_TRUE(bad && a && b && waiting);
  try {
    bad->get();
    ADD_FAILURE() << "a prompt longer than the context was answered";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("but the context holds 128"), std::string::npos) << e.what();
  }
  while (pieces < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  engine.stop();
  EXPECT_EQ(a->get().stop, StopReason::callback);
  const GenerateResult rb = b->get();
  EXPECT_TRUE(rb.stop == StopReason::callback || rb.stop == StopReason::context_full);
  EXPECT_THROW(waiting->get(), Error);
  EXPECT_FALSE(engine.submit(endless).has_value());
}

}  // namespace
}  // namespace slm
