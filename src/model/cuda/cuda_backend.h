// The CUDA backend's entry points (cuda_forward.cpp; cuda_absent.cpp in a
// build without -DSLM_CUDA=ON, where each says so).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/forward.h"
#include "model/model.h"

namespace slm::model::cuda {

// Whether this build has the CUDA backend and a GPU is present; otherwise
// false with the reason in *why_not ("built without CUDA", "no CUDA GPU: ...").
bool available(std::string* why_not);

// The model's weights copied to the GPU (the model must be fully loaded).
// Throws slm::Error when CUDA is unavailable, a tensor type has no CUDA
// kernel, or the weights do not fit the GPU's free memory (naming the size).
std::unique_ptr<BackendWeights> upload_weights(const Model& model);

// A Forward on the GPU for a model loaded with Device::cuda.
std::unique_ptr<Forward> make_forward(const Model& model, const ForwardConfig& config,
                                      const std::vector<RopeState>& ropes);

// The GPU's memory bandwidth as a device-to-device copy of 1 GiB measures it
// (bytes read + written per second, in GB/s): the decode roofline.
double copy_bandwidth_gbs();

}  // namespace slm::model::cuda
