// LogThrottle (log_throttle.hpp): the first event is logged, then at most one
// line per interval, and every event is counted in a line.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "hookvault/log_throttle.hpp"

namespace hookvault {
namespace {

using namespace std::chrono_literals;

TEST(LogThrottle, TheFirstEventIsDueThenOneLinePerIntervalCountingWhatWasHeldBack) {
  LogThrottle throttle(200ms);
  std::uint64_t events = 0;
  ASSERT_TRUE(throttle.due(events));
  EXPECT_EQ(events, 1U);
  for (int i = 0; i < 999; ++i) {
    std::uint64_t held = 0;
    EXPECT_FALSE(throttle.due(held));
    EXPECT_EQ(held, 0U);  // untouched when not due
  }
  std::this_thread::sleep_for(250ms);
  ASSERT_TRUE(throttle.due(events));
  EXPECT_EQ(events, 1000U);  // the 999 held back and this one
  EXPECT_FALSE(throttle.due(events));
}

TEST(LogThrottle, EventsFromManyThreadsAreAllCounted) {
  LogThrottle throttle(1ms);
  std::atomic<std::uint64_t> counted{0};
  std::atomic<int> lines{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (std::uint64_t n = 0; throttle.due(n)) {
          counted += n;
          ++lines;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::this_thread::sleep_for(5ms);
  std::uint64_t last = 0;
  ASSERT_TRUE(throttle.due(last));
  EXPECT_EQ(counted.load() + last, 80001U);
  EXPECT_LT(lines.load(), 80000);
}

}  // namespace
}  // namespace hookvault
