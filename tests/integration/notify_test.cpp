// systemd's notify protocol, spoken for real without systemd: the test binds
// the AF_UNIX datagram socket a service manager would, names it in
// $NOTIFY_SOCKET (and asks for a watchdog with $WATCHDOG_USEC), runs the real
// daemon and reads what it sends: READY=1 once it serves, RELOADING=1 then
// READY=1 around SIGHUP, WATCHDOG=1 pings, STOPPING=1 on SIGTERM.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

// The manager's end: a bound SOCK_DGRAM socket; one message per datagram.
class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.string().size() >= sizeof addr.sun_path) throw std::runtime_error("path too long");
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("bind: " + std::string(std::strerror(errno)));
    }
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // The next datagram, or "" when none arrives within `timeout`.
  std::string receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

  // Reads datagrams until one contains `needle` (returned) or `timeout`
  // passes (""); every datagram read is appended to `seen`.
  std::string wait_for(const std::string& needle, std::chrono::milliseconds timeout,
                       std::vector<std::string>& seen) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      std::string m = receive(left);
      if (m.empty()) continue;
      seen.push_back(m);
      if (m.find(needle) != std::string::npos) return m;
    }
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

std::size_t count_containing(const std::vector<std::string>& messages, const std::string& s) {
  std::size_t n = 0;
  for (const auto& m : messages) n += m.find(s) != std::string::npos ? 1 : 0;
  return n;
}

class NotifyTest : public E2E {};

TEST_F(NotifyTest, ReadyReloadingWatchdogAndStoppingReachTheManager) {
  NotifySocket manager(dir_.path() / "notify.sock");
  const auto cfg = write_config();
  // 400 ms: the daemon pings every 200 ms.
  daemon_ = std::make_unique<Daemon>(
      cfg,
      std::map<std::string, std::string>{{"NOTIFY_SOCKET", (dir_.path() / "notify.sock").string()},
                                         {"WATCHDOG_USEC", "400000"}});

  std::vector<std::string> seen;
  ASSERT_NE(manager.wait_for("READY=1", 10s, seen), "") << daemon_->log();
  // Nothing but watchdog pings before READY=1 (no STOPPING, no RELOADING).
  for (std::size_t i = 0; i + 1 < seen.size(); ++i) EXPECT_EQ(seen[i], "WATCHDOG=1");
  // READY=1 means serving: the listener is bound and answers at once.
  EXPECT_NE(daemon_->log().find("listening"), std::string::npos);
  EXPECT_EQ(client().request("GET", "/healthz").status, 200U);
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);

  // Watchdog: about 5 pings in 1.1 s at 200 ms; ask for 3 (a loaded machine).
  seen.clear();
  const auto until = std::chrono::steady_clock::now() + 1100ms;
  while (std::chrono::steady_clock::now() < until) {
    std::string m = manager.receive(100ms);
    if (!m.empty()) seen.push_back(m);
  }
  EXPECT_GE(count_containing(seen, "WATCHDOG=1"), 3U);
  EXPECT_EQ(count_containing(seen, "READY=1"), 0U);

  // SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again.
  seen.clear();
  daemon_->hangup();
  const std::string reloading = manager.wait_for("RELOADING=1", 10s, seen);
  ASSERT_NE(reloading, "") << daemon_->log();
  EXPECT_NE(reloading.find("MONOTONIC_USEC="), std::string::npos) << reloading;
  seen.clear();
  ASSERT_NE(manager.wait_for("READY=1", 10s, seen), "") << daemon_->log();
  EXPECT_TRUE(daemon_->wait_for_log("\"msg\":\"reloaded\"", 1)) << daemon_->log();

  // A reload that fails still ends with READY=1: the old config serves on.
  write_file(cfg, "this is not toml [[[", 0600);
  seen.clear();
  daemon_->hangup();
  ASSERT_NE(manager.wait_for("RELOADING=1", 10s, seen), "");
  const std::string failed = manager.wait_for("READY=1", 10s, seen);
  ASSERT_NE(failed, "");
  // ... and the manager's status says so (`systemctl status`).
  EXPECT_NE(failed.find("STATUS=serving; last reload FAILED"), std::string::npos) << failed;
  EXPECT_TRUE(daemon_->wait_for_log("reload failed", 1));
  EXPECT_EQ(client().request("GET", "/healthz").status, 200U);

  // SIGTERM: STOPPING=1 as the graceful shutdown begins; a clean exit.
  client_.reset();
  EXPECT_EQ(daemon_->stop(), 0);
  seen.clear();
  EXPECT_NE(manager.wait_for("STOPPING=1", 2s, seen), "") << daemon_->log();
}

TEST_F(NotifyTest, NoWatchdogPingsUnlessAsked) {
  NotifySocket manager(dir_.path() / "notify.sock");
  daemon_ = std::make_unique<Daemon>(
      write_config(), std::map<std::string, std::string>{
                          {"NOTIFY_SOCKET", (dir_.path() / "notify.sock").string()}});
  std::vector<std::string> seen;
  ASSERT_NE(manager.wait_for("READY=1", 10s, seen), "") << daemon_->log();
  seen.clear();
  for (int i = 0; i < 5; ++i) {
    std::string m = manager.receive(100ms);
    if (!m.empty()) seen.push_back(m);
  }
  EXPECT_EQ(count_containing(seen, "WATCHDOG=1"), 0U);
}

}  // namespace
}  // namespace hookvault::testing
