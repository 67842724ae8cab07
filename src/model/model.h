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

class Model {
 public:
  // Maps `path`, checks the architecture, every expected tensor's presence,
  // shape and type. Throws slm::Error naming the file and what is wrong.
  static std::unique_ptr<Model> load(const std::string& path);

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
  const Architecture* arch_ = nullptr;
  HParams hp_;
  std::array<Weight, static_cast<size_t>(Slot::count)> globals_;
  std::vector<std::array<Weight, static_cast<size_t>(Slot::count)>> layers_;
};

}  // namespace slm::model
