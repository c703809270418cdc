// WorkPool: a bounded pool of threads for blocking work kept off the I/O
// threads (RSA private-key operations, store reads).
//
// try_post() never blocks: it returns false when `max_queue` jobs are already
// waiting, so the caller can answer 503 + Retry-After instead of letting memory
// grow without bound. stop() runs what is queued, then joins.
//
// Its threads run at a lower CPU priority than the rest of the process (nice
// +kNiceIncrement): when the I/O threads, the writer or the syncer have work,
// the scheduler runs them first, so a burst of RSA work cannot starve them
// (issue 7: Nodit p99 during a delegation burst). With nothing else to run,
// the pool gets the cores as before.
//
// Thread-safety: try_post() and queued() are safe from any thread; stop() is
// called by the owner (once, or again after it returned).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hookvault {

class WorkPool {
 public:
  static constexpr int kNiceIncrement = 10;

  WorkPool(unsigned threads, std::size_t max_queue);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  bool try_post(std::function<void()> job);
  void stop();
  std::size_t queued() const;

 private:
  void run();

  const std::size_t max_queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace hookvault
