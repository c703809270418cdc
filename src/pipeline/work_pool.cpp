#include "hookvault/work_pool.hpp"

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"

namespace hookvault {

WorkPool::WorkPool(unsigned threads, std::size_t max_queue, Metrics* metrics)
    : max_queue_(max_queue),
      failure_count_(metrics == nullptr
                         ? nullptr
                         : &metrics
                                ->counter("hookvault_work_pool_job_failures_total",
                                          "Pool jobs (decryptions, admin reads) that threw; "
                                          "their requests were answered with an error")
                                .with({})) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i)
    threads_.emplace_back([this] {
      name_this_thread("hv-pool");
      lower_this_thread_priority(kNiceIncrement);
      run();
    });
}

WorkPool::~WorkPool() { stop(); }

bool WorkPool::try_post(std::function<void()> job, std::function<void()> on_failure) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || jobs_.size() >= max_queue_) return false;
    jobs_.push_back(Job{std::move(job), std::move(on_failure)});
  }
  cv_.notify_one();
  return true;
}

std::size_t WorkPool::queued() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

void WorkPool::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkPool::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    execute(job);
  }
}

void WorkPool::execute(Job& job) noexcept {
  try {
    job.run();
    return;
  } catch (const std::exception& e) {
    note_failure(&typeid(e), false);
  } catch (...) {
    note_failure(nullptr, false);
  }
  if (!job.on_failure) return;
  try {
    job.on_failure();
  } catch (const std::exception& e) {
    note_failure(&typeid(e), true);
  } catch (...) {
    note_failure(nullptr, true);
  }
}

void WorkPool::note_failure(const std::type_info* type, bool in_failure_handler) noexcept {
  failures_.fetch_add(1, std::memory_order_relaxed);
  if (failure_count_ != nullptr) failure_count_->inc();
  try {
    if (std::uint64_t n = 0; failure_warning_.due(n)) {
      log(LogLevel::error, "pool job threw; its request was answered with an error",
          {{"exception", type != nullptr ? type->name() : "(not a std::exception)"},
           {"in_failure_handler", in_failure_handler},
           {"failures", n}});
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): logging must not take the pool down
  }
}

}  // namespace hookvault
