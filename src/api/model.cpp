// Public Model, Tokenizer, Detokenizer and ChatTemplate over the internal
// model and text layers.
#include "slm/model.h"

#include <fmt/format.h>

#include "api/internal.h"
#include "core/dtype.h"
#include "core/log.h"
#include "model/cuda/cuda_backend.h"
#include "slm/error.h"

namespace slm {

// ---- Tokenizer

const text::Tokenizer& Tokenizer::Impl::get() const {
  if (!tok) throw Error(missing);
  return *tok;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  return impl_->get().encode(text, add_bos, parse_special);
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids) const {
  for (TokenId id : ids)
    if (!impl_->get().is_valid(id)) throw Error(fmt::format("decode: token id {} is out of range", id));
  return impl_->get().decode(ids);
}

std::string Tokenizer::piece(TokenId id) const {
  if (!impl_->get().is_valid(id)) throw Error(fmt::format("token id {} is out of range", id));
  return impl_->get().token_to_piece(id);
}

int32_t Tokenizer::n_vocab() const { return impl_->get().n_vocab(); }
std::optional<TokenId> Tokenizer::bos() const { return impl_->get().bos(); }
std::optional<TokenId> Tokenizer::eos() const { return impl_->get().eos(); }
bool Tokenizer::is_control(TokenId id) const { return impl_->get().is_control(id); }

// ---- Detokenizer

struct Detokenizer::Impl {
  explicit Impl(const text::Tokenizer& t) : stream(t), tok(t) {}
  text::StreamingDetokenizer stream;
  const text::Tokenizer& tok;
};

Detokenizer::Detokenizer(const Tokenizer& tokenizer) : impl_(std::make_unique<Impl>(tokenizer.impl().get())) {}
Detokenizer::~Detokenizer() = default;
std::string Detokenizer::push(TokenId id) {
  if (!impl_->tok.is_valid(id)) throw Error(fmt::format("token id {} is out of range", id));
  return impl_->stream.push(id);
}
std::string Detokenizer::flush() { return impl_->stream.flush(); }
void Detokenizer::reset() { impl_->stream.reset(); }

// ---- ChatTemplate

ChatTemplate::ChatTemplate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatTemplate::~ChatTemplate() = default;

std::string ChatTemplate::name() const { return std::string(impl_->tpl.name()); }

std::vector<std::string> ChatTemplate::names() {
  std::vector<std::string> out;
  for (std::string_view n : text::chat_format_names()) out.emplace_back(n);
  return out;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::vector<text::ChatMessage> m;
  m.reserve(messages.size());
  for (const auto& msg : messages) m.push_back({msg.role, msg.content});
  return impl_->tpl.render(m, add_generation_prompt);
}

std::vector<TokenId> ChatTemplate::stop_tokens() const {
  return impl_->tpl.stop_tokens(impl_->tokenizer->impl().get());
}

std::vector<std::string> ChatTemplate::stop_texts() const { return impl_->tpl.stop_texts(); }

std::vector<TokenId> ChatTemplate::tokenize(const std::string& rendered) const {
  return impl_->tokenizer->impl().get().encode_chat(rendered);
}

// ---- Model

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

bool cuda_available(std::string* why_not) { return model::cuda::available(why_not); }

std::shared_ptr<const Model> Model::load(const std::string& path, const ModelParams& params) {
  auto impl = std::make_unique<Impl>();
  const bool cuda = params.device == Device::cuda || (params.device == Device::automatic && cuda_available());
  impl->model = model::Model::load(path, cuda ? model::Device::cuda : model::Device::cpu,
                                   FileAccess{params.use_mmap, params.use_mlock});
  const model::Model& m = *impl->model;
  const gguf::GgufFile& f = m.file();
  const model::HParams& hp = m.hparams();

  ModelInfo& info = impl->info;
  info.path = path;
  info.architecture = hp.arch;
  info.name = hp.name;
  const auto ft = file_type_name(static_cast<uint32_t>(f.get_int("general.file_type", 0)));
  info.file_type = ft ? std::string(*ft) : "unknown";
  info.file_bytes = f.file_size();
  info.device = m.device_name();
  info.n_params = f.n_parameters();
  info.n_vocab = hp.n_vocab;
  info.n_ctx_train = hp.n_ctx_train;
  info.n_embd = hp.n_embd;
  info.n_layer = hp.n_layer;
  info.n_head = hp.n_head;
  info.n_head_kv = hp.n_head_kv;

  auto tok = std::make_unique<Tokenizer::Impl>();
  try {
    tok->tok.emplace(f);
    if (tok->tok->n_vocab() != hp.n_vocab)
      throw Error(fmt::format("{}: vocabulary has {} tokens but token_embd has {} rows", path, tok->tok->n_vocab(),
                              hp.n_vocab));
  } catch (const Error& e) {
    // Logits still work without a tokenizer; text in or out does not.
    tok->tok.reset();
    tok->missing = fmt::format("{} has no usable tokenizer: {}", path, e.what());
    logger().warn("{}", tok->missing);
  }
  impl->tokenizer = std::make_unique<Tokenizer>(std::move(tok));
  text::ChatTemplate tpl =
      text::ChatTemplate::for_model(f, impl->tokenizer->impl().tok ? &*impl->tokenizer->impl().tok : nullptr);
  if (!params.chat_template.empty()) {
    auto format = text::chat_format_from_name(params.chat_template);
    if (!format) format = text::detect_chat_format(params.chat_template);
    if (!format)
      throw Error(fmt::format("chat template '{}' is not one slm knows (by name: {}; or a Jinja template of one of them)",
                              params.chat_template.size() > 40 ? params.chat_template.substr(0, 40) + "..."
                                                               : params.chat_template,
                              fmt::join(ChatTemplate::names(), ", ")));
    tpl = text::ChatTemplate(*format);
  }
  auto chat = std::make_unique<ChatTemplate::Impl>(ChatTemplate::Impl{tpl, impl->tokenizer.get()});
  impl->chat = std::make_unique<ChatTemplate>(std::move(chat));

  if (params.on_progress) {
    // Read one byte per page of every tensor so the first token is not
    // slowed by page faults, reporting progress by bytes.
    const uint64_t total = m.weight_bytes();
    uint64_t done = 0, last_report = 0;
    volatile uint8_t sink = 0;
    params.on_progress(0.0f);
    for (const auto& t : f.tensors()) {
      const uint8_t* p = f.tensor_data(t);
      for (uint64_t off = 0; off < t.n_bytes; off += 4096) sink = sink + p[off];
      done += t.n_bytes;
      if (done - last_report > total / 100) {
        params.on_progress(static_cast<float>(static_cast<double>(done) / static_cast<double>(total)));
        last_report = done;
      }
    }
    params.on_progress(1.0f);
  }
  return std::shared_ptr<const Model>(new Model(std::move(impl)));
}

const ModelInfo& Model::info() const { return impl_->info; }
const Tokenizer& Model::tokenizer() const { return *impl_->tokenizer; }
const ChatTemplate& Model::chat_template() const { return *impl_->chat; }

}  // namespace slm
