// slm tokenize -m MODEL "text" [--no-bos] [--no-special] [--json]: the ids
// (and vocabulary pieces) the model's tokenizer gives a text.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

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
  std::string text;
  std::string file;
  bool no_bos = false;
  bool no_special = false;
  bool json = false;
};

int run_tokenize(const TokenizeOptions& o) {
  std::string text = o.text;
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open", o.file));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else if (text == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
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
    fmt::print(stderr, "{} tokens\n", ids.size());
  }
  return 0;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand("tokenize", "Show the token ids of a text");
  sub->add_option("-m,--model", opts->model, "GGUF model or vocabulary file")->required();
  sub->add_option("text", opts->text, "Text to tokenize ('-' reads stdin)");
  sub->add_option("-f,--file", opts->file, "Read the text from a file");
  sub->add_flag("--no-bos", opts->no_bos, "Add no BOS/EOS tokens");
  sub->add_flag("--no-special", opts->no_special, "Treat special-token text like <|user|> as plain text");
  sub->add_flag("--json", opts->json, "Print {\"ids\": [...], \"pieces\": [...]}");
  return [opts]() { return run_tokenize(*opts); };
}

}  // namespace slm::cli
