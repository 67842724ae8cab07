// slm's thread pool (see parallel.h for the contract).
//
// Why not OpenMP: GNU OpenMP's team spin-waits at every barrier, so with
// another busy process on the machine a descheduled team member stalls every
// matmul for a whole scheduler slice — a tiny model's decode fell ~100x. Here
// work is taken in chunks from a shared counter (the others finish a late
// thread's share), waiting threads spin only briefly, then yield, then sleep.
//
// One job at a time. The job is published by one 64-bit word, the job's
// generation in the high half and the number of workers it wants in the low
// half, so a worker that wakes late reads who is wanted from the same load
// that tells it a job exists, and never touches a job it is not part of.
#include "cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <string>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SLM_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define SLM_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define SLM_CPU_RELAX() ((void)0)
#endif

namespace slm {
namespace {

using Clock = std::chrono::steady_clock;

// How long an idle thread spins on the job word before yielding its core,
// and how long it then keeps yielding before it sleeps. Decode issues a job
// every few microseconds; the gap between two tokens (sampling, output) is
// well under a millisecond, so a generating pool never sleeps.
constexpr auto kSpin = std::chrono::microseconds(50);
constexpr auto kYield = std::chrono::microseconds(2000);

// Chunks per participating thread: enough that a descheduled thread holds
// back little of the work, few enough that the shared counter stays cheap.
constexpr int64_t kChunksPerThread = 4;

thread_local bool t_in_pool_job = false;

// SLM_ADAPTIVE_THREADS=0 keeps every job at the thread count asked for.
bool adaptive_from_env() {
  const char* v = std::getenv("SLM_ADAPTIVE_THREADS");
  return !(v && std::string(v) == "0");
}

// Never destroyed (see pool()): its threads live as long as the process.
class Pool {
 public:
  std::atomic<bool> adaptive_{adaptive_from_env()};

  int workers() {
    std::lock_guard<std::mutex> lock(run_mutex_);
    return static_cast<int>(threads_.size());
  }

  void run(int64_t n, int threads, int64_t grain, detail::ChunkFn fn, void* ctx) {
    std::lock_guard<std::mutex> lock(run_mutex_);
    if (adaptive_.load(std::memory_order_relaxed)) threads = backoff_.threads(threads);
    if (threads == 1) {
      t_in_pool_job = true;
      try {
        fn(ctx, 0, n);
      } catch (...) {
        t_in_pool_job = false;
        throw;
      }
      t_in_pool_job = false;
      return;
    }
    while (static_cast<int>(threads_.size()) < threads - 1) {
      // The word it starts from is read now, before this job is published:
      // read in the new thread, it could already be this job's and hide it.
      const int index = static_cast<int>(threads_.size());
      const uint64_t seen = job_.load();
      threads_.emplace_back([this, index, seen] { worker(index, seen); });
    }
    const int64_t units = (n + grain - 1) / grain;
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    grain_ = grain;
    units_ = units;
    chunks_ = std::min<int64_t>(units, threads * kChunksPerThread);
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    const uint64_t wanted = static_cast<uint64_t>(threads - 1);
    generation_ += 1;
    // seq_cst store / load pair with the sleeper's increment / re-check in
    // worker(): either it sees the new word or this sees it asleep.
    job_.store((generation_ << 32) | wanted);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> sleep_lock(sleep_mutex_);
      wake_.notify_all();
    }
    const auto start = Clock::now();
    work();
    // Every participant has stopped touching the job before it changes.
    const auto t0 = Clock::now();
    for (unsigned spins = 0; done_.load(std::memory_order_acquire) < wanted; ++spins) {
      if (spins < 64 || Clock::now() - t0 < kSpin)
        SLM_CPU_RELAX();
      else
        std::this_thread::yield();  // a participant may be waiting for this core
    }
    if (adaptive_.load(std::memory_order_relaxed)) backoff_.record(std::chrono::duration_cast<std::chrono::nanoseconds>(t0 - start),
                                                                    std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0));
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Takes chunks until none are left. Chunk c covers units
  // [units * c / chunks, units * (c + 1) / chunks): sizes differ by at most one.
  void work() {
    t_in_pool_job = true;
    for (;;) {
      const int64_t c = next_.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks_) break;
      const int64_t begin = std::min(n_, units_ * c / chunks_ * grain_);
      const int64_t end = std::min(n_, units_ * (c + 1) / chunks_ * grain_);
      if (begin >= end) continue;
      try {
        fn_(ctx_, begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
        next_.store(chunks_, std::memory_order_relaxed);  // the others stop at their next chunk
      }
    }
    t_in_pool_job = false;
  }

  void worker(int index, uint64_t seen) {
    for (;;) {
      const uint64_t word = wait_for_change(seen);
      seen = word;
      if (static_cast<uint64_t>(index) >= (word & 0xffffffffu)) continue;  // not wanted this time
      work();
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  uint64_t wait_for_change(uint64_t seen) {
    const auto t0 = Clock::now();
    for (unsigned spins = 0;; ++spins) {
      const uint64_t word = job_.load(std::memory_order_acquire);
      if (word != seen) return word;
      if ((spins & 63) != 63) {
        SLM_CPU_RELAX();
        continue;
      }
      const auto idle = Clock::now() - t0;
      if (idle < kSpin) continue;
      if (idle < kYield) {
        std::this_thread::yield();
        continue;
      }
      std::unique_lock<std::mutex> lock(sleep_mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return job_.load() != seen; });
      sleepers_.fetch_sub(1);
      return job_.load(std::memory_order_acquire);
    }
  }

  std::mutex run_mutex_;  // one job at a time; guards threads_, backoff_ and the job fields
  detail::ThreadBackoff backoff_;
  std::vector<std::thread> threads_;
  uint64_t generation_ = 0;

  // The job (written by run() before job_ is published, read by participants).
  detail::ChunkFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, grain_ = 1, units_ = 0, chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> done_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;

  std::atomic<uint64_t> job_{0};
  std::atomic<int> sleepers_{0};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

Pool& pool() {
  // Never destroyed: worker threads must not be joined from a static
  // destructor while another static's destructor may still run a job.
  static Pool* p = new Pool;
  return *p;
}

}  // namespace

namespace detail {

void parallel_run(int64_t n, int n_threads, int64_t grain, ChunkFn fn, void* ctx) {
  grain = std::max<int64_t>(grain, 1);
  const int64_t units = (n + grain - 1) / grain;
  const int threads = static_cast<int>(std::min<int64_t>(std::max(n_threads, 1), units));
  if (threads == 1 || t_in_pool_job) {
    fn(ctx, 0, n);
    return;
  }
  pool().run(n, threads, grain, fn, ctx);
}

}  // namespace detail

int parallel_pool_workers() { return pool().workers(); }

void parallel_set_adaptive(bool on) { pool().adaptive_.store(on); }

namespace detail {

int ThreadBackoff::threads(int wanted) {
  if (wanted != wanted_) *this = ThreadBackoff(wanted);
  if (fewer_ > 0 && ++held_ >= hold_) {  // time to try one more thread
    held_ = 0;
    --fewer_;
    trying_ = true;
    jobs_ = 0;  // the try's verdict counts its own jobs only
    work_ = waited_ = std::chrono::nanoseconds::zero();
  }
  return wanted_ - fewer_;
}

void ThreadBackoff::record(std::chrono::nanoseconds work, std::chrono::nanoseconds waited) {
  work_ += work;
  waited_ += waited;
  // A try of one more thread on a busy machine stalls at its first jobs:
  // once the waits pass kTryStall (and half the work) the try has failed —
  // its full window of stalled jobs cost as much as the rest of the hold.
  const bool try_failed = trying_ && waited_ > kTryStall && waited_ > work_ / 2;
  if (++jobs_ < kWindow && !try_failed) return;
  const bool stalled = waited_ > work_ / 2;
  if (stalled && wanted_ - fewer_ > 1) {
    ++fewer_;
    held_ = 0;
    if (trying_) hold_ = std::min(hold_ * 2, kMaxHold);
  } else if (!stalled && trying_) {
    hold_ = kFirstHold;
  }
  trying_ = false;
  jobs_ = 0;
  work_ = waited_ = std::chrono::nanoseconds::zero();
}

}  // namespace detail

}  // namespace slm
