#include "hookvault/kek_refresher.hpp"

#include <exception>
#include <string>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"

namespace hookvault {

KekRefresher::KekRefresher(std::shared_ptr<Kek> kek, std::chrono::milliseconds interval,
                           Metrics& metrics)
    : kek_(std::move(kek)),
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

bool KekRefresher::refresh_now() { return refresh(false); }

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

void KekRefresher::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    const auto interval = interval_;
    const bool woken =
        cv_.wait_for(lock, interval, [&] { return stopping_ || interval_ != interval; });
    if (stopping_) return;
    if (woken) continue;  // a new interval: wait that one from now
    lock.unlock();
    refresh(true);
    lock.lock();
  }
}

}  // namespace hookvault
