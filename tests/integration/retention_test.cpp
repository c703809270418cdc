// Retention: event payloads older than [storage] retention are purged by the
// running daemon; idempotency keys, metadata and materials stay, and a payload
// still waiting for `reprocess` is kept.
#include <gtest/gtest.h>

#include <stdexcept>
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
    if (at == std::string::npos) throw std::runtime_error("no [storage] table in " + text);
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
};

TEST_F(RetentionTest, OldPayloadsArePurgedKeysAndMaterialsStay) {
  // A delegation encrypted to a key the daemon does not have stays pending for
  // reprocess. It is delivered first, so it is the oldest event: a purge that
  // went by age alone would take it first.
  start(retention_config(ConfigOptions{}));
  Delegation pending = random_delegation();
  auto r =
      post_signed(compact(created_event(pending, shared_rsa(3072).public_pem, "other", "other")));
  ASSERT_EQ(r.status, 200U);
  ASSERT_EQ(Json::parse(r.body)["materials"], "decrypt_failed");
  const Delegation d = random_delegation();
  ASSERT_EQ(post_signed(compact(created_event(d, setup().rsa_public_pem))).status, 200U);
  const std::string ping_id = uuid();
  ASSERT_EQ(post_signed(ping_event(ping_id)).status, 200U);

  // Within the retention period (3 s) everything is there, after a few purge
  // ticks (every 200 ms) have run.
  std::this_thread::sleep_for(600ms);
  EXPECT_FALSE(event_by_key(pending.event_id)["payloadRedacted"].get<bool>());
  EXPECT_FALSE(event_by_key(d.event_id)["payloadRedacted"].get<bool>());
  EXPECT_FALSE(event_by_key(ping_id)["payloadRedacted"].get<bool>());
  EXPECT_EQ(daemon_->log().find("\"msg\":\"retention purge\""), std::string::npos);

  // After it, the purge has run.
  bool purged = false;
  for (int i = 0; i < 100 && !purged; ++i) {
    std::this_thread::sleep_for(100ms);
    purged = event_by_key(ping_id)["payloadRedacted"].get<bool>() &&
             event_by_key(d.event_id)["payloadRedacted"].get<bool>();
  }
  EXPECT_TRUE(purged) << daemon_->log();
  // Three more purge intervals, in which no purge takes anything more.
  const std::size_t purges = daemon_->log_count("\"msg\":\"retention purge\"");
  EXPECT_GE(purges, 1U);
  std::this_thread::sleep_for(3 * 200ms);
  EXPECT_EQ(daemon_->log_count("\"msg\":\"retention purge\""), purges) << daemon_->log();
  auto shown = cli({"events", "show", ping_id});
  EXPECT_EQ(shown.exit_code, 0);
  EXPECT_TRUE(Json::parse(shown.out)["payload"].is_null());
  // The delegation awaiting reprocess keeps its payload.
  EXPECT_FALSE(event_by_key(pending.event_id)["payloadRedacted"].get<bool>());
  auto pending_shown = cli({"events", "show", pending.event_id});
  ASSERT_EQ(pending_shown.exit_code, 0) << pending_shown.err;
  EXPECT_FALSE(Json::parse(pending_shown.out)["payload"].is_null());
  // Materials are not event payloads: they stay until revoked.
  auto m = cli({"materials", "get", d.wallet_id});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(Json::parse(m.out)["walletApiKey"], d.api_key);
  // The idempotency key is permanent.
  auto again = post_signed(ping_event(ping_id));
  EXPECT_EQ(again.status, 200U);
  EXPECT_EQ(Json::parse(again.body)["status"], "duplicate");
  EXPECT_EQ(events().size(), 3U);
}

}  // namespace
}  // namespace hookvault::testing
