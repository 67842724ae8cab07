#include "cpu/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>

#include "cpu/parallel.h"

namespace slm::kernels {
namespace {

// Sums 64-bit words with four independent accumulators so the loop is bound
// by loads, not by the add chain. The result is returned so it is not dead.
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

}  // namespace

Bandwidth measure_read_bandwidth(int n_threads, size_t bytes, int passes) {
  const size_t words = bytes / 8;
  std::unique_ptr<uint64_t[]> buf(new uint64_t[words]);
  // First touch from the same threads that read, so pages sit near them.
  parallel_for(static_cast<int64_t>(words), n_threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
  });
  Bandwidth best{0, words * 8, n_threads};
  volatile uint64_t sink = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t partial[64] = {};
    parallel_for(static_cast<int64_t>(words), n_threads, [&](int64_t b, int64_t e) {
      partial[(b * 64 / static_cast<int64_t>(words)) % 64] = sum_words(buf.get() + b, static_cast<size_t>(e - b));
    }, 4096);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t v : partial) sink = sink + v;
    best.gb_per_s = std::max(best.gb_per_s, static_cast<double>(words * 8) / s / 1e9);
  }
  return best;
}

}  // namespace slm::kernels
