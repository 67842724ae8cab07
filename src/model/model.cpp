#include "model/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/log.h"
#include "cpu/kernels.h"
#include "cpu/matmul.h"
#include "model/cuda/cuda_backend.h"
#include "slm/error.h"

namespace slm::model {
namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? " x " : "") + std::to_string(ne[i]);
  return "[" + s + "]";
}

std::string layer_name(const char* pattern, int layer) {
  std::string s = pattern;
  const auto at = s.find("{}");
  if (at != std::string::npos) s.replace(at, 2, std::to_string(layer));
  return s;
}

}  // namespace

Model::~Model() = default;

std::string Model::device_name() const {
  if (backend_weights_) return backend_weights_->name();
  return fmt::format("cpu ({})", kernels::isa_name(kernels::active_kernels().isa));
}

std::unique_ptr<Model> Model::load(const std::string& path, Device device, FileAccess access) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::make_unique<gguf::GgufFile>(path, access);
  const gguf::GgufFile& f = *m->file_;
  if (f.architecture().empty()) throw Error(path + ": no general.architecture key: not a model file");
  m->arch_ = &find_architecture(f.architecture());
  m->hp_ = m->arch_->read_hparams(f);
  HParams& hp = m->hp_;
  hp.arch = f.architecture();
  hp.name = f.get_string("general.name", "");
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw Error(path + ": missing tensor 'token_embd.weight'");
  if (embd->ne.size() != 2 || embd->ne[0] != hp.n_embd)
    throw Error(fmt::format("{}: tensor 'token_embd.weight' has shape {}, expected [{} x n_vocab]", path,
                            shape_str(embd->ne), hp.n_embd));
  hp.n_vocab = embd->ne[1];

  // Every expected tensor: present (or optional), right shape, usable type.
  const std::vector<TensorSpec> specs = m->arch_->tensors(hp);
  m->layers_.resize(static_cast<size_t>(hp.n_layer));
  size_t n_expected = 0;
  for (const TensorSpec& spec : specs) {
    const int n_inst = is_layer_slot(spec.slot) ? static_cast<int>(hp.n_layer) : 1;
    for (int l = 0; l < n_inst; ++l) {
      const std::string name = layer_name(spec.name, l);
      const gguf::TensorInfo* t = f.find_tensor(name);
      if (!t) {
        if (spec.required) throw Error(fmt::format("{}: missing tensor '{}' ({} {})", path, name, hp.arch, shape_str(spec.ne)));
        continue;
      }
      ++n_expected;
      if (t->ne != spec.ne)
        throw Error(fmt::format("{}: tensor '{}' has shape {}, expected {} for this {} model", path, name,
                                shape_str(t->ne), shape_str(spec.ne), hp.arch));
      // Kernels read elements with their natural alignment (floats 4 bytes,
      // f16 and block scales 2); GGUF's default alignment of 32 guarantees it,
      // a file written with general.alignment 1 may not.
      const size_t natural = t->type == DType::F32 ? 4 : 2;
      if (t->file_offset % natural != 0)
        throw Error(fmt::format("{}: tensor '{}' ({}) starts at byte {}, not a multiple of {}: rewrite the file with "
                                "general.alignment 32",
                                path, name, dtype_name(t->type), t->file_offset, natural));
      Weight w;
      w.info = t;
      if (t->ne.size() == 1) {
        if (!kernels::can_dequantize(t->type))
          throw Error(fmt::format("{}: tensor '{}' has unsupported type {}", path, name, dtype_name(t->type)));
        w.vec.resize(static_cast<size_t>(t->ne[0]));
        kernels::dequantize_row(t->type, f.tensor_data(*t), w.vec.data(), t->ne[0]);
      } else {
        const kernels::KernelTable& k = kernels::active_kernels();
        const bool embedding = spec.slot == Slot::token_embd;
        if (embedding ? !kernels::can_dequantize(t->type) : !k.types[static_cast<size_t>(t->type)].dot)
          throw Error(fmt::format("{}: tensor '{}' has type {}, which slm cannot compute with", path, name,
                                  dtype_name(t->type)));
        w.matrix = kernels::make_weight_matrix(f.tensor_data(*t), t->type, t->ne[0], t->ne[1]);
      }
      if (is_layer_slot(spec.slot))
        m->layers_[static_cast<size_t>(l)][static_cast<size_t>(spec.slot)] = std::move(w);
      else
        m->globals_[static_cast<size_t>(spec.slot)] = std::move(w);
    }
  }
  // Tied output: the embedding must also be a valid matmul weight.
  if (!m->global(Slot::output)) {
    const auto& k = kernels::active_kernels();
    if (!k.types[static_cast<size_t>(embd->type)].dot)
      throw Error(fmt::format("{}: output is tied to token_embd.weight, whose type {} slm cannot multiply with", path,
                              dtype_name(embd->type)));
  }
  if (n_expected != f.tensors().size())
    logger().warn("{}: {} tensors are not used by the {} architecture", path, f.tensors().size() - n_expected, hp.arch);
  if (device == Device::cpu) m->pack_weights();
  if (device == Device::cuda) {
    m->backend_weights_ = cuda::upload_weights(*m);
    m->device_ = device;
    logger().debug("{}: weights uploaded ({:.1f} MiB)", m->backend_weights_->name(),
                   static_cast<double>(m->backend_weights_->bytes()) / (1 << 20));
  }
  logger().debug("loaded {} ({}): {} layers, E={} H={}/{} D={} F={} vocab={}", path, hp.arch, hp.n_layer, hp.n_embd,
                 hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff, hp.n_vocab);
  return m;
}

void Model::pack_weights() {
  // SLM_REPACK=0 keeps the file's layout (to compare, or to debug).
  if (const char* v = std::getenv("SLM_REPACK"); v && std::string(v) == "0") return;
  const kernels::KernelTable& k = kernels::active_kernels();
  // One thread: loading must not start the compute pool, whose threads
  // inherit the signal mask of whoever starts them (slm chat starts them
  // with SIGINT blocked, after the load). Re-laying is a copy: ~1 s for 2 GB.
  const int threads = 1;
  size_t packed_bytes = 0, released = 0;
  int matrices = 0;
  auto pack = [&](Weight& w) {
    if (!w || w.info->ne.size() != 2 || !kernels::can_pack(k, w.matrix.type, w.matrix.rows)) return;
    std::unique_ptr<uint8_t[]> storage;
    w.matrix = kernels::pack_weight_matrix(k, w.matrix, storage, threads);
    const size_t bytes = static_cast<size_t>(w.matrix.packed_rows / 8) * kernels::x8_group_bytes(w.matrix.type, w.matrix.cols);
    released += file_->release_tensor_pages(*w.info) > 0 ? bytes : 0;
    packed_bytes += bytes;
    ++matrices;
    packed_.push_back(std::move(storage));
  };
  for (auto& layer : layers_)
    for (Weight& w : layer) pack(w);
  for (size_t s = 0; s < globals_.size(); ++s)
    if (static_cast<Slot>(s) != Slot::token_embd) pack(globals_[s]);
  if (matrices > 0)
    logger().debug("{} matrices ({:.1f} MiB) re-laid in groups of 8 rows for the {} path; file pages released: {}",
                   matrices, static_cast<double>(packed_bytes) / (1 << 20), kernels::isa_name(k.isa),
                   released > 0 ? "yes" : "no (--no-mmap or --mlock: the file's copy stays in memory)");
}

const kernels::WeightMatrix& Model::output_matrix() const {
  const Weight& out = global(Slot::output);
  return out ? out.matrix : global(Slot::token_embd).matrix;
}

uint64_t Model::bytes_per_token() const {
  uint64_t total = weight_bytes();
  if (global(Slot::output)) {  // untied: the embedding table is only looked up
    const Weight& embd = global(Slot::token_embd);
    total -= embd.info->n_bytes;
    total += embd.matrix.row_bytes;
  }
  return total;
}

uint64_t Model::weight_bytes() const {
  uint64_t total = 0;
  for (const auto& t : file_->tensors()) total += t.n_bytes;
  return total;
}

}  // namespace slm::model
