// The request side of slm serve's API: each field of a JSON body checked
// for type and range, a refusal naming the field (OpenAI's error body). No
// HTTP here, so the fuzz target (tests/fuzz/fuzz_serve_request.cpp) drives
// exactly what the server runs on a request body.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/slm.h"

namespace slm::cli {

// A request the API refuses: HTTP `status` with OpenAI's error body.
struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the request field at fault ("" = none)
  std::string type = "invalid_request_error";
};

nlohmann::json error_body(const ApiError& e);
ApiError bad(std::string param, std::string message);

// The body as a JSON object (ApiError otherwise: not JSON, not UTF-8, not an object).
nlohmann::json parse_body(const std::string& text);
// Optional fields: absent or null -> nullopt / fallback; wrong type or out
// of range -> ApiError naming the key.
std::optional<double> number(const nlohmann::json& body, const char* key, double min, double max);
std::optional<int64_t> integer(const nlohmann::json& body, const char* key, int64_t min, int64_t max);
bool boolean(const nlohmann::json& body, const char* key, bool fallback);
// The sampling and length fields both endpoints share, over the server's
// defaults (the command line's flags).
GenerateParams generation(const nlohmann::json& body, const GenerateParams& defaults, int64_t default_max_tokens);
// messages: [{role, content}], content a string or an array of text parts.
std::vector<ChatMessage> messages_of(const nlohmann::json& body);
// prompt: a string, or an array of one string.
std::string prompt_of(const nlohmann::json& body);

}  // namespace slm::cli
