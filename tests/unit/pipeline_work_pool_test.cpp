// WorkPool: bounded, and its threads yield the CPU to the rest of the process.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <latch>

#include "hookvault/work_pool.hpp"

namespace {

int nice_of_this_thread() {
  errno = 0;
  const int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
  EXPECT_EQ(errno, 0);
  return n;
}

TEST(WorkPool, JobsRunAtALowerCpuPriorityThanTheThreadThatPostedThem) {
  const int mine = nice_of_this_thread();
  hookvault::WorkPool pool(2, 8);
  std::promise<int> seen;
  ASSERT_TRUE(pool.try_post([&] { seen.set_value(nice_of_this_thread()); }));
  EXPECT_EQ(seen.get_future().get(), std::min(mine + hookvault::WorkPool::kNiceIncrement, 19));
  // Per thread: the caller's own priority is untouched.
  EXPECT_EQ(nice_of_this_thread(), mine);
}

TEST(WorkPool, AFullQueueRefusesInsteadOfGrowing) {
  hookvault::WorkPool pool(1, 2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::latch started(1);
  ASSERT_TRUE(pool.try_post([&] {
    started.count_down();
    released.wait();
  }));
  started.wait();  // the one thread is busy; the queue is empty
  EXPECT_TRUE(pool.try_post([released] { released.wait(); }));
  EXPECT_TRUE(pool.try_post([released] { released.wait(); }));
  EXPECT_FALSE(pool.try_post([] {}));
  EXPECT_EQ(pool.queued(), 2U);
  release.set_value();
  pool.stop();
  EXPECT_EQ(pool.queued(), 0U);
}

}  // namespace
