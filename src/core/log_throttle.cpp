#include "hookvault/log_throttle.hpp"

namespace hookvault {

bool LogThrottle::due(std::uint64_t& events) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  ++events_;
  if (now < next_) return false;
  next_ = now + interval_;
  events = events_;
  events_ = 0;
  return true;
}

}  // namespace hookvault
