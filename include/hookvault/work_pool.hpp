// WorkPool: a bounded pool of threads for blocking work kept off the I/O
// threads (RSA private-key operations, store reads).
//
// try_post() never blocks: it returns false when `max_queue` jobs are already
// waiting, so the caller can answer 503 + Retry-After instead of letting memory
// grow without bound. stop() runs what is queued, then joins.
//
// A job that throws stops neither its thread nor the process: the exception is
// caught, the job's `on_failure` runs (the caller answers its request there:
// 500, or an error to its completion), and the failure is counted in
// hookvault_work_pool_job_failures_total (when the pool has a registry) and
// logged, at most one line per 10 s (log_throttle.hpp) naming the exception's
// type only: an exception's message may quote the input it failed on. An
// `on_failure` that throws is caught and counted the same way. The pool then
// takes the next job.
//
// Its threads run at a lower CPU priority than the rest of the process (nice
// +kNiceIncrement): when the I/O threads, the writer or the syncer have work,
// the scheduler runs them first, so a burst of RSA work cannot starve them
// (docs/performance.md: Nodit p99 during a delegation burst). With nothing else to run,
// the pool gets the cores as before.
//
// Thread-safety: try_post() and queued() are safe from any thread; stop() is
// called by the owner (once, or again after it returned).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <typeinfo>
#include <vector>

#include "hookvault/log_throttle.hpp"
#include "hookvault/metrics.hpp"

namespace hookvault {

class WorkPool {
 public:
  static constexpr int kNiceIncrement = 10;

  // `metrics`: where job failures are counted, or none; must outlive the pool.
  WorkPool(unsigned threads, std::size_t max_queue, Metrics* metrics = nullptr);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // `on_failure`: runs on the pool thread when `job` throws (see above).
  bool try_post(std::function<void()> job, std::function<void()> on_failure = {});
  void stop();
  std::size_t queued() const;
  // Jobs (and failure handlers) that threw since the pool started.
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

 private:
  struct Job {
    std::function<void()> run;
    std::function<void()> on_failure;
  };
  void run();
  void execute(Job& job) noexcept;
  void note_failure(const std::type_info* type, bool in_failure_handler) noexcept;

  const std::size_t max_queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  MetricSeries* failure_count_ = nullptr;  // when a registry was given
  std::atomic<std::uint64_t> failures_{0};
  LogThrottle failure_warning_;
};

}  // namespace hookvault
