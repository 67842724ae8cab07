// A program run in a pseudo-terminal, the way a person uses it: the pty's
// line discipline turns a ^C byte into SIGINT for the program, exactly as a
// real terminal does. Header-only (tests link -lutil for forkpty).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slm::test {

class PtyProcess {
 public:
  explicit PtyProcess(const std::vector<std::string>& argv) {
    // Wide enough that the line editor never wraps a typed message (tests
    // look for the message's echo as one piece).
    struct winsize ws = {24, 4000, 0, 0};
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
  pid_t pid() const { return pid_; }
  // The terminal's window size, as a terminal emulator sets it on a resize
  // (the program gets SIGWINCH).
  void resize(unsigned short rows, unsigned short cols) {
    struct winsize ws = {rows, cols, 0, 0};
    ASSERT_EQ(ioctl(fd_, TIOCSWINSZ, &ws), 0);
  }
  // The line discipline's modes of the program's side of the terminal.
  bool terminal_mode(struct termios& mode) const {
    const int slave = open(ptsname(fd_), O_RDWR | O_NOCTTY);
    if (slave < 0) return false;
    const bool ok = tcgetattr(slave, &mode) == 0;
    close(slave);
    return ok;
  }

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

// Sends a message at the prompt whose output starts at `at`, waits for the
// next prompt, and returns what was printed in between after the echoed
// message (the answer and any notes); `at` moves to the new prompt. The
// message may be echoed twice — by the terminal when it arrives before the
// line editor takes the terminal, then by the editor — so the answer starts
// after the last echo.
inline std::string ask(PtyProcess& p, const std::string& message, size_t& at) {
  p.send(message + "\r");
  const size_t echoed = p.wait_for(message, at);
  if (echoed == std::string::npos) return "(no echo of " + message + ")";
  const size_t next = p.wait_for("\n> ", echoed + message.size());
  if (next == std::string::npos) return "(no prompt after " + message + ")";
  const size_t start = echoed + p.output().substr(echoed, next - echoed).rfind(message) + message.size();
  at = next + 1;
  return p.output().substr(start, next - start);
}

}  // namespace slm::test
