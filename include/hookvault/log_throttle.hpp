// LogThrottle: keeps a warning that may repeat thousands of times a second
// (a flood of refused requests, a job that keeps failing) to at most one log
// line per interval, each line counting the events since the previous one.
//
//   if (std::uint64_t n = 0; throttle.due(n)) {
//     log(LogLevel::warn, "...", {{"events", n}});
//   }
//
// due() counts one event and returns true when a line should be written now,
// with `events` set to the events since the last line (this one included).
// The first event is always due; then at most one per interval. Events that
// were not due are not lost: the next line counts them.
//
// Thread-safety: due() is safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace hookvault {

inline constexpr std::chrono::seconds kLogThrottleInterval{10};

class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration interval = kLogThrottleInterval)
      : interval_(interval) {}

  bool due(std::uint64_t& events);

 private:
  const std::chrono::steady_clock::duration interval_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point next_{};  // guarded by mu_
  std::uint64_t events_ = 0;                      // guarded by mu_
};

}  // namespace hookvault
