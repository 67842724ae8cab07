#include "line_editor.h"

#include <histedit.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include "tokenizer/utf8.h"

namespace slm::cli {

// Job control and resizes on a terminal. libedit's own signal handling is
// off (SIGINT is the chat's), so these are ours: Ctrl-Z gives the terminal
// back in the mode the chat found it in and stops the process; `fg`
// (SIGCONT) makes the editor take the terminal again and redraw the line; a
// resize (SIGWINCH) tells libedit the new width. The handlers only restore
// the terminal, stop, and set flags; the editor acts on the flags between
// bytes (ByteSource::next, where these signals are only let in inside ppoll).
namespace {
std::atomic<bool> g_editing{false};    // inside el_gets: the terminal is in libedit's mode
std::atomic<bool> g_continued{false};  // back from a stop since the editor last looked
std::atomic<bool> g_resized{false};    // SIGWINCH since the editor last looked
struct termios g_start_mode;           // the terminal as the chat found it
bool g_have_start_mode = false;

void set_handler(int sig, void (*fn)(int), struct sigaction* old = nullptr) {
  struct sigaction sa = {};
  sa.sa_handler = fn;
  sigemptyset(&sa.sa_mask);
  // Interrupted writes of an answer resume; ppoll, where the editor waits,
  // returns EINTR whatever this says, so the flags are still seen.
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, old);
}

extern "C" void on_stop_key(int) {
  const int saved_errno = errno;
  if (g_editing.load() && g_have_start_mode) tcsetattr(STDIN_FILENO, TCSADRAIN, &g_start_mode);
  // Stop the way the default action does, so the kernel's rule holds: a
  // process group no shell could continue (orphaned) is not stopped. Default
  // disposition, raise, let it through; execution resumes here after SIGCONT
  // (or at once, not stopped), and the handler is ours again.
  signal(SIGTSTP, SIG_DFL);
  raise(SIGTSTP);
  sigset_t tstp;
  sigemptyset(&tstp);
  sigaddset(&tstp, SIGTSTP);
  pthread_sigmask(SIG_UNBLOCK, &tstp, nullptr);
  pthread_sigmask(SIG_BLOCK, &tstp, nullptr);
  set_handler(SIGTSTP, on_stop_key);
  g_continued.store(true);  // stopped or not, the terminal is no longer the editor's
  errno = saved_errno;
}
extern "C" void on_continue(int) { g_continued.store(true); }
extern "C" void on_resize(int) { g_resized.store(true); }

// The dispositions found at start, given back when the editor ends.
struct sigaction g_old_tstp, g_old_cont, g_old_winch;

// The signals ByteSource lets in only while it waits in ppoll.
sigset_t waiting_signals() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : {SIGINT, SIGCONT, SIGWINCH, SIGTSTP}) sigaddset(&s, sig);
  return s;
}
}  // namespace

// Bytes from stdin, with Ctrl-C seen even while waiting (see the header).
class ByteSource {
 public:
  enum class Got { byte, eof, interrupted };
  explicit ByteSource(std::atomic<bool>& interrupted) : interrupted_(interrupted) {}

  // Called before each wait for input: the editor's response to a resize or
  // a continue (set by LineEditor on a terminal).
  std::function<void()> before_wait;

  // Gives the last byte back (after next() returned it).
  void unget() {
    if (at_ > 0) --at_;
  }

  // Whether the next bytes are `seq`: if so they are consumed, otherwise
  // every byte read to find out is given back.
  bool take(std::string_view seq) {
    std::string seen;
    for (char want : seq) {
      unsigned char c = 0;
      const Got got = next(c);
      if (got == Got::byte) seen.push_back(static_cast<char>(c));
      if (got != Got::byte || static_cast<char>(c) != want) {
        buffer_ = seen + buffer_.substr(at_);
        at_ = 0;
        return false;
      }
    }
    return true;
  }

  Got next(unsigned char& c) {
    for (;;) {
      if (at_ < buffer_.size()) {
        c = static_cast<unsigned char>(buffer_[at_++]);
        return Got::byte;
      }
      if (eof_) return Got::eof;
      const sigset_t block = waiting_signals();
      sigset_t old;
      pthread_sigmask(SIG_BLOCK, &block, &old);
      if (interrupted_.load()) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return Got::interrupted;
      }
      if (before_wait) before_wait();
      struct pollfd p = {STDIN_FILENO, POLLIN, 0};
      const int ready = ppoll(&p, 1, nullptr, &old);
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (ready < 0) {
        if (errno != EINTR) return Got::eof;
        if (interrupted_.load()) return Got::interrupted;
        continue;
      }
      char chunk[4096];
      const ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      buffer_.assign(chunk, static_cast<size_t>(n));
      at_ = 0;
    }
  }

 private:
  std::atomic<bool>& interrupted_;
  std::string buffer_;
  size_t at_ = 0;
  bool eof_ = false;
};

struct LineEditor::Impl {
  Impl(std::atomic<bool>& flag, std::string file) : interrupted(flag), source(flag), history_file(std::move(file)) {}
  std::atomic<bool>& interrupted;
  ByteSource source;
  std::string history_file;
  EditLine* el = nullptr;
  History* hist = nullptr;
  HistEvent ev{};
  std::string prompt;
  bool got_interrupt = false;
  std::string paste;     // the text of a bracketed paste that ended the line
  bool pasted = false;
};

namespace {

LineEditor::Impl* impl_of(EditLine* el) {
  void* data = nullptr;
  el_get(el, EL_CLIENTDATA, &data);
  return static_cast<LineEditor::Impl*>(data);
}

const char* prompt_of(EditLine* el) { return impl_of(el)->prompt.c_str(); }

// Terminal modes: with bracketed paste on, the terminal wraps pasted text
// in ESC [200~ ... ESC [201~, so a pasted block is told from typed lines.
constexpr const char* kPasteOn = "\x1b[?2004h";
constexpr const char* kPasteOff = "\x1b[?2004l";
constexpr std::string_view kPasteStart = "[200~";  // after the ESC
constexpr std::string_view kPasteEnd = "\x1b[201~";

// The bytes of a bracketed paste up to its end marker, as UTF-8 (malformed
// bytes become U+FFFD) with the terminal's carriage returns as newlines.
// False on Ctrl-C.
bool read_paste(ByteSource& source, std::string& text) {
  std::string raw;
  for (;;) {
    unsigned char c = 0;
    const ByteSource::Got got = source.next(c);
    if (got == ByteSource::Got::interrupted) return false;
    if (got == ByteSource::Got::eof) break;
    raw.push_back(static_cast<char>(c));
    if (raw.size() >= kPasteEnd.size() && raw.compare(raw.size() - kPasteEnd.size(), kPasteEnd.size(), kPasteEnd) == 0) {
      raw.resize(raw.size() - kPasteEnd.size());
      break;
    }
  }
  text.clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\r') {
      text.push_back(raw[i]);
    } else if (i + 1 >= raw.size() || raw[i + 1] != '\n') {
      text.push_back('\n');
    }
  }
  text::Utf8Assembler utf8;
  text = utf8.push(text);
  text += utf8.flush();
  return true;
}

// libedit's character source: one UTF-8 character from ByteSource as a wide
// character; -1 on Ctrl-C (el_gets then returns null), 0 at end of input. A
// bracketed paste ends the line: its text is kept aside (Impl::paste) and
// a newline handed to libedit.
int read_char(EditLine* el, wchar_t* out) {
  LineEditor::Impl* impl = impl_of(el);
  unsigned char c = 0;
  switch (impl->source.next(c)) {
    case ByteSource::Got::eof: return 0;
    case ByteSource::Got::interrupted: impl->got_interrupt = true; return -1;
    case ByteSource::Got::byte: break;
  }
  if (c == 0x1B && impl->source.take(kPasteStart)) {
    if (!read_paste(impl->source, impl->paste)) {
      impl->got_interrupt = true;
      return -1;
    }
    impl->pasted = true;
    *out = L'\n';
    return 1;
  }
  // One UTF-8 character; anything malformed (a stray continuation byte, a
  // lead byte without its continuations, overlong forms, surrogates, past
  // U+10FFFF) becomes U+FFFD, and a byte that was not a continuation is
  // read again as the next character.
  constexpr uint32_t kReplacement = 0xFFFD;
  const int extra = c >= 0xF8 ? -1 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : c >= 0x80 ? -1 : 0;
  uint32_t cp = kReplacement;
  if (extra == 0) cp = c;
  if (extra > 0) {
    cp = extra == 3 ? (c & 0x07u) : extra == 2 ? (c & 0x0Fu) : (c & 0x1Fu);
    for (int i = 0; i < extra; ++i) {
      unsigned char next = 0;
      const auto got = impl->source.next(next);
      if (got != ByteSource::Got::byte || (next & 0xC0) != 0x80) {
        if (got == ByteSource::Got::byte) impl->source.unget();
        cp = kReplacement;
        break;
      }
      cp = (cp << 6) | (next & 0x3Fu);
    }
    const uint32_t min = extra == 1 ? 0x80 : extra == 2 ? 0x800 : 0x10000;
    if (cp != kReplacement && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) cp = kReplacement;
  }
  *out = static_cast<wchar_t>(cp);
  return 1;
}

}  // namespace

LineEditor::LineEditor(std::atomic<bool>& interrupted, const std::string& history_file)
    : impl_(std::make_unique<Impl>(interrupted, history_file)) {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) return;
  // libedit turns the wide characters of a line back into bytes with the
  // locale's encoding: UTF-8 it must be (the user's, else C.UTF-8), or
  // anything outside ASCII is dropped.
  if (std::setlocale(LC_CTYPE, "") == nullptr || MB_CUR_MAX == 1) std::setlocale(LC_CTYPE, "C.UTF-8");
  Impl& m = *impl_;
  g_have_start_mode = tcgetattr(STDIN_FILENO, &g_start_mode) == 0;
  m.el = el_init("slm", stdin, stdout, stderr);
  if (m.el == nullptr) return;
  // Ctrl-Z stays ignored where the parent ignores it (no job control there).
  sigaction(SIGTSTP, nullptr, &g_old_tstp);
  if (g_old_tstp.sa_handler != SIG_IGN) set_handler(SIGTSTP, on_stop_key, &g_old_tstp);
  set_handler(SIGCONT, on_continue, &g_old_cont);
  set_handler(SIGWINCH, on_resize, &g_old_winch);
  m.source.before_wait = [el = m.el] {
    if (!g_editing.load()) return;
    if (g_resized.exchange(false)) el_resize(el);
    if (g_continued.exchange(false)) {
      // Back from a stop: the terminal is in whatever mode the shell left;
      // take it again (libedit applies its mode only on a change) and redraw.
      el_set(el, EL_PREP_TERM, 0);
      el_set(el, EL_PREP_TERM, 1);
      el_set(el, EL_REFRESH);
    }
  };
  m.hist = history_init();
  history(m.hist, &m.ev, H_SETSIZE, 1000);
  history(m.hist, &m.ev, H_SETUNIQUE, 1);
  if (!m.history_file.empty()) history(m.hist, &m.ev, H_LOAD, m.history_file.c_str());
  el_set(m.el, EL_CLIENTDATA, impl_.get());
  el_set(m.el, EL_EDITOR, "emacs");
  el_set(m.el, EL_SIGNAL, 0);  // SIGINT is ours (the chat loop decides what Ctrl-C does); job control below
  el_set(m.el, EL_PROMPT, prompt_of);
  el_set(m.el, EL_HIST, history, m.hist);
  el_set(m.el, EL_GETCFN, read_char);
  el_source(m.el, nullptr);  // the user's ~/.editrc, as every libedit program reads it
  // On for the whole chat: text pasted while an answer streams waits, still
  // marked, for the next prompt.
  std::fputs(kPasteOn, stdout);
  std::fflush(stdout);
}

LineEditor::~LineEditor() {
  if (impl_->hist != nullptr) history_end(impl_->hist);
  if (impl_->el != nullptr) {
    sigaction(SIGTSTP, &g_old_tstp, nullptr);
    sigaction(SIGCONT, &g_old_cont, nullptr);
    sigaction(SIGWINCH, &g_old_winch, nullptr);
    el_end(impl_->el);
    std::fputs(kPasteOff, stdout);
    std::fflush(stdout);
  }
}

bool LineEditor::terminal() const { return impl_->el != nullptr; }

LineEditor::Result LineEditor::next(const std::string& prompt, std::string& out, bool* had_text) {
  Impl& m = *impl_;
  if (had_text != nullptr) *had_text = false;
  if (m.el == nullptr) {  // not a terminal: plain lines
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
    out.clear();
    for (;;) {
      unsigned char c = 0;
      switch (m.source.next(c)) {
        case ByteSource::Got::interrupted:
          if (had_text != nullptr) *had_text = !out.empty();
          return Result::interrupted;
        case ByteSource::Got::eof:
          if (out.empty()) return Result::eof;
          return Result::line;
        case ByteSource::Got::byte:
          if (c == '\n') {
            if (!out.empty() && out.back() == '\r') out.pop_back();
            return Result::line;
          }
          out.push_back(static_cast<char>(c));
      }
    }
  }
  m.prompt = prompt;
  m.got_interrupt = false;
  m.pasted = false;
  int count = 0;
  g_resized.store(true);  // the width may have changed since the last line
  g_continued.store(false);
  g_editing.store(true);
  const char* line = el_gets(m.el, &count);
  g_editing.store(false);
  if (m.got_interrupt) {
    if (had_text != nullptr) {
      const LineInfo* li = el_line(m.el);
      *had_text = li != nullptr && li->lastchar > li->buffer;
    }
    el_reset(m.el);
    return Result::interrupted;
  }
  if (line == nullptr || count <= 0) return Result::eof;
  out.assign(line, static_cast<size_t>(count));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (!m.pasted) return Result::line;
  // Show what was pasted (libedit saw only the newline that ended the line).
  while (!m.paste.empty() && m.paste.back() == '\n') m.paste.pop_back();
  std::fputs(m.paste.c_str(), stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  out += m.paste;
  return Result::pasted;
}

void LineEditor::remember(const std::string& line) {
  Impl& m = *impl_;
  if (m.hist == nullptr || line.empty()) return;
  history(m.hist, &m.ev, H_ENTER, line.c_str());
  if (m.history_file.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(m.history_file).parent_path(), ec);
  history(m.hist, &m.ev, H_SAVE, m.history_file.c_str());
}

std::string LineEditor::default_history_file() {
  if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr && *state != '\0')
    return std::string(state) + "/slm/history";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.local/state/slm/history";
  return "";
}

}  // namespace slm::cli
