// End to end over real TLS: Dynamic delegation webhooks into the real daemon,
// materials back out through the real CLI.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "e2e.hpp"
#include "hookvault/base64.hpp"
#include "raw_db.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

// A realistic EVM share: bytes must come back verbatim (spacing, key order and
// escapes included), never re-serialized.
std::string sample_share() {
  std::string s = R"({"pubkey":{"pubkey":{"0":4,"1":17,"2":203)";
  for (int i = 3; i < 65; ++i) s += ",\"" + std::to_string(i) + "\":" + std::to_string(i * 7 % 256);
  s += R"(}},  "secretShare":"0x)" + uuid() + R"(\u00e9 \"q\"" })";
  return s;
}

Delegation new_delegation() {
  Delegation d;
  d.event_id = uuid();
  d.wallet_id = uuid();
  d.share = sample_share();
  d.api_key = "wak_" + uuid() + uuid();
  d.share_set_id = uuid();
  return d;
}

Json reply_json(const HttpResponse& r) { return Json::parse(r.body); }

// The materials as `hookvault materials get` prints them.
Json materials(E2E& t, const std::string& wallet, int expect_exit = 0) {
  auto r = t.cli({"materials", "get", wallet});
  EXPECT_EQ(r.exit_code, expect_exit) << r.err;
  if (r.exit_code != 0) return Json();
  return Json::parse(r.out);
}

class DynamicTest : public E2E {};

TEST_F(DynamicTest, CreatedIsStoredAndMaterialsComeBackExactly) {
  start();
  const Delegation d = new_delegation();
  // kid on the API key's envelope only, as Dynamic may send it.
  const std::string body = compact(created_event(d, setup().rsa_public_pem));
  auto r = post_signed(body);
  ASSERT_EQ(r.status, 200U) << r.body;
  auto j = reply_json(r);
  EXPECT_EQ(j["status"], "accepted");
  EXPECT_EQ(j["materials"], "stored");
  EXPECT_EQ(j["eventId"], d.event_id);
  EXPECT_FALSE(r.headers["x-request-id"].empty());

  auto m = materials(*this, d.wallet_id);
  EXPECT_EQ(m["delegatedShare"].get<std::string>(), d.share);
  EXPECT_EQ(m["walletApiKey"].get<std::string>(), d.api_key);
  EXPECT_EQ(m["walletId"], d.wallet_id);
  EXPECT_EQ(m["userId"], d.user_id);
  EXPECT_EQ(m["chain"], "EVM");
  EXPECT_EQ(m["shareSetId"], *d.share_set_id);
  EXPECT_EQ(m["eventId"], d.event_id);
  EXPECT_EQ(m["createdAt"], d.timestamp);

  // The same delivery again: duplicate, same id, nothing stored twice.
  auto again = post_signed(body);
  ASSERT_EQ(again.status, 200U);
  EXPECT_EQ(reply_json(again)["status"], "duplicate");
  EXPECT_EQ(reply_json(again)["id"], j["id"]);
  EXPECT_EQ(events().size(), 1U);
  EXPECT_EQ(materials(*this, d.wallet_id), m);
}

TEST_F(DynamicTest, RevocationDestroysMaterialsAndOlderReplaysStayRevoked) {
  start();
  Delegation d = new_delegation();
  d.timestamp = "2025-10-01T15:00:00.000Z";
  const std::string created = compact(created_event(d, setup().rsa_public_pem));
  ASSERT_EQ(post_signed(created).status, 200U);
  materials(*this, d.wallet_id);

  auto rev = post_signed(compact(revoked_event(uuid(), d.wallet_id, "2025-10-02T00:00:00.000Z")));
  ASSERT_EQ(rev.status, 200U) << rev.body;
  EXPECT_EQ(reply_json(rev)["status"], "accepted");
  materials(*this, d.wallet_id, 3);

  // A replay of the original delivery: a duplicate, still revoked.
  EXPECT_EQ(reply_json(post_signed(created))["status"], "duplicate");
  materials(*this, d.wallet_id, 3);

  // A late `created` older than the revocation (new eventId): stored, materials refused.
  Delegation late = d;
  late.event_id = uuid();
  late.timestamp = "2025-10-01T18:00:00.000Z";
  auto lr = post_signed(compact(created_event(late, setup().rsa_public_pem)));
  ASSERT_EQ(lr.status, 200U);
  EXPECT_EQ(reply_json(lr)["status"], "accepted");
  EXPECT_EQ(reply_json(lr)["materials"], "revoked");
  materials(*this, d.wallet_id, 3);

  // A new delegation after the revocation is honoured.
  Delegation renewed = new_delegation();
  renewed.wallet_id = d.wallet_id;
  renewed.timestamp = "2025-10-03T00:00:00.000Z";
  auto nr = post_signed(compact(created_event(renewed, setup().rsa_public_pem)));
  EXPECT_EQ(reply_json(nr)["materials"], "stored");
  EXPECT_EQ(materials(*this, d.wallet_id)["delegatedShare"], renewed.share);

  // The revoked delegation's payload (which held the RSA-encrypted share) is gone.
  for (const auto& e : events()) {
    if (e["eventId"] == d.event_id) {
      EXPECT_TRUE(e["payloadRedacted"].get<bool>());
    }
  }
}

TEST_F(DynamicTest, NewerDelegationReplacesOlderButNeverTheReverse) {
  start();
  Delegation older = new_delegation();
  older.timestamp = "2025-10-01T10:00:00.000Z";
  Delegation newer = new_delegation();
  newer.wallet_id = older.wallet_id;
  newer.timestamp = "2025-10-01T11:00:00.000Z";
  // Deliver out of order: newer first.
  EXPECT_EQ(
      reply_json(post_signed(compact(created_event(newer, setup().rsa_public_pem))))["materials"],
      "stored");
  EXPECT_EQ(
      reply_json(post_signed(compact(created_event(older, setup().rsa_public_pem))))["materials"],
      "superseded");
  EXPECT_EQ(materials(*this, older.wallet_id)["delegatedShare"], newer.share);
}

TEST_F(DynamicTest, PrettyPrintedBodySignedInCompactFormIsAccepted) {
  start();
  const Delegation d = new_delegation();
  const Json event = created_event(d, setup().rsa_public_pem);
  const std::string pretty = event.dump(2);
  auto r = post(pretty, {{"Content-Type", "application/json; charset=utf-8"},
                         {"x-dynamic-signature-256", sign(compact(event))}});
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(reply_json(r)["materials"], "stored");
  // What is stored is what was signed, byte for byte: the compact form.
  auto shown = cli({"events", "show", d.event_id});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(Json::parse(shown.out)["payload"], event);
  EXPECT_NE(shown.out.find("\"payload\":" + compact(event) + "}"), std::string::npos);
  EXPECT_EQ(shown.out.find(pretty), std::string::npos);
}

// A newer delegation replaces the wallet's materials: the older delegation's
// payload (its share, RSA-encrypted to a key on this host) is shredded like a
// revoked one's, gone from the database file and its WAL before the 200; an
// older delegation that arrives after the newer one is stored without it.
TEST_F(DynamicTest, AReplacedDelegationsPayloadIsShreddedWhicheverArrivesFirst) {
  start();
  const auto db = dir_.path() / "data/hookvault.db";
  const auto files = [&db] {
    std::string all;
    for (const auto* suffix : {"", "-wal"}) {
      const auto p = db.string() + suffix;
      if (std::filesystem::exists(p)) all += read_file(p);
    }
    return all;
  };
  const auto redacted = [this](const std::string& event_id) {
    for (const auto& e : events()) {
      if (e["eventId"] == event_id) return e["payloadRedacted"].get<bool>();
    }
    ADD_FAILURE() << "no event " << event_id;
    return false;
  };

  // In order: older, then newer.
  Delegation older = new_delegation();
  older.timestamp = "2025-10-01T10:00:00.000Z";
  Delegation newer = new_delegation();
  newer.wallet_id = older.wallet_id;
  newer.timestamp = "2025-10-01T11:00:00.000Z";
  ASSERT_EQ(
      reply_json(post_signed(compact(created_event(older, setup().rsa_public_pem))))["materials"],
      "stored");
  std::vector<std::pair<std::string, std::string>> sealed;
  {
    RawDb raw(db, RawDb::Mode::read_only);
    for (const char* column : {"payload", "wrapped_dek"}) {
      sealed.emplace_back(
          column, raw.bytes(std::string("SELECT ") + column + " FROM events WHERE idem_key = '" +
                            older.event_id + "'"));
    }
  }
  {
    const std::string before = files();
    for (const auto& [name, bytes] : sealed) {
      ASSERT_GE(bytes.size(), 16U) << name;
      EXPECT_NE(before.find(bytes), std::string::npos) << name << " should be on disk before";
    }
  }
  ASSERT_EQ(
      reply_json(post_signed(compact(created_event(newer, setup().rsa_public_pem))))["materials"],
      "stored");
  const std::string after = files();
  for (const auto& [name, bytes] : sealed) {
    EXPECT_EQ(after.find(bytes.substr(0, 16)), std::string::npos) << name << " survives";
  }
  EXPECT_TRUE(redacted(older.event_id));
  EXPECT_FALSE(redacted(newer.event_id));
  auto shown = cli({"events", "show", older.event_id});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_TRUE(Json::parse(shown.out)["payload"].is_null());
  EXPECT_EQ(materials(*this, older.wallet_id)["delegatedShare"], newer.share);

  // Out of order: the older delegation arrives after the newer one.
  Delegation late = new_delegation();
  late.wallet_id = older.wallet_id;
  late.timestamp = "2025-10-01T10:30:00.000Z";
  auto lr = post_signed(compact(created_event(late, setup().rsa_public_pem)));
  ASSERT_EQ(lr.status, 200U) << lr.body;
  EXPECT_EQ(reply_json(lr)["status"], "accepted");
  EXPECT_EQ(reply_json(lr)["materials"], "superseded");
  EXPECT_TRUE(redacted(late.event_id));
  EXPECT_EQ(RawDb(db, RawDb::Mode::read_only)
                .text("SELECT quote(payload) || quote(wrapped_dek) FROM events WHERE idem_key = '" +
                      late.event_id + "'"),
            "NULLNULL");
  // A replay of it is a duplicate and stores nothing either.
  EXPECT_EQ(reply_json(post_signed(compact(created_event(late, setup().rsa_public_pem))))["status"],
            "duplicate");
  EXPECT_TRUE(redacted(late.event_id));
  EXPECT_EQ(materials(*this, older.wallet_id)["delegatedShare"], newer.share);
  EXPECT_FALSE(redacted(newer.event_id));
}

// Bad input gets a clear answer and loses nothing: a baseline delegation is
// stored first and must read back unchanged after every bad request.
TEST_F(DynamicTest, BadInputsGetTheirStatusAndLeaveStoredDataIntact) {
  ConfigOptions small_body;
  small_body.max_body_bytes = 16384;
  start(write_config(small_body));
  const Delegation base = new_delegation();
  ASSERT_EQ(post_signed(compact(created_event(base, setup().rsa_public_pem))).status, 200U);
  const Json base_materials = materials(*this, base.wallet_id);
  std::size_t stored = 1;

  auto intact = [&](const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(events().size(), stored);
    EXPECT_EQ(materials(*this, base.wallet_id), base_materials);
  };
  auto expect_error = [&](const HttpResponse& r, unsigned status, const std::string& error,
                          const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(r.status, status) << r.body;
    if (!error.empty()) {
      EXPECT_EQ(reply_json(r)["error"], error);
    }
    intact(what);
  };

  const Delegation d = new_delegation();
  const std::string body = compact(created_event(d, setup().rsa_public_pem));
  const std::string json_ct = "application/json";

  expect_error(post(body, {{"Content-Type", json_ct}}), 401, "invalid_signature", "no signature");
  auto wrong = post(body, {{"Content-Type", json_ct},
                           {"x-dynamic-signature-256", "sha256=" + hmac_hex("dyn_wrong", body)}});
  expect_error(wrong, 401, "invalid_signature", "wrong secret");
  EXPECT_EQ(wrong.body.find(hmac_hex(setup().dynamic_secret, body)), std::string::npos);
  std::string tampered = body;
  tampered[tampered.find("EVM")] = 'X';
  expect_error(post(tampered, {{"Content-Type", json_ct}, {"x-dynamic-signature-256", sign(body)}}),
               401, "invalid_signature", "tampered body");
  expect_error(post(body, {{"Content-Type", json_ct}, {"x-dynamic-signature-256", "sha256=zz"}}),
               401, "invalid_signature", "malformed signature header");

  const std::string dup =
      R"({"eventId":")" + uuid() + R"(","eventName":"ping","eventName":"ping","data":{}})";
  expect_error(post_signed(dup), 400, "duplicate_key", "duplicate keys");
  expect_error(post_signed("{\"eventId\":"), 400, "malformed_json", "truncated JSON");
  expect_error(post_signed(R"({"eventName":"ping","data":{}})"), 400, "missing_field",
               "missing eventId");
  expect_error(
      post(body, {{"Content-Type", "text/plain"}, {"x-dynamic-signature-256", sign(body)}}), 415,
      "unsupported_media_type", "wrong content type");
  const std::string big = R"({"eventId":"x","pad":")" + std::string(20000, 'a') + "\"}";
  {
    HttpsClient fresh(daemon_->port());
    auto r =
        fresh.request("POST", "/webhooks/dynamic",
                      {{"Content-Type", json_ct}, {"x-dynamic-signature-256", sign(big)}}, big);
    expect_error(r, 413, "", "oversized body");
  }
  expect_error(client().request("GET", "/webhooks/dynamic"), 405, "method_not_allowed", "GET");
  expect_error(client().request("POST", "/webhooks/unknown", {{"Content-Type", json_ct}}, body),
               404, "not_found", "unknown path");

  // Envelope problems never lose the event: 200 with materials decrypt_failed.
  auto decrypt_failed = [&](Json event, const std::string& what) {
    SCOPED_TRACE(what);
    auto r = post_signed(compact(event));
    EXPECT_EQ(r.status, 200U) << r.body;
    EXPECT_EQ(reply_json(r)["status"], "accepted");
    EXPECT_EQ(reply_json(r)["materials"], "decrypt_failed");
    ++stored;
    intact(what);
    const Json stored_event = events().back();
    EXPECT_EQ(stored_event["materials"], "decrypt_failed");
    EXPECT_FALSE(stored_event["failureReason"].get<std::string>().empty());
    materials(*this, event["data"]["walletId"].get<std::string>(), 3);
  };
  auto fresh_event = [&] {
    Delegation x = new_delegation();
    return created_event(x, setup().rsa_public_pem);
  };
  {
    Json e = fresh_event();
    auto& ct = e["data"]["encryptedDelegatedShare"]["ct"];
    ct = ct.get<std::string>().substr(0, ct.get<std::string>().size() / 2);
    decrypt_failed(e, "truncated ct");
  }
  {
    Json e = fresh_event();
    e["data"]["encryptedWalletApiKey"]["iv"] = "!!not base64!!";
    decrypt_failed(e, "non-base64 iv");
  }
  {
    Json e = fresh_event();
    auto ek = e["data"]["encryptedDelegatedShare"]["ek"].get<std::string>();
    e["data"]["encryptedDelegatedShare"]["ek"] = ek.substr(0, ek.size() - 10);
    decrypt_failed(e, "truncated ek");
  }
  {
    Delegation x = new_delegation();
    decrypt_failed(created_event(x, shared_rsa(2048).public_pem, std::nullopt, std::nullopt),
                   "wrong RSA key");
  }
  {
    Json e = fresh_event();
    auto tag =
        base64_decode_lenient(e["data"]["encryptedDelegatedShare"]["tag"].get<std::string>());
    ASSERT_TRUE(tag);
    (*tag)[0] ^= 0x01;
    e["data"]["encryptedDelegatedShare"]["tag"] = base64url_encode(*tag);
    decrypt_failed(e, "flipped GCM tag");
  }
  {
    Json e = fresh_event();
    e["data"]["encryptedWalletApiKey"]["alg"] = "RSA-OAEP-256";
    decrypt_failed(e, "unknown alg");
  }
}

TEST_F(DynamicTest, SlowClientsAreCutOff) {
  start();
  ASSERT_EQ(post_signed(compact(created_event(new_delegation(), setup().rsa_public_pem))).status,
            200U);
  {
    // A head trickled one byte at a time, never finished: header_timeout (1s).
    HttpsClient slow(daemon_->port());
    const std::string head = "POST /webhooks/dynamic HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    slow.write_raw(head);
    const auto t0 = std::chrono::steady_clock::now();
    bool closed = false;
    for (int i = 0; i < 40 && !closed; ++i) {
      std::this_thread::sleep_for(200ms);
      try {
        slow.write_raw("a");
      } catch (const std::exception&) {
        closed = true;
      }
    }
    if (!closed) closed = slow.read_until_close(2s).second;
    EXPECT_TRUE(closed);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s);
  }
  {
    // A body that stops halfway: body_timeout (1s).
    HttpsClient slow(daemon_->port());
    slow.write_raw(
        "POST /webhooks/dynamic HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n{\"eventId\":");
    auto [got, closed] = slow.read_until_close(5s);
    EXPECT_TRUE(closed);
  }
  // Legitimate clients are still served and nothing changed.
  EXPECT_EQ(client().request("GET", "/healthz").status, 200U);
  EXPECT_EQ(events().size(), 1U);
}

TEST_F(DynamicTest, ReprocessDecryptsOnceTheKeyIsConfigured) {
  // The daemon first knows only a key that is not the one Dynamic used.
  const auto& other = shared_rsa(3072);
  const auto other_file = dir_.path() / "other_rsa.pem";
  write_file(other_file, other.private_pem, 0600);
  start(write_config(with_rsa_keys({"\"" + other_file.string() + "\""})));
  const Delegation d = new_delegation();
  auto r = post_signed(compact(created_event(d, setup().rsa_public_pem)));
  ASSERT_EQ(r.status, 200U);
  EXPECT_EQ(reply_json(r)["materials"], "decrypt_failed");
  materials(*this, d.wallet_id, 3);
  EXPECT_EQ(daemon_->stop(), 0);

  // The operator adds the right key; reprocess decrypts the kept event.
  write_config(with_rsa_keys({"\"" + other_file.string() + "\"",
                              "\"" + (setup().root / "keys/dynamic_rsa.pem").string() + "\""}));
  auto rp = cli({"reprocess"});
  EXPECT_EQ(rp.exit_code, 0) << rp.out << rp.err;
  EXPECT_NE(rp.out.find("stored"), std::string::npos) << rp.out;
  auto m = materials(*this, d.wallet_id);
  EXPECT_EQ(m["delegatedShare"], d.share);
  EXPECT_EQ(m["walletApiKey"], d.api_key);
  // Nothing left to do the second time.
  auto again = cli({"reprocess"});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(again.out.find("stored"), std::string::npos);
}

TEST_F(DynamicTest, PingAndOtherEventsAreStoredAndAcknowledged) {
  start();
  Json ping = {
      {"messageId", uuid()},
      {"eventId", uuid()},
      {"eventName", "ping"},
      {"timestamp", "2025-10-01T15:13:26.348Z"},
      {"webhookId", uuid()},
      {"userId", nullptr},
      {"environmentId", uuid()},
      {"data", {{"message", "hello"}, {"events", Json::array({"*"})}, {"isEnabled", true}}},
      {"futureField", {{"kept", 1}}}};
  auto r = post_signed(compact(ping));
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(reply_json(r)["status"], "accepted");
  EXPECT_FALSE(reply_json(r).contains("materials"));
  auto shown = cli({"events", "show", reply_json(r)["id"].get<std::string>()});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(Json::parse(shown.out)["payload"]["futureField"]["kept"], 1);
  EXPECT_EQ(Json::parse(shown.out)["eventName"], "ping");
}

TEST_F(DynamicTest, SecretsNeverReachLogsOrTheDatabaseFile) {
  start();
  const Delegation d = new_delegation();
  ASSERT_EQ(post_signed(compact(created_event(d, setup().rsa_public_pem))).status, 200U);
  // A failing one too, so the failure path's log lines are covered.
  Json bad = created_event(new_delegation(), setup().rsa_public_pem);
  bad["data"]["encryptedDelegatedShare"]["tag"] = "AAAAAAAAAAAAAAAAAAAAAA";
  ASSERT_EQ(post_signed(compact(bad)).status, 200U);
  auto listed = cli({"events", "list"});
  const std::string daemon_log = daemon_->log();
  ASSERT_EQ(daemon_->stop(), 0);

  const std::string secret_share_part = d.share.substr(d.share.find("0x"), 38);
  std::vector<std::string> secrets = {secret_share_part, d.api_key, setup().dynamic_secret};
  std::vector<std::pair<std::string, std::string>> haystacks = {
      {"daemon log", daemon_log}, {"events list", listed.out + listed.err}};
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path() / "data")) {
    haystacks.emplace_back(entry.path().filename().string(), read_file(entry.path()));
  }
  EXPECT_GE(haystacks.size(), 3U);
  for (const auto& [name, text] : haystacks) {
    for (const auto& s : secrets) {
      EXPECT_EQ(text.find(s), std::string::npos) << "a secret appears in " << name;
    }
  }
  EXPECT_NE(daemon_log.find("\"msg\":\"request\""), std::string::npos);
}

TEST_F(DynamicTest, HealthReadinessAndGracefulShutdown) {
  start();
  EXPECT_EQ(client().request("GET", "/healthz").status, 200U);
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);
  EXPECT_EQ(daemon_->stop(), 0);
  EXPECT_NE(daemon_->log().find("stopped"), std::string::npos);
}

TEST_F(DynamicTest, InitConfigServesAsGenerated) {
  // The config `hookvault init` wrote, with only the port changed to 0.
  std::string text = read_file(setup().root / "hookvault.toml");
  const auto pos = text.find("127.0.0.1:8443");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 14, "127.0.0.1:0");
  const auto pos_admin = text.find("127.0.0.1:9443");
  if (pos_admin != std::string::npos) text.replace(pos_admin, 14, "127.0.0.1:0");
  // Keep the store inside this test's folder.
  const auto copy = setup().root / ("test-" + uuid() + ".toml");
  write_file(copy, text, 0600);
  auto check = run_hookvault({"check-config", "--config", copy.string()});
  EXPECT_EQ(check.exit_code, 0) << check.err;
  Daemon daemon(copy);
  HttpsClient c(daemon.port(), setup().root / "tls/cert.pem");
  EXPECT_EQ(c.request("GET", "/healthz").status, 200U);
  EXPECT_EQ(daemon.stop(), 0);
  std::filesystem::remove(copy);
}

TEST_F(DynamicTest, CheckConfigNamesTheBrokenKeyAndFile) {
  const auto cfg = write_config();
  std::string text = read_file(cfg);
  text.replace(text.find("threads = 2"), 11, "threads = \"two\"");
  write_file(cfg, text, 0600);
  auto r = run_hookvault({"check-config", "--config", cfg.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("server.threads"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(cfg.string()), std::string::npos) << r.err;
  auto s = run_hookvault({"serve", "--config", cfg.string()});
  EXPECT_NE(s.exit_code, 0);
}

}  // namespace
}  // namespace hookvault::testing

namespace hookvault::testing {
namespace {

// `openssl s_client` as the peer: exit status 0 when the handshake succeeds.
int handshake(std::uint16_t port, const std::string& version_flag) {
  return run_shell(s_client_command(port, version_flag) + " </dev/null").first;
}

class TlsTest : public E2E {};

TEST_F(TlsTest, OldProtocolsAreRefusedAndTls13OnlyIsAnOption) {
  start();
  EXPECT_EQ(handshake(daemon_->port(), "-tls1_2"), 0);
  EXPECT_EQ(handshake(daemon_->port(), "-tls1_3"), 0);
  // SECLEVEL=0 so that the client itself would allow the old protocol.
  EXPECT_NE(handshake(daemon_->port(), "-tls1_1 -cipher DEFAULT@SECLEVEL=0"), 0);
  EXPECT_NE(handshake(daemon_->port(), "-tls1 -cipher DEFAULT@SECLEVEL=0"), 0);
  EXPECT_EQ(daemon_->stop(), 0);

  ConfigOptions o;
  o.server_extra = "tls_min_version = \"1.3\"";
  start(write_config(o));
  EXPECT_EQ(handshake(daemon_->port(), "-tls1_3"), 0);
  EXPECT_NE(handshake(daemon_->port(), "-tls1_2"), 0);
}

TEST_F(TlsTest, OversizedHeadGets431AndTheConnectionCloses) {
  start();
  HttpsClient c(daemon_->port());
  auto r = c.request("GET", "/healthz", {{"X-Big", std::string(20000, 'a')}});
  EXPECT_EQ(r.status, 431U);
  std::map<std::string, std::string> many;
  for (int i = 0; i < 100; ++i) many["X-H" + std::to_string(i)] = "v";
  HttpsClient c2(daemon_->port());
  EXPECT_EQ(c2.request("GET", "/healthz", many).status, 431U);
  HttpsClient c3(daemon_->port());
  EXPECT_EQ(c3.request("GET", "/healthz").status, 200U);
}

}  // namespace
}  // namespace hookvault::testing
