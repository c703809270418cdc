// Operator commands and the audit log: `materials get`, `events show` and
// `reprocess` append their records before printing; `audit verify` and
// `audit list`. A config built in code over a TempDir (file KEK, one Dynamic
// source); tampering through a separate sqlite3 connection.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "hookvault/config.hpp"
#include "hookvault/ops.hpp"
#include "hookvault/store.hpp"
#include "ops_support.hpp"
#include "raw_db.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

using testing::TempDir;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void sql(const std::filesystem::path& db_path, const std::string& statement) {
  testing::RawDb(db_path).exec(statement);
}

using Output = testing::CommandOutput;

class OpsAudit : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::file_kek_config(dir_);

    auto store = open_store(config_);
    WriteRequest r;
    r.event.source = "dynamic";
    r.event.idempotency_key = "evt-1";
    r.event.event_name = "wallet.delegation.created";
    r.event.event_time = "2026-01-01T00:00:00Z";
    r.event.event_time_ms = 1000;
    r.event.wallet_id = "w1";
    r.event.payload = R"({"eventId":"evt-1","secretish":"payload-secret"})";
    DelegationMaterials m;
    m.wallet_id = "w1";
    m.user_id = "u1";
    m.chain = "EVM";
    m.share = SecretBytes::copy_of("share-secret");
    m.api_key = SecretBytes::copy_of("api-secret");
    r.materials = std::move(m);
    auto written = store->write(std::move(r));
    ASSERT_TRUE(written) << written.error().message();
    event_id_ = written->row_id;
    store->close();
  }

  template <class F>
  Output run(F&& command) {
    return testing::run_command(std::forward<F>(command));
  }
  Output materials(const std::string& wallet) {
    return run([&](auto& out, auto& err) {
      return materials_get(config_, wallet, std::nullopt, out, err);
    });
  }
  Output show(const std::string& id) {
    return run([&](auto& out, auto& err) { return events_show(config_, id, out, err); });
  }
  Output verify() {
    return run([&](auto& out, auto& err) { return audit_verify(config_, out, err); });
  }
  Output list(std::int64_t after = 0) {
    return run([&](auto& out, auto& err) { return audit_list(config_, after, 100, out, err); });
  }
  std::filesystem::path db() const { return config_.storage.path; }

  TempDir dir_;
  Config config_;
  std::int64_t event_id_ = 0;
};

TEST_F(OpsAudit, ReadsAreAuditedBeforeTheyPrintAndTheChainVerifies) {
  const Output got = materials("w1");
  ASSERT_EQ(got.code, kExitOk) << got.err;
  EXPECT_TRUE(contains(got.out, "share-secret"));
  EXPECT_EQ(materials("nobody").code, kExitNotFound);
  const Output shown = show("evt-1");
  ASSERT_EQ(shown.code, kExitOk) << shown.err;
  EXPECT_TRUE(contains(shown.out, "payload-secret"));
  EXPECT_EQ(show("no-such-event").code, kExitNotFound);

  const Output listed = list();
  ASSERT_EQ(listed.code, kExitOk) << listed.err;
  std::istringstream lines(listed.out);
  std::vector<std::string> records;
  for (std::string line; std::getline(lines, line);) records.push_back(line);
  ASSERT_EQ(records.size(), 4U) << listed.out;
  const auto expect_record = [&](std::size_t i, const std::string& action,
                                 const std::string& subject, const std::string& outcome) {
    const std::string& r = records[i];
    EXPECT_TRUE(contains(r, "{\"seq\":" + std::to_string(i + 1) + ",\"timeMs\":")) << r;
    EXPECT_TRUE(contains(r, "\"actor\":\"cli:")) << r;
    EXPECT_TRUE(contains(r, "\"action\":\"" + action + "\"")) << r;
    EXPECT_TRUE(contains(r, "\"subject\":\"" + subject + "\"")) << r;
    EXPECT_TRUE(contains(r, "\"outcome\":\"" + outcome + "\"")) << r;
    EXPECT_TRUE(contains(r, "\"hash\":\"")) << r;
    EXPECT_FALSE(contains(r, "secret")) << r;  // no share, API key or payload
  };
  expect_record(0, "materials.read", "dynamic/w1", "ok");
  expect_record(1, "materials.read", "dynamic/nobody", "not_found");
  expect_record(2, "event.read", std::to_string(event_id_), "ok");
  expect_record(3, "event.read", "no-such-event", "not_found");
  const Output paged = list(3);
  EXPECT_TRUE(contains(paged.out, "{\"seq\":4,")) << paged.out;
  EXPECT_FALSE(contains(paged.out, "{\"seq\":3,")) << paged.out;

  const Output verified = verify();
  EXPECT_EQ(verified.code, kExitOk) << verified.err;
  EXPECT_EQ(verified.out, "{\"ok\":true,\"records\":4}\n");
  EXPECT_EQ(verified.err, "");
}

TEST_F(OpsAudit, VerifyFailsAfterTampering) {
  ASSERT_EQ(materials("w1").code, kExitOk);
  ASSERT_EQ(materials("nobody").code, kExitNotFound);
  ASSERT_EQ(verify().code, kExitOk);

  // Hide that someone looked for a wallet.
  sql(db(), "UPDATE audit SET outcome = 'ok', subject = 'dynamic/w1' WHERE seq = 2");
  const Output broken = verify();
  EXPECT_EQ(broken.code, kExitError);
  EXPECT_TRUE(contains(broken.out, "{\"ok\":false,\"records\":2,\"firstBadSeq\":2,\"problem\":"))
      << broken.out;
  EXPECT_TRUE(contains(broken.out, "record 2 does not match its MAC")) << broken.out;
  EXPECT_TRUE(contains(broken.err, "audit log")) << broken.err;

  sql(db(), "DELETE FROM audit WHERE seq = 2");  // the newest record
  const Output truncated = verify();
  EXPECT_EQ(truncated.code, kExitError);
  EXPECT_TRUE(contains(truncated.out, "\"firstBadSeq\":2")) << truncated.out;
}

TEST_F(OpsAudit, NoSecretIsPrintedWhenTheAuditRecordCannotBeWritten) {
  ASSERT_EQ(materials("w1").code, kExitOk);
  sql(db(), "UPDATE meta SET value = '" + std::string(64, '0') + "' WHERE key = 'audit_head_tag'");
  const Output got = materials("w1");
  EXPECT_EQ(got.code, kExitError);
  EXPECT_EQ(got.out, "");
  EXPECT_TRUE(contains(got.err, "audit record")) << got.err;
  const Output shown = show("evt-1");
  EXPECT_EQ(shown.code, kExitError);
  EXPECT_EQ(shown.out, "");
  EXPECT_TRUE(contains(shown.err, "audit record")) << shown.err;
}

TEST_F(OpsAudit, AnotherKekCannotVerify) {
  ASSERT_EQ(materials("w1").code, kExitOk);
  testing::write_file(dir_ / "keys/kek.key", SecretBytes::random(32).reveal_string());
  const Output o = verify();
  EXPECT_EQ(o.code, kExitError);
  EXPECT_EQ(o.out, "");
  EXPECT_TRUE(contains(o.err, "cannot verify the audit log")) << o.err;
  EXPECT_EQ(materials("w1").code, kExitError);  // cannot read, nor audit
}

TEST_F(OpsAudit, ReprocessAuditsEachEvent) {
  {
    auto store = open_store(config_);
    WriteRequest r;
    r.event.source = "retired";
    r.event.idempotency_key = "evt-2";
    r.event.event_name = "wallet.delegation.created";
    r.event.event_time_ms = 2000;
    r.event.wallet_id = "w2";
    r.event.payload = R"({"eventId":"evt-2"})";
    r.decrypt_failure = "no_matching_key";
    ASSERT_TRUE(store->write(std::move(r)));
    store->close();
  }
  Config no_sources = config_;
  no_sources.sources.clear();  // the event's source is no longer configured
  const Output o = run([&](auto& out, auto& err) { return reprocess(no_sources, out, err); });
  EXPECT_EQ(o.code, kExitError);
  EXPECT_TRUE(contains(o.out, "source no longer configured")) << o.out;
  const Output listed = list();
  EXPECT_TRUE(contains(listed.out, "\"action\":\"reprocess\"")) << listed.out;
  EXPECT_TRUE(contains(listed.out, "\"outcome\":\"source no longer configured\"")) << listed.out;
  EXPECT_EQ(verify().code, kExitOk);
}

}  // namespace
}  // namespace hookvault
