#include "hookvault/service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"

namespace hookvault {

namespace {

// CLOCK_MONOTONIC in microseconds (libstdc++'s steady_clock on Linux).
std::int64_t monotonic_usec() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ServiceManager::ServiceManager() : probe_pending_(std::make_shared<std::atomic<bool>>(false)) {
  std::uint64_t usec = 0;
  // > 0: $WATCHDOG_USEC is set (and $WATCHDOG_PID, when set, is this process).
  if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_interval_ = std::chrono::microseconds(usec);
  }
}

ServiceManager::~ServiceManager() { stop_watchdog(); }

void ServiceManager::notify(const char* message) {
  // < 0: the socket is set but the message could not be sent. Not fatal: the
  // manager then times the daemon out, which says more than we could.
  if (const int r = ::sd_notify(0, message); r < 0) {
    log(LogLevel::warn, "sd_notify failed", {{"message", message}, {"errno", -r}});
  }
}

void ServiceManager::ready(std::string_view status) {
  if (status.empty()) return notify("READY=1");
  std::string message = "READY=1\nSTATUS=";
  message += status;
  notify(message.c_str());
}

void ServiceManager::reloading() {
  const std::string message = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec());
  notify(message.c_str());
}

void ServiceManager::stopping() { notify("STOPPING=1"); }

void ServiceManager::start_watchdog(std::function<void(std::function<void()>)> post) {
  if (watchdog_interval_.count() == 0 || watchdog_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = false;
  }
  log(LogLevel::info, "watchdog enabled", {{"interval_us", watchdog_interval_.count()}});
  watchdog_ = std::thread([this, post = std::move(post)] {
    name_this_thread("hv-watchdog");
    const auto period = watchdog_interval_ / 2;
    std::unique_lock lock(mu_);
    for (;;) {
      if (!probe_pending_->exchange(true)) {
        // The probe runs on the I/O loop; only then is the manager told we live.
        post([pending = probe_pending_] {
          ::sd_notify(0, "WATCHDOG=1");
          pending->store(false);
        });
      }
      if (wake_.wait_for(lock, period, [this] { return stop_; })) return;
    }
  });
}

void ServiceManager::stop_watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

}  // namespace hookvault
