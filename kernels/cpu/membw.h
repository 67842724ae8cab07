// Measured memory read bandwidth: the roofline every decode speed is judged
// against (tokens/s <= bandwidth / bytes of weights read per token).
#pragma once

#include <cstddef>

namespace slm::kernels {

struct Bandwidth {
  double gb_per_s = 0;  // best of the passes, 1 GB = 1e9 bytes
  size_t bytes = 0;     // buffer size read per pass
  int threads = 0;
};

// Streams a `bytes` buffer (default 512 MiB: far beyond any last-level
// cache) `passes` times on n_threads threads and returns the best pass. The
// buffer is written once first so every page is resident.
Bandwidth measure_read_bandwidth(int n_threads, size_t bytes = size_t{512} << 20, int passes = 5);

}  // namespace slm::kernels
