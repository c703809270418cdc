// The mutual-TLS admin listener, end to end: the real daemon, real client
// certificates (made with the openssl CLI at test time), real TLS on loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <set>
#include <sstream>
#include <thread>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

void run(const std::string& command) {
  const std::string quiet = command + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(quiet.c_str()), 0) << command;
}

// A client certificate for `cn` signed by the CA in ca_cert/ca_key.
ClientCertificate make_client_cert(const std::filesystem::path& dir, const std::string& cn,
                                   const std::filesystem::path& ca_cert,
                                   const std::filesystem::path& ca_key) {
  ClientCertificate c{dir / (cn + "-cert.pem"), dir / (cn + "-key.pem")};
  const auto csr = dir / (cn + ".csr");
  run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + cn +
      " -keyout " + c.key.string() + " -out " + csr.string());
  run("openssl x509 -req -in " + csr.string() + " -CA " + ca_cert.string() + " -CAkey " +
      ca_key.string() + " -CAcreateserial -days 1 -out " + c.cert.string());
  return c;
}

// A CA of our own that hookvault does not trust.
std::pair<std::filesystem::path, std::filesystem::path> make_foreign_ca(
    const std::filesystem::path& dir) {
  auto cert = dir / "foreign-ca.pem";
  auto key = dir / "foreign-ca.key";
  run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "
      "/CN=foreign-ca -days 1 -keyout " +
      key.string() + " -out " + cert.string());
  return {cert, key};
}

std::string nodit_message(const std::string& sub, std::uint64_t seq) {
  return R"({"subscriptionId":")" + sub + R"(","sequenceNumber":")" + std::to_string(seq) +
         R"(","protocol":"ETHEREUM","network":"MAINNET","eventType":"ADDRESS_ACTIVITY",)"
         R"("event":{"messages":[{"hash":"0x)" +
         std::to_string(seq) + R"("}]},"createdAt":"2025-10-01T15:13:26.348Z"})";
}

class AdminTest : public E2E {
 protected:
  void SetUp() override {
    E2E::SetUp();
    const auto& root = setup().root;
    ca_cert_ = root / "tls/admin-ca.pem";
    ca_key_ = root / "tls/admin-ca.key";
    signer_ = {root / "tls/signer-cert.pem", root / "tls/signer-key.pem"};
    write_file(dir_.path() / "nodit_key", "nodit-signing-key-for-admin-tests", 0600);
  }

  std::filesystem::path admin_config(const std::string& admin_extra = "",
                                     ConfigOptions o = ConfigOptions{}) {
    const auto& root = setup().root;
    o.extra_toml +=
        "[[sources]]\nname = \"nodit\"\nprovider = \"nodit\"\npath = \"/webhooks/nodit\"\n"
        "secret_files = [\"" +
        (dir_.path() / "nodit_key").string() + "\"]\n";
    o.extra_toml +=
        "[admin]\nlisten = \"127.0.0.1:0\"\n"
        "tls_cert = \"" +
        (root / "tls/admin-cert.pem").string() + "\"\ntls_key = \"" +
        (root / "tls/admin-key.pem").string() + "\"\nclient_ca = \"" + ca_cert_.string() + "\"\n" +
        admin_extra +
        "[[admin.clients]]\nsubject_cn = \"signer\"\nroles = [\"materials:read\"]\n"
        "[[admin.clients]]\nsubject_cn = \"auditor\"\nroles = [\"events:read\"]\n"
        "[[admin.clients]]\nsubject_cn = \"prometheus\"\nroles = [\"metrics:read\"]\n"
        "[[admin.clients]]\nsubject_cn = \"operator\"\nroles = [\"admin\"]\n";
    return write_config(o);
  }

  ClientCertificate cert_for(const std::string& cn) {
    return make_client_cert(dir_.path(), cn, ca_cert_, ca_key_);
  }

  std::unique_ptr<HttpsClient> admin_client(const ClientCertificate& cert) {
    return std::make_unique<HttpsClient>(daemon_->admin_port(), ca_cert_, cert);
  }

  Delegation deliver_delegation() {
    Delegation d;
    d.event_id = uuid();
    d.wallet_id = uuid();
    d.share = R"({"keyShare":"s3cr3t-share-)" + uuid() + R"("})";
    d.api_key = "wallet-api-key-" + uuid();
    auto r = post_signed(compact(created_event(d, setup().rsa_public_pem)));
    EXPECT_EQ(r.status, 200U) << r.body;
    return d;
  }

  HttpResponse deliver_nodit(const std::string& body) {
    return client().request("POST", "/webhooks/nodit",
                            {{"Content-Type", "application/json"},
                             {"x-signature", hmac_hex("nodit-signing-key-for-admin-tests", body)}},
                            body);
  }

  std::vector<Json> audit() {
    auto r = cli({"audit", "list", "--limit", "100000"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(Json::parse(line));
    }
    return out;
  }

  std::filesystem::path ca_cert_;
  std::filesystem::path ca_key_;
  ClientCertificate signer_;
};

TEST_F(AdminTest, SignerReadsMaterialsAndTheReadIsAudited) {
  start(admin_config());
  const Delegation d = deliver_delegation();
  auto signer = admin_client(signer_);
  auto r = signer->request("GET", "/v1/materials/" + d.wallet_id + "?source=dynamic");
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  auto m = Json::parse(r.body);
  EXPECT_EQ(m["walletId"], d.wallet_id);
  EXPECT_EQ(m["userId"], d.user_id);
  EXPECT_EQ(m["eventId"], d.event_id);
  EXPECT_EQ(m["delegatedShare"], d.share);
  EXPECT_EQ(m["walletApiKey"], d.api_key);
  // Without ?source the dynamic sources are searched.
  EXPECT_EQ(signer->request("GET", "/v1/materials/" + d.wallet_id).status, 200U);
  // Unknown wallet: 404, and that attempt is audited too.
  auto missing = signer->request("GET", "/v1/materials/" + uuid() + "?source=dynamic");
  EXPECT_EQ(missing.status, 404U);
  EXPECT_EQ(Json::parse(missing.body)["error"], "not_found");

  EXPECT_EQ(daemon_->stop(), 0);
  auto records = audit();
  int ok = 0;
  int not_found = 0;
  for (const auto& rec : records) {
    if (rec["action"] != "materials.read") continue;
    EXPECT_EQ(rec["actor"], "admin:signer");
    if (rec["outcome"] == "ok") {
      ++ok;
      EXPECT_EQ(rec["subject"], "dynamic/" + d.wallet_id);
    }
    if (rec["outcome"] == "not_found") ++not_found;
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(not_found, 1);
  // Neither the share nor the key is in the daemon's log or the audit log.
  const std::string log = daemon_->log();
  EXPECT_EQ(log.find(d.api_key), std::string::npos);
  EXPECT_EQ(log.find("s3cr3t-share"), std::string::npos);
  auto listing = cli({"audit", "list", "--limit", "100000"});
  EXPECT_EQ(listing.out.find(d.api_key), std::string::npos);
  auto verify = cli({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(AdminTest, RolesDecideAndNothingSecretLeaksOnRefusal) {
  start(admin_config());
  const Delegation d = deliver_delegation();
  const std::string path = "/v1/materials/" + d.wallet_id + "?source=dynamic";

  // An events-only certificate: 403 on materials, 200 on events.
  auto auditor = admin_client(cert_for("auditor"));
  auto denied = auditor->request("GET", path);
  EXPECT_EQ(denied.status, 403U);
  EXPECT_EQ(Json::parse(denied.body)["error"], "forbidden");
  EXPECT_EQ(denied.body.find(d.api_key), std::string::npos);
  EXPECT_EQ(auditor->request("GET", "/v1/events").status, 200U);
  EXPECT_EQ(auditor->request("GET", "/metrics").status, 403U);

  // The signer may read materials but not events or metrics.
  auto signer = admin_client(signer_);
  EXPECT_EQ(signer->request("GET", "/v1/events").status, 403U);
  EXPECT_EQ(signer->request("GET", "/metrics").status, 403U);
  EXPECT_EQ(signer->request("POST", "/v1/reprocess").status, 403U);

  // A certificate from the right CA with a CN nobody configured.
  auto stranger = admin_client(cert_for("stranger"));
  EXPECT_EQ(stranger->request("GET", path).status, 403U);

  // No certificate at all: the handshake succeeds, every request gets 401.
  HttpsClient anonymous(daemon_->admin_port(), ca_cert_);
  auto anon = anonymous.request("GET", path);
  EXPECT_EQ(anon.status, 401U);
  EXPECT_EQ(Json::parse(anon.body)["error"], "client_certificate_required");

  // Wrong method, unknown path.
  EXPECT_EQ(signer->request("POST", path).status, 405U);
  EXPECT_EQ(signer->request("GET", "/v1/nothing").status, 404U);

  // The denied materials attempt is audited with the CN.
  EXPECT_EQ(daemon_->stop(), 0);
  bool found = false;
  for (const auto& rec : audit()) {
    if (rec["actor"] == "admin:auditor" && rec["action"] == "materials.read") {
      EXPECT_EQ(rec["outcome"], "denied");
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(AdminTest, CertificateFromAnotherCaFailsTheHandshake) {
  start(admin_config());
  auto [ca, key] = make_foreign_ca(dir_.path());
  auto forged = make_client_cert(dir_.path(), "signer", ca, key);  // right CN, wrong CA
  EXPECT_THROW(
      {
        HttpsClient c(daemon_->admin_port(), ca_cert_, forged);
        c.request("GET", "/v1/events");
      },
      std::exception);
  // The public listener does not serve the admin API.
  EXPECT_EQ(client().request("GET", "/v1/events").status, 404U);
  EXPECT_EQ(client().request("GET", "/metrics").status, 404U);
}

TEST_F(AdminTest, EventsCursorReadsEveryEventOnceWhileWebhooksArrive) {
  start(admin_config("rate_limit = 0\n"));  // this consumer polls as fast as it can
  constexpr int kEvents = 300;
  std::atomic<int> accepted{0};
  std::thread producer([&] {
    HttpsClient c(daemon_->port(), setup().root / "tls/cert.pem");
    for (int i = 1; i <= kEvents; ++i) {
      const std::string body = nodit_message("cursor-sub", static_cast<std::uint64_t>(i));
      auto r = c.request("POST", "/webhooks/nodit",
                         {{"Content-Type", "application/json"},
                          {"x-signature", hmac_hex("nodit-signing-key-for-admin-tests", body)}},
                         body);
      if (r.status == 200) ++accepted;
    }
  });
  auto consumer = admin_client(cert_for("auditor"));
  std::string after = "0";
  std::vector<std::int64_t> seen;
  std::set<std::string> keys;
  for (int round = 0; round < 100000 && static_cast<int>(keys.size()) < kEvents; ++round) {
    auto r = consumer->request("GET", "/v1/events?source=nodit&limit=7&after=" + after);
    EXPECT_EQ(r.status, 200U) << r.body;
    if (r.status != 200) break;  // (the producer thread is still joined below)
    auto page = Json::parse(r.body);
    for (const auto& e : page["events"]) {
      seen.push_back(std::stoll(e["id"].get<std::string>()));
      EXPECT_TRUE(keys.insert(e["eventId"].get<std::string>()).second)
          << "seen twice: " << e["eventId"];
    }
    after = page["next"].get<std::string>();
    if (page["events"].empty()) std::this_thread::sleep_for(5ms);
  }
  producer.join();
  EXPECT_EQ(accepted.load(), kEvents);
  EXPECT_EQ(static_cast<int>(keys.size()), kEvents);
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]);
  // Nothing more arrives after the last page.
  auto tail = Json::parse(consumer->request("GET", "/v1/events?source=nodit&after=" + after).body);
  EXPECT_TRUE(tail["events"].empty());
  // Bad cursors are refused clearly.
  EXPECT_EQ(consumer->request("GET", "/v1/events?after=x").status, 400U);
  EXPECT_EQ(consumer->request("GET", "/v1/events?limit=0").status, 400U);
  EXPECT_EQ(consumer->request("GET", "/v1/events?limit=1001").status, 400U);
}

TEST_F(AdminTest, EventPayloadReadIsAudited) {
  start(admin_config());
  const Delegation d = deliver_delegation();
  auto auditor = admin_client(cert_for("auditor"));
  auto list = Json::parse(auditor->request("GET", "/v1/events?source=dynamic").body);
  ASSERT_EQ(list["events"].size(), 1U);
  const std::string id = list["events"][0]["id"];
  auto shown = auditor->request("GET", "/v1/events/" + id);
  ASSERT_EQ(shown.status, 200U) << shown.body;
  auto e = Json::parse(shown.body);
  EXPECT_EQ(e["eventId"], d.event_id);
  EXPECT_EQ(e["payload"]["data"]["walletId"], d.wallet_id);
  EXPECT_EQ(auditor->request("GET", "/v1/events/999999").status, 404U);
  EXPECT_EQ(auditor->request("GET", "/v1/events/abc").status, 404U);
  EXPECT_EQ(daemon_->stop(), 0);
  int reads = 0;
  for (const auto& rec : audit()) {
    if (rec["action"] == "event.read" && rec["actor"] == "admin:auditor" && rec["subject"] == id &&
        rec["outcome"] == "ok") {
      ++reads;
    }
  }
  EXPECT_EQ(reads, 1);
}

TEST_F(AdminTest, MetricsParseAsPrometheusTextAndShowNoditGaps) {
  start(admin_config());
  ASSERT_EQ(deliver_nodit(nodit_message("gap-sub", 1)).status, 200U);
  ASSERT_EQ(deliver_nodit(nodit_message("gap-sub", 4)).status, 200U);
  ASSERT_EQ(deliver_nodit(nodit_message("gap-sub", 4)).status, 200U);  // a duplicate
  ASSERT_EQ(deliver_nodit(nodit_message("gap-sub", 5)).status, 200U);  // missing: 2, 3
  auto tampered = client().request("POST", "/webhooks/nodit",
                                   {{"Content-Type", "application/json"}, {"x-signature", "00"}},
                                   nodit_message("gap-sub", 6));
  EXPECT_EQ(tampered.status, 401U);

  auto prometheus = admin_client(cert_for("prometheus"));
  auto r = prometheus->request("GET", "/metrics");
  ASSERT_EQ(r.status, 200U);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  const auto file = dir_.path() / "metrics.txt";
  write_file(file, r.body, 0600);
  // Parsed by the Prometheus project's own Python parser; prints name{labels} value.
  const auto parsed = dir_.path() / "parsed.txt";
  const std::string cmd =
      "/usr/bin/python3 -c 'import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families as f\n"
      "for fam in f(open(sys.argv[1]).read()):\n"
      "  for s in fam.samples:\n"
      "    print(s.name, sorted(s.labels.items()), s.value)' " +
      file.string() + " > " + parsed.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << r.body;
  const std::string samples = read_file(parsed);
  auto has = [&](const std::string& line) {
    EXPECT_NE(samples.find(line), std::string::npos) << "missing: " << line << "\n" << samples;
  };
  has("hookvault_nodit_missing_messages [('source', 'nodit'), ('subscription', 'gap-sub')] 2.0");
  has("hookvault_nodit_highest_contiguous [('source', 'nodit'), ('subscription', 'gap-sub')] 1.0");
  has("hookvault_duplicates_total [('source', 'nodit')] 1.0");
  has("hookvault_signature_failures_total [('source', 'nodit')] 1.0");
  has("hookvault_http_requests_total [('event', ''), ('listener', 'public'), "
      "('source', 'nodit'), ('status', '401')] 1.0");
  has("hookvault_http_requests_total [('event', 'ADDRESS_ACTIVITY'), ('listener', 'public'), "
      "('source', 'nodit'), ('status', '200')] 4.0");
  has("hookvault_open_connections [('listener', 'admin')] 1.0");
  has("hookvault_store_writable [] 1.0");
  EXPECT_NE(samples.find("hookvault_http_request_duration_seconds_bucket"), std::string::npos);
}

TEST_F(AdminTest, ClientsOverTheirRateGet429) {
  start(admin_config("rate_limit = 1\nrate_burst = 3\n"));
  auto auditor = admin_client(cert_for("auditor"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(auditor->request("GET", "/v1/events").status, 200U);
  auto limited = auditor->request("GET", "/v1/events");
  EXPECT_EQ(limited.status, 429U);
  EXPECT_EQ(Json::parse(limited.body)["error"], "rate_limited");
  EXPECT_GE(std::stoi(limited.headers["retry-after"]), 1);
  // Another client has its own bucket.
  auto signer = admin_client(signer_);
  EXPECT_EQ(signer->request("GET", "/v1/materials/" + uuid()).status, 404U);
}

TEST_F(AdminTest, ReprocessOverTheApiNeedsTheAdminRole) {
  const auto& other = shared_rsa(3072);
  const auto other_file = dir_.path() / "other_rsa.pem";
  write_file(other_file, other.private_pem, 0600);
  start(admin_config("", with_rsa_keys({"\"" + other_file.string() + "\""})));
  const Delegation d = deliver_delegation();  // decrypt_failed: wrong key
  EXPECT_EQ(daemon_->stop(), 0);
  start(admin_config(
      "", with_rsa_keys({"\"" + other_file.string() + "\"",
                         "\"" + (setup().root / "keys/dynamic_rsa.pem").string() + "\""})));
  auto signer = admin_client(signer_);
  const std::string path = "/v1/materials/" + d.wallet_id;
  EXPECT_EQ(signer->request("GET", path).status, 404U);
  auto op = admin_client(cert_for("operator"));
  auto r = op->request("POST", "/v1/reprocess");
  ASSERT_EQ(r.status, 200U) << r.body;
  auto results = Json::parse(r.body)["results"];
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0]["eventId"], d.event_id);
  EXPECT_EQ(results[0]["result"], "stored");
  auto m = signer->request("GET", path);
  ASSERT_EQ(m.status, 200U);
  EXPECT_EQ(Json::parse(m.body)["walletApiKey"], d.api_key);
  EXPECT_EQ(daemon_->stop(), 0);
  bool audited = false;
  for (const auto& rec : audit()) {
    if (rec["action"] == "reprocess" && rec["actor"] == "admin:operator") audited = true;
  }
  EXPECT_TRUE(audited);
}

}  // namespace
}  // namespace hookvault::testing
