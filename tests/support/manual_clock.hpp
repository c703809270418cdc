// A Clock (include/hookvault/clock.hpp) that moves only when the test moves
// it: what a store does when time passes (leases lapsing, retention) happens
// at advance(), not after a sleep.
//
// Thread-safety: every call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "hookvault/clock.hpp"

namespace hookvault::testing {

class ManualClock final : public Clock {
 public:
  // Starts at the machine's wall-clock time (stored times look real) and at
  // the machine's steady time.
  ManualClock()
      : ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count()),
        steady_(std::chrono::steady_clock::now().time_since_epoch().count()) {}

  std::int64_t now_ms() const noexcept override { return ms_.load(); }
  std::chrono::steady_clock::time_point now() const noexcept override {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(steady_.load()));
  }

  // Moves both clocks forward by `d`.
  void advance(std::chrono::milliseconds d) noexcept {
    ms_.fetch_add(d.count());
    steady_.fetch_add(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d).count());
  }

 private:
  std::atomic<std::int64_t> ms_;
  std::atomic<std::chrono::steady_clock::rep> steady_;
};

}  // namespace hookvault::testing
