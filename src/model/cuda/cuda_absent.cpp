// The CUDA entry points of a build without the CUDA backend: each refuses,
// saying how to get one.
#include "model/cuda/cuda_backend.h"
#include "slm/error.h"

namespace slm::model::cuda {
namespace {
constexpr const char* kWhy = "this build of slm has no CUDA backend (configure with -DSLM_CUDA=ON)";
}

bool available(std::string* why_not) {
  if (why_not != nullptr) *why_not = kWhy;
  return false;
}

std::unique_ptr<BackendWeights> upload_weights(const Model&) { throw Error(kWhy); }

std::unique_ptr<Forward> make_forward(const Model&, const ForwardConfig&, const std::vector<RopeState>&) {
  throw Error(kWhy);
}

double copy_bandwidth_gbs() { throw Error(kWhy); }

}  // namespace slm::model::cuda
