// ServiceManager's watchdog: WATCHDOG=1 only when the probe it posts has run,
// so a stuck I/O loop stops the pings (and systemd restarts the daemon).
// The manager's socket is a real AF_UNIX datagram socket named in $NOTIFY_SOCKET.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "hookvault/service_manager.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

using namespace std::chrono_literals;

class ServiceManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() / "notify.sock";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path_.string().size(), sizeof addr.sun_path);
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "100000", 1);  // a probe every 50 ms
    ::unsetenv("WATCHDOG_PID");
  }
  void TearDown() override {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::close(fd_);
  }
  // Every datagram that arrives within `window`.
  std::vector<std::string> drain(std::chrono::milliseconds window) {
    std::vector<std::string> out;
    const auto deadline = std::chrono::steady_clock::now() + window;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return out;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[512];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) out.emplace_back(buf, static_cast<std::size_t>(n));
    }
  }

  testing::TempDir dir_;
  std::filesystem::path path_;
  int fd_ = -1;
};

TEST_F(ServiceManagerTest, ReadsTheWatchdogInterval) {
  ServiceManager m;
  EXPECT_EQ(m.watchdog_interval(), 100ms);
  ::unsetenv("WATCHDOG_USEC");
  ServiceManager none;
  EXPECT_EQ(none.watchdog_interval().count(), 0);
}

TEST_F(ServiceManagerTest, MessagesAreTheProtocolsOwn) {
  ServiceManager m;
  m.ready();
  m.reloading();
  m.stopping();
  const auto got = drain(200ms);
  ASSERT_EQ(got.size(), 3U);
  EXPECT_EQ(got[0], "READY=1");
  EXPECT_EQ(got[1].rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0U) << got[1];
  EXPECT_GT(std::stoll(got[1].substr(got[1].find('=', 12) + 1)), 0);
  EXPECT_EQ(got[2], "STOPPING=1");
}

TEST_F(ServiceManagerTest, NoPingWhileTheLoopDoesNotRunTheProbe) {
  ServiceManager m;
  std::mutex mu;
  std::vector<std::function<void()>> queued;  // a stuck I/O loop: nothing runs
  m.start_watchdog([&](std::function<void()> probe) {
    std::lock_guard lock(mu);
    queued.push_back(std::move(probe));
  });
  EXPECT_TRUE(drain(400ms).empty());
  {
    std::lock_guard lock(mu);
    // One probe outstanding at a time, however long the loop is stuck.
    ASSERT_EQ(queued.size(), 1U);
    queued.front()();  // the loop runs it: one ping
  }
  const auto got = drain(300ms);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front(), "WATCHDOG=1");
  m.stop_watchdog();
  std::lock_guard lock(mu);
  EXPECT_EQ(queued.size(), 2U);  // the next probe was posted, and never ran: no second ping
  EXPECT_EQ(got.size(), 1U);
}

TEST_F(ServiceManagerTest, PingsEveryHalfIntervalWhileTheLoopAnswers) {
  ServiceManager m;
  m.start_watchdog([](std::function<void()> probe) { probe(); });  // a responsive loop
  const auto got = drain(500ms);
  m.stop_watchdog();
  EXPECT_GE(got.size(), 5U);  // ~10 at 50 ms
  for (const auto& g : got) EXPECT_EQ(g, "WATCHDOG=1");
  // Stopped: what was sent before stop_watchdog() returned is read first, then
  // nothing more arrives (six intervals).
  (void)drain(50ms);
  EXPECT_TRUE(drain(300ms).empty());
}

}  // namespace
}  // namespace hookvault
