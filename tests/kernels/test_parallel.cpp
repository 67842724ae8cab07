// parallel_for on slm's thread pool: every index exactly once, chunks on
// grain boundaries, exceptions reach the caller, nested and concurrent calls
// stay correct, and a pool whose threads went to sleep wakes up.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu/parallel.h"

namespace slm {
namespace {

// Runs parallel_for and checks coverage: each index once, each chunk
// starting on a grain boundary.
void expect_each_index_once(int64_t n, int threads, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> bad_start{0}, calls{0};
  parallel_for(n, threads, [&](int64_t b, int64_t e) {
    calls.fetch_add(1);
    if (b % grain != 0 || b >= e || e > n) bad_start.fetch_add(1);
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  }, grain);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "index " << i << " n=" << n << " threads=" << threads
                                                      << " grain=" << grain;
  }
  EXPECT_EQ(bad_start.load(), 0);
  if (n > 0) {
    EXPECT_GE(calls.load(), 1);
  }
}

TEST(Parallel, EveryIndexOnceOnGrainBoundaries) {
  for (int threads : {1, 2, 3, 8})
    for (int64_t n : {0, 1, 2, 7, 16, 17, 100, 1000, 4099})
      for (int64_t grain : {1, 4, 16, 5000}) expect_each_index_once(n, threads, grain);
}

TEST(Parallel, OneThreadRunsInlineAsOneRange) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  const auto caller = std::this_thread::get_id();
  bool same_thread = true;
  parallel_for(100, 1, [&](int64_t b, int64_t e) {
    ranges.emplace_back(b, e);
    same_thread = same_thread && std::this_thread::get_id() == caller;
  });
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0], std::make_pair(int64_t{0}, int64_t{100}));
  EXPECT_TRUE(same_thread);
}

TEST(Parallel, ManyThreadsReallyRunConcurrently) {
  parallel_set_adaptive(false);  // other tests may be loading the machine
  // Four chunks that each wait for all four to have started: only finishes
  // if four threads run them at the same time.
  std::atomic<int> started{0};
  std::atomic<bool> timed_out{false};
  parallel_for(4, 4, [&](int64_t, int64_t) {
    started.fetch_add(1);
    const auto t0 = std::chrono::steady_clock::now();
    while (started.load() < 4)
      if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(20)) {
        timed_out = true;
        break;
      }
  });
  EXPECT_FALSE(timed_out.load());
  EXPECT_GE(parallel_pool_workers(), 3);
  parallel_set_adaptive(true);
}

TEST(Parallel, ExceptionReachesTheCaller) {
  EXPECT_THROW(parallel_for(1000, 2, [](int64_t b, int64_t e) {
                 if (b <= 500 && 500 < e) throw std::runtime_error("chunk failed");
               }),
               std::runtime_error);
  // The pool still works afterwards.
  expect_each_index_once(1000, 2, 1);
}

TEST(Parallel, NestedCallsRunInline) {
  std::vector<std::atomic<int>> hits(64 * 64);
  parallel_for(64, 2, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallel_for(64, 2, [&](int64_t b2, int64_t e2) {
        for (int64_t j = b2; j < e2; ++j) hits[static_cast<size_t>(i * 64 + j)].fetch_add(1);
      });
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(Parallel, CallersOnSeveralThreadsAreServedOneAtATime) {
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 200; ++rep) {
        const int64_t n = 37 + 13 * c + rep;
        std::vector<int> hits(static_cast<size_t>(n));
        parallel_for(n, 2, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)] += 1;
        });
        for (int h : hits)
          if (h != 1) failures.fetch_add(1);
      }
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Parallel, SleepingWorkersWakeForTheNextJob) {
  parallel_set_adaptive(false);
  expect_each_index_once(1000, 2, 1);
  // Longer than the spin and yield phases: the workers are asleep now.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::atomic<int> others{0};
  const auto caller = std::this_thread::get_id();
  std::atomic<int> started{0};
  parallel_for(2, 2, [&](int64_t, int64_t) {
    started.fetch_add(1);
    // Wait for the second chunk to start elsewhere (bounded).
    const auto t0 = std::chrono::steady_clock::now();
    while (started.load() < 2 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
    }
    if (std::this_thread::get_id() != caller) others.fetch_add(1);
  });
  EXPECT_EQ(others.load(), 1);
  parallel_set_adaptive(true);
}

TEST(Parallel, BackoffDropsAThreadWhenWaitsDominateAndRetriesLater) {
  using std::chrono::microseconds;
  using B = detail::ThreadBackoff;
  B b;
  auto window = [&](microseconds work, microseconds waited) {
    for (int j = 0; j < B::kWindow; ++j) {
      EXPECT_GT(b.threads(4), 0);
      b.record(work, waited);
    }
  };
  EXPECT_EQ(b.threads(4), 4);
  window(microseconds(30), microseconds(5));  // quiet: waits are small
  EXPECT_EQ(b.threads(4), 4);
  window(microseconds(30), microseconds(400));  // a late thread stalls the jobs
  EXPECT_EQ(b.threads(4), 3);
  window(microseconds(30), microseconds(400));
  window(microseconds(30), microseconds(400));
  EXPECT_EQ(b.threads(4), 1);
  // Never below one thread.
  window(microseconds(30), microseconds(400));
  EXPECT_EQ(b.threads(4), 1);
  // After the hold, one more thread is tried; it stalls again: back to one
  // and the next hold is twice as long.
  for (int64_t j = 0; j < B::kFirstHold; ++j) b.threads(4);
  EXPECT_EQ(b.threads(4), 2);
  window(microseconds(30), microseconds(400));
  EXPECT_EQ(b.threads(4), 1);
  EXPECT_EQ(b.hold(), 2 * B::kFirstHold);
  // A try that stalls fails at its first millisecond of waits, not a window
  // later (each of its jobs waits a scheduler slice for the late thread).
  for (int64_t j = 0; j < 2 * B::kFirstHold; ++j) b.threads(4);
  EXPECT_EQ(b.threads(4), 2);
  b.record(microseconds(30), microseconds(400));
  b.record(microseconds(30), microseconds(400));
  EXPECT_EQ(b.threads(4), 2);  // 0.8 ms of waits: still trying
  b.record(microseconds(30), microseconds(400));
  EXPECT_EQ(b.threads(4), 1);
  EXPECT_EQ(b.hold(), 4 * B::kFirstHold);
  // Long waits outside a try still take the whole window to decide: a
  // hiccup on a quiet machine does not cost a hold at fewer threads.
  {
    B quiet;
    EXPECT_EQ(quiet.threads(2), 2);
    quiet.record(microseconds(300), microseconds(3000));
    for (int j = 1; j < B::kWindow; ++j) quiet.record(microseconds(300), microseconds(1));
    EXPECT_EQ(quiet.threads(2), 2);
  }
  // Jobs recorded before a try do not count toward its verdict (100 here):
  // a try that goes well is undecided after 127 of its own jobs, and at the
  // 128th keeps the thread and resets the hold.
  for (int j = 0; j < 100; ++j) b.record(microseconds(30), microseconds(2));
  for (int64_t j = 0; j < 4 * B::kFirstHold; ++j) b.threads(4);
  EXPECT_EQ(b.threads(4), 2);
  for (int j = 0; j < B::kWindow - 1; ++j) b.record(microseconds(30), microseconds(2));
  EXPECT_EQ(b.hold(), 4 * B::kFirstHold);
  b.record(microseconds(30), microseconds(2));
  EXPECT_EQ(b.threads(4), 2);
  EXPECT_EQ(b.hold(), B::kFirstHold);
  // Asking for another count starts afresh.
  EXPECT_EQ(b.threads(3), 3);
}

}  // namespace
}  // namespace slm
