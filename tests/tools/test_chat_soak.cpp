// A long chat: 2000 turns through `slm chat` on a tiny model whose context
// holds only a few turns, so almost every turn drops old ones (a context
// shift). Its anonymous resident memory (heap and stacks: what a leak grows;
// file pages such as the mapped model come and go with the page cache),
// sampled every 100 turns from /proc, must stay within 5 % above its value
// after the first 100 turns: nothing grows per turn.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/testdata.h"

namespace slm {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;  // ASan's quarantine holds freed memory on purpose
#else
constexpr bool kSanitized = false;
#endif

long anonymous_resident_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == "RssAnon:") {
      in >> value;
      break;
    }
    in.ignore(1 << 20, '\n');
  }
  return value;
}

TEST(ChatSoak, TwoThousandTurnsWithContextShiftsKeepMemoryFlat) {
  SLM_REQUIRE_TESTDATA();
  const std::string model = test::testdata_dir() + "/models/llama-tiny.gguf";
  int to_chat[2], from_chat[2];
  ASSERT_EQ(pipe(to_chat), 0);
  ASSERT_EQ(pipe(from_chat), 0);
  const std::string bin = test::slm_binary();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(to_chat[0], 0);
    dup2(from_chat[1], 1);
    dup2(from_chat[1], 2);
    close(to_chat[1]);
    close(from_chat[0]);
    execl(bin.c_str(), bin.c_str(), "chat", "-m", model.c_str(), "-n", "16", "-c", "128", "--temp", "0.8", "--seed",
          "1", "--no-history", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(to_chat[0]);
  close(from_chat[1]);
  // Whatever happens below, the chat does not outlive the test.
  struct Reaper {
    pid_t pid;
    int fds[2];
    bool reaped = false;
    ~Reaper() {
      for (int fd : fds) close(fd);
      if (!reaped) kill(pid, SIGKILL), waitpid(pid, nullptr, 0);
    }
  } reaper{pid, {to_chat[1], from_chat[0]}};
  // A chat that died would turn the next write into SIGPIPE: an error instead.
  struct sigaction ignore = {}, old_pipe = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old_pipe);
  struct Restore {
    struct sigaction action;
    ~Restore() { sigaction(SIGPIPE, &action, nullptr); }
  } restore{old_pipe};

  std::mt19937 rng(7);
  const std::vector<std::string> words = {"the", "cat", "sat", "on", "a", "mat", "and", "then", "went", "home",
                                          "to", "sleep", "under", "warm", "rain", "fell"};
  std::string output;  // since the last /show report
  // Reads the chat's output until the /show report after a block of turns
  // has come out (its last line names the system prompt).
  auto wait_for_show = [&] {
    char buf[4096];
    while (output.find("\nsystem: ") == std::string::npos) {
      const ssize_t got = read(from_chat[0], buf, sizeof buf);
      if (got <= 0) return false;
      output.append(buf, static_cast<size_t>(got));
    }
    return true;
  };
  std::vector<long> rss;
  int dropped = 0;
  // Under ASan the session is the check (no memory error over hundreds of
  // shifts), not the resident memory: fewer turns keep it to a minute.
  const int kTurns = kSanitized ? 300 : 2000, kEvery = 100;
  for (int turn = 0; turn < kTurns; turn += kEvery) {
    std::string block;
    for (int t = 0; t < kEvery; ++t) {
      std::string line;
      const int n = 1 + static_cast<int>(rng() % 12);
      for (int w = 0; w < n; ++w) line += (w ? " " : "") + words[rng() % words.size()];
      block += line + "\n";
    }
    block += "/show\n";
    ASSERT_EQ(write(to_chat[1], block.data(), block.size()), static_cast<ssize_t>(block.size()));
    ASSERT_TRUE(wait_for_show()) << "slm chat ended early:\n" << output;
    rss.push_back(anonymous_resident_kib(pid));
    for (size_t pos = 0; (pos = output.find("dropped the oldest turns", pos)) != std::string::npos; ++pos) ++dropped;
    output.clear();
  }
  close(to_chat[1]);
  reaper.fds[0] = -1;
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  reaper.reaped = true;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_GT(dropped, kTurns / 2) << "the context should shift on most turns";
  std::string samples;
  for (long r : rss) samples += std::to_string(r) + " ";
  RecordProperty("anon_rss_kib_every_100_turns", samples);
  ASSERT_EQ(rss.size(), static_cast<size_t>(kTurns / kEvery));
  if (kSanitized) {
    std::printf("resident memory not compared under AddressSanitizer (its quarantine keeps freed memory)\n");
    return;
  }
  ASSERT_GT(rss[0], 0) << "no RssAnon in /proc";
  for (size_t i = 1; i < rss.size(); ++i)
    EXPECT_LE(rss[i], rss[0] + rss[0] / 20) << "after " << (i + 1) * kEvery << " turns: " << rss[i] << " KiB vs "
                                            << rss[0] << " KiB after 100 (" << samples << ")";
}

}  // namespace
}  // namespace slm
