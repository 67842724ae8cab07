#include "serve_request.h"

#include <fmt/format.h>

namespace slm::cli {

using nlohmann::json;

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", nullptr}}}};
}

ApiError bad(std::string param, std::string message) { return {400, std::move(message), std::move(param)}; }

// ---- request fields: each checked for type and range, naming the field.

json parse_body(const std::string& text) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) throw bad("", "the request body is not valid JSON (or not valid UTF-8)");
  if (!body.is_object()) throw bad("", "the request body must be a JSON object");
  return body;
}

std::optional<double> number(const json& body, const char* key, double min, double max) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number()) throw bad(key, fmt::format("'{}' must be a number", key));
  const double x = v.get<double>();
  if (!(x >= min && x <= max)) throw bad(key, fmt::format("'{}' must be between {} and {}", key, min, max));
  return x;
}

std::optional<int64_t> integer(const json& body, const char* key, int64_t min, int64_t max) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number_integer()) throw bad(key, fmt::format("'{}' must be an integer", key));
  // JSON reads every non-negative literal as unsigned: compare it as such
  // (it may exceed int64), and check both bounds either way.
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(max) : v.get<int64_t>() > max)
    throw bad(key, fmt::format("'{}' must be at most {}", key, max));
  const int64_t value = v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  if (value < min) throw bad(key, fmt::format("'{}' must be at least {}", key, min));
  return value;
}

bool boolean(const json& body, const char* key, bool fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_boolean()) throw bad(key, fmt::format("'{}' must be true or false", key));
  return body[key].get<bool>();
}

// The sampling and length fields both endpoints share, over the server's
// defaults (the command line's flags).
GenerateParams generation(const json& body, const GenerateParams& defaults, int64_t default_max_tokens) {
  GenerateParams p = defaults;
  SamplerParams& s = p.sampling;
  if (auto v = number(body, "temperature", 0, 100)) s.temperature = static_cast<float>(*v);
  if (auto v = number(body, "top_p", 0, 1)) s.top_p = static_cast<float>(*v);
  if (auto v = integer(body, "top_k", 0, 1 << 30)) s.top_k = static_cast<int>(*v);
  if (auto v = number(body, "min_p", 0, 1)) s.min_p = static_cast<float>(*v);
  if (auto v = number(body, "repeat_penalty", 0.01, 100)) s.repeat_penalty = static_cast<float>(*v);
  if (auto v = number(body, "presence_penalty", -2, 2)) s.presence_penalty = static_cast<float>(*v);
  if (auto v = number(body, "frequency_penalty", -2, 2)) s.frequency_penalty = static_cast<float>(*v);
  if (body.contains("seed") && !body["seed"].is_null()) {
    const json& v = body["seed"];
    if (!v.is_number_integer()) throw bad("seed", "'seed' must be an integer");
    s.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
  }
  p.max_tokens = default_max_tokens;
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (auto v = integer(body, key, 1, int64_t{1} << 40)) p.max_tokens = *v;
  p.ignore_eos = boolean(body, "ignore_eos", defaults.ignore_eos);  // llama-server's name
  if (auto n = integer(body, "n", 1, 1000); n && *n != 1) throw bad("n", "'n' must be 1: slm returns one choice");
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& v = body["stop"];
    std::vector<std::string> stops;
    if (v.is_string()) {
      stops.push_back(v.get<std::string>());
    } else if (v.is_array() && v.size() <= 16) {
      for (const json& x : v) {
        if (!x.is_string()) throw bad("stop", "'stop' must be a string or an array of strings");
        stops.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or an array of at most 16 strings");
    }
    for (const std::string& t : stops)
      if (t.empty()) throw bad("stop", "'stop' strings must not be empty");
    p.stop.insert(p.stop.end(), stops.begin(), stops.end());
  }
  return p;
}

// messages: [{role, content}], content a string or an array of text parts.
std::vector<ChatMessage> messages_of(const json& body) {
  if (!body.contains("messages")) throw bad("messages", "'messages' is required");
  const json& v = body["messages"];
  if (!v.is_array() || v.empty()) throw bad("messages", "'messages' must be a non-empty array");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw bad(at, fmt::format("'{}' must be an object", at));
    if (!m.contains("role") || !m["role"].is_string()) throw bad(at + ".role", fmt::format("'{}.role' must be a string", at));
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for it
    if (role != "system" && role != "user" && role != "assistant")
      throw bad(at + ".role", fmt::format("'{}.role' is '{}': slm takes system, user and assistant messages", at, role));
    std::string content;
    const json c = m.contains("content") ? m["content"] : json(nullptr);
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {
      for (const json& part : c) {
        const bool text_part = part.is_object() && part.contains("type") && part["type"].is_string() &&
                               part["type"].get<std::string>() == "text" && part.contains("text") &&
                               part["text"].is_string();
        if (!text_part)
          throw bad(at + ".content", fmt::format("'{}.content' parts must be {{\"type\": \"text\", \"text\": ...}}: "
                                                 "slm reads text only",
                                                 at));
        content += part["text"].get<std::string>();
      }
    } else if (!(c.is_null() && role == "assistant")) {
      throw bad(at + ".content", fmt::format("'{}.content' must be a string or an array of text parts", at));
    }
    out.push_back({role, content});
  }
  return out;
}

std::string prompt_of(const json& body) {
  if (!body.contains("prompt")) throw bad("prompt", "'prompt' is required");
  const json& v = body["prompt"];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array() && v.size() == 1 && v[0].is_string()) return v[0].get<std::string>();
  throw bad("prompt", "'prompt' must be a string (or an array of one string)");
}

}  // namespace slm::cli
