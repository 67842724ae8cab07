// parallel_for: the one way slm splits work across threads.
//
// [0, n) is cut into n_threads contiguous ranges (multiples of `grain`, so a
// range never splits a unit the caller wants kept whole) and fn(begin, end)
// runs once per non-empty range on an OpenMP thread. With n_threads <= 1 it
// runs inline: no thread start-up on the single-token path of small models.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace slm {

template <typename Fn>
void parallel_for(int64_t n, int n_threads, Fn&& fn, int64_t grain = 1) {
  if (n <= 0) return;
  const int64_t units = (n + grain - 1) / grain;
  const int threads = static_cast<int>(std::min<int64_t>(std::max(n_threads, 1), units));
  if (threads == 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
#if defined(_OPENMP)
    // The team may be smaller than asked for: split by its real size.
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
#else
    const int t = 0, team = 1;
#endif
    const int64_t begin = std::min(n, units * t / team * grain);
    const int64_t end = std::min(n, units * (t + 1) / team * grain);
    if (begin < end) fn(begin, end);
  }
}

}  // namespace slm
