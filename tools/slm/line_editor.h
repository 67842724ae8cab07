// The chat prompt's input. On a terminal: libedit line editing (arrows,
// Home/End, Ctrl-A/E/W/U, up-arrow history, a persistent history file), no
// limit on line length. Otherwise (a pipe, a file): plain lines. Either way
// Ctrl-C is never lost: bytes are read with SIGINT blocked except inside
// ppoll(), which unblocks it atomically while waiting.
#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace slm::cli {

class LineEditor {
 public:
  // line: a typed line; pasted: a typed prefix plus a pasted block
  // (bracketed paste), newlines kept, which continues the message being
  // written rather than sending it.
  enum class Result { line, pasted, eof, interrupted };

  // `interrupted` is the flag the SIGINT handler sets; `history_file` empty:
  // no history kept across runs.
  LineEditor(std::atomic<bool>& interrupted, const std::string& history_file);
  ~LineEditor();
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  // Reads one line (without its newline) after showing `prompt`. A Ctrl-C
  // gives `interrupted`; *had_text says whether the line held text then
  // (it is discarded).
  Result next(const std::string& prompt, std::string& out, bool* had_text = nullptr);
  // Adds a sent line to the history (and the history file).
  void remember(const std::string& line);
  bool terminal() const;

  // $XDG_STATE_HOME/slm/history (default ~/.local/state/slm/history); empty
  // when no home is known.
  static std::string default_history_file();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm::cli
