// slm tokenize -m MODEL "text" [--no-bos] [--no-special] [--json]: the ids
// (and vocabulary pieces) the model's tokenizer gives a text.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "gguf/gguf_reader.h"
#include "slm/error.h"
#include "tokenizer/tokenizer.h"

namespace slm::cli {
using text::Tokenizer;
using text::TokenId;
namespace {

struct TokenizeOptions {
  std::string model;
  std::vector<std::string> args;  // [MODEL] [TEXT]: the model positionally when -m is not given
  std::string text;
  bool text_given = false;
  std::string file;
  bool no_bos = false;
  bool no_special = false;
  bool json = false;
};

int run_tokenize(TokenizeOptions o) {
  // slm tokenize -m MODEL [TEXT] or slm tokenize MODEL [TEXT].
  const size_t max_args = o.model.empty() ? 2 : 1;
  if (o.args.size() > max_args)
    throw UsageError(fmt::format("tokenize takes {}one text; got {} arguments (quote a text with spaces)",
                                 o.model.empty() ? "a model and " : "", o.args.size()));
  if (o.model.empty()) {
    if (o.args.empty()) throw UsageError("tokenize needs a model (-m MODEL or the first argument)");
    o.model = o.args.front();
    o.args.erase(o.args.begin());
  }
  o.text_given = !o.args.empty();
  if (o.text_given) o.text = o.args.front();
  if (o.text_given && !o.file.empty()) throw UsageError("tokenize takes a text or -f FILE, not both");
  std::string text = o.text;
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open", o.file));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else if (text == "-" || (!o.text_given && !isatty(STDIN_FILENO))) {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else if (!o.text_given) {
    throw UsageError("tokenize needs a text: an argument, -f FILE, or stdin ('-' or a pipe)");
  }
  const gguf::GgufFile file(o.model);
  const Tokenizer tokenizer(file);
  const std::vector<TokenId> ids = tokenizer.encode(text, !o.no_bos, !o.no_special);
  if (o.json) {
    nlohmann::json j;
    j["ids"] = ids;
    nlohmann::json pieces = nlohmann::json::array();
    for (TokenId id : ids) pieces.push_back(tokenizer.token_text(id));
    j["pieces"] = pieces;
    fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    for (TokenId id : ids) fmt::print("{:>7} '{}'\n", id, tokenizer.token_text(id));
    fmt::print(stderr, "{} token{}\n", ids.size(), ids.size() == 1 ? "" : "s");
  }
  return 0;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand("tokenize", "Show the token ids of a text");
  sub->add_option("-m,--model", opts->model, "GGUF model or vocabulary file (or give it as the first argument)");
  sub->add_option("args", opts->args, "[MODEL] TEXT: the text to tokenize ('-', or none with a pipe, reads stdin)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("-f,--file", opts->file, "Read the text from a file");
  sub->add_flag("--no-bos", opts->no_bos, "Add no BOS/EOS tokens");
  sub->add_flag("--no-special", opts->no_special, "Treat special-token text like <|user|> as plain text");
  sub->add_flag("--json", opts->json, "Print {\"ids\": [...], \"pieces\": [...]}");
  return [opts]() { return run_tokenize(*opts); };  // a copy: the positionals are resolved in it
}

}  // namespace slm::cli
