// slm run: one-shot completion, streamed to stdout.
// slm chat: interactive conversation in the terminal.
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <cstdlib>
#include <cstring>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "gen_options.h"
#include "line_editor.h"
#include "model_dir.h"
#include "core/log.h"
#include "cpu/parallel.h"
#include "slm/slm.h"

namespace slm::cli {

// A seed: decimal digits only, at most 2^64 - 1.
std::optional<uint64_t> parse_seed(const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  errno = 0;
  const unsigned long long x = std::strtoull(v.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return static_cast<uint64_t>(x);
}

void add_gen_options(CLI::App* sub, GenOptions& o) {
  sub->add_option("-m,--model", o.model,
                  "GGUF model file, or a model's name in the model folder (slm list); default: the default model");
  sub->add_option("-n,--n-predict", o.n_predict, "Most tokens to generate (-1 = until the end of the answer)")
      ->capture_default_str();
  sub->add_option("--temp", o.temp, "Temperature (0 = greedy)")->capture_default_str()->check(CLI::Range(0.0f, 100.0f));
  sub->add_option("--top-k", o.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str()
      ->check(CLI::Range(0, 1 << 30));
  sub->add_option("--top-p", o.top_p, "Nucleus sampling threshold (1 = off)")->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  sub->add_option("--min-p", o.min_p, "Drop tokens below min-p x the top probability (0 = off)")->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  sub->add_option("--repeat-penalty", o.repeat_penalty, "Penalty for recently seen tokens (1 = off)")
      ->capture_default_str()->check(CLI::Range(0.01f, 100.0f));
  sub->add_option("--repeat-last-n", o.repeat_last_n, "How many recent tokens the penalties look at")
      ->capture_default_str()->check(CLI::Range(0, 1 << 20));
  sub->add_option("--presence-penalty", o.presence_penalty, "Subtracted from every recently seen token's logit (0 = off)")
      ->capture_default_str()->check(CLI::Range(-2.0f, 2.0f));
  sub->add_option("--frequency-penalty", o.frequency_penalty,
                  "Subtracted per occurrence of a recently seen token (0 = off)")
      ->capture_default_str()->check(CLI::Range(-2.0f, 2.0f));
  sub->add_option("--seed", o.seed, "Random seed, 0 to 2^64-1 (-1 = random; --stats prints the one used)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "-1" || parse_seed(v)) return "";
            return "must be -1 (random) or an integer from 0 to 18446744073709551615, not '" + v + "'";
          },
          "SEED"));
  sub->add_option("-r,--reverse-prompt", o.reverse_prompts, "Stop when the answer produces this text (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);  // one text per -r: the words after it are the model and prompt
  sub->add_flag("--ignore-eos", o.ignore_eos, "Keep generating past end-of-text / end-of-turn tokens");
  sub->add_option("--system,--system-prompt", o.system, "System prompt (chat, and run --chat; also -sys)");
  sub->add_option("--chat-template", o.chat_template,
                  "Chat format by name (phi3, gemma, chatml, llama3, ...) or a file holding a Jinja chat template");
  sub->add_flag("--no-mmap", o.no_mmap, "Read the model into memory instead of mapping it");
  sub->add_flag("--mlock", o.mlock, "Keep the model's memory resident (never swapped or paged out)");
  sub->add_option("-t,--threads", o.threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  sub->add_option("-c,--ctx-size,--ctx", o.ctx, "Context length in tokens (0 = the model's, at most 4096)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  sub->add_option("-b,--batch-size,--batch", o.batch, "Prompt tokens per batch")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  add_kv_options(sub, o.kv);
  add_device_options(sub, o.device);
}

void add_kv_options(CLI::App* sub, KvOptions& o) {
  const auto types = CLI::IsMember({"f16", "f32", "q8_0"});
  sub->add_option("--kv,--cache-type", o.both, "KV cache type: f16 (default), f32 or q8_0 (half the memory of f16)")
      ->check(types);
  sub->add_option("--cache-type-k", o.k, "K cache type, overriding --kv (also -ctk)")->check(types);
  sub->add_option("--cache-type-v", o.v, "V cache type, overriding --kv (also -ctv)")->check(types);
}

SamplerParams sampler_params(const GenOptions& o) {
  SamplerParams p;
  p.temperature = o.temp;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  p.min_p = o.min_p;
  p.repeat_penalty = o.repeat_penalty;
  p.presence_penalty = o.presence_penalty;
  p.frequency_penalty = o.frequency_penalty;
  p.penalty_last_n = o.repeat_last_n;
  if (o.seed != "-1") p.seed = parse_seed(o.seed);
  return p;
}

GenerateParams generate_params(const GenOptions& o) {
  GenerateParams gp;
  gp.sampling = sampler_params(o);
  gp.stop = o.reverse_prompts;
  gp.ignore_eos = o.ignore_eos;
  return gp;
}

SessionParams session_params(const GenOptions& o) {
  SessionParams sp;
  sp.n_ctx = o.ctx;
  sp.n_threads = o.threads;
  sp.n_batch = o.batch;
  sp.type_k = o.kv.type_k();
  sp.type_v = o.kv.type_v();
  return sp;
}

// Loads a model; on a terminal, files over 256 MiB show a progress line.
// --chat-template: a format name, or a file holding a Jinja template.
static std::string chat_template_arg(const std::string& arg) {
  const std::vector<std::string> names = ChatTemplate::names();
  if (arg.empty() || std::find(names.begin(), names.end(), arg) != names.end()) return arg;
  std::error_code ec;
  std::ifstream in(arg, std::ios::binary);
  if (!in || !std::filesystem::is_regular_file(arg, ec))
    throw UsageError(fmt::format("--chat-template: '{}' is neither a format slm knows ({}) nor a readable file", arg,
                                 fmt::join(ChatTemplate::names(), ", ")));
  std::string text(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>{});
  if (text.empty()) throw UsageError(fmt::format("--chat-template: '{}' is empty", arg));
  return text;
}

std::shared_ptr<const Model> load_model(const GenOptions& o) {
  if (!o.model.empty() && !o.model_positional.empty() && o.model != o.model_positional)
    throw UsageError(fmt::format("two models given: -m {} and {}", o.model, o.model_positional));
  const std::string path = resolve_model(o.model.empty() ? o.model_positional : o.model);
  const DeviceOptions& device = o.device;
  ModelParams mp;
  mp.device = device_of(device);
  mp.chat_template = chat_template_arg(o.chat_template);
  mp.use_mmap = !o.no_mmap;
  mp.use_mlock = o.mlock;
  std::ifstream probe(path, std::ios::binary | std::ios::ate);
  const bool big = probe && probe.tellg() > (std::streamoff{256} << 20);
  if (big && isatty(STDERR_FILENO)) {
    mp.on_progress = [](float f) {
      fmt::print(stderr, "\rloading {:3.0f}%", 100.0f * f);
      if (f >= 1.0f) fmt::print(stderr, "\r            \r");
      std::fflush(stderr);
    };
  }
  auto model = Model::load(path, mp);
  check_gpu_layers(device, model->info().n_layer);
  if (o.ctx > model->info().n_ctx_train)
    fmt::print(stderr, "slm: warning: -c {} is above the {} tokens {} was trained on; answers past that may degrade\n",
               o.ctx, model->info().n_ctx_train, model->info().name.empty() ? path : model->info().name);
  return model;
}

namespace {

// Ctrl-C: the first press stops the current answer; handled by polling.
std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) { g_interrupted.store(true); }

void install_sigint() {
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR, so Ctrl-C at the prompt is seen
  sigaction(SIGINT, &sa, nullptr);
}

// Set when writing the answer failed (a full disk, a closed pipe): its errno.
int g_write_error = 0;

// Streams a piece to stdout; false (stop) once Ctrl-C was pressed or the
// output cannot be written.
bool stream_to_stdout(std::string_view piece) {
  if (std::fwrite(piece.data(), 1, piece.size(), stdout) != piece.size() || std::fflush(stdout) != 0) {
    g_write_error = errno != 0 ? errno : EIO;
    return false;
  }
  return !g_interrupted.load();
}

// After an answer: a failed write is an error, a Ctrl-C exits with 130.
void finish_output(const GenerateResult& r) {
  std::fputc('\n', stdout);
  if ((std::fflush(stdout) != 0 || std::ferror(stdout)) && g_write_error == 0) g_write_error = errno != 0 ? errno : EIO;
  if (g_write_error != 0) throw Error(fmt::format("cannot write the answer to stdout: {}", std::strerror(g_write_error)));
  if (r.stop == StopReason::callback && g_interrupted.load()) throw Interrupted{};
}

void print_stats(const GenerateResult& r) {
  const int64_t evaluated = r.n_prompt - r.n_reused;
  fmt::print(stderr, "\nseed: {}", r.seed);
  fmt::print(stderr, "\nprompt: {} tokens ({} reused) in {:.2f} s, {:.1f} tok/s\n", r.n_prompt, r.n_reused,
             r.prompt_seconds, r.prompt_seconds > 0 ? static_cast<double>(evaluated) / r.prompt_seconds : 0.0);
  fmt::print(stderr, "generation: {} tokens in {:.2f} s, {:.1f} tok/s\n", r.n_generated, r.generate_seconds,
             r.generate_seconds > 0 ? static_cast<double>(r.n_generated) / r.generate_seconds : 0.0);
}

// ---------------------------------------------------------------------------
// run

struct RunOptions : GenOptions {
  std::string prompt;
  std::vector<std::string> positionals;  // [MODEL] [PROMPT]
  std::string file;
  bool chat = false;
  bool stats = false;
};

// `slm run [MODEL] [PROMPT]`: two positionals are the model and the prompt;
// one is the model when -p / -f gives the prompt or it names a .gguf file,
// else the prompt (for the default model).
void resolve_positionals(RunOptions& o) {
  // A model: an existing file named *.gguf (any case), not a prompt that mentions one.
  auto is_model = [](const std::string& a) {
    if (a.size() <= 5) return false;
    std::string ext = a.substr(a.size() - 5);
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::error_code ec;
    return ext == ".gguf" && std::filesystem::is_regular_file(a, ec);
  };
  if (o.positionals.size() > 2)
    throw UsageError(fmt::format("too many arguments: '{}' (quote a prompt with spaces)", o.positionals[2]));
  if (o.positionals.size() == 2) {
    o.model_positional = o.positionals[0];
    if (!o.prompt.empty()) throw UsageError("two prompts given: -p and a second argument");
    o.prompt = o.positionals[1];
  } else if (o.positionals.size() == 1) {
    const std::string& a = o.positionals[0];
    if ((!o.prompt.empty() || !o.file.empty() || is_model(a)) && o.model.empty())
      o.model_positional = a;
    else if (o.prompt.empty())
      o.prompt = a;
    else
      throw UsageError(fmt::format("unexpected argument '{}'", a));
  }
}

int run_run(RunOptions o, bool verbose) {
  const bool prompt_flag = !o.prompt.empty();
  resolve_positionals(o);
  if (!o.file.empty() && !o.prompt.empty())
    throw UsageError(fmt::format("two prompts given: -f {} and {}", o.file, prompt_flag ? "-p" : "a prompt argument"));
  if (!o.system.empty() && !o.chat) throw UsageError("--system applies to chat prompts: add --chat");
  std::string prompt = o.prompt;
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open the prompt file", o.file));
    prompt.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else if (prompt == "-") {
    prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (prompt.empty())
    throw UsageError("the prompt is empty (slm run MODEL \"PROMPT\", -p TEXT, -p - for stdin, or -f FILE)");
  const auto model = load_model(o);
  Session session(model, session_params(o));
  GenerateParams gp = generate_params(o);
  gp.max_tokens = o.n_predict < 0 ? session.n_ctx() : o.n_predict;
  install_sigint();
  std::vector<ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  messages.push_back({"user", prompt});
  const GenerateResult r =
      o.chat ? generate(session, messages, gp, stream_to_stdout) : generate(session, prompt, gp, stream_to_stdout);
  if (o.stats || verbose) print_stats(r);
  if (r.stop == StopReason::context_full)
    fmt::print(stderr, "slm: the context of {} tokens is full: the answer was cut short (a larger -c gives it room)\n",
               session.n_ctx());
  finish_output(r);
  return 0;
}

// ---------------------------------------------------------------------------
// chat

struct ChatOptions : GenOptions {
  bool stats = false;
  bool no_history = false;
};

const char* kChatHelp =
    "commands:\n"
    "  /help                 this list\n"
    "  /reset, /clear        forget the conversation (the system prompt stays)\n"
    "  /exit, /bye, /quit    leave (or Ctrl-D)\n"
    "  /set temp|top_k|top_p|min_p|seed VALUE    change sampling\n"
    "  /set system TEXT      a new system prompt (the conversation restarts)\n"
    "  /show                 model, chat template, context use, sampling\n"
    "  /save FILE            the conversation as JSON\n"
    "  /load FILE            a saved conversation, evaluated into the context\n"
    "input: \"\"\" opens and closes a multi-line message; a line ending in \\ continues;\n"
    "  //text sends a message that starts with /; pasted text (several lines too)\n"
    "  joins the message, which Enter then sends.\n"
    "keys: arrows, Home/End, Ctrl-A/E/W/U, up-arrow history; Ctrl-C stops an answer,\n"
    "  clears a typed line, and at an empty prompt exits.\n";

// A /set command: changes `sampling` (or the system prompt); the message to
// show, or an error text.
std::string apply_set(const std::string& args, SamplerParams& sampling, std::string& system) {
  const size_t sp = args.find(' ');
  const std::string key = args.substr(0, sp), value = sp == std::string::npos ? "" : args.substr(sp + 1);
  if (key == "system") {
    system = value;
    return value.empty() ? "(system prompt removed)" : "(system prompt set)";
  }
  if (value.empty()) return "usage: /set temp|top_k|top_p|min_p|seed VALUE, or /set system TEXT";
  try {
    size_t used = 0;
    if (key == "seed") {
      if (value == "-1") {
        sampling.seed.reset();
        return "(seed: random)";
      }
      const auto seed = parse_seed(value);
      if (!seed) return "seed must be an integer from 0 to 18446744073709551615";
      sampling.seed = *seed;
      return fmt::format("(seed {})", *seed);
    }
    const double v = std::stod(value, &used);
    if (used != value.size()) throw std::invalid_argument(value);
    if (key == "temp" && v >= 0 && v <= 100) sampling.temperature = static_cast<float>(v);
    else if (key == "top_k" && v >= 0 && v <= (1 << 30) && v == std::floor(v)) sampling.top_k = static_cast<int>(v);
    else if (key == "top_p" && v >= 0 && v <= 1) sampling.top_p = static_cast<float>(v);
    else if (key == "min_p" && v >= 0 && v <= 1) sampling.min_p = static_cast<float>(v);
    else return fmt::format("cannot set {} to {} (temp 0..100, top_k a whole number, top_p and min_p 0..1)", key, value);
    return fmt::format("({} = {})", key, value);
  } catch (const std::exception&) {
    return fmt::format("'{}' is not a number", value);
  }
}

// /save FILE: {"format": "slm-chat", "model": NAME, "messages": [{"role",
// "content"}, ...]}, the system prompt as the first message when there is
// one. Returns the line to show.
std::string save_conversation(const std::string& path, const std::string& model_name,
                              const std::vector<ChatMessage>& history) {
  if (path.empty()) return "usage: /save FILE";
  nlohmann::json messages = nlohmann::json::array();
  for (const ChatMessage& m : history) messages.push_back({{"role", m.role}, {"content", m.content}});
  const nlohmann::json doc = {{"format", "slm-chat"}, {"model", model_name}, {"messages", messages}};
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out.flush();
  if (!out) return fmt::format("(cannot write {}: {})", path, std::strerror(errno));
  return fmt::format("(saved {} message{} to {})", history.size(), history.size() == 1 ? "" : "s", path);
}

// /load FILE: the messages of a file written by /save (or any JSON object
// with such a "messages" array): roles system (first only), user and
// assistant, string contents. Returns an error line, or "" with `out` set.
std::string read_conversation(const std::string& path, std::vector<ChatMessage>& out) {
  if (path.empty()) return "usage: /load FILE";
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("(cannot read {}: {})", path, std::strerror(errno));
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
  if (doc.is_discarded()) return fmt::format("({} is not JSON (or not UTF-8): nothing loaded)", path);
  if (!doc.is_object() || !doc.contains("messages") || !doc["messages"].is_array())
    return fmt::format("({} has no \"messages\" array: nothing loaded)", path);
  out.clear();
  for (const nlohmann::json& m : doc["messages"]) {
    const size_t i = out.size();
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      return fmt::format("({}: message {} needs a string \"role\" and \"content\": nothing loaded)", path, i + 1);
    const std::string role = m["role"].get<std::string>();
    if (role != "user" && role != "assistant" && !(role == "system" && i == 0))
      return fmt::format("({}: message {} has role '{}' (user, assistant, or system first): nothing loaded)", path,
                         i + 1, role);
    out.push_back({role, m["content"].get<std::string>()});
  }
  return "";
}

// Why a system prompt can never fit the context beside the room kept for an
// answer (every message would then be refused), or "" when it can.
std::string system_prompt_misfit(const Model& model, const std::string& system, int64_t n_ctx, int64_t answer_room) {
  if (system.empty()) return {};
  const auto n = static_cast<int64_t>(
      model.chat_template().tokenize(model.chat_template().render({{"system", system}, {"user", ""}})).size());
  if (n + answer_room < n_ctx) return {};
  return fmt::format("the system prompt takes {} tokens; with {} kept for an answer the context of {} has no room "
                     "for a message (use a larger -c)",
                     n, answer_room, n_ctx);
}

int run_chat(const ChatOptions& o, bool verbose) {
  const auto model = load_model(o);
  Session session(model, session_params(o));
  GenerateParams gp = generate_params(o);
  // Room kept free for an answer when old turns must go.
  const int64_t answer_room = std::min<int64_t>(o.n_predict > 0 ? o.n_predict : 512, session.n_ctx() / 2);
  // A system prompt that can never fit is refused now, not at the first message.
  if (const std::string misfit = system_prompt_misfit(*model, o.system, session.n_ctx(), answer_room); !misfit.empty())
    throw Error(misfit);
  install_sigint();
  // The worker threads are created now with SIGINT (and the job-control and
  // resize signals the line editor handles) blocked — they inherit the mask —
  // so these are always delivered to this thread, where the line editor
  // waits for them in ppoll, and never lost on a worker.
  {
    sigset_t block, old;
    sigemptyset(&block);
    for (int sig : {SIGINT, SIGTSTP, SIGCONT, SIGWINCH}) sigaddset(&block, sig);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    const int n = session.params().n_threads;
    parallel_for(n, n, [](int64_t, int64_t) {});
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  fmt::print(stderr, "slm chat: {} ({}, {} template, context {}). /help for commands.\n", model->info().name.empty()
                                                                                              ? model->info().path
                                                                                              : model->info().name,
             model->info().architecture, model->chat_template().name(), session.n_ctx());
  std::string system = o.system;
  std::vector<ChatMessage> history;
  if (!system.empty()) history.push_back({"system", system});
  size_t kept = history.size();  // the system prompt is never dropped

  std::string line;
  LineEditor input(g_interrupted, o.no_history ? std::string() : LineEditor::default_history_file());
  std::string pending;      // a multi-line message being typed
  bool in_block = false;    // inside """ ... """
  while (true) {
    bool had_text = false;
    const LineEditor::Result got = input.next(in_block || !pending.empty() ? "... " : "> ", line, &had_text);
    if (got == LineEditor::Result::interrupted) {
      fmt::print("\n");
      std::fflush(stdout);
      g_interrupted.store(false);
      if (had_text || in_block || !pending.empty()) {  // Ctrl-C on a typed line: clear it
        pending.clear();
        in_block = false;
        continue;
      }
      throw Interrupted{};  // at an empty prompt: exit as interrupted
    }
    if (got == LineEditor::Result::eof) {  // Ctrl-D
      fmt::print("\n");
      if (in_block || !pending.empty()) fmt::print(stderr, "slm: an unfinished multi-line message was not sent\n");
      break;
    }
    if (got == LineEditor::Result::pasted) {  // part of the message: it goes with the next Enter
      pending += line + "\n";
      continue;
    }
    // From here a Ctrl-C belongs to this message's answer: one pressed while
    // old turns are dropped or the prompt is evaluated stops it too.
    g_interrupted.store(false);
    // Multi-line input: """ opens and closes a block; a trailing \ continues.
    // Only a single typed line can be a command.
    bool single = false;
    if (in_block) {
      const size_t close = line.rfind("\"\"\"");
      if (close == std::string::npos || close + 3 != line.size()) {
        pending += line + "\n";
        continue;
      }
      pending += line.substr(0, close);
      // A lone """ closes the block: the newline before it is not the message's.
      if (close == 0 && !pending.empty() && pending.back() == '\n') pending.pop_back();
      in_block = false;
      line.swap(pending);
      pending.clear();
    } else if (pending.empty() && line.rfind("\"\"\"", 0) == 0) {
      const std::string rest = line.substr(3);
      if (rest.size() >= 3 && rest.compare(rest.size() - 3, 3, "\"\"\"") == 0) {
        line = rest.substr(0, rest.size() - 3);  // """one line"""
      } else {
        in_block = true;
        pending = rest.empty() ? "" : rest + "\n";
        continue;
      }
    } else if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + "\n";
      continue;
    } else if (!pending.empty()) {
      line = pending + line;
      pending.clear();
    } else {
      single = true;
    }
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;  // nothing typed
    input.remember(line);
    if (single && line.rfind("//", 0) == 0) {
      line.erase(0, 1);  // //text: a message that starts with /
    } else if (single && line[0] == '/') {
      const size_t sp = line.find(' ');
      const std::string cmd = line.substr(0, sp), args = sp == std::string::npos ? "" : line.substr(sp + 1);
      if (cmd == "/exit" || cmd == "/quit" || cmd == "/bye") break;
      if (cmd == "/help") {
        fmt::print("{}", kChatHelp);
      } else if (cmd == "/reset" || cmd == "/clear") {
        history.resize(kept);
        session.reset();
        fmt::print("(conversation cleared)\n");
      } else if (cmd == "/set") {
        const std::string before = system;
        std::string message = apply_set(args, gp.sampling, system);
        if (const std::string misfit = system_prompt_misfit(*model, system, session.n_ctx(), answer_room); !misfit.empty()) {
          system = before;  // refused: the conversation goes on as it was
          message = "(" + misfit + "; the system prompt was not changed)";
        }
        fmt::print("{}\n", message);
        if (system != before) {  // a new system prompt: a new conversation
          history.clear();
          if (!system.empty()) history.push_back({"system", system});
          kept = history.size();
          session.reset();
        }
      } else if (cmd == "/show") {
        const SamplerParams& sp_ = gp.sampling;
        fmt::print("model: {} ({}, {})\nchat template: {}\ncontext: {} of {} tokens used\n"
                   "sampling: temp {}, top_k {}, top_p {}, min_p {}, repeat_penalty {}, seed {}\nsystem: {}\n",
                   model->info().name.empty() ? model->info().path : model->info().name, model->info().architecture,
                   model->info().device, model->chat_template().name(), session.n_past(), session.n_ctx(),
                   sp_.temperature, sp_.top_k, sp_.top_p, sp_.min_p, sp_.repeat_penalty,
                   sp_.seed ? fmt::format("{}", *sp_.seed) : std::string("random"), system.empty() ? "(none)" : system);
      } else if (cmd == "/save") {
        fmt::print("{}\n", save_conversation(args, model->info().name, history));
      } else if (cmd == "/load") {
        std::vector<ChatMessage> loaded;
        if (const std::string error = read_conversation(args, loaded); !error.empty()) {
          fmt::print("{}\n", error);
          continue;
        }
        // The conversation goes into the KV cache now, so the next message
        // evaluates only itself.
        const ChatTemplate& tpl = model->chat_template();
        const std::vector<TokenId> tokens = loaded.empty() ? std::vector<TokenId>{} : tpl.tokenize(tpl.render(loaded, false));
        if (static_cast<int64_t>(tokens.size()) + answer_room > session.n_ctx()) {
          fmt::print("(that conversation takes {} tokens; the context holds {} with room for an answer: not "
                     "loaded)\n",
                     tokens.size(), session.n_ctx());
          continue;
        }
        history = std::move(loaded);
        system = !history.empty() && history[0].role == "system" ? history[0].content : std::string();
        kept = system.empty() ? 0 : 1;
        session.reset();
        if (!tokens.empty()) session.evaluate(tokens);
        fmt::print("(loaded {} message{} from {}: {} tokens)\n", history.size(), history.size() == 1 ? "" : "s", args,
                   tokens.size());
      } else {
        fmt::print("unknown command {}\n{}", cmd, kChatHelp);
      }
      continue;
    }
    history.push_back({"user", line});
    // Drop the oldest turns (never the system prompt) until the prompt and
    // room for an answer fit.
    bool dropped = false, too_long = false;
    for (;;) {
      const auto n = static_cast<int64_t>(model->chat_template().tokenize(model->chat_template().render(history)).size());
      if (n + answer_room <= session.n_ctx()) break;
      if (history.size() <= kept + 1) {  // nothing left to drop but the new message
        too_long = n >= session.n_ctx();
        break;
      }
      // The oldest user message and the answer after it.
      history.erase(history.begin() + static_cast<std::ptrdiff_t>(kept));
      if (history.size() > kept + 1 && history[kept].role == "assistant")
        history.erase(history.begin() + static_cast<std::ptrdiff_t>(kept));
      dropped = true;
    }
    if (too_long) {
      fmt::print("(that message is too long for the context of {} tokens; it was not sent)\n", session.n_ctx());
      history.pop_back();
      continue;
    }
    if (dropped) fmt::print("(context full: dropped the oldest turns to make room)\n");
    gp.max_tokens = o.n_predict < 0 ? session.n_ctx() : o.n_predict;
    const GenerateResult r = generate(session, history, gp, stream_to_stdout);
    if (g_write_error != 0) throw Error(fmt::format("cannot write the answer to stdout: {}", std::strerror(g_write_error)));
    g_interrupted.store(false);  // a Ctrl-C that stopped this answer is used up
    fmt::print("\n");
    if (r.stop == StopReason::callback) fmt::print("(stopped)\n");
    if (r.stop == StopReason::context_full) fmt::print("(context full: the answer was cut short)\n");
    history.push_back({"assistant", r.text});
    if (o.stats || verbose) print_stats(r);
  }
  return 0;
}

}  // namespace

Command add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Complete a prompt, streaming the answer to stdout");
  add_gen_options(sub, *o);
  sub->add_option("args", o->positionals, "[MODEL] [PROMPT]: a model file or name, and the prompt")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("-p,--prompt", o->prompt, "Prompt text (- reads stdin)");
  sub->add_option("-f,--file", o->file, "Read the prompt from a file")->check(CLI::ExistingFile);
  sub->add_flag("--chat", o->chat, "Wrap the prompt in the model's chat template (as one user message)");
  sub->add_flag("--stats", o->stats, "Print prompt and generation speed to stderr");
  return [o] { return run_run(*o, logger().should_log(spdlog::level::debug)); };
}

Command add_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* sub = app.add_subcommand("chat", "Chat with a model in the terminal");
  add_gen_options(sub, *o);
  sub->add_option("model_arg", o->model_positional, "MODEL: a model file or name (the same as -m)");
  sub->add_flag("--stats", o->stats, "Print speed after each answer");
  sub->add_flag("--no-history", o->no_history,
                "Keep no input history in $XDG_STATE_HOME/slm/history (~/.local/state/slm/history)");
  return [o] { return run_chat(*o, logger().should_log(spdlog::level::debug)); };
}

}  // namespace slm::cli
