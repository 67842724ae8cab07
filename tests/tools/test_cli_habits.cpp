// The flags and conventions llama.cpp and Ollama users type from habit, and
// the exit statuses and messages scripts rely on.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "slm/slm.h"
#include "support/testdata.h"

namespace slm {
namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }
std::string model() { return test::testdata_dir() + "/models/phi3-tiny-vocab-q8_0.gguf"; }
std::string slm_run(const std::string& args) { return test::slm_binary() + " run " + args; }

std::string greedy(const std::string& prompt, int n) {
  const auto r = test::run_command(slm_run("-m " + q(model()) + " -p " + q(prompt) + " --temp 0 -n " + std::to_string(n)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

TEST(CliHabits, PositionalModelAndPromptLastFlagWinsAndLongSpellings) {
  SLM_REQUIRE_TESTDATA();
  const std::string want = greedy("The capital of", 12);
  ASSERT_GT(want.size(), 1u);
  // `slm run MODEL PROMPT`, llama.cpp's long spellings, a repeated flag (the
  // last one counts: --temp 0 is greedy), -ngl 0 (the CPU).
  for (const std::string& args :
       {q(model()) + " 'The capital of' --temp 0 -n 12",
        q(model()) + " -p 'The capital of' --temp 0 -n 12",
        "-m " + q(model()) + " 'The capital of' --temp 0.9 --temp 0 --n-predict 12 --ctx-size 256 --batch-size 7",
        "-m " + q(model()) + " -p 'The capital of' --temp 0 -n 12 -ngl 0 --presence-penalty 0 --frequency-penalty 0",
        "-m " + q(model()) + " -p 'The capital of' --temp 0 -n 12 --no-mmap --mlock"}) {
    const auto r = test::run_command(slm_run(args));
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.output;
    EXPECT_EQ(r.output, want) << args;
  }
  // The penalties are passed on: this model repeats one letter greedily;
  // with presence and frequency penalties it cannot.
  const std::string repeats = test::testdata_dir() + "/models/gemma2-tiny-q4_k_m.gguf";
  const std::string base = slm_run("-m " + q(repeats) + " -p 'hello world' --temp 0 -n 12");
  const auto plain = test::run_command(base);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  ASSERT_EQ(plain.output, std::string(12, 'd') + "\n");
  const auto penalised = test::run_command(base + " --presence-penalty 2 --frequency-penalty 2");
  EXPECT_EQ(penalised.exit_code, 0);
  EXPECT_LT(std::count(penalised.output.begin(), penalised.output.end(), 'd'), 6) << penalised.output;
}

TEST(CliHabits, ReversePromptStopsBeforeTheText) {
  SLM_REQUIRE_TESTDATA();
  const std::string full = greedy("Once upon a time", 24);
  ASSERT_GT(full.size(), 12u);
  // A stop text from the middle of the greedy answer: the answer ends just
  // before its first occurrence.
  const std::string stop = full.substr(full.size() / 2, 3);
  // -r takes one text each time: the words after it are the model and prompt.
  const auto r = test::run_command(
      slm_run("-r " + q(stop) + " -r 'never-appears' " + q(model()) + " 'Once upon a time' --temp 0 -n 24"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, full.substr(0, full.find(stop)) + "\n") << "stop " << q(stop);
}

TEST(CliHabits, SeedIsPrintedAndARandomSeedIsReproducible) {
  SLM_REQUIRE_TESTDATA();
  const std::string base = slm_run("-m " + q(model()) + " -p 'Once upon a time' -n 16 --temp 1 --stats");
  const auto given = test::run_command(base + " --seed 7", true);
  ASSERT_EQ(given.exit_code, 0) << given.output;
  EXPECT_NE(given.output.find("seed: 7\n"), std::string::npos) << given.output;
  const std::string err_file = test::temp_path("seed_stderr.txt");
  const auto random = test::run_command(base + " 2>" + q(err_file));
  const auto err = test::run_command("cat " + q(err_file));
  const size_t at = err.output.find("seed: ");
  ASSERT_NE(at, std::string::npos) << err.output;
  const std::string seed = err.output.substr(at + 6, err.output.find('\n', at) - at - 6);
  const auto again = test::run_command(base + " --seed " + seed + " 2>/dev/null");
  EXPECT_EQ(again.output, random.output) << "seed " << seed;
}

TEST(CliHabits, UsageErrorsAreOneLineWithStatus2AndAHint) {
  SLM_REQUIRE_TESTDATA();
  struct Case {
    std::string args, needle;
    int status;
  };
  const std::string m = "-m " + q(model()) + " -p hi ";
  const std::vector<Case> cases = {
      {m + "--topk 5", "did you mean --top-k?", 2},
      {m + "--temperature 0.5", "did you mean --temp?", 2},
      {m + "--seed -5", "--seed", 2},
      {m + "--seed 99999999999999999999", "--seed", 2},
      {m + "--seed 1e5", "--seed", 2},
      {m + "--chat --chat-template nosuch", "chatml", 2},
      {q(model()), "the prompt is empty", 2},
      {q(model()) + " hi -f /etc/hostname", "two prompts", 2},
      {m + "--device gpu", "--device must be cpu, cuda or auto", 2},
      {m + "-sys 'be brief'", "add --chat", 2},
      {q(model()) + " one two", "too many arguments", 2},
  };
  for (const Case& c : cases) {
    const auto r = test::run_command(slm_run(c.args), true);
    EXPECT_EQ(r.exit_code, c.status) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_EQ(r.output.rfind("slm: error: ", 0), 0u) << r.output;
  }
  // Other commands: the model positional or as -m; missing arguments are usage errors.
  for (const std::string& args : {std::string("info"), std::string("bench -p 0"), std::string("quantize ") + q(model())}) {
    const auto r = test::run_command(test::slm_binary() + " " + args, true);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("slm: error: ", 0), 0u) << r.output;
  }
  const auto info = test::run_command(test::slm_binary() + " info -m " + q(model()));
  EXPECT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("file type:     Q8_0 (MOSTLY_Q8_0 7)"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("slm runs it:   yes, chat template phi3"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("memory:"), std::string::npos) << info.output;
  // -ngl asks for the GPU: without one, a clear error naming CUDA.
  if (!cuda_available()) {
    const auto r = test::run_command(slm_run(m + "-ngl 99"), true);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("CUDA"), std::string::npos) << r.output;
  }
}

// After "--" every word is text: a prompt that reads like llama.cpp's
// one-dash flags stays as typed.
TEST(CliHabits, TextAfterDoubleDashIsNotAFlag) {
  SLM_REQUIRE_TESTDATA();
  std::string want;
  {
    Session s(Model::load(model()), {});
    GenerateParams gp;
    gp.sampling.temperature = 0;
    gp.max_tokens = 6;
    want = generate(s, "-sys", gp).text + "\n";
  }
  for (const std::string& args : {"-m " + q(model()) + " --temp 0 -n 6 -- -sys", "--temp 0 -n 6 -- " + q(model()) + " -sys"}) {
    const auto r = test::run_command(slm_run(args));
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.output;
    EXPECT_EQ(r.output, want) << args;
  }
}

// --ignore-eos on the command line: a copy of the model whose end-of-sequence
// id is the third greedy token stops there, and with the flag runs on to -n.
TEST(CliHabits, IgnoreEosGeneratesPastTheEndToken) {
  SLM_REQUIRE_TESTDATA();
  const std::string prompt = "The capital of";
  std::vector<TokenId> greedy_ids;
  {
    auto base = Model::load(model());
    Session s(base, {});
    GenerateParams gp;
    gp.sampling.temperature = 0;
    gp.max_tokens = 8;
    const auto r = generate(s, prompt, gp);
    ASSERT_EQ(r.n_generated, 8);
    greedy_ids.assign(s.tokens().end() - 8, s.tokens().end());
  }
  size_t k = 2;
  while (k < greedy_ids.size() && std::count(greedy_ids.begin(), greedy_ids.begin() + static_cast<long>(k), greedy_ids[k])) ++k;
  ASSERT_LT(k, greedy_ids.size());
  const std::string eos_model = test::temp_path("eos-at-" + std::to_string(k) + ".gguf");
  {
    const gguf::GgufFile in(model());
    gguf::GgufWriter w;
    for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
    w.set("tokenizer.ggml.eos_token_id", gguf::Value::scalar<uint32_t>(static_cast<uint32_t>(greedy_ids[k])));
    for (const auto& t : in.tensors()) w.add_tensor(t.name, t.type, t.ne, in.tensor_data(t), t.n_bytes);
    w.write(eos_model);
  }
  auto generated = [&](const std::string& extra) {
    const auto r = test::run_command(slm_run(q(eos_model) + " " + q(prompt) + " --temp 0 -n 8 --stats " + extra), true);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const size_t at = r.output.find("generation: ");
    EXPECT_NE(at, std::string::npos) << r.output;
    return at == std::string::npos ? -1 : std::atoi(r.output.c_str() + at + 12);
  };
  EXPECT_EQ(generated(""), static_cast<int>(k));  // stops at the end token
  EXPECT_EQ(generated("--ignore-eos"), 8);
}

// A system prompt that leaves no room in the context: refused at the start
// (naming it), and by /set system, which then keeps the old one.
TEST(CliHabits, ChatRefusesASystemPromptThatCannotFit) {
  SLM_REQUIRE_TESTDATA();
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "words that fill the context ";
  auto r = test::run_command("echo hi | " + test::slm_binary() + " chat " + q(model()) + " -c 64 --system " + q(long_text), true);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("the system prompt takes"), std::string::npos) << r.output;
  r = test::run_command("printf '/set system %s\n/show\n/set system Be brief.\n/show\n' " + q(long_text) + " | " +
                            test::slm_binary() + " chat " + q(model()) + " -c 64 --system Hi",
                        true);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("the system prompt was not changed"), std::string::npos) << r.output;
  const size_t first_show = r.output.find("\nsystem: ");
  ASSERT_NE(first_show, std::string::npos) << r.output;
  EXPECT_EQ(r.output.compare(first_show, 12, "\nsystem: Hi\n"), 0) << r.output;
  EXPECT_NE(r.output.find("\nsystem: Be brief.\n", first_show + 1), std::string::npos) << r.output;
}

TEST(CliHabits, ContextFullFullDiskAndContextWarnings) {
  SLM_REQUIRE_TESTDATA();
  // The answer stops because the context is full: said on stderr.
  const auto full = test::run_command(slm_run("-m " + q(model()) + " -p 'one two' -c 8 -n 40 --temp 0 2>&1 >/dev/null"));
  EXPECT_EQ(full.exit_code, 0) << full.output;
  EXPECT_NE(full.output.find("the context of 8 tokens is full"), std::string::npos) << full.output;
  // Writing to a full disk is an error, not a silent loss.
  const auto disk =
      test::run_command(slm_run("-m " + q(model()) + " -p 'Once upon a time' -n 8 --temp 0 2>&1 >/dev/full"));
  EXPECT_EQ(disk.exit_code, 1) << disk.output;
  EXPECT_NE(disk.output.find("No space left on device"), std::string::npos) << disk.output;
  // -c above the trained context: a warning, and the run goes on.
  const int64_t trained = Model::load(model())->info().n_ctx_train;
  const auto warn = test::run_command(
      slm_run("-m " + q(model()) + " -p hi -n 2 --temp 0 -c " + std::to_string(trained + 64) + " 2>&1 >/dev/null"));
  EXPECT_EQ(warn.exit_code, 0) << warn.output;
  EXPECT_NE(warn.output.find("trained on"), std::string::npos) << warn.output;
  // A context whose KV cache cannot be allocated: refused with the size it
  // needs, not "std::bad_alloc" (8 GiB here, under a 3 GB address-space
  // limit). Not under AddressSanitizer: its shadow memory needs terabytes of
  // address space before main() runs.
#ifndef __SANITIZE_ADDRESS__
  const auto kv = test::run_command("ulimit -v 3000000; " + slm_run("-m " + q(model()) + " -p hi -n 2 -c 16777216") +
                                    " 2>&1 >/dev/null");
  EXPECT_EQ(kv.exit_code, 1) << kv.output;
  EXPECT_NE(kv.output.find("needs 8.0 GiB for its KV cache"), std::string::npos) << kv.output;
#endif
  // A system prompt that cannot fit the context: refused at start.
  std::string system;
  for (int i = 0; i < 60; ++i) system += "word ";
  const auto sys = test::run_command(test::slm_binary() + " chat -m " + q(model()) + " -c 32 --system " + q(system) +
                                         " </dev/null",
                                     true);
  EXPECT_EQ(sys.exit_code, 1) << sys.output;
  EXPECT_NE(sys.output.find("the system prompt takes"), std::string::npos) << sys.output;
}

}  // namespace
}  // namespace slm
