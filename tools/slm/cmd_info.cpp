// slm info MODEL.gguf [--tensors] [--json]: what a model file holds.
#include <algorithm>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "model_dir.h"
#include "model/model.h"
#include "slm/error.h"
#include "slm/model.h"
#include "gguf/gguf_reader.h"

namespace slm::cli {
namespace {

using gguf::GgufFile;
using gguf::Value;
using gguf::ValueType;
using nlohmann::json;

struct InfoOptions {
  std::string model;
  std::string model_flag;
  bool tensors = false;
  bool json = false;
};

// {"type": "uint32", "value": 4096} or {"type": "array", "elem": "string", "len": 512}.
json value_json(const Value& v) {
  json j;
  j["type"] = std::string(gguf::value_type_name(v.type()));
  if (v.is_array()) {
    j["elem"] = std::string(gguf::value_type_name(v.elem_type()));
    j["len"] = v.size();
  } else if (const std::string* s = v.to_string()) {
    j["value"] = *s;
  } else if (const auto b = v.to_bool()) {
    j["value"] = *b;
  } else if (v.is_float()) {
    j["value"] = *v.to_double();
  } else if (v.type() == ValueType::U64) {
    j["value"] = *v.to_uint();
  } else {
    j["value"] = *v.to_int();
  }
  return j;
}

// A short one-line rendering for the text report.
std::string value_text(const Value& v) {
  if (v.is_array()) return fmt::format("[{} x {}]", v.size(), gguf::value_type_name(v.elem_type()));
  if (const std::string* s = v.to_string()) {
    std::string shown = s->size() > 60 ? s->substr(0, 57) + "..." : *s;
    for (char& c : shown) {
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return fmt::format("\"{}\"", shown);
  }
  if (const auto b = v.to_bool()) return *b ? "true" : "false";
  if (v.is_float()) return fmt::format("{:g}", *v.to_double());
  if (v.type() == ValueType::U64) return fmt::format("{}", *v.to_uint());
  return fmt::format("{}", *v.to_int());
}

std::string file_type_text(const GgufFile& f) {
  const auto ft = f.get_u32("general.file_type");
  if (!ft) return "unknown";
  const auto name = file_type_name(*ft);
  if (!name) return fmt::format("unrecognised ({})", *ft);
  return fmt::format("{} ({} {})", short_type_name(*name), *name, *ft);
}

// Whether slm runs the file, with what chat format, and the memory it takes
// at the default context (weights + f16 KV cache).
struct RunSummary {
  bool supported = false;
  std::string why_not;
  std::string chat_template;
  int64_t n_ctx = 0;
  uint64_t weight_bytes = 0, kv_bytes = 0;
};

RunSummary run_summary(const std::string& path) {
  RunSummary r;
  try {
    const auto m = model::Model::load(path);
    const model::HParams& hp = m->hparams();
    r.supported = true;
    r.n_ctx = std::min<int64_t>(hp.n_ctx_train, 4096);  // ContextParams' default
    r.weight_bytes = m->weight_bytes();
    for (const model::LayerSpec& l : hp.layers) {
      const int64_t rows = l.window > 0 ? std::min(r.n_ctx, l.window + 511) : r.n_ctx;  // rings: window + batch - 1
      r.kv_bytes += 2 * static_cast<uint64_t>(rows * hp.kv_dim()) * 2;
    }
    try {
      r.chat_template = Model::load(path)->chat_template().name();
    } catch (const Error&) {
      r.chat_template = "(none: no usable tokenizer)";
    }
  } catch (const std::exception& e) {
    r.why_not = e.what();
  }
  return r;
}

struct TokenizerSummary {
  std::string model;
  uint64_t vocab_size = 0;
  std::optional<int64_t> bos, eos;
  bool has_chat_template = false;
};

TokenizerSummary tokenizer_summary(const GgufFile& f) {
  TokenizerSummary t;
  t.model = f.get_string("tokenizer.ggml.model", "");
  if (const Value* tokens = f.find("tokenizer.ggml.tokens")) t.vocab_size = tokens->size();
  t.bos = f.get_int("tokenizer.ggml.bos_token_id");
  t.eos = f.get_int("tokenizer.ggml.eos_token_id");
  t.has_chat_template = f.has("tokenizer.chat_template");
  return t;
}

std::string human_bytes(uint64_t n) {
  if (n >= (1ull << 30)) return fmt::format("{:.2f} GiB", n / double(1ull << 30));
  if (n >= (1ull << 20)) return fmt::format("{:.2f} MiB", n / double(1ull << 20));
  if (n >= (1ull << 10)) return fmt::format("{:.1f} KiB", n / double(1ull << 10));
  return fmt::format("{} B", n);
}

std::string human_count(uint64_t n) {
  if (n >= 1000000000ull) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1000000ull) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1000ull) return fmt::format("{:.1f} K", n / 1e3);
  return fmt::format("{}", n);
}

uint64_t tensor_bytes(const GgufFile& f) {
  uint64_t n = 0;
  for (const auto& t : f.tensors()) n += t.n_bytes;
  return n;
}

void print_json(const GgufFile& f) {
  json j;
  j["file"] = f.path();
  j["file_size"] = f.file_size();
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["data_offset"] = f.data_offset();
  j["architecture"] = f.architecture();
  j["name"] = f.get_string("general.name", "");
  const auto ft = f.get_u32("general.file_type");
  j["file_type"] = ft ? json(*ft) : json(nullptr);
  const auto ft_name = ft ? file_type_name(*ft) : std::nullopt;
  j["file_type_name"] = ft_name ? json(std::string(*ft_name)) : json(nullptr);
  j["n_params"] = f.n_parameters();
  j["tensor_bytes"] = tensor_bytes(f);
  j["n_tensors"] = f.tensors().size();
  j["n_kv"] = f.metadata().size();
  const TokenizerSummary tok = tokenizer_summary(f);
  j["tokenizer"] = {{"model", tok.model},
                    {"vocab_size", tok.vocab_size},
                    {"bos_token_id", tok.bos ? json(*tok.bos) : json(nullptr)},
                    {"eos_token_id", tok.eos ? json(*tok.eos) : json(nullptr)},
                    {"chat_template", tok.has_chat_template}};
  json hparams = json::object();
  const std::string prefix = f.architecture() + ".";
  json kv = json::object();
  for (const auto& [key, value] : f.metadata()) {
    kv[key] = value_json(value);
    if (!f.architecture().empty() && key.rfind(prefix, 0) == 0 && !value.is_array()) {
      hparams[key.substr(prefix.size())] = kv[key]["value"];
    }
  }
  j["hparams"] = hparams;
  j["kv"] = kv;
  json tensors = json::array();
  for (const auto& t : f.tensors()) {
    tensors.push_back({{"name", t.name},
                       {"type", std::string(dtype_name(t.type))},
                       {"ne", t.ne},
                       {"n_bytes", t.n_bytes},
                       {"offset", t.file_offset}});
  }
  j["tensors"] = tensors;
  const RunSummary run = run_summary(f.path());
  j["file_type_short"] = ft_name ? json(short_type_name(*ft_name)) : json(nullptr);
  j["supported"] = run.supported;
  if (run.supported) {
    j["chat_template_used"] = run.chat_template;
    j["memory"] = {{"context", run.n_ctx}, {"weights", run.weight_bytes}, {"kv_cache_f16", run.kv_bytes}};
  } else {
    j["unsupported_because"] = run.why_not;
  }
  // Metadata strings need not be valid UTF-8: replace bad bytes rather than fail.
  fmt::print("{}\n", j.dump(1, ' ', false, json::error_handler_t::replace));
}

void print_text(const GgufFile& f, bool with_tensors) {
  const uint64_t n_params = f.n_parameters();
  const uint64_t weight_bytes = tensor_bytes(f);
  fmt::print("file:          {} ({})\n", f.path(), human_bytes(f.file_size()));
  fmt::print("format:        GGUF v{}, alignment {}, {} tensors, {} metadata keys\n", f.version(), f.alignment(),
             f.tensors().size(), f.metadata().size());
  fmt::print("architecture:  {}\n", f.architecture().empty() ? "(none)" : f.architecture());
  fmt::print("name:          {}\n", f.get_string("general.name", "(none)"));
  fmt::print("file type:     {}\n", file_type_text(f));
  const RunSummary run = run_summary(f.path());
  if (run.supported) {
    fmt::print("slm runs it:   yes, chat template {}\n", run.chat_template);
    fmt::print("memory:        {} = weights {} + KV cache {} (f16, default context of {})\n",
               human_bytes(run.weight_bytes + run.kv_bytes), human_bytes(run.weight_bytes), human_bytes(run.kv_bytes),
               run.n_ctx);
  } else {
    fmt::print("slm runs it:   no: {}\n", run.why_not);
  }
  fmt::print("parameters:    {} ({})\n", human_count(n_params), n_params);
  if (n_params > 0) {
    fmt::print("weights:       {}, {:.2f} bits per weight\n", human_bytes(weight_bytes),
               8.0 * weight_bytes / static_cast<double>(n_params));
  }

  const std::string prefix = f.architecture() + ".";
  if (!f.architecture().empty()) {
    fmt::print("\nhyperparameters ({}.*):\n", f.architecture());
    for (const auto& [key, value] : f.metadata()) {
      if (key.rfind(prefix, 0) == 0) fmt::print("  {:<40} {}\n", key.substr(prefix.size()), value_text(value));
    }
  }

  const TokenizerSummary tok = tokenizer_summary(f);
  fmt::print("\ntokenizer:\n");
  fmt::print("  {:<40} {}\n", "model", tok.model.empty() ? "(none)" : tok.model);
  fmt::print("  {:<40} {}\n", "vocab size", tok.vocab_size);
  fmt::print("  {:<40} {}\n", "bos token id", tok.bos ? fmt::format("{}", *tok.bos) : "(none)");
  fmt::print("  {:<40} {}\n", "eos token id", tok.eos ? fmt::format("{}", *tok.eos) : "(none)");
  fmt::print("  {:<40} {}\n", "chat template", tok.has_chat_template ? "yes" : "no");

  fmt::print("\nother metadata:\n");
  for (const auto& [key, value] : f.metadata()) {
    if ((!f.architecture().empty() && key.rfind(prefix, 0) == 0) || key == "general.architecture" ||
        key == "general.name" || key == "general.file_type") {
      continue;
    }
    fmt::print("  {:<40} {}\n", key, value_text(value));
  }

  if (with_tensors) {
    fmt::print("\ntensors:\n  {:<40} {:<8} {:<24} {:>12} {:>12}\n", "name", "type", "ne", "bytes", "offset");
    for (const auto& t : f.tensors()) {
      fmt::print("  {:<40} {:<8} {:<24} {:>12} {:>12}\n", t.name, dtype_name(t.type), fmt::format("{}", fmt::join(t.ne, " x ")),
                 t.n_bytes, t.file_offset);
    }
  }
}

}  // namespace

Command add_info(CLI::App& app) {
  auto opts = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand("info", "Describe a GGUF model file: architecture, hyperparameters, tokenizer, tensors");
  sub->add_option("file", opts->model, "GGUF file, or a model's name in the model folder");
  sub->add_option("-m,--model", opts->model_flag, "The same as the positional argument");
  sub->add_flag("--tensors", opts->tensors, "Also list every tensor (name, type, dims, bytes, offset)");
  sub->add_flag("--json", opts->json, "Print everything as one JSON object");
  return [opts]() {
    if (opts->model.empty() && opts->model_flag.empty()) throw UsageError("which model? (slm info MODEL, or -m MODEL)");
    if (!opts->model.empty() && !opts->model_flag.empty() && opts->model != opts->model_flag)
      throw UsageError(fmt::format("two models given: -m {} and {}", opts->model_flag, opts->model));
    const GgufFile file(resolve_model(opts->model.empty() ? opts->model_flag : opts->model));
    if (opts->json) {
      print_json(file);
    } else {
      print_text(file, opts->tensors);
    }
    return 0;
  };
}

}  // namespace slm::cli
