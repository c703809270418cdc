// The mutual-TLS admin listener, end to end: the real daemon, real client
// certificates (made with the openssl CLI at test time), real TLS on loopback.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "e2e.hpp"
#include "hookvault/proxy_protocol.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

// A CA of our own that hookvault does not trust.
std::pair<std::filesystem::path, std::filesystem::path> make_foreign_ca(
    const std::filesystem::path& dir) {
  auto cert = dir / "foreign-ca.pem";
  auto key = dir / "foreign-ca.key";
  run_quiet(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "
      "/CN=foreign-ca -days 1 -keyout " +
      key.string() + " -out " + cert.string());
  return {cert, key};
}

constexpr char kNoditKey[] = "nodit-signing-key-for-admin-tests";

class AdminTest : public E2E {
 protected:
  void SetUp() override {
    E2E::SetUp();
    const auto& root = setup().root;
    ca_cert_ = root / "tls/admin-ca.pem";
    ca_key_ = setup().offline / "admin-ca.key";
    signer_ = {setup().offline / "signer-cert.pem", setup().offline / "signer-key.pem"};
  }

  std::filesystem::path admin_config(const std::string& admin_extra = "",
                                     ConfigOptions o = ConfigOptions{}) {
    add_nodit_source(o, kNoditKey);
    o.extra_toml +=
        admin_toml(admin_extra +
                   "[[admin.clients]]\nsubject_cn = \"signer\"\nroles = [\"materials:read\"]\n"
                   "[[admin.clients]]\nsubject_cn = \"auditor\"\nroles = [\"events:read\"]\n"
                   "[[admin.clients]]\nsubject_cn = \"prometheus\"\nroles = [\"metrics:read\"]\n"
                   "[[admin.clients]]\nsubject_cn = \"operator\"\nroles = [\"admin\"]\n");
    return write_config(o);
  }

  ClientCertificate cert_for(const std::string& cn) {
    return make_client_cert(dir_.path(), cn, ca_cert_, ca_key_);
  }

  std::unique_ptr<HttpsClient> admin_client(const ClientCertificate& cert) {
    return std::make_unique<HttpsClient>(daemon_->admin_port(), ca_cert_, cert);
  }

  Delegation deliver_delegation() {
    const Delegation d = random_delegation();
    auto r = post_signed(compact(created_event(d, setup().rsa_public_pem)));
    EXPECT_EQ(r.status, 200U) << r.body;
    return d;
  }

  HttpResponse deliver_nodit(const std::string& body) {
    return post_nodit(client(), kNoditKey, body);
  }

  // GET /metrics on a new connection with the "prometheus" (metrics:read) certificate.
  std::string scrape() {
    if (!prometheus_cert_) prometheus_cert_ = cert_for("prometheus");
    auto prometheus = admin_client(*prometheus_cert_);
    auto r = prometheus->request("GET", "/metrics");
    EXPECT_EQ(r.status, 200U) << r.body;
    return r.body;
  }

  std::filesystem::path ca_cert_;
  std::filesystem::path ca_key_;
  ClientCertificate signer_;
  std::optional<ClientCertificate> prometheus_cert_;
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

  // "admin" holds every role.
  auto op = admin_client(cert_for("operator"));
  auto op_metrics = op->request("GET", "/metrics");
  EXPECT_EQ(op_metrics.status, 200U);
  EXPECT_NE(op_metrics.body.find("hookvault_http_requests_total"), std::string::npos);
  auto op_read = op->request("GET", path);
  ASSERT_EQ(op_read.status, 200U) << op_read.body;
  EXPECT_EQ(Json::parse(op_read.body)["walletApiKey"], d.api_key);
  EXPECT_EQ(op->request("GET", "/v1/materials/" + uuid() + "?source=dynamic").status, 404U);
  EXPECT_EQ(op->request("GET", "/v1/events").status, 200U);

  // Refusals before any role check are logged with their reason.
  EXPECT_TRUE(daemon_->wait_for_log("\"reason\":\"unknown_client\"", 1)) << daemon_->log();
  EXPECT_TRUE(daemon_->wait_for_log("\"reason\":\"no_certificate\"", 1)) << daemon_->log();

  // The denied materials attempt is audited with the CN; the operator's reads
  // are audited as its own; the unknown CN and the anonymous client never
  // reached a secret and left no audit record.
  EXPECT_EQ(daemon_->stop(), 0);
  bool found = false;
  int operator_reads = 0;
  for (const auto& rec : audit()) {
    if (rec["actor"] == "admin:auditor" && rec["action"] == "materials.read") {
      EXPECT_EQ(rec["outcome"], "denied");
      // Named as a granted read would name it.
      EXPECT_EQ(rec["subject"], "dynamic/" + d.wallet_id);
      found = true;
    }
    if (rec["actor"] == "admin:operator" && rec["action"] == "materials.read") ++operator_reads;
    EXPECT_NE(rec["actor"], "admin:stranger") << rec.dump();
    EXPECT_NE(rec["actor"], "admin:") << rec.dump();
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(operator_reads, 2);
}

TEST_F(AdminTest, CertificateFromAnotherCaFailsTheHandshake) {
  start(admin_config());
  const std::string failures = "hookvault_tls_handshake_failures_total{listener=\"admin\"}";
  const double failures_before = sample_value(scrape(), failures);
  EXPECT_EQ(failures_before, 0.0);

  auto [ca, key] = make_foreign_ca(dir_.path());
  auto forged = make_client_cert(dir_.path(), "signer", ca, key);  // right CN, wrong CA
  std::string failure;
  try {
    HttpsClient c(daemon_->admin_port(), ca_cert_, forged);
    // With TLS 1.3 the server checks the client certificate after the
    // client's side of the handshake is done: the refusal arrives on the first read.
    auto r = c.request("GET", "/v1/events");
    ADD_FAILURE() << "a certificate from another CA was answered: " << r.status << " " << r.body;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  // The server's alert names the reason: the issuer is not a CA it trusts.
  static const std::regex kCertificateFailure(
      "unknown ca|certificate verify failed|bad certificate", std::regex::icase);
  EXPECT_TRUE(std::regex_search(failure, kCertificateFailure)) << failure;

  // The listener lives on: the real signer certificate is served by the same daemon.
  auto signer = admin_client(signer_);
  auto missing = signer->request("GET", "/v1/materials/" + uuid() + "?source=dynamic");
  EXPECT_EQ(missing.status, 404U) << missing.body;
  const Delegation d = deliver_delegation();
  auto found = signer->request("GET", "/v1/materials/" + d.wallet_id + "?source=dynamic");
  ASSERT_EQ(found.status, 200U) << found.body;
  EXPECT_EQ(Json::parse(found.body)["walletApiKey"], d.api_key);

  // And the failed handshake was counted on the admin listener.
  double failures_after = -1;
  for (int i = 0; i < 50; ++i) {
    failures_after = sample_value(scrape(), failures);
    if (failures_after > failures_before) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(failures_after, failures_before + 1);

  // The public listener does not serve the admin API.
  EXPECT_EQ(client().request("GET", "/v1/events").status, 404U);
  EXPECT_EQ(client().request("GET", "/metrics").status, 404U);
}

TEST_F(AdminTest, EventsCursorReadsEveryEventOnceWhileWebhooksArrive) {
  start(admin_config("rate_limit = 0\n"));  // this consumer polls as fast as it can
  // Several producers on their own connections, so that several writes are
  // in flight at once (and group commits hold more than one event) while the
  // consumer pages.
  constexpr int kProducers = 4;
  constexpr int kEventsEach = 75;
  constexpr int kEvents = kProducers * kEventsEach;
  std::atomic<int> accepted{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      HttpsClient c(daemon_->port(), setup().root / "tls/cert.pem");
      const std::string sub = std::to_string(600 + p);
      for (int i = 1; i <= kEventsEach; ++i) {
        auto r = post_nodit(c, kNoditKey, nodit_message(sub, static_cast<std::uint64_t>(i)));
        if (r.status == 200) ++accepted;
      }
    });
  }
  auto consumer = admin_client(cert_for("auditor"));
  std::string after = "0";
  std::vector<std::int64_t> seen;
  std::set<std::string> keys;
  for (int round = 0; round < 100000 && static_cast<int>(keys.size()) < kEvents; ++round) {
    auto r = consumer->request("GET", "/v1/events?source=nodit&limit=7&after=" + after);
    EXPECT_EQ(r.status, 200U) << r.body;
    if (r.status != 200) break;  // (the producer threads are still joined below)
    auto page = Json::parse(r.body);
    for (const auto& e : page["events"]) {
      seen.push_back(std::stoll(e["id"].get<std::string>()));
      EXPECT_TRUE(keys.insert(e["eventId"].get<std::string>()).second)
          << "seen twice: " << e["eventId"];
    }
    after = page["next"].get<std::string>();
    if (page["events"].empty()) std::this_thread::sleep_for(5ms);
  }
  for (auto& t : producers) t.join();
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

// README (behind a load balancer): connections closed for a missing or bad
// PROXY v2 header are counted in hookvault_proxy_protocol_failures_total, and
// deliveries refused by allow_from in hookvault_forbidden_total.
TEST_F(AdminTest, ProxyProtocolFailuresAndAllowFromRefusalsAreCounted) {
  ConfigOptions o;
  o.server_extra = "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n";
  o.extra_toml = "allow_from = [\"203.0.113.0/24\"]\n";  // for the dynamic source
  start(admin_config("", o));
  const std::string proxy_failures = "hookvault_proxy_protocol_failures_total{listener=\"public\"}";
  const std::string forbidden = "hookvault_forbidden_total{source=\"dynamic\"}";
  const std::string before = scrape();
  EXPECT_LE(sample_value(before, proxy_failures), 0.0) << before;
  EXPECT_LE(sample_value(before, forbidden), 0.0) << before;

  const std::uint16_t port = daemon_->port();
  const std::string local(kProxyV2Local, sizeof kProxyV2Local);
  EXPECT_THROW(HttpsClient{port}, std::exception);  // no header
  EXPECT_THROW((HttpsClient{port, {}, {}, std::string(16, 'x')}), std::exception);
  ASSERT_TRUE(daemon_->wait_for_log("connection without a valid PROXY v2 header closed", 2))
      << daemon_->log();
  {
    // LOCAL: the TCP peer (127.0.0.1) is the client, outside allow_from.
    HttpsClient c(port, {}, {}, local);
    const std::string body = ping_event("forbidden-counted");
    const auto r = c.request(
        "POST", "/webhooks/dynamic",
        {{"Content-Type", "application/json"}, {"x-dynamic-signature-256", sign(body)}}, body);
    EXPECT_EQ(r.status, 403U) << r.body;
    EXPECT_EQ(c.request("GET", "/healthz").status, 200U);  // not a failure, not forbidden
  }

  const std::string after = scrape();
  EXPECT_EQ(sample_value(after, proxy_failures), 2.0) << after;
  EXPECT_EQ(sample_value(after, forbidden), 1.0) << after;
  EXPECT_EQ(daemon_->stop(), 0);
}

// A client outside allow_from that keeps sending is refused every time and
// counted every time, but does not flood the log: one line per 10 s, which
// counts the refusals since the previous line.
TEST_F(AdminTest, AFloodOfAllowFromRefusalsIsLoggedAtMostOncePerTenSeconds) {
  ConfigOptions o;
  o.extra_toml = "allow_from = [\"203.0.113.0/24\"]\n";  // for the dynamic source
  start(admin_config("", o));
  constexpr int kRefused = 400;
  const std::string body = ping_event("outside-allow-from");
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kRefused; ++i) {
    const auto r = post_signed(body);
    ASSERT_EQ(r.status, 403U) << r.body;
  }
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
          .count();
  EXPECT_EQ(sample_value(scrape(), "hookvault_forbidden_total{source=\"dynamic\"}"),
            double{kRefused});
  const std::string line = "\"msg\":\"client address not in allow_from\"";
  const std::size_t lines = daemon_->log_count(line);
  EXPECT_GE(lines, 1U);
  EXPECT_LE(lines, 1U + static_cast<std::size_t>(seconds / 10)) << "in " << seconds << " s";
  EXPECT_NE(daemon_->log().find("\"refused\":1"), std::string::npos) << daemon_->log();
  EXPECT_TRUE(events().empty());
  EXPECT_EQ(daemon_->stop(), 0);
}

TEST_F(AdminTest, MetricsParseAsPrometheusTextAndShowNoditGaps) {
  start(admin_config());
  ASSERT_EQ(deliver_nodit(nodit_message("690", 1)).status, 200U);
  ASSERT_EQ(deliver_nodit(nodit_message("690", 4)).status, 200U);
  ASSERT_EQ(deliver_nodit(nodit_message("690", 4)).status, 200U);  // a duplicate
  ASSERT_EQ(deliver_nodit(nodit_message("690", 5)).status, 200U);  // missing: 2, 3
  auto tampered = client().request("POST", "/webhooks/nodit",
                                   {{"Content-Type", "application/json"}, {"x-signature", "00"}},
                                   nodit_message("690", 6));
  EXPECT_EQ(tampered.status, 401U);
  // One delegation encrypted to a key hookvault does not hold.
  Delegation undecryptable = random_delegation();
  auto pending = post_signed(
      compact(created_event(undecryptable, shared_rsa(3072).public_pem, "other", "other")));
  ASSERT_EQ(pending.status, 200U) << pending.body;
  ASSERT_EQ(Json::parse(pending.body)["materials"], "decrypt_failed");

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
  has("hookvault_nodit_missing_messages [('source', 'nodit'), ('subscription', '690')] 2.0");
  has("hookvault_nodit_highest_contiguous [('source', 'nodit'), ('subscription', '690')] 1.0");
  has("hookvault_duplicates_total [('source', 'nodit')] 1.0");
  has("hookvault_signature_failures_total [('source', 'nodit')] 1.0");
  has("hookvault_http_requests_total [('event', ''), ('listener', 'public'), "
      "('source', 'nodit'), ('status', '401')] 1.0");
  has("hookvault_http_requests_total [('event', 'ADDRESS_ACTIVITY'), ('listener', 'public'), "
      "('source', 'nodit'), ('status', '200')] 4.0");
  has("hookvault_open_connections [('listener', 'admin')] 1.0");
  has("hookvault_store_writable [] 1.0");
  // The WAL checkpointer's counters (src/store/sqlite/checkpointer.hpp); none failed.
  has("hookvault_store_wal_checkpoint_failures_total [] 0.0");
  has("hookvault_store_wal_checkpoints_total [] ");
  has("hookvault_decrypt_failures_total [('source', 'dynamic')] 1.0");
  has("hookvault_http_requests_total [('event', 'wallet.delegation.created'), "
      "('listener', 'public'), ('source', 'dynamic'), ('status', '200')] 1.0");
  EXPECT_NE(samples.find("hookvault_http_request_duration_seconds_bucket"), std::string::npos);
  // Per-stage latency, the store's group commits and WAL syncs, as histograms.
  for (const char* series :
       {"hookvault_stage_seconds_count [('source', 'nodit'), ('stage', 'verify')]",
        "hookvault_stage_seconds_count [('source', 'nodit'), ('stage', 'store')]",
        "hookvault_stage_seconds_count [('source', 'dynamic'), ('stage', 'decrypt')] 1.0",
        "hookvault_stage_seconds_count [('source', 'dynamic'), ('stage', 'queue')] 1.0",
        "hookvault_store_commit_seconds_count []", "hookvault_store_batch_size_count []",
        "hookvault_store_wal_sync_seconds_count []",
        "hookvault_store_wal_checkpoint_seconds_count []"}) {
    EXPECT_NE(samples.find(series), std::string::npos) << "missing: " << series << "\n" << samples;
  }
  // Five deliveries were stored (4 Nodit, 1 Dynamic; the duplicate writes
  // nothing new): at least one group commit, and never more commits than that.
  static const std::regex kCommits(R"(hookvault_store_commits_total \[\] ([0-9.]+))");
  std::smatch commits;
  ASSERT_TRUE(std::regex_search(samples, commits, kCommits)) << samples;
  EXPECT_GE(std::stod(commits[1]), 1.0) << samples;
}

TEST_F(AdminTest, ClientsOverTheirRateGet429) {
  start(admin_config("rate_limit = 1\nrate_burst = 3\n"));
  const ClientCertificate auditor_cert = cert_for("auditor");
  // A second certificate with the same CN (another key): the bucket is the CN's.
  const auto reissued_dir = dir_.path() / "reissued";
  std::filesystem::create_directories(reissued_dir);
  const ClientCertificate reissued = make_client_cert(reissued_dir, "auditor", ca_cert_, ca_key_);
  const std::string rate_limited = "hookvault_admin_denied_total{reason=\"rate_limited\"}";
  const double refused_before = std::max(0.0, sample_value(scrape(), rate_limited));

  auto auditor = admin_client(auditor_cert);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(auditor->request("GET", "/v1/events").status, 200U);
  auto limited = auditor->request("GET", "/v1/events");
  EXPECT_EQ(limited.status, 429U);
  EXPECT_EQ(Json::parse(limited.body)["error"], "rate_limited");
  EXPECT_GE(std::stoi(limited.headers["retry-after"]), 1);
  // A new connection with the same CN does not get a new bucket: its first
  // request is refused too, with the same certificate or a reissued one.
  auto second = admin_client(auditor_cert);
  auto second_first = second->request("GET", "/v1/events");
  EXPECT_EQ(second_first.status, 429U) << second_first.body;
  EXPECT_EQ(Json::parse(second_first.body)["error"], "rate_limited");
  auto third = admin_client(reissued);
  EXPECT_EQ(third->request("GET", "/v1/events").status, 429U);
  // Another client has its own bucket.
  auto signer = admin_client(signer_);
  EXPECT_EQ(signer->request("GET", "/v1/materials/" + uuid()).status, 404U);
  // The refusals are counted (the scrape itself is the prometheus CN's) and logged.
  EXPECT_EQ(sample_value(scrape(), rate_limited), refused_before + 3);
  EXPECT_TRUE(daemon_->wait_for_log("\"reason\":\"rate_limited\"", 3)) << daemon_->log();
}

TEST_F(AdminTest, MaterialsAreWithheldWhenTheirAuditRecordCannotBeWritten) {
  start(admin_config());
  const Delegation d = deliver_delegation();
  auto signer = admin_client(signer_);
  const std::string path = "/v1/materials/" + d.wallet_id + "?source=dynamic";
  ASSERT_EQ(signer->request("GET", path).status, 200U);

  // Break the audit log under the running daemon: the head's tag no longer
  // matches (meta 'audit_head_tag', schema.hpp), so no record can be appended.
  const auto db = dir_.path() / "data/hookvault.db";
  const auto sql = [&](const std::string& statement) {
    const auto out = dir_.path() / "sql.out";
    const std::string command = "sqlite3 -cmd '.timeout 10000' " + db.string() + " \"" + statement +
                                "\" > " + out.string() + " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command << ": " << read_file(out);
    std::string text = read_file(out);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  };
  const std::string tag_query = "SELECT value FROM meta WHERE key = 'audit_head_tag'";
  const std::string good_tag = sql(tag_query);
  ASSERT_EQ(good_tag.size(), 64U) << good_tag;
  const std::string wrong_tag = good_tag.substr(0, 63) + (good_tag.back() == '0' ? "1" : "0");
  sql("UPDATE meta SET value = '" + wrong_tag + "' WHERE key = 'audit_head_tag'");
  ASSERT_EQ(sql(tag_query), wrong_tag);

  auto withheld = signer->request("GET", path);
  EXPECT_EQ(withheld.status, 503U) << withheld.body;
  EXPECT_EQ(Json::parse(withheld.body)["error"], "store_unavailable");
  EXPECT_EQ(withheld.body.find(d.api_key), std::string::npos);
  EXPECT_EQ(withheld.body.find("s3cr3t-share"), std::string::npos);
  EXPECT_TRUE(daemon_->wait_for_log("\"msg\":\"audit append failed; ", 1)) << daemon_->log();
  const std::string log = daemon_->log();
  static const std::regex kWithheld(
      R"re(\{[^\n]*"level":"error"[^\n]*"msg":"audit append failed; secret withheld")re");
  EXPECT_TRUE(std::regex_search(log, kWithheld)) << log;
  EXPECT_EQ(log.find(d.api_key), std::string::npos);
  EXPECT_EQ(log.find("s3cr3t-share"), std::string::npos);

  // With the tag put back, reads are answered (and audited) again.
  sql("UPDATE meta SET value = '" + good_tag + "' WHERE key = 'audit_head_tag'");
  ASSERT_EQ(sql(tag_query), good_tag);
  auto again = signer->request("GET", path);
  ASSERT_EQ(again.status, 200U) << again.body;
  EXPECT_EQ(Json::parse(again.body)["walletApiKey"], d.api_key);

  // Exactly the reads that were answered have their records, and the chain holds.
  EXPECT_EQ(daemon_->stop(), 0);
  int reads = 0;
  for (const auto& rec : audit()) {
    if (rec["action"] == "materials.read" && rec["actor"] == "admin:signer") {
      EXPECT_EQ(rec["outcome"], "ok");
      ++reads;
    }
  }
  EXPECT_EQ(reads, 2);
  auto verify = cli({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
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
