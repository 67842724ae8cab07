// parallel_for: the one way slm splits work across threads.
//
// [0, n) is cut into chunks (multiples of `grain`, so a chunk never splits a
// unit the caller wants kept whole) and fn(begin, end) runs once per chunk on
// slm's own thread pool (parallel.cpp), the calling thread included. Threads
// take chunks from a shared counter: a thread the OS deschedules (another
// busy process on the machine) holds up one small chunk, not a fixed 1/n of
// the work that everyone else must wait for at the end.
//
// With n_threads <= 1 it runs inline: no pool on the single-token path of
// small models. A parallel_for called from inside another one runs inline
// too. Calls from several threads at once are served one at a time. An
// exception thrown by fn reaches the caller (after every chunk has stopped).
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace slm {

namespace detail {

using ChunkFn = void (*)(void* ctx, int64_t begin, int64_t end);
void parallel_run(int64_t n, int n_threads, int64_t grain, ChunkFn fn, void* ctx);

}  // namespace detail

template <typename Fn>
void parallel_for(int64_t n, int n_threads, Fn&& fn, int64_t grain = 1) {
  if (n <= 0) return;
  using F = std::remove_reference_t<Fn>;
  detail::parallel_run(
      n, n_threads, grain,
      [](void* ctx, int64_t begin, int64_t end) { (*static_cast<F*>(ctx))(begin, end); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

// Threads the pool keeps (created on first use, grown on demand; the calling
// thread is not counted). For tests and diagnostics.
int parallel_pool_workers();

}  // namespace slm
