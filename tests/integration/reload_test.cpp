// SIGHUP reload: rotated webhook secrets, RSA delegation keys and the log
// level take effect without a restart and without dropping an open
// connection; a reload that fails keeps the running keys. The admin
// listener's clients, certificate, client CA and CRL are reloaded too, over
// real mutual TLS, and a change that needs a restart fails the reload loudly.
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "crl_support.hpp"
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

// The admin listener across reloads: two signers (materials:read) and an
// operator (admin, for /metrics), with client certificates from the admin CA.
class AdminReloadTest : public ReloadTest {
 protected:
  void SetUp() override {
    ReloadTest::SetUp();
    ca_cert_ = setup().root / "tls/admin-ca.pem";
    ca_key_ = setup().offline / "admin-ca.key";
    signer_a_ = make_client_cert(dir_.path(), "signer-a", ca_cert_, ca_key_);
    signer_b_ = make_client_cert(dir_.path(), "signer-b", ca_cert_, ca_key_);
    operator_ = make_client_cert(dir_.path(), "operator", ca_cert_, ca_key_);
  }

  static constexpr char kSignerA[] =
      "[[admin.clients]]\nsubject_cn = \"signer-a\"\nroles = [\"materials:read\"]\n";

  // `admin_extra`: more [admin] keys.
  void start_admin(const std::string& admin_extra = "") {
    ConfigOptions o;
    o.extra_toml =
        admin_toml(admin_extra + kSignerA +
                   "[[admin.clients]]\nsubject_cn = \"signer-b\"\n"
                   "roles = [\"materials:read\"]\n"
                   "[[admin.clients]]\nsubject_cn = \"operator\"\nroles = [\"admin\"]\n");
    start(write_config(o));
  }

  std::unique_ptr<HttpsClient> admin_client(const ClientCertificate& cert) {
    return std::make_unique<HttpsClient>(daemon_->admin_port(), ca_cert_, cert);
  }

  Delegation deliver() {
    const Delegation d = random_delegation();
    const auto r = post_signed(compact(created_event(d, setup().rsa_public_pem)));
    EXPECT_EQ(r.status, 200U) << r.body;
    return d;
  }

  HttpResponse read_materials(HttpsClient& c, const Delegation& d) {
    return c.request("GET", "/v1/materials/" + d.wallet_id + "?source=dynamic");
  }

  std::string scrape() {
    auto c = admin_client(operator_);
    auto r = c->request("GET", "/metrics");
    EXPECT_EQ(r.status, 200U) << r.body;
    return r.body;
  }

  // Why a new connection with `cert` cannot read materials ("" when it can).
  std::string refusal(const ClientCertificate& cert, const Delegation& d) {
    try {
      HttpsClient c(daemon_->admin_port(), ca_cert_, cert);
      // TLS 1.3: the server checks the certificate after the client's side
      // of the handshake is done; the refusal arrives on the first read.
      auto r = read_materials(c, d);
      return r.status == 200 ? "" : "HTTP " + std::to_string(r.status);
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  // The SHA-256 fingerprint of the certificate the admin listener presents.
  std::string served_fingerprint() {
    const auto [code, out] = run_shell(
        s_client_command(daemon_->admin_port(), "-cert " + operator_.cert.string() + " -key " +
                                                    operator_.key.string() + " </dev/null") +
        " 2>/dev/null | openssl x509 -noout -fingerprint -sha256");
    EXPECT_EQ(code, 0) << out;
    return out;
  }
  static std::string fingerprint_of(const std::filesystem::path& cert) {
    const auto [code, out] =
        run_shell("openssl x509 -noout -fingerprint -sha256 -in " + cert.string());
    EXPECT_EQ(code, 0) << out;
    return out;
  }

  std::filesystem::path ca_cert_;
  std::filesystem::path ca_key_;
  ClientCertificate signer_a_;
  ClientCertificate signer_b_;
  ClientCertificate operator_;
};

// Revoking a signer by taking it out of [[admin.clients]] works without a
// restart: after SIGHUP its next request, even on the connection it already
// had open, is 403. Before, the reload said "reloaded" and the signer kept
// reading materials until the daemon was restarted.
TEST_F(AdminReloadTest, ARemovedClientIsRefusedAtItsNextRequestOnItsOpenConnectionToo) {
  start_admin();
  const Delegation d = deliver();
  auto a = admin_client(signer_a_);
  ASSERT_EQ(read_materials(*a, d).status, 200U);

  rewrite(kSignerA, "");
  reload_and_wait(1);
  const auto after = read_materials(*a, d);
  EXPECT_EQ(after.status, 403U) << after.body;
  EXPECT_EQ(after.body.find(d.api_key), std::string::npos);
  EXPECT_EQ(refusal(signer_a_, d), "HTTP 403");
  // Nothing else changed: the other signer reads the same materials.
  auto b = admin_client(signer_b_);
  const auto kept = read_materials(*b, d);
  ASSERT_EQ(kept.status, 200U) << kept.body;
  EXPECT_EQ(Json::parse(kept.body)["walletApiKey"], d.api_key);
}

// [admin] client_crl: a signer whose certificate is revoked in the CRL is
// refused at the TLS handshake after SIGHUP, loses the connection it had open,
// and cannot resume its old TLS session either; the other signer is not
// affected. An expired CRL first: it would refuse every client, so that
// reload fails loudly and changes nothing.
TEST_F(AdminReloadTest, ARevokedCertificateIsRefusedAtTheHandshakeAfterSighup) {
  start_admin();
  const Delegation d = deliver();
  auto a = admin_client(signer_a_);
  ASSERT_EQ(read_materials(*a, d).status, 200U);
  // A TLS session of signer-a's to resume later.
  const auto session = dir_.path() / "signer-a.session";
  const std::string request =
      "printf 'GET /v1/materials/" + d.wallet_id +
      " HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | ";
  const std::string as_signer_a = "-cert " + signer_a_.cert.string() + " -key " +
                                  signer_a_.key.string() + " -CAfile " + ca_cert_.string() +
                                  " -ign_eof ";
  auto [first_code, first] = run_shell(
      request +
      s_client_command(daemon_->admin_port(), as_signer_a + "-sess_out " + session.string()) +
      " 2>&1");
  ASSERT_NE(first.find("HTTP/1.1 200"), std::string::npos) << first;
  auto [resumed_code, resumed] = run_shell(
      request +
      s_client_command(daemon_->admin_port(), as_signer_a + "-sess_in " + session.string()) +
      " 2>&1");
  ASSERT_NE(resumed.find("Reused, TLS"), std::string::npos) << resumed;  // resumption works
  ASSERT_NE(resumed.find("HTTP/1.1 200"), std::string::npos) << resumed;

  const auto crl = dir_.path() / "admin-ca.crl";
  CrlOptions expired;
  expired.revoked = {signer_a_.cert};
  expired.last_update = std::chrono::seconds(-7200);
  expired.next_update = std::chrono::seconds(-60);
  write_file(crl, make_crl(ca_cert_, ca_key_, expired), 0644);
  const std::string ca_line = "client_ca = \"" + ca_cert_.string() + "\"\n";
  rewrite(ca_line, ca_line + "client_crl = \"" + crl.string() + "\"\n");
  reload_and_wait(1, "reload failed; keeping the running configuration");
  EXPECT_NE(daemon_->log().find("has expired"), std::string::npos) << daemon_->log();
  EXPECT_EQ(read_materials(*a, d).status, 200U);  // nothing changed

  CrlOptions current;
  current.revoked = {signer_a_.cert};
  write_file(crl, make_crl(ca_cert_, ca_key_, current), 0644);
  reload_and_wait(1);
  // The open, idle connection is closed.
  EXPECT_TRUE(a->read_until_close(std::chrono::seconds(10)).second);
  // A new one is refused at the handshake, for revocation.
  const std::string why = refusal(signer_a_, d);
  static const std::regex kRevoked("revoked", std::regex::icase);
  EXPECT_TRUE(std::regex_search(why, kRevoked)) << why;
  EXPECT_TRUE(daemon_->wait_for_log("\"msg\":\"client certificate refused\"", 1));
  EXPECT_NE(daemon_->log().find("\"reason\":\"certificate revoked\",\"client\":\"signer-a\""),
            std::string::npos)
      << daemon_->log();
  // Its old session does not resume past the new CRL.
  auto [again_code, again] = run_shell(
      request +
      s_client_command(daemon_->admin_port(), as_signer_a + "-sess_in " + session.string()) +
      " 2>&1");
  EXPECT_EQ(again.find("Reused, TLS"), std::string::npos) << again;
  EXPECT_EQ(again.find("HTTP/1.1 200"), std::string::npos) << again;
  EXPECT_EQ(again.find(d.api_key), std::string::npos);
  // The other signer reads the materials, intact.
  auto b = admin_client(signer_b_);
  const auto kept = read_materials(*b, d);
  ASSERT_EQ(kept.status, 200U) << kept.body;
  EXPECT_EQ(Json::parse(kept.body)["walletApiKey"], d.api_key);
  EXPECT_EQ(cli({"materials", "get", d.wallet_id}).exit_code, 0);
}

// A renewed certificate for either listener is served after SIGHUP.
TEST_F(AdminReloadTest, NewListenerCertificatesAreServedAfterSighup) {
  start_admin();
  EXPECT_EQ(served_fingerprint(), fingerprint_of(setup().root / "tls/admin-cert.pem"));
  // A new admin listener certificate for localhost from the admin CA.
  const auto cert = dir_.path() / "admin-cert-2.pem";
  const auto key = dir_.path() / "admin-key-2.pem";
  const auto csr = dir_.path() / "admin-2.csr";
  const auto ext = dir_.path() / "admin-2.ext";
  write_file(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", 0644);
  run_quiet(
      "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "
      "/CN=localhost -keyout " +
      key.string() + " -out " + csr.string());
  run_quiet("openssl x509 -req -in " + csr.string() + " -CA " + ca_cert_.string() + " -CAkey " +
            ca_key_.string() + " -CAcreateserial -days 1 -extfile " + ext.string() + " -out " +
            cert.string());
  std::filesystem::permissions(key, std::filesystem::perms(0600));
  rewrite("tls_cert = \"" + (setup().root / "tls/admin-cert.pem").string() + "\"",
          "tls_cert = \"" + cert.string() + "\"");
  rewrite("tls_key = \"" + (setup().root / "tls/admin-key.pem").string() + "\"",
          "tls_key = \"" + key.string() + "\"");
  // And a new self-signed certificate for the public listener.
  const TlsFiles pub = write_self_signed_cert(dir_.path() / "public");
  rewrite("tls_cert = \"" + (setup().root / "tls/cert.pem").string() + "\"",
          "tls_cert = \"" + pub.cert.string() + "\"");
  rewrite("tls_key = \"" + (setup().root / "tls/key.pem").string() + "\"",
          "tls_key = \"" + pub.key.string() + "\"");
  reload_and_wait(1);

  EXPECT_EQ(served_fingerprint(), fingerprint_of(cert));
  auto signer = admin_client(signer_b_);  // verifies the new certificate against the CA
  EXPECT_EQ(signer->request("GET", "/v1/materials/" + uuid()).status, 404U);
  HttpsClient with_new_trust(daemon_->port(), pub.cert);
  EXPECT_EQ(with_new_trust.request("GET", "/healthz").status, 200U);
}

// A change that a reload cannot apply fails the whole reload, loudly: the log
// names the setting, the gauge hookvault_config_last_reload_successful is 0,
// and nothing of that config applies (the signer removed in the same edit
// still reads). Before, such a reload said "reloaded" and ignored it.
TEST_F(AdminReloadTest, AChangeThatNeedsARestartFailsTheReloadAndNothingOfItApplies) {
  start_admin();
  const Delegation d = deliver();
  rewrite(kSignerA, "");
  rewrite("max_body_bytes = 65536", "max_body_bytes = 1024");
  reload_and_wait(1, "reload failed; keeping the running configuration");
  EXPECT_NE(daemon_->log().find("changed settings that take a restart: server.max_body_bytes"),
            std::string::npos)
      << daemon_->log();
  EXPECT_EQ(daemon_->log_count("\"msg\":\"reloaded\""), 0U);
  auto a = admin_client(signer_a_);
  EXPECT_EQ(read_materials(*a, d).status, 200U);
  std::string metrics = scrape();
  EXPECT_EQ(sample_value(metrics, "hookvault_config_last_reload_successful"), 0.0) << metrics;
  EXPECT_EQ(sample_value(metrics, "hookvault_config_reloads_total{result=\"failure\"}"), 1.0);

  rewrite("max_body_bytes = 1024", "max_body_bytes = 65536");
  reload_and_wait(1);
  EXPECT_EQ(read_materials(*a, d).status, 403U);
  metrics = scrape();
  EXPECT_EQ(sample_value(metrics, "hookvault_config_last_reload_successful"), 1.0) << metrics;
  EXPECT_EQ(sample_value(metrics, "hookvault_config_reloads_total{result=\"success\"}"), 1.0);
}

}  // namespace
}  // namespace hookvault::testing
