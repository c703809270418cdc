// KekRefresher: the daemon's KEK follows its keyring by itself.
//
// Every `interval` (config [kek] refresh_interval) it calls Kek::refresh()
// (kek.hpp), so a version `keys rotate` added in another process becomes the
// one new records are wrapped under within one interval, without a SIGHUP;
// refresh_now() (SIGHUP) does the same at once, whatever else the reload
// does. The store's lease follows the new version within a second (store.hpp,
// "KEK registrations"), so `keys retire` sees when nothing wraps under the old
// one any more.
//
// Each change of the current version is logged ("KEK version in use", with
// the version before and after) and shown in the gauge hookvault_kek_version.
// A refresh that fails keeps the keyring in use; it is counted in
// hookvault_kek_refresh_failures_total and logged, at most one line per 10 s
// on the timer, naming the file or token and why, never a key.
//
// `after_refresh`, when given, runs on the refresher's own thread after each
// refresh, whether it succeeded or not: after every timed one, and soon after
// each refresh_now() (which wakes the thread for it and does not wait for
// it), so it may block (the daemon's asks the database: kek_coverage.hpp)
// without blocking the caller of refresh_now(), an I/O thread on SIGHUP.
//
// Thread-safety: refresh_now(), set_interval() and stop() are safe from any
// thread; the timer runs on a thread of its own, stopped by stop() or the
// destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "hookvault/kek.hpp"
#include "hookvault/log_throttle.hpp"
#include "hookvault/metrics.hpp"

namespace hookvault {

class KekRefresher {
 public:
  // `metrics` must outlive the refresher.
  KekRefresher(std::shared_ptr<Kek> kek, std::chrono::milliseconds interval, Metrics& metrics,
               std::function<void()> after_refresh = {});
  ~KekRefresher();
  KekRefresher(const KekRefresher&) = delete;
  KekRefresher& operator=(const KekRefresher&) = delete;

  // Refreshes now; false (logged and counted) when it failed.
  bool refresh_now();
  // From the next wait on (a reload).
  void set_interval(std::chrono::milliseconds interval);
  void stop();

 private:
  bool refresh(bool throttled);
  void run_after_refresh() noexcept;  // logs what it throws
  void run();

  const std::shared_ptr<Kek> kek_;
  const std::function<void()> after_refresh_;
  MetricSeries& version_;
  MetricSeries& failures_;
  LogThrottle failure_warning_;
  std::mutex refresh_mu_;  // one refresh at a time, so changes are logged in order
  std::mutex mu_;
  std::condition_variable cv_;
  std::chrono::milliseconds interval_;  // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  bool after_refresh_due_ = false;      // a refresh_now() ran since; guarded by mu_
  std::thread thread_;
};

}  // namespace hookvault
