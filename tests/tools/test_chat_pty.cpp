// `slm chat` end to end through a pseudo-terminal, the way a person uses it:
// turns, Ctrl-C during an answer, /reset, EOF, and Ctrl-C at the prompt.
// The pty's line discipline turns the ^C byte into SIGINT for slm, exactly
// as a real terminal does.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "support/testdata.h"

namespace slm {
namespace {

class PtyProcess {
 public:
  explicit PtyProcess(const std::vector<std::string>& argv) {
    struct winsize ws = {24, 100, 0, 0};
    pid_ = forkpty(&fd_, nullptr, nullptr, &ws);
    if (pid_ == 0) {
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~PtyProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  bool started() const { return pid_ > 0 && fd_ >= 0; }

  void send(const std::string& bytes) { ASSERT_EQ(write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size())); }

  // Reads until `needle` appears after position `from` of everything read so
  // far; returns its position, or npos on timeout / end of output.
  size_t wait_for(const std::string& needle, size_t from, double timeout_s = 120) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
    while (true) {
      const size_t at = out_.find(needle, from);
      if (at != std::string::npos) return at;
      if (!read_some(deadline)) return std::string::npos;
    }
  }
  // Reads until at least n more bytes arrived after `from`.
  bool wait_bytes(size_t from, size_t n, double timeout_s = 120) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
    while (out_.size() < from + n)
      if (!read_some(deadline)) return false;
    return true;
  }
  // Waits for exit; returns the exit status, or -1 on timeout / signal.
  int wait_exit(double timeout_s = 60) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
    while (std::chrono::steady_clock::now() < deadline) {
      read_some(std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
    }
    return -1;
  }
  const std::string& output() const { return out_; }

 private:
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[4096];
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) return false;  // EIO: the child closed the terminal
    out_.append(buf, static_cast<size_t>(n));
    return true;
  }
  pid_t pid_ = -1;
  int fd_ = -1;
  bool exited_ = false;
  std::string out_;
};

std::string model_path() { return test::testdata_dir() + "/models/phi3-tiny-vocab-q8_0.gguf"; }

// Sends a message at the prompt whose output starts at `at`, waits for the
// next prompt, and returns what was printed in between after the echoed
// message (the answer and any notes); `at` moves to the new prompt.
std::string ask(PtyProcess& p, const std::string& message, size_t& at) {
  p.send(message + "\r");
  const size_t echoed = p.wait_for(message, at);
  if (echoed == std::string::npos) return "(no echo of " + message + ")";
  const size_t start = echoed + message.size();
  const size_t next = p.wait_for("\n> ", start);
  if (next == std::string::npos) return "(no prompt after " + message + ")";
  at = next + 1;
  return p.output().substr(start, next - start);
}

const char* kSystem = "Be brief.";

TEST(ChatPty, TurnsCtrlCResetAndEof) {
  SLM_REQUIRE_TESTDATA();
  // Random weights never say <|end|>: every answer runs until the context is
  // full, which also exercises dropping old turns.
  PtyProcess p({test::slm_binary(), "chat", "-m", model_path(), "-c", "1024", "--seed", "7", "--system", kSystem});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();

  // Turn 1: an answer streams, fills the context, and the prompt returns.
  p.send("hello there\r");
  const size_t t1 = p.wait_for("hello there", at);
  ASSERT_NE(t1, std::string::npos) << p.output();
  at = p.wait_for("\n> ", t1);
  ASSERT_NE(at, std::string::npos) << p.output();
  const std::string answer1 = p.output().substr(t1, at - t1);
  EXPECT_GT(answer1.size(), 100u) << answer1;
  EXPECT_NE(answer1.find("(context full: the answer was cut short)"), std::string::npos) << answer1;

  // Turn 2: the first turn no longer fits beside a new answer; it is dropped
  // and the system prompt stays: the answer is the one a fresh chat with the
  // same system prompt gives to this message alone (same seed).
  const std::string answer2 = ask(p, "tell me more", at);
  EXPECT_NE(answer2.find("(context full: dropped the oldest turns to make room)"), std::string::npos) << answer2;
  {
    PtyProcess fresh({test::slm_binary(), "chat", "-m", model_path(), "-c", "1024", "--seed", "7", "--system", kSystem});
    size_t fresh_at = fresh.wait_for("> ", 0);
    ASSERT_NE(fresh_at, std::string::npos) << fresh.output();
    const std::string want = ask(fresh, "tell me more", fresh_at);
    const std::string note = "\r\n(context full: dropped the oldest turns to make room)";
    ASSERT_EQ(answer2.compare(0, note.size(), note), 0) << answer2;
    EXPECT_EQ(answer2.substr(note.size()), want);
  }

  // /reset forgets the conversation: the first message now gets the first
  // answer again.
  p.send("/reset\r");
  at = p.wait_for("(conversation cleared)", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  at = p.wait_for("> ", at);
  EXPECT_EQ(ask(p, "hello there", at), answer1.substr(std::string("hello there").size()));

  // Turn 3: Ctrl-C once the answer is streaming stops it, not the program.
  // (The last answer filled the context: the turn before is dropped first.)
  p.send("a long story please\r");
  const size_t t3 = p.wait_for("(context full: dropped the oldest turns to make room)\r\n", at);
  ASSERT_NE(t3, std::string::npos) << p.output().substr(at);
  ASSERT_TRUE(p.wait_bytes(t3 + 55, 40)) << "no answer streamed";
  p.send("\x03");
  const size_t stopped = p.wait_for("(stopped)", t3);
  ASSERT_NE(stopped, std::string::npos) << p.output().substr(t3);
  at = p.wait_for("> ", stopped);
  ASSERT_NE(at, std::string::npos);

  // EOF (Ctrl-D at an empty line) exits cleanly.
  p.send("\x04");
  EXPECT_EQ(p.wait_exit(), 0) << p.output().substr(at);
}

TEST(ChatPty, CtrlCAtThePromptExitsCleanly) {
  SLM_REQUIRE_TESTDATA();
  PtyProcess p({test::slm_binary(), "chat", "-m", model_path(), "-c", "256"});
  ASSERT_TRUE(p.started());
  ASSERT_NE(p.wait_for("> ", 0), std::string::npos) << p.output();
  p.send("/help\r");
  size_t at = p.wait_for("/reset", 0);
  ASSERT_NE(at, std::string::npos);
  at = p.wait_for("> ", at);
  // A message longer than the whole context is refused, not sent, and the
  // chat goes on.
  std::string long_message;
  for (int i = 0; i < 120; ++i) long_message += "word" + std::to_string(i) + " ";
  const std::string refused = ask(p, long_message, at);
  EXPECT_NE(refused.find("(that message is too long for the context of 256 tokens; it was not sent)"), std::string::npos)
      << refused;
  const std::string answer = ask(p, "hi", at);
  EXPECT_EQ(answer.find("too long"), std::string::npos) << answer;
  EXPECT_GT(answer.size(), 4u) << answer;
  p.send("\x03");
  EXPECT_EQ(p.wait_exit(), 0) << p.output();
}

}  // namespace
}  // namespace slm
