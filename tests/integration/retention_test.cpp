// Retention: event payloads older than [storage] retention are purged by the
// running daemon; idempotency keys, metadata and materials stay, and a payload
// still waiting for `reprocess` is kept.
#include <gtest/gtest.h>

#include <thread>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

class RetentionTest : public E2E {
 protected:
  std::filesystem::path retention_config(const ConfigOptions& o) {
    auto cfg = write_config(o);
    std::string text = read_file(cfg);
    const auto at = text.find("[storage]\n");
    text.insert(at + 10, "retention = \"3s\"\nretention_interval = \"200ms\"\n");
    write_file(cfg, text, 0600);
    return cfg;
  }

  Json event_by_key(const std::string& key) {
    for (const auto& e : events()) {
      if (e["eventId"] == key) return e;
    }
    ADD_FAILURE() << "no event " << key;
    return Json();
  }

  std::string ping(const std::string& id) {
    return R"({"messageId":")" + uuid() + R"(","eventId":")" + id +
           R"(","eventName":"ping","timestamp":"2025-10-01T15:13:26.348Z","data":{}})";
  }
};

TEST_F(RetentionTest, OldPayloadsArePurgedKeysAndMaterialsStay) {
  // Two RSA keys: the Dynamic one, and a second that cannot open what is
  // encrypted to a third, so one delegation stays pending for reprocess.
  start(retention_config(ConfigOptions{}));
  Delegation d;
  d.event_id = uuid();
  d.wallet_id = uuid();
  d.share = R"({"secretShare":"retention-share"})";
  d.api_key = "retention-api-key";
  ASSERT_EQ(post_signed(compact(created_event(d, setup().rsa_public_pem))).status, 200U);
  const std::string ping_id = uuid();
  ASSERT_EQ(post_signed(ping(ping_id)).status, 200U);
  Delegation pending = d;
  pending.event_id = uuid();
  pending.wallet_id = uuid();
  auto r =
      post_signed(compact(created_event(pending, shared_rsa(3072).public_pem, "other", "other")));
  ASSERT_EQ(r.status, 200U);
  ASSERT_EQ(Json::parse(r.body)["materials"], "decrypt_failed");

  // Within the retention period everything is there.
  EXPECT_FALSE(event_by_key(ping_id)["payloadRedacted"].get<bool>());

  // After it, the purge has run.
  bool purged = false;
  for (int i = 0; i < 100 && !purged; ++i) {
    std::this_thread::sleep_for(100ms);
    purged = event_by_key(ping_id)["payloadRedacted"].get<bool>() &&
             event_by_key(d.event_id)["payloadRedacted"].get<bool>();
  }
  EXPECT_TRUE(purged) << daemon_->log();
  auto shown = cli({"events", "show", ping_id});
  EXPECT_EQ(shown.exit_code, 0);
  EXPECT_TRUE(Json::parse(shown.out)["payload"].is_null());
  // The delegation awaiting reprocess keeps its payload.
  EXPECT_FALSE(event_by_key(pending.event_id)["payloadRedacted"].get<bool>());
  // Materials are not event payloads: they stay until revoked.
  auto m = cli({"materials", "get", d.wallet_id});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(Json::parse(m.out)["walletApiKey"], d.api_key);
  // The idempotency key is permanent.
  auto again = post_signed(ping(ping_id));
  EXPECT_EQ(again.status, 200U);
  EXPECT_EQ(Json::parse(again.body)["status"], "duplicate");
  EXPECT_EQ(events().size(), 3U);
}

}  // namespace
}  // namespace hookvault::testing
