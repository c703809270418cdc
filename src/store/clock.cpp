// The machine's clocks (clock.hpp).
#include "hookvault/clock.hpp"

namespace hookvault {
namespace {

class SystemClock final : public Clock {
 public:
  std::int64_t now_ms() const noexcept override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::chrono::steady_clock::time_point now() const noexcept override {
    return std::chrono::steady_clock::now();
  }
};

}  // namespace

const Clock& system_clock() noexcept {
  static const SystemClock clock;
  return clock;
}

}  // namespace hookvault
