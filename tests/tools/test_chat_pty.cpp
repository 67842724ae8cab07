// `slm chat` end to end through a pseudo-terminal, the way a person uses it:
// turns, Ctrl-C during an answer, /reset, EOF, and Ctrl-C at the prompt.
// The pty's line discipline turns the ^C byte into SIGINT for slm, exactly
// as a real terminal does.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "support/pty_process.h"
#include "support/testdata.h"

namespace slm {
namespace {

using test::ask;
using test::PtyProcess;

std::string model_path() { return test::testdata_dir() + "/models/phi3-tiny-vocab-q8_0.gguf"; }

const char* kSystem = "Be brief.";

TEST(ChatPty, TurnsCtrlCResetAndEof) {
  SLM_REQUIRE_TESTDATA();
  // Random weights rarely say <|end|>, and --ignore-eos makes sure: every
  // answer runs until the context is full, which also exercises dropping old
  // turns.
  PtyProcess p({test::slm_binary(), "chat", "-m", model_path(), "-c", "1024", "--seed", "7", "--ignore-eos", "--system",
                kSystem});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();

  // Turn 1: an answer streams, fills the context, and the prompt returns.
  const std::string answer1 = ask(p, "hello there", at);
  EXPECT_GT(answer1.size(), 100u) << answer1;
  EXPECT_NE(answer1.find("(context full: the answer was cut short)"), std::string::npos) << answer1;

  // Turn 2: the first turn no longer fits beside a new answer; it is dropped
  // and the system prompt stays: the answer is the one a fresh chat with the
  // same system prompt gives to this message alone (same seed).
  const std::string answer2 = ask(p, "tell me more", at);
  EXPECT_NE(answer2.find("(context full: dropped the oldest turns to make room)"), std::string::npos) << answer2;
  {
    PtyProcess fresh({test::slm_binary(), "chat", "-m", model_path(), "-c", "1024", "--seed", "7", "--ignore-eos",
                      "--system", kSystem});
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
  EXPECT_EQ(ask(p, "hello there", at), answer1);

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

  // EOF (Ctrl-D at an empty line) exits cleanly. Sent after a pause, as a
  // person types: a control key that arrives before the line editor has
  // taken the terminal is the terminal's (a ^D there is lost).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
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
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // as a person types (see above)
  p.send("\x03");
  EXPECT_EQ(p.wait_exit(), 130) << p.output();  // ended by Ctrl-C: the shell's status for SIGINT
}

// The line editor: history recall and editing (up-arrow, backspace), Ctrl-C
// on a typed line clears it, the multi-line prompt, /set and /show, and the
// history file.
TEST(ChatPty, LineEditingHistoryMultiLineAndCommands) {
  SLM_REQUIRE_TESTDATA();
  const std::string state = test::temp_path("xdg_state");
  PtyProcess p({"/usr/bin/env", "XDG_STATE_HOME=" + state, test::slm_binary(), "chat", "-m", model_path(), "-c", "256"});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();
  auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  pause();
  p.send("/set top_k 7\r");
  at = p.wait_for("(top_k = 7)", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  // Up-arrow recalls the line; backspace and a new digit edit it.
  pause();
  p.send("\x1b[A");
  pause();
  p.send("\x7f" "9\r");
  at = p.wait_for("(top_k = 9)", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  EXPECT_EQ(p.output().find("[A"), std::string::npos) << "an arrow key reached the chat as text";
  // Ctrl-C on a typed line clears it; the chat goes on.
  pause();
  p.send("half a thought");
  pause();
  p.send("\x03");
  pause();
  p.send("/show\r");
  at = p.wait_for("top_k 9", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  // Text outside ASCII survives the editor (it needs a UTF-8 locale).
  pause();
  p.send("/set system caf\xC3\xA9 \xE2\x9C\x93\r");
  pause();
  p.send("/show\r");
  at = p.wait_for("system: caf\xC3\xA9 \xE2\x9C\x93", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  // """ opens a multi-line message: the continuation prompt.
  pause();
  p.send("\"\"\"\r");
  at = p.wait_for("... ", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  pause();
  p.send("\x03");  // abandon it
  pause();
  p.send("/exit\r");
  EXPECT_EQ(p.wait_exit(), 0) << p.output();
  std::ifstream history(state + "/slm/history");
  const std::string saved((std::istreambuf_iterator<char>(history)), std::istreambuf_iterator<char>());
  EXPECT_NE(saved.find("top_k"), std::string::npos) << saved;
}

// Job control and resizes while a line is being typed, under an interactive
// bash as a person runs it: Ctrl-Z stops slm (bash says "Stopped" and gives
// its prompt back), `fg` continues it — the editor takes the terminal again
// (non-canonical mode) and redraws the line, which can still be edited and
// sent — and a resize leaves the editor working.
TEST(ChatPty, CtrlZFgAndResizeKeepTheLineEditorWorking) {
  SLM_REQUIRE_TESTDATA();
  PtyProcess p({"/usr/bin/env", "PS1=SH$ ", "TERM=xterm", "/bin/bash", "--norc", "--noprofile", "-i"});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("SH$ ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();
  auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  p.send("'" + test::slm_binary() + "' chat -m '" + model_path() + "' -c 256 --no-history\r");
  at = p.wait_for("/help for commands.", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  at = p.wait_for("> ", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  // slm is bash's child: its process state letter in /proc ('T': stopped).
  auto slm_pid = [&] {
    std::ifstream in("/proc/" + std::to_string(p.pid()) + "/task/" + std::to_string(p.pid()) + "/children");
    long pid = 0;
    in >> pid;
    return static_cast<pid_t>(pid);
  };
  const pid_t slm = slm_pid();
  ASSERT_GT(slm, 0);
  auto state = [&] {
    std::ifstream in("/proc/" + std::to_string(slm) + "/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = all.rfind(')');
    return paren == std::string::npos || paren + 2 >= all.size() ? '?' : all[paren + 2];
  };
  pause();
  p.send("/set system ab");
  pause();
  p.send("\x1a");  // Ctrl-Z
  at = p.wait_for("Stopped", at);
  ASSERT_NE(at, std::string::npos) << "slm did not stop on Ctrl-Z: " << p.output();
  EXPECT_EQ(state(), 'T');
  at = p.wait_for("SH$ ", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  pause();
  p.send("fg\r");
  // The line is drawn again, and the terminal is the editor's again.
  at = p.wait_for("/set system ab", at + 4);
  ASSERT_NE(at, std::string::npos) << p.output();
  struct termios mode {};
  bool raw = false;
  for (int i = 0; i < 40 && !raw; ++i, std::this_thread::sleep_for(std::chrono::milliseconds(50)))
    raw = p.terminal_mode(mode) && !(mode.c_lflag & ICANON);
  EXPECT_TRUE(raw) << "after fg the line editor did not take the terminal back";
  // Still editing: Left, then a letter in the middle.
  pause();
  p.send("\x1b[D" "X");
  pause();
  p.send("c\r");
  pause();
  p.send("/show\r");
  at = p.wait_for("system: aXcb", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  // A narrower window: a line longer than it is still one line to the chat.
  p.resize(24, 40);
  pause();
  const std::string long_text(70, 'w');
  p.send("/set system " + long_text + "\r");
  pause();
  p.send("/show\r");
  at = p.wait_for("system: " + long_text + "\r\n", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  pause();
  p.send("/exit\r");
  at = p.wait_for("SH$ ", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  p.send("exit\r");
  EXPECT_EQ(p.wait_exit(), 0) << p.output();
}

// A typed line longer than the terminal's canonical-mode buffer (4095 bytes)
// arrives whole: the line editor reads key by key.
TEST(ChatPty, LinesLongerThanTheTerminalBufferArriveWhole) {
  SLM_REQUIRE_TESTDATA();
  PtyProcess p({test::slm_binary(), "chat", "-m", model_path(), "-c", "4096", "--no-history"});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string text;
  for (int i = 0; text.size() < 5000; ++i) text += "tea" + std::to_string(i % 10) + " ";
  text.pop_back();
  p.send("/set system " + text + "\r");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  p.send("/show\r");
  at = p.wait_for("system: " + text + "\r\n", at);
  EXPECT_NE(at, std::string::npos) << "the " << text.size() << "-byte line did not arrive whole: "
                                   << p.output().substr(p.output().size() > 300 ? p.output().size() - 300 : 0);
  p.send("/exit\r");
  EXPECT_EQ(p.wait_exit(), 0);
}

// What the keys typed become: each message as the conversation holds it
// (read back with /save). Emacs keys (Ctrl-A/E/W/U, Home/End), a """ block,
// a line continued with \, //text, and a whitespace-only line (ignored).
TEST(ChatPty, TypedKeysBecomeTheMessagesTheConversationHolds) {
  SLM_REQUIRE_TESTDATA();
  PtyProcess p({test::slm_binary(), "chat", "-m", model_path(), "-c", "2048", "-n", "3", "--ignore-eos", "--no-history"});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();
  auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  // Sends keys, then Enter, and waits for the next "> " prompt.
  auto line = [&](const std::vector<std::string>& keys, const char* prompt = "\n> ") {
    pause();
    for (const std::string& k : keys) {
      p.send(k);
      pause();
    }
    p.send("\r");
    at = p.wait_for(prompt, at + 1);
    ASSERT_NE(at, std::string::npos) << p.output();
  };
  line({"world", "\x01", "hello ", "\x05", "!"});          // Ctrl-A, Ctrl-E
  line({"one two", "\x17", "three"});                      // Ctrl-W erases "two"
  line({"junk", "\x15", "clean"});                         // Ctrl-U erases the line
  line({"b", "\x1b[H", "a", "\x1b[F", "c"});               // Home, End
  line({"   "});                                           // ignored: no message, no answer
  line({"//etc/hosts"});                                   // a message starting with /
  line({"\"\"\""}, "\n... ");                              // a block...
  line({"line one"}, "\n... ");
  line({"line two"}, "\n... ");
  line({"\"\"\""});                                        // ...closed
  line({"first \\"}, "\n... ");                            // continued
  line({"second"});
  const std::string saved = test::temp_path("typed.json");
  line({"/save " + saved});
  pause();
  p.send("/exit\r");
  EXPECT_EQ(p.wait_exit(), 0) << p.output();
  std::ifstream in(saved);
  ASSERT_TRUE(in) << p.output();
  const auto j = nlohmann::json::parse(in);
  std::vector<std::string> users;
  for (const auto& m : j.at("messages"))
    if (m.at("role") == "user") users.push_back(m.at("content"));
  const std::vector<std::string> want = {"hello world!", "one three", "clean", "abc", "/etc/hosts",
                                         "line one\nline two", "first \nsecond"};
  EXPECT_EQ(users, want);
}

// A pasted block (bracketed paste: the terminal wraps it in ESC [200~ ...
// ESC [201~) is text of one message, newlines and all: its lines are not
// commands and not sent one by one; it waits at the continuation prompt and
// the next Enter sends it.
TEST(ChatPty, BracketedPasteIsOneMessage) {
  SLM_REQUIRE_TESTDATA();
  PtyProcess p({test::slm_binary(), "chat", "-m", model_path(), "-c", "256", "-n", "4", "--no-history"});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();
  EXPECT_NE(p.output().find("\x1b[?2004h"), std::string::npos) << "bracketed paste is not switched on";
  auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  pause();
  p.send("look: \x1b[200~/set top_k 3\r/show\r\x1b[201~");
  at = p.wait_for("... ", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  pause();
  p.send("\r");  // sends the message: a short answer, then the prompt again
  at = p.wait_for("> ", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  pause();
  p.send("/show\r");
  at = p.wait_for("top_k", at);
  ASSERT_NE(at, std::string::npos) << p.output();
  EXPECT_EQ(p.output().find("(top_k = 3)"), std::string::npos) << "a pasted line ran as a command:\n" << p.output();
  EXPECT_EQ(p.output().find("top_k 3,"), std::string::npos) << "/show reports the pasted top_k:\n" << p.output();
  pause();
  p.send("/exit\r");
  EXPECT_EQ(p.wait_exit(), 0) << p.output();
  EXPECT_NE(p.output().find("\x1b[?2004l"), std::string::npos) << "bracketed paste is left on";
}

// /save writes the conversation as JSON; /load reads it back into the
// conversation and the KV cache (context use jumps from 0 after /clear);
// unreadable, non-JSON and ill-formed files are refused with a message and
// the chat goes on.
TEST(ChatPty, SaveAndLoadAConversation) {
  SLM_REQUIRE_TESTDATA();
  const std::string file = test::temp_path("chat.json"), bad = test::temp_path("bad.json"),
                    wrong = test::temp_path("wrong.json");
  std::ofstream(bad) << "{ not json";
  std::ofstream(wrong) << R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]})";
  PtyProcess p({test::slm_binary(), "chat", "-m", model_path(), "-c", "512", "-n", "4", "--no-history", "--seed", "3"});
  ASSERT_TRUE(p.started());
  size_t at = p.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << p.output();
  const std::string answer = ask(p, "hello there", at);
  ASSERT_EQ(answer.find("(no "), std::string::npos) << answer;
  auto command = [&](const std::string& line, const std::string& expect) {
    p.send(line + "\r");
    const size_t found = p.wait_for(expect, at);
    EXPECT_NE(found, std::string::npos) << line << " did not show " << expect << ":\n" << p.output();
    if (found != std::string::npos) at = found + expect.size();
  };
  command("/save " + file, "(saved 2 messages to " + file + ")");
  std::ifstream saved(file);
  const std::string json((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"role\": \"user\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"content\": \"hello there\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"role\": \"assistant\""), std::string::npos) << json;
  command("/clear", "(conversation cleared)");
  command("/show", "context: 0 of 512");
  command("/load " + file, "(loaded 2 messages from " + file);
  command("/show", "context: ");
  EXPECT_NE(p.output().compare(at, 2, "0 "), 0) << "the loaded conversation is not in the KV cache";
  command("/load " + test::temp_path("missing.json"), "(cannot read ");
  command("/load " + bad, "is not JSON");
  command("/load " + wrong, "has role 'system'");
  command("/exit", "");
  EXPECT_EQ(p.wait_exit(), 0) << p.output();
}

}  // namespace
}  // namespace slm
