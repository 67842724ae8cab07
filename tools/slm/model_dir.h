// slm's model folder ($SLM_MODELS, default ~/.cache/slm/models), where
// tools/fetch-models puts the real models: short names, the default model,
// and `slm list`.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace slm::cli {

std::string models_dir();

// What -m means: a file path as given; else a model's short name
// ("smollm2") or file stem in the model folder; empty: the default model
// (the instruction-tuned one). Throws slm::Error, saying how to fetch it,
// when the default model is missing.
std::string resolve_model(const std::string& arg);

}  // namespace slm::cli
