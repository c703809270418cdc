// WorkPool: bounded, its threads yield the CPU to the rest of the process, and
// a job that throws stops neither the pool nor the process.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <latch>
#include <stdexcept>

#include "hookvault/metrics.hpp"
#include "hookvault/work_pool.hpp"
#include "test_support.hpp"

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

// A job that throws (any exception, or something that is not one) is
// answered through its failure handler, counted, and the pool goes on with
// the next job on the same threads; without this the exception escaped the
// pool thread and std::terminate ended the daemon.
TEST(WorkPool, AJobThatThrowsIsAnsweredThroughItsFailureHandlerAndThePoolGoesOn) {
  hookvault::Metrics metrics;
  hookvault::WorkPool pool(1, 8, &metrics);
  std::promise<std::string> first;
  std::promise<std::string> second;
  ASSERT_TRUE(pool.try_post([] { throw std::runtime_error("job failed"); },
                            [&] { first.set_value("answered 500"); }));
  ASSERT_TRUE(pool.try_post([] { throw 42; }, [&] { second.set_value("answered 500"); }));
  EXPECT_EQ(first.get_future().get(), "answered 500");
  EXPECT_EQ(second.get_future().get(), "answered 500");
  // The next jobs run on the same (only) thread.
  std::promise<int> next;
  ASSERT_TRUE(pool.try_post([&] { next.set_value(7); }));
  EXPECT_EQ(next.get_future().get(), 7);
  EXPECT_EQ(pool.failures(), 2U);
  EXPECT_EQ(
      hookvault::testing::metric_sample(metrics.render(), "hookvault_work_pool_job_failures_total"),
      2.0);
}

TEST(WorkPool, AThrowingFailureHandlerOrNoHandlerAtAllIsCountedToo) {
  hookvault::WorkPool pool(2, 8);
  ASSERT_TRUE(pool.try_post([] { throw std::logic_error("no handler"); }));
  ASSERT_TRUE(pool.try_post([] { throw std::bad_alloc(); },
                            [] { throw std::runtime_error("handler failed too"); }));
  std::latch done(1);
  ASSERT_TRUE(pool.try_post([&] { done.count_down(); }));
  done.wait();
  pool.stop();  // every job has run
  EXPECT_EQ(pool.failures(), 3U);
}

}  // namespace
