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

#include <chrono>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace slm {

namespace detail {

using ChunkFn = void (*)(void* ctx, int64_t begin, int64_t end);
void parallel_run(int64_t n, int n_threads, int64_t grain, ChunkFn fn, void* ctx);

// Fewer threads when the machine is busy. Chunks bound what a descheduled
// thread holds back, but a thread preempted inside its chunk still stalls
// the job for a scheduler slice (milliseconds, against jobs of tens of
// microseconds). When, over a window of jobs, the caller spent more time
// waiting for late threads than half its own computing, one thread fewer is
// used; one more is tried again after a hold that doubles with each failed
// try (and resets when a try goes well); a try whose waits pass kTryStall
// and half its work fails there, before its window ends (one long hiccup
// inside a try fails it too: the cost is one doubled hold). On a quiet
// machine the waits are a few percent of the work and nothing changes.
class ThreadBackoff {
 public:
  static constexpr int kWindow = 128;              // jobs per verdict
  static constexpr int64_t kFirstHold = 4096;      // jobs before one more thread is tried
  static constexpr int64_t kMaxHold = int64_t{1} << 20;
  static constexpr std::chrono::nanoseconds kTryStall{std::chrono::milliseconds(1)};  // a try's waits that end it early

  ThreadBackoff() = default;
  // The thread count for a job that asks for `wanted` (counts the job).
  int threads(int wanted);
  // What the caller of a job of more than one thread spent computing its own
  // chunks, and then waiting for the other threads to finish theirs.
  void record(std::chrono::nanoseconds work, std::chrono::nanoseconds waited);
  int64_t hold() const { return hold_; }

 private:
  explicit ThreadBackoff(int wanted) : wanted_(wanted) {}
  int wanted_ = 0, fewer_ = 0, jobs_ = 0;
  int64_t held_ = 0, hold_ = kFirstHold;
  bool trying_ = false;
  std::chrono::nanoseconds work_{}, waited_{};
};

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

// Whether the pool uses fewer threads on a busy machine (ThreadBackoff; on by
// default, off with SLM_ADAPTIVE_THREADS=0). Tests that need every thread
// they ask for turn it off.
void parallel_set_adaptive(bool on);

}  // namespace slm
