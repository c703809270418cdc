// `hookvault keys status | rotate | rewrap | retire` (ops.hpp) over a config
// built in code (file KEK, one Dynamic source): status lines, rotation,
// rewrap to completion, retire refused while a version is used or current,
// and an audit record for every rotate, rewrap and retire.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "hookvault/config.hpp"
#include "hookvault/json.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/ops.hpp"
#include "hookvault/store.hpp"
#include "ops_support.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

using testing::json_lines;
using testing::TempDir;

using Output = testing::CommandOutput;

class OpsKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::file_kek_config(dir_);
    write_events(0, 25);
  }

  // Events 0 .. 19 are plain events; from 20 on, delegations of wallets w0 ..
  // w4 in turn, each newer than the last (so 25 .. 29 replace 20 .. 24's
  // materials and redact their payloads).
  void write_events(int from, int to) {
    auto store = open_store(config_);
    for (int i = from; i < to; ++i) {
      WriteRequest r;
      r.event.source = "dynamic";
      r.event.idempotency_key = "evt-" + std::to_string(i);
      r.event.event_name = "wallet.delegation.created";
      r.event.event_time = "2026-01-01T00:00:00Z";
      r.event.event_time_ms = 1000 + i;
      r.event.payload = R"({"eventId":"evt-)" + std::to_string(i) + R"("})";
      if (i < 20) {
        r.event.event_name = "user.created";
        auto written = store->write(std::move(r));
        ASSERT_TRUE(written) << written.error().message();
        continue;
      }
      r.event.wallet_id = "w" + std::to_string(i % 5);
      DelegationMaterials m;
      m.wallet_id = r.event.wallet_id;
      m.user_id = "u1";
      m.chain = "EVM";
      m.share = SecretBytes::copy_of("share-" + std::to_string(i));
      m.api_key = SecretBytes::copy_of("api-" + std::to_string(i));
      r.materials = std::move(m);
      auto written = store->write(std::move(r));
      ASSERT_TRUE(written) << written.error().message();
    }
    store->close();
  }

  template <class F>
  Output run(F&& command) {
    return testing::run_command(std::forward<F>(command));
  }
  Output status() {
    return run([&](auto& out, auto& err) { return keys_status(config_, out, err); });
  }
  Output rotate() {
    return run([&](auto& out, auto& err) { return keys_rotate(config_, out, err); });
  }
  Output rewrap(std::size_t batch) {
    return run([&](auto& out, auto& err) { return keys_rewrap(config_, batch, out, err); });
  }
  Output retire(std::uint32_t version) {
    return run([&](auto& out, auto& err) { return keys_retire(config_, version, out, err); });
  }
  std::vector<AuditRecord> kek_records() {
    auto store = open_store(config_);
    auto records = store->audit_records(0, 1000);
    EXPECT_TRUE(records);
    std::vector<AuditRecord> out;
    for (auto& r : *records) {
      if (r.entry.action.rfind("kek.", 0) == 0) out.push_back(std::move(r));
    }
    return out;
  }

  TempDir dir_;
  Config config_;
};

TEST_F(OpsKeys, RotateRewrapRetireWithStatusAndAuditAlongTheWay) {
  const std::string id = open_file_kek(config_.kek.file)->id();
  Output s = status();
  ASSERT_EQ(s.code, kExitOk) << s.err;
  auto lines = json_lines(s.out);
  ASSERT_EQ(lines.size(), 1U) << s.out;
  EXPECT_EQ(lines[0], Json::parse(R"({"kekId":")" + id +
                                  R"(","version":1,"current":true,"available":true,)"
                                  R"("events":25,"materials":5,"auditKey":1,"processes":0})"));

  const Output rotated = rotate();
  ASSERT_EQ(rotated.code, kExitOk) << rotated.err;
  EXPECT_EQ(Json::parse(rotated.out), Json::parse(R"({"kekId":")" + id + R"(","version":2})"));
  write_events(25, 30);  // a fresh process: wraps under version 2

  lines = json_lines(status().out);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0]["version"], 1);
  EXPECT_EQ(lines[0]["current"], false);
  EXPECT_EQ(lines[0]["available"], true);
  EXPECT_EQ(lines[0]["events"], 20);  // 20 .. 24's payloads were redacted by 25 .. 29
  EXPECT_EQ(lines[0]["auditKey"], 1);
  EXPECT_EQ(lines[1]["version"], 2);
  EXPECT_EQ(lines[1]["current"], true);
  EXPECT_EQ(lines[1]["events"], 5);
  EXPECT_EQ(lines[1]["materials"], 5);  // the newer delegations replaced every wallet's
  EXPECT_EQ(lines[1]["auditKey"], 0);

  // Refused: still used; current; unknown.
  Output refused = retire(1);
  EXPECT_EQ(refused.code, kExitError);
  EXPECT_NE(refused.err.find("still in use by 20 event keys, 0 materials keys and the audit key"),
            std::string::npos)
      << refused.err;
  refused = retire(2);
  EXPECT_EQ(refused.code, kExitError);
  EXPECT_NE(refused.err.find("current version"), std::string::npos) << refused.err;
  refused = retire(9);
  EXPECT_EQ(refused.code, kExitError);
  EXPECT_NE(refused.err.find("no such version"), std::string::npos) << refused.err;

  const Output rewrapped = rewrap(4);
  ASSERT_EQ(rewrapped.code, kExitOk) << rewrapped.err;
  const auto progress = json_lines(rewrapped.out);
  ASSERT_EQ(progress.size(), 6U) << rewrapped.out;  // 21 keys, 4 at a time
  EXPECT_EQ(progress.front(), Json::parse(R"({"rewrapped":4,"remaining":17,"version":2})"));
  EXPECT_EQ(progress.back(), Json::parse(R"({"rewrapped":21,"remaining":0,"version":2})"));

  lines = json_lines(status().out);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0], Json::parse(R"({"kekId":")" + id +
                                  R"(","version":1,"current":false,"available":true,)"
                                  R"("events":0,"materials":0,"auditKey":0,"processes":0})"));
  EXPECT_EQ(lines[1]["events"], 25);
  EXPECT_EQ(lines[1]["auditKey"], 1);

  const Output retired = retire(1);
  ASSERT_EQ(retired.code, kExitOk) << retired.err;
  lines = json_lines(status().out);
  ASSERT_EQ(lines.size(), 1U) << status().out;
  EXPECT_EQ(lines[0]["version"], 2);
  EXPECT_EQ(open_file_kek(config_.kek.file)->id(), id);

  const auto records = kek_records();
  std::vector<std::string> seen;
  for (const auto& r : records) {
    EXPECT_EQ(r.entry.actor.rfind("cli:", 0), 0U) << r.entry.actor;
    seen.push_back(r.entry.action + " " + r.entry.subject + " " + r.entry.outcome);
  }
  const std::string v1 = id + ":v1";
  const std::string v2 = id + ":v2";
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "kek.rotate " + v2 + " ok",
                      "kek.retire " + v1 +
                          " refused: still in use by 20 event keys, 0 materials keys and the "
                          "audit key; run `hookvault keys rewrap` first",
                      "kek.retire " + v2 + " refused: it is the current version; rotate first",
                      "kek.retire " + id + ":v9 refused: the KEK has no such version",
                      "kek.rewrap " + v2 + " started",
                      "kek.rewrap " + v2 + " ok: 21 rewrapped",
                      "kek.retire " + v1 + " ok",
                  }));
  const Output verified =
      run([&](auto& out, auto& err) { return audit_verify(config_, out, err); });
  EXPECT_EQ(verified.code, kExitOk) << verified.err;
}

TEST_F(OpsKeys, RewrapWithNothingToDoSucceedsAndARotateFailureIsAuditedAsAnError) {
  const Output nothing = rewrap(100);
  ASSERT_EQ(nothing.code, kExitOk) << nothing.err;
  EXPECT_EQ(json_lines(nothing.out).back()["remaining"], 0);

  // A keyring that cannot be rewritten: its temporary file's name is taken.
  const auto in_the_way = dir_ / ("keys/kek.key.tmp-" + std::to_string(::getpid()));
  std::filesystem::create_directory(in_the_way);
  const Output failed = rotate();
  std::filesystem::remove(in_the_way);
  EXPECT_EQ(failed.code, kExitError);
  EXPECT_NE(failed.err.find("cannot rotate the KEK"), std::string::npos) << failed.err;
  EXPECT_EQ(open_file_kek(config_.kek.file)->versions(), std::vector<std::uint32_t>{1});
  const auto records = kek_records();
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().entry.action, "kek.rotate");
  EXPECT_EQ(records.back().entry.outcome.rfind("error: ", 0), 0U) << records.back().entry.outcome;
}

// Two `keys rewrap` at once on one database would do the same work twice:
// while another store holds the lease "rewrap", a rewrap moves nothing,
// says why and fails; once it is released, the rewrap runs.
TEST_F(OpsKeys, ARewrapWhileAnotherHoldsTheRewrapLeaseMovesNothing) {
  ASSERT_EQ(rotate().code, kExitOk);
  auto other = open_store(config_);
  auto held = other->try_lease("rewrap");
  ASSERT_TRUE(held && *held);
  const Output refused = rewrap(100);
  EXPECT_EQ(refused.code, kExitError);
  EXPECT_NE(refused.err.find("another `hookvault keys rewrap` is running"), std::string::npos)
      << refused.err;
  const auto usage = other->kek_usage();
  ASSERT_TRUE(usage);
  std::uint64_t under_v1 = 0;
  for (const auto& u : *usage) {
    if (u.version == 1) under_v1 += u.events + u.materials;
  }
  EXPECT_GT(under_v1, 0U);
  held->reset();
  other->close();  // drops its rows, the released lease's too
  const Output ran = rewrap(100);
  ASSERT_EQ(ran.code, kExitOk) << ran.err;
  EXPECT_EQ(json_lines(ran.out).back()["remaining"], 0);
}

// The audit finding: `keys rotate`, `keys rewrap` (nothing left), then `keys
// retire 1` while a daemon that has not taken version 2 still wraps its new
// records under version 1. Before, the retirement went through and the
// daemon's next acknowledged record could never be read again. Now it is
// refused and names the daemon; `keys rewrap` says the daemon is behind; the
// daemon's record stays readable; and once the daemon has moved on, rewrap
// and retire succeed with everything readable.
TEST_F(OpsKeys, RetireIsRefusedWhileARunningDaemonStillWrapsUnderTheVersionAndSaysWhy) {
  const auto daemon_kek = open_kek(config_);
  auto daemon = open_store(config_, daemon_kek, hookvault::StoreRole::daemon);
  ASSERT_EQ(rotate().code, kExitOk);
  const Output rewrapped = rewrap(100);
  ASSERT_EQ(rewrapped.code, kExitOk) << rewrapped.err;
  EXPECT_EQ(json_lines(rewrapped.out).back()["remaining"], 0);
  EXPECT_NE(rewrapped.err.find("note: 1 running process still wraps new records under an older "
                               "version (serve (pid " +
                               std::to_string(::getpid())),
            std::string::npos)
      << rewrapped.err;

  Output refused = retire(1);
  EXPECT_EQ(refused.code, kExitError) << refused.out;
  EXPECT_NE(refused.err.find("1 running process still wraps new records under version 1 (serve "
                             "(pid " +
                             std::to_string(::getpid())),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("SIGHUP"), std::string::npos) << refused.err;
  EXPECT_EQ(open_file_kek(config_.kek.file)->versions(), (std::vector<std::uint32_t>{1, 2}));
  for (const auto& line : json_lines(status().out)) {
    EXPECT_EQ(line["processes"], line["version"] == 1 ? 1 : 0) << line.dump();
  }

  // The daemon acknowledges a delegation under version 1; it stays readable.
  WriteRequest r;
  r.event.source = "dynamic";
  r.event.idempotency_key = "after-rotate";
  r.event.event_name = "wallet.delegation.created";
  r.event.event_time_ms = 9000;
  r.event.wallet_id = "late-wallet";
  r.event.payload = R"({"eventId":"after-rotate"})";
  DelegationMaterials m;
  m.wallet_id = "late-wallet";
  m.user_id = "u1";
  m.chain = "EVM";
  m.share = SecretBytes::copy_of("late share");
  m.api_key = SecretBytes::copy_of("late api key");
  r.materials = std::move(m);
  ASSERT_TRUE(daemon->write(std::move(r)));
  const auto read_late = [&] {
    return run([&](auto& out, auto& err) {
      return materials_get(config_, "late-wallet", std::nullopt, out, err);
    });
  };
  Output late = read_late();
  ASSERT_EQ(late.code, kExitOk) << late.err;
  EXPECT_EQ(Json::parse(late.out)["walletApiKey"], "late api key");

  // The daemon takes version 2 (its timer or SIGHUP): its lease follows within a second.
  daemon_kek->refresh();
  ASSERT_TRUE(testing::eventually(
      [&] { return retire(1).err.find("running process") == std::string::npos; }));
  refused = retire(1);
  EXPECT_EQ(refused.code, kExitError);
  EXPECT_NE(refused.err.find("still in use by 1 event keys, 1 materials keys"), std::string::npos)
      << refused.err;
  ASSERT_EQ(rewrap(100).code, kExitOk);
  const Output retired = retire(1);
  ASSERT_EQ(retired.code, kExitOk) << retired.err;
  daemon->close();
  late = read_late();
  ASSERT_EQ(late.code, kExitOk) << late.err;
  EXPECT_EQ(Json::parse(late.out)["walletApiKey"], "late api key");
  for (int i = 0; i < 5; ++i) {
    const Output early = run([&](auto& out, auto& err) {
      return materials_get(config_, "w" + std::to_string(i), std::nullopt, out, err);
    });
    EXPECT_EQ(early.code, kExitOk) << early.err;
  }
}

}  // namespace
}  // namespace hookvault
