// KekRefresher (kek_refresher.hpp): a version added to the keyring by another
// process becomes current by itself within the interval; a keyring that
// cannot be read keeps the version in use and is counted.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "hookvault/kek.hpp"
#include "hookvault/kek_refresher.hpp"
#include "hookvault/metrics.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::metric_sample;

class KekRefresherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_file(file(), SecretBytes::random(32).reveal_string());
    kek_ = open_file_kek(file());
  }
  std::filesystem::path file() const { return dir_ / "kek.key"; }
  double gauge() const {
    return metric_sample(metrics_.render(), "hookvault_kek_version{kek=\"" + kek_->id() + "\"}");
  }

  testing::TempDir dir_;
  std::shared_ptr<Kek> kek_;
  Metrics metrics_;
};

TEST_F(KekRefresherTest, ARotationElsewhereIsTakenWithinTheIntervalWithoutBeingAsked) {
  KekRefresher refresher(kek_, 50ms, metrics_);
  EXPECT_EQ(gauge(), 1.0);
  EXPECT_EQ(rotate_file_kek(file()), 2U);  // `keys rotate` in another process
  ASSERT_TRUE(eventually([&] { return kek_->version() == 2U; }, 5s));
  EXPECT_TRUE(eventually([&] { return gauge() == 2.0; }, 5s));
  // Wrapped under the new version from now on.
  auto wrapped = kek_->wrap(SecretBytes::random(32), as_bytes(std::string_view("ad")));
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(wrapped->version, 2U);
}

TEST_F(KekRefresherTest, AnUnreadableKeyringKeepsTheVersionInUseAndIsCounted) {
  KekRefresher refresher(kek_, 1h, metrics_);
  rotate_file_kek(file());
  EXPECT_TRUE(refresher.refresh_now());
  EXPECT_EQ(kek_->version(), 2U);
  testing::write_file(file(), "not a keyring at all");
  EXPECT_FALSE(refresher.refresh_now());
  EXPECT_EQ(kek_->version(), 2U);
  EXPECT_EQ(metric_sample(metrics_.render(), "hookvault_kek_refresh_failures_total"), 1.0);
  // A shorter interval applies at once, not after the hour.
  refresher.set_interval(20ms);
  EXPECT_TRUE(eventually(
      [&] { return metric_sample(metrics_.render(), "hookvault_kek_refresh_failures_total") > 2; },
      5s));
  refresher.stop();
  refresher.stop();  // again: nothing happens
}

// after_refresh runs on the refresher's own thread: after each timed refresh,
// and after refresh_now() without the caller waiting for it (a SIGHUP's I/O
// thread must not wait on what it does: the daemon's asks the database).
TEST_F(KekRefresherTest, AfterRefreshRunsOnTheRefreshersThreadNotOnTheCallers) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread::id> ran_on;
  std::vector<std::uint32_t> versions;
  bool release = false;
  KekRefresher refresher(kek_, 1h, metrics_, [&] {
    std::unique_lock lock(mu);
    ran_on.push_back(std::this_thread::get_id());
    versions.push_back(kek_->version());
    cv.notify_all();
    cv.wait(lock, [&] { return release; });  // blocks, as a slow database would
  });
  rotate_file_kek(file());
  EXPECT_TRUE(refresher.refresh_now());  // returns while after_refresh blocks
  EXPECT_EQ(kek_->version(), 2U);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return !ran_on.empty(); }));
    EXPECT_NE(ran_on[0], std::this_thread::get_id());
    EXPECT_EQ(versions[0], 2U);  // after the refresh, not before
    release = true;
  }
  cv.notify_all();
  refresher.set_interval(20ms);
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return ran_on.size() >= 3; }));  // timed ones too
  EXPECT_EQ(ran_on[1], ran_on[0]);
  lock.unlock();
  refresher.stop();
}

}  // namespace
}  // namespace hookvault
