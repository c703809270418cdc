// Start-up: the daemon refuses what check-config refuses (a key readable by
// group or others among them) and hardens itself before loading secrets.
#include <gtest/gtest.h>

#include <fstream>

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

TEST_F(StartupTest, DaemonRunsWithoutCoreDumpsAndSaysSo) {
  start();
  std::ifstream limits("/proc/" + std::to_string(daemon_->pid()) + "/limits");
  std::string line;
  bool found = false;
  while (std::getline(limits, line)) {
    if (line.rfind("Max core file size", 0) == 0) {
      found = true;
      EXPECT_NE(line.find(" 0 "), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(found);
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("\"msg\":\"process hardening\""), std::string::npos);
  EXPECT_NE(log.find("\"core_dumps_disabled\":true"), std::string::npos) << log;
}

}  // namespace
}  // namespace hookvault::testing
