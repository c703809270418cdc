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

}  // namespace
}  // namespace hookvault::testing
