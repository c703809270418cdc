#include "hookvault/rate_limit.hpp"

#include <algorithm>
#include <cmath>

namespace hookvault {
namespace {
constexpr auto kForgetAfter = std::chrono::minutes(1);
}

RateLimiter::RateLimiter(double rate_per_second, double burst, Clock clock)
    : rate_(rate_per_second), burst_(std::max(burst, 1.0)), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
  last_sweep_ = clock_();
}

RateLimiter::Decision RateLimiter::try_acquire(std::string_view key) {
  if (rate_ <= 0) return {};
  const auto now = clock_();
  std::lock_guard lock(mu_);
  if (now - last_sweep_ > kForgetAfter) {
    std::erase_if(buckets_, [&](const auto& kv) { return now - kv.second.updated > kForgetAfter; });
    last_sweep_ = now;
  }
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    it = buckets_.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  b.tokens = std::min(burst_, b.tokens + std::max(0.0, elapsed) * rate_);
  b.updated = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {};
  }
  const double wait = (1.0 - b.tokens) / rate_;
  return {false, static_cast<unsigned>(std::max(1.0, std::ceil(wait)))};
}

}  // namespace hookvault
