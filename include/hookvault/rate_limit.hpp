// RateLimiter: a token bucket per client key (the admin listener uses the
// client certificate's CN).
//
// Each key may make `burst` requests at once and `rate` per second on
// average. try_acquire() takes one token or, when the bucket is empty, says
// how many seconds until the next token (for Retry-After). Buckets of keys
// unseen for a minute are dropped, so memory stays bounded by the number of
// active clients. The clock is injectable for tests.
//
// Thread-safety: try_acquire() is safe from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace hookvault {

class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // rate <= 0 disables limiting.
  RateLimiter(double rate_per_second, double burst, Clock clock = {});

  struct Decision {
    bool allowed = true;
    unsigned retry_after_s = 0;  // when refused: whole seconds, at least 1
  };
  Decision try_acquire(std::string_view key);

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point updated;
  };
  const double rate_;
  const double burst_;
  Clock clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::chrono::steady_clock::time_point last_sweep_;
};

}  // namespace hookvault
