// slm::Model — a GGUF model file, loaded.
//
// Ownership: Model::load returns a shared_ptr; Sessions keep the model alive.
// The weights stay memory-mapped (RSS grows as pages are first read).
// Thread-safety: a Model is immutable after load and may be shared by any
// number of Sessions on any threads. Errors: slm::Error naming the file and
// what is wrong (unknown architecture, missing or mis-shaped tensor,
// unsupported tensor type, malformed file).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "slm/chat.h"
#include "slm/tokenizer.h"

namespace slm {

// Where a model runs: the CPU; an NVIDIA GPU (a build with the CUDA
// backend, -DSLM_CUDA=ON: weights and KV cache on the GPU); or automatic,
// the GPU when one is usable, else the CPU.
enum class Device { cpu, cuda, automatic };

// Whether Device::cuda can run here; otherwise false with the reason (no
// CUDA backend in this build, no GPU) in *why_not.
bool cuda_available(std::string* why_not = nullptr);

struct ModelParams {
  Device device = Device::cpu;
  // The chat format: empty = the model's own (from its metadata); else a
  // format name ("phi3", "gemma", "chatml", "llama3", ... — ChatTemplate::
  // names()) or the text of a Jinja chat template slm recognises. Anything
  // else is an Error naming the known formats.
  std::string chat_template;
  // The file's bytes: memory-mapped (the default: loads at once, shared,
  // paged in on use), or read into private memory (use_mmap = false);
  // use_mlock keeps them resident (a refused lock is a warning).
  bool use_mmap = true;
  bool use_mlock = false;
  // When set, load() reads every weight page once (so the first answer is
  // not slowed by page faults) and reports progress in [0, 1] as it goes.
  std::function<void(float fraction)> on_progress;
};

struct ModelInfo {
  std::string path;
  std::string architecture;  // "phi3", "gemma", "gemma2", "llama"
  std::string name;          // general.name
  std::string file_type;     // "MOSTLY_Q4_0", ...
  std::string device;        // where it runs: "cpu (avx2)", "cuda: NVIDIA H100 80GB HBM3 (79.1 GiB)"
  uint64_t file_bytes = 0;
  uint64_t n_params = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
};

class Model {
 public:
  static std::shared_ptr<const Model> load(const std::string& path, const ModelParams& params = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelInfo& info() const;
  const Tokenizer& tokenizer() const;
  const ChatTemplate& chat_template() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
