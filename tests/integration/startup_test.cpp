// Start-up: the daemon refuses what check-config refuses (a key readable by
// group or others among them) and hardens itself before loading secrets.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>
#include <sstream>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

class StartupTest : public E2E {};

TEST_F(StartupTest, RefusesAnRsaKeyReadableByOthers) {
  const auto key = dir_.path() / "loose_rsa.pem";
  write_file(key, read_file(setup().root / "keys/dynamic_rsa.pem"), 0644);
  const auto cfg = write_config(with_rsa_keys({"\"" + key.string() + "\""}));
  auto r = run_hookvault({"serve", "--config", cfg.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("refusing to start"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("readable by group or others"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("BEGIN"), std::string::npos);  // no key material echoed
  // Fixed permissions: it starts.
  std::filesystem::permissions(
      key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace);
  start(cfg);
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);
}

// Sets the test process's soft RLIMIT_CORE to its hard limit for the lifetime
// of the object (the daemon inherits it), so the daemon's own limit is checked,
// not an inherited `ulimit -c 0`.
class CoreLimitRaised {
 public:
  CoreLimitRaised() {
    ok_ = ::getrlimit(RLIMIT_CORE, &saved_) == 0;
    if (!ok_) return;
    rlimit raised = saved_;
    raised.rlim_cur = raised.rlim_max;
    ok_ = ::setrlimit(RLIMIT_CORE, &raised) == 0;
  }
  ~CoreLimitRaised() {
    if (ok_) ::setrlimit(RLIMIT_CORE, &saved_);
  }
  CoreLimitRaised(const CoreLimitRaised&) = delete;
  CoreLimitRaised& operator=(const CoreLimitRaised&) = delete;
  bool ok() const { return ok_; }
  rlim_t hard() const { return saved_.rlim_max; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

TEST_F(StartupTest, DaemonRunsWithoutCoreDumpsAndSaysSo) {
  CoreLimitRaised raised;
  ASSERT_TRUE(raised.ok()) << "getrlimit/setrlimit(RLIMIT_CORE) failed";
  if (raised.hard() == 0) {
    GTEST_SKIP() << "the hard RLIMIT_CORE is 0 here: the daemon could not raise it either, so "
                    "this run cannot tell its own limit from the inherited one";
  }
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_CORE, &now), 0);
  ASSERT_NE(now.rlim_cur, 0U) << "the soft limit the daemon inherits must not be 0";

  start();
  std::ifstream limits("/proc/" + std::to_string(daemon_->pid()) + "/limits");
  ASSERT_TRUE(limits.good());
  const std::string name = "Max core file size";
  std::string line;
  bool found = false;
  while (std::getline(limits, line)) {
    if (line.rfind(name, 0) != 0) continue;
    found = true;
    // "Max core file size        <soft>               <hard>               bytes"
    std::istringstream columns(line.substr(name.size()));
    std::string soft;
    std::string hard;
    columns >> soft >> hard;
    EXPECT_EQ(soft, "0") << line;
    EXPECT_EQ(hard, "0") << line;
  }
  EXPECT_TRUE(found);
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("\"msg\":\"process hardening\""), std::string::npos);
  EXPECT_NE(log.find("\"core_dumps_disabled\":true"), std::string::npos) << log;
}

// The soft and hard "Max open files" of a process, from /proc/PID/limits.
std::pair<std::string, std::string> open_files_limit(int pid) {
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  const std::string name = "Max open files";
  for (std::string line; std::getline(limits, line);) {
    if (line.rfind(name, 0) != 0) continue;
    std::istringstream columns(line.substr(name.size()));
    std::string soft;
    std::string hard;
    columns >> soft >> hard;
    return {soft, hard};
  }
  return {};
}

// Sets the test process's soft RLIMIT_NOFILE (the daemon inherits it) for
// the lifetime of the object.
class SoftFileLimit {
 public:
  explicit SoftFileLimit(rlim_t soft) {
    ok_ = ::getrlimit(RLIMIT_NOFILE, &saved_) == 0 && soft <= saved_.rlim_max;
    rlimit set = saved_;
    set.rlim_cur = soft;
    ok_ = ok_ && ::setrlimit(RLIMIT_NOFILE, &set) == 0;
  }
  ~SoftFileLimit() {
    if (ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  SoftFileLimit(const SoftFileLimit&) = delete;
  SoftFileLimit& operator=(const SoftFileLimit&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

// Started with the usual soft limit of 1024, the daemon raises it to what
// max_connections needs (plus 128 of its own), and not further.
TEST_F(StartupTest, RaisesItsOpenFileLimitForTheConnectionCap) {
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  if (now.rlim_max < 3128) GTEST_SKIP() << "the hard RLIMIT_NOFILE is below 3128 here";
  SoftFileLimit low(1024);
  ASSERT_TRUE(low.ok());
  ConfigOptions o;
  o.server_extra = "max_connections = 3000\n";
  start(write_config(o));
  const auto [soft, hard] = open_files_limit(daemon_->pid());
  EXPECT_EQ(soft, "3128");
  EXPECT_EQ(hard, now.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(now.rlim_max));
  EXPECT_TRUE(daemon_->wait_for_log("\"raised_from\":1024", 1)) << daemon_->log();
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);
}

// A cap the hard limit cannot hold: serve and check-config refuse it, naming
// the key and the limit; one descriptor less and it starts.
TEST_F(StartupTest, RefusesACapOverTheHardOpenFileLimit) {
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  if (now.rlim_max == RLIM_INFINITY || now.rlim_max > 1000000 + 128 || now.rlim_max < 256) {
    GTEST_SKIP() << "the hard RLIMIT_NOFILE here cannot be exceeded by one server cap";
  }
  const rlim_t fits = now.rlim_max - 128;  // plus the daemon's own 128: exactly the limit
  ConfigOptions o;
  o.server_extra = "max_connections = " + std::to_string(fits + 1) + "\n";
  const auto cfg = write_config(o);
  for (const char* command : {"serve", "check-config"}) {
    auto r = run_hookvault({command, "--config", cfg.string()});
    EXPECT_EQ(r.exit_code, 1) << command;
    EXPECT_NE(r.err.find("server.max_connections: " + std::to_string(fits + 1) + " connections"),
              std::string::npos)
        << command << ": " << r.err;
    EXPECT_NE(r.err.find("the hard limit (RLIMIT_NOFILE) is " + std::to_string(now.rlim_max)),
              std::string::npos)
        << command << ": " << r.err;
  }
  o.server_extra = "max_connections = " + std::to_string(fits) + "\n";
  start(write_config(o));
  EXPECT_EQ(open_files_limit(daemon_->pid()).first, std::to_string(now.rlim_max));
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);
}

}  // namespace
}  // namespace hookvault::testing
