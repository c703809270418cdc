// The service manager's notify protocol (systemd `Type=notify`, through
// libsystemd's sd_notify): tells the manager when the daemon is ready, when it
// reloads and stops, and that it is alive (the watchdog).
//
//   ready()      READY=1 (after the listeners are bound and the store is open;
//                again after each reload), with STATUS=<status> when given
//                (`systemctl status` shows it: whether the last reload failed)
//   reloading()  RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC in us>
//   stopping()   STOPPING=1 (graceful shutdown begins)
//   watchdog     WATCHDOG=1 every half $WATCHDOG_USEC, but only when a probe
//                posted to the I/O loop has run since the previous ping: a
//                stuck loop stops the pings and the manager restarts the daemon.
//
// Without $NOTIFY_SOCKET (not started by systemd) every call does nothing. The
// messages carry no secret and nothing from the configuration.
//
// Thread-safety: ready(), reloading() and stopping() may be called from any
// thread. start_watchdog() and stop_watchdog() from one thread; the `post`
// function given to start_watchdog() must be safe to call from the watchdog's
// own thread. The destructor stops the watchdog.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

namespace hookvault {

class ServiceManager {
 public:
  // Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (and $WATCHDOG_PID) once.
  ServiceManager();
  ~ServiceManager();
  ServiceManager(const ServiceManager&) = delete;
  ServiceManager& operator=(const ServiceManager&) = delete;

  // `status`: a fixed text of the caller's, never from the configuration.
  void ready(std::string_view status = {});
  void reloading();
  void stopping();

  // Zero when the manager asked for no watchdog.
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

  // Starts the watchdog thread when an interval is set: every interval/2 it
  // hands a probe to `post` (e.g. Server::post); the probe, when the I/O loop
  // runs it, sends WATCHDOG=1. At most one probe is outstanding at a time.
  void start_watchdog(std::function<void(std::function<void()>)> post);
  void stop_watchdog();

 private:
  void notify(const char* message);

  std::chrono::microseconds watchdog_interval_{0};
  std::thread watchdog_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  // Shared with the probes, which may outlive a stopped watchdog in a queue.
  std::shared_ptr<std::atomic<bool>> probe_pending_;
};

}  // namespace hookvault
