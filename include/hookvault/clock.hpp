// The time the store reads: the wall clock for what it records (when an
// event was received, an audit record appended, a lease renewed or when it
// expires) and a monotonic clock for when something falls due (a lease's
// heartbeat, the next retention pass).
//
// Contract
// - now_ms(): Unix time in milliseconds, as stored in the database and
//   compared with what other processes stored.
// - now(): a monotonic time point; it never goes back.
// - system_clock(): the machine's clocks (std::chrono::system_clock and
//   std::chrono::steady_clock); it lives as long as the process.
// A test passes a clock of its own (tests/support/manual_clock.hpp) so that
// what depends on time (leases lapsing, retention) happens when the test
// moves the clock, not after a sleep. The store still waits in real time
// between its looks at the clock (a second at most), so a test that moves
// the clock waits for that look, not for the time it moved.
//
// Thread-safety: both calls from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace hookvault {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now_ms() const noexcept = 0;
  virtual std::chrono::steady_clock::time_point now() const noexcept = 0;
};

const Clock& system_clock() noexcept;

}  // namespace hookvault
