// SIGHUP reload: rotated webhook secrets, RSA delegation keys and the log
// level take effect without a restart and without dropping an open
// connection; a reload that fails keeps the running keys.
#include <gtest/gtest.h>

#include <thread>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

class ReloadTest : public E2E {
 protected:
  // The config text with `from` replaced by `to`, written over the config.
  void rewrite(const std::string& from, const std::string& to) {
    std::string text = read_file(config_);
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    write_file(config_, text, 0600);
  }

  void reload_and_wait(std::size_t nth, const std::string& needle = "\"msg\":\"reloaded\"") {
    daemon_->hangup();
    ASSERT_TRUE(daemon_->wait_for_log(needle, nth)) << daemon_->log();
  }

  HttpResponse post_with_secret(const std::string& body, const std::string& secret) {
    return post(body, {{"Content-Type", "application/json"},
                       {"x-dynamic-signature-256", "sha256=" + hmac_hex(secret, body)}});
  }
};

TEST_F(ReloadTest, WebhookSecretRotationOnTheSameConnection) {
  start();
  const std::string old_secret = setup().dynamic_secret;
  const std::string new_secret = "rotated-webhook-secret-" + uuid();
  const auto new_file = dir_.path() / "new_secret";
  write_file(new_file, new_secret + "\n", 0600);
  const std::string old_line =
      "secret_files = [\"" + (setup().root / "secrets/dynamic_webhook_secret").string() + "\"]";

  ASSERT_EQ(post_with_secret(ping_event(uuid()), old_secret).status, 200U);
  EXPECT_EQ(post_with_secret(ping_event(uuid()), new_secret).status, 401U);

  // Overlap: both accepted after the reload, on the connection opened before it.
  rewrite(old_line, "secret_files = [\"" +
                        (setup().root / "secrets/dynamic_webhook_secret").string() + "\", \"" +
                        new_file.string() + "\"]");
  reload_and_wait(1);
  EXPECT_EQ(post_with_secret(ping_event(uuid()), old_secret).status, 200U);
  EXPECT_EQ(post_with_secret(ping_event(uuid()), new_secret).status, 200U);

  // The old secret retired.
  const std::string both = "secret_files = [\"" +
                           (setup().root / "secrets/dynamic_webhook_secret").string() + "\", \"" +
                           new_file.string() + "\"]";
  rewrite(both, "secret_files = [\"" + new_file.string() + "\"]");
  reload_and_wait(2);
  EXPECT_EQ(post_with_secret(ping_event(uuid()), old_secret).status, 401U);
  EXPECT_EQ(post_with_secret(ping_event(uuid()), new_secret).status, 200U);
  EXPECT_EQ(connections_opened(), 1U) << "the reloads were not seen on one connection";
  EXPECT_EQ(events().size(), 4U);
}

TEST_F(ReloadTest, NewRsaKeyIsUsedAfterReloadAndABrokenReloadKeepsTheOldKeys) {
  start();
  // A new delegation key pair, announced to Dynamic under a new kid.
  const auto& next = shared_rsa(3072);
  const auto next_file = dir_.path() / "next_rsa.pem";
  write_file(next_file, next.private_pem, 0600);

  Delegation d;
  d.event_id = uuid();
  d.wallet_id = uuid();
  d.share = R"({"secretShare":"share-for-rotation"})";
  d.api_key = "api-key-for-rotation";
  auto before = post_signed(compact(created_event(d, next.public_pem, "next", "next")));
  ASSERT_EQ(before.status, 200U);
  EXPECT_EQ(Json::parse(before.body)["materials"], "decrypt_failed");

  const std::string keys_line = "rsa_private_keys = [{ file = \"" +
                                (setup().root / "keys/dynamic_rsa.pem").string() +
                                "\", kid = \"dynamic_rsa_lSuvWlCy\" }]";
  rewrite(keys_line, "rsa_private_keys = [{ file = \"" +
                         (setup().root / "keys/dynamic_rsa.pem").string() +
                         "\", kid = \"dynamic_rsa_lSuvWlCy\" }, { file = \"" + next_file.string() +
                         "\", kid = \"next\" }]");
  reload_and_wait(1);
  Delegation d2 = d;
  d2.event_id = uuid();
  d2.wallet_id = uuid();
  auto after = post_signed(compact(created_event(d2, next.public_pem, "next", "next")));
  ASSERT_EQ(after.status, 200U);
  EXPECT_EQ(Json::parse(after.body)["materials"], "stored");
  // The old key still works during the overlap.
  Delegation d3 = d2;
  d3.event_id = uuid();
  d3.wallet_id = uuid();
  auto old_key =
      post_signed(compact(created_event(d3, setup().rsa_public_pem, std::nullopt, std::nullopt)));
  EXPECT_EQ(Json::parse(old_key.body)["materials"], "stored");

  // A reload that cannot read a key file keeps everything that runs.
  std::filesystem::remove(next_file);
  reload_and_wait(1, "reload failed; keeping the running configuration");
  EXPECT_NE(daemon_->log().find(next_file.string()), std::string::npos);
  Delegation d4 = d2;
  d4.event_id = uuid();
  d4.wallet_id = uuid();
  auto kept = post_signed(compact(created_event(d4, next.public_pem, "next", "next")));
  EXPECT_EQ(Json::parse(kept.body)["materials"], "stored");
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);
}

TEST_F(ReloadTest, LogLevelTakesEffectOnReload) {
  start();
  const std::string request_line = "\"msg\":\"request\"";
  // At level "info" every answered request is logged.
  ASSERT_EQ(post_signed(ping_event(uuid())).status, 200U);
  ASSERT_TRUE(daemon_->wait_for_log(request_line, 1)) << daemon_->log();

  // One reload sets level "warn" and rotates the webhook secret: the new
  // secret being accepted tells that the reload ran (its own "reloaded" line
  // is at info, so it is not written any more).
  const std::string new_secret = "rotated-with-the-log-level-" + uuid();
  const auto new_file = dir_.path() / "new_secret";
  write_file(new_file, new_secret + "\n", 0600);
  rewrite("level = \"info\"", "level = \"warn\"");
  rewrite("secret_files = [\"" + (setup().root / "secrets/dynamic_webhook_secret").string() + "\"]",
          "secret_files = [\"" + new_file.string() + "\"]");
  daemon_->hangup();
  bool applied = false;
  for (int i = 0; i < 200 && !applied; ++i) {
    applied = post_with_secret(ping_event(uuid()), new_secret).status == 200;
    if (!applied) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(applied) << daemon_->log();
  // The level is set right after the sources are swapped; let that and the
  // request lines of the polling above land.
  std::this_thread::sleep_for(300ms);
  const std::size_t before = daemon_->log_count(request_line);
  ASSERT_GE(before, 1U);

  ASSERT_EQ(post_with_secret(ping_event(uuid()), new_secret).status, 200U);
  // Warnings are still written: a delegation that does not decrypt.
  const Delegation d = random_delegation();
  auto r = post_with_secret(
      compact(created_event(d, shared_rsa(3072).public_pem, "other", "other")), new_secret);
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(Json::parse(r.body)["materials"], "decrypt_failed");
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"delegation decrypt failed\"", 1)) << daemon_->log();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(daemon_->log_count(request_line), before) << daemon_->log();
  EXPECT_EQ(daemon_->log_count("\"msg\":\"reloaded\""), 0U) << daemon_->log();

  // Back to "info": request lines are written again.
  rewrite("level = \"warn\"", "level = \"info\"");
  reload_and_wait(1);
  ASSERT_EQ(post_with_secret(ping_event(uuid()), new_secret).status, 200U);
  EXPECT_TRUE(daemon_->wait_for_log(request_line, before + 1)) << daemon_->log();
}

}  // namespace
}  // namespace hookvault::testing
