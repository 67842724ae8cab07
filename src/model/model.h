// A loaded model: the mapped GGUF file, its hyperparameters and views of its
// weights. Weights stay in the mapping, in their stored type: nothing is
// dequantized or copied except 1-D tensors (norms, RoPE factors), which are
// small and read as f32. Immutable after load; safe to share across threads.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "cpu/matmul.h"
#include "core/mapped_file.h"
#include "gguf/gguf_reader.h"
#include "model/arch/arch.h"
#include "model/hparams.h"

namespace slm::model {

// A tensor as the forward pass uses it.
struct Weight {
  const gguf::TensorInfo* info = nullptr;  // null: absent (optional tensor)
  kernels::WeightMatrix matrix;            // 2-D tensors
  std::vector<float> vec;                  // 1-D tensors, as f32
  explicit operator bool() const { return info != nullptr; }
};

// Where a model runs. The CPU computes on the mapped file; another device
// gets a copy of the weights in its own memory at load (BackendWeights).
enum class Device { cpu, cuda };

// The weights as a backend prepared them at load (uploaded to the device).
// Owned by the Model, immutable, shared by every Context on it.
class BackendWeights {
 public:
  virtual ~BackendWeights() = default;
  virtual size_t bytes() const = 0;      // device memory the weights take
  virtual std::string name() const = 0;  // the device, for logs ("cuda: NVIDIA H100 80GB HBM3")
};

class Model {
 public:
  // Maps `path`, checks the architecture, every expected tensor's presence,
  // shape and type; for a device other than the CPU, uploads the weights.
  // Throws slm::Error naming the file (or the device) and what is wrong.
  static std::unique_ptr<Model> load(const std::string& path, Device device = Device::cpu, FileAccess access = {});
  ~Model();

  Device device() const { return device_; }
  // The backend's copy of the weights; null on the CPU.
  const BackendWeights* backend_weights() const { return backend_weights_.get(); }
  // "cpu (avx2)", or the device name BackendWeights gives.
  std::string device_name() const;

  const HParams& hparams() const { return hp_; }
  const Architecture& arch() const { return *arch_; }
  const gguf::GgufFile& file() const { return *file_; }

  const Weight& global(Slot s) const { return globals_[static_cast<size_t>(s)]; }
  const Weight& layer(int l, Slot s) const { return layers_[static_cast<size_t>(l)][static_cast<size_t>(s)]; }
  // The output projection: `output`, else the tied token embedding.
  const kernels::WeightMatrix& output_matrix() const;

  uint64_t weight_bytes() const;  // bytes of all tensor data
  // Bytes one decoded token reads: every tensor, except that an untied
  // token_embd contributes one row (the lookup), not the whole table.
  uint64_t bytes_per_token() const;

 private:
  Model() = default;
  std::unique_ptr<gguf::GgufFile> file_;
  Device device_ = Device::cpu;
  std::unique_ptr<BackendWeights> backend_weights_;
  const Architecture* arch_ = nullptr;
  HParams hp_;
  std::array<Weight, static_cast<size_t>(Slot::count)> globals_;
  std::vector<std::array<Weight, static_cast<size_t>(Slot::count)>> layers_;
  // Row-interleaved copies of the matrices the CPU path re-laid at load
  // (kernels/cpu/matmul.h pack_weight_matrix); their Weight::matrix reads them.
  std::vector<std::unique_ptr<uint8_t[]>> packed_;
  // Re-lays every matrix the active kernel table has an interleaved kernel
  // for (not the token embedding, which is also looked up by row) and
  // releases the file pages the copies replace.
  void pack_weights();
};

}  // namespace slm::model
