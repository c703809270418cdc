#include "hookvault/kek_refresher.hpp"

#include <exception>
#include <functional>
#include <string>
#include <utility>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"

namespace hookvault {

KekRefresher::KekRefresher(std::shared_ptr<Kek> kek, std::chrono::milliseconds interval,
                           Metrics& metrics, std::function<void()> after_refresh)
    : kek_(std::move(kek)),
      after_refresh_(std::move(after_refresh)),
      version_(metrics
                   .gauge("hookvault_kek_version", "The KEK version new records are wrapped under",
                          {"kek"})
                   .with({kek_->id()})),
      failures_(metrics
                    .counter("hookvault_kek_refresh_failures_total",
                             "KEK keyring refreshes that failed (the keyring in use was kept)")
                    .with({})),
      interval_(interval) {
  version_.set(kek_->version());
  thread_ = std::thread([this] {
    name_this_thread("hv-kek");
    run();
  });
}

KekRefresher::~KekRefresher() { stop(); }

void KekRefresher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void KekRefresher::set_interval(std::chrono::milliseconds interval) {
  {
    std::lock_guard lock(mu_);
    interval_ = interval;
  }
  cv_.notify_all();
}

bool KekRefresher::refresh_now() {
  const bool ok = refresh(false);
  if (after_refresh_) {
    {
      std::lock_guard lock(mu_);
      after_refresh_due_ = true;
    }
    cv_.notify_all();
  }
  return ok;
}

bool KekRefresher::refresh(bool throttled) {
  std::lock_guard lock(refresh_mu_);
  const std::uint32_t before = kek_->version();
  try {
    kek_->refresh();
  } catch (const std::exception& e) {
    failures_.inc();
    std::uint64_t n = 1;
    if (!throttled || failure_warning_.due(n)) {
      // Kek::refresh() names the file or token, never a key.
      log(LogLevel::error, "KEK refresh failed; new records stay under the version in use",
          {{"kek", kek_->id()}, {"version", before}, {"error", e.what()}, {"failures", n}});
    }
    return false;
  }
  const std::uint32_t after = kek_->version();
  version_.set(after);
  if (after != before) {
    log(LogLevel::info, "KEK version in use",
        {{"kek", kek_->id()}, {"version", after}, {"previous", before}});
  }
  return true;
}

void KekRefresher::run_after_refresh() noexcept {
  if (!after_refresh_) return;
  try {
    after_refresh_();
  } catch (const std::exception& e) {
    log(LogLevel::error, "after a KEK refresh: what follows it failed",
        {{"kek", kek_->id()}, {"error", e.what()}});
  } catch (...) {
    log(LogLevel::error, "after a KEK refresh: what follows it failed", {{"kek", kek_->id()}});
  }
}

void KekRefresher::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    const auto interval = interval_;
    const bool woken = cv_.wait_for(
        lock, interval, [&] { return stopping_ || interval_ != interval || after_refresh_due_; });
    if (stopping_) return;
    if (after_refresh_due_) {  // a refresh_now() ran: its after_refresh, here
      after_refresh_due_ = false;
      lock.unlock();
      run_after_refresh();
      lock.lock();
      continue;
    }
    if (woken) continue;  // a new interval: wait that one from now
    lock.unlock();
    refresh(true);
    run_after_refresh();
    lock.lock();
  }
}

}  // namespace hookvault
