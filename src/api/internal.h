// What the public pimpl classes hold (src/api only).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/model.h"
#include "slm/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace slm {

struct Tokenizer::Impl {
  std::optional<text::Tokenizer> tok;
  std::string missing;  // why there is no tokenizer ("" when there is one)
  const text::Tokenizer& get() const;
};

struct ChatTemplate::Impl {
  text::ChatTemplate tpl;
  const Tokenizer* tokenizer;
};

struct Model::Impl {
  std::unique_ptr<model::Model> model;
  ModelInfo info;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat;
};

}  // namespace slm
