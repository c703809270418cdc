// The AdminApi (include/hookvault/admin.hpp) without a socket: each route, the
// roles of each client (CN -> roles), the events feed's paging, and the audit
// rule for secret reads (a record committed before the answer; no record, no
// secret), against the in-memory FakeStore (support/fake_store.hpp) and a real
// WorkPool. The listener's mutual TLS, which sets Delivery::client_cn, is
// tested end to end (tests/integration/admin_test.cpp).
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fake_store.hpp"
#include "handler_support.hpp"
#include "hookvault/admin.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/work_pool.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

AdminConfig admin_config(unsigned rate = 0, unsigned burst = 0) {
  AdminConfig c;
  c.enabled = true;
  c.clients = {{"signer", {"materials:read"}},
               {"reader", {"events:read"}},
               {"scraper", {"metrics:read"}},
               {"operator", {"admin"}}};
  c.rate_limit = rate;
  c.rate_burst = burst;
  return c;
}

Request admin_request(const std::string& cn, const std::string& target,
                      const std::string& method = "GET") {
  Request r;
  r.method = method;
  r.target = target;
  r.content_type = "";
  r.client_cn = cn;
  return r;
}

std::string secret_text(const Reply& r) {
  return std::string(r.secret_body.begin(), r.secret_body.end());
}

class AdminApiTest : public ::testing::Test {
 protected:
  AdminApiTest() { start(admin_config(), 64); }

  void TearDown() override {
    pool_->stop();
    store_.close();
    answers_.expect_each_answered_once();
  }

  void start(const AdminConfig& config, std::size_t pool_queue) {
    if (pool_) pool_->stop();
    api_.reset();
    pipeline_.reset();
    pool_ = std::make_unique<WorkPool>(2, pool_queue, &metrics_);
    pipeline_ = std::make_unique<Pipeline>(
        std::vector<std::shared_ptr<const Source>>{make_source(Provider::dynamic, rsa_.private_pem),
                                                   make_source(Provider::nodit)},
        store_, *pool_, metrics_);
    api_ = std::make_unique<AdminApi>(config, *pipeline_, store_, *pool_, metrics_);
  }

  std::size_t send(const Request& request) {
    std::size_t index = 0;
    auto done = answers_.next(index);
    api_->handle(request.delivery(), std::move(done));
    return index;
  }
  Reply ask(const Request& request) { return answers_.wait(send(request)).value_or(Reply{}); }
  Reply get(const std::string& cn, const std::string& target) {
    return ask(admin_request(cn, target));
  }

  // A delegation of `wallet` with its materials stored; its row id.
  std::int64_t store_delegation(const std::string& wallet, const std::string& share) {
    WriteRequest r;
    r.event.source = "dynamic";
    r.event.idempotency_key = "d-" + wallet;
    r.event.event_name = "wallet.delegation.created";
    r.event.event_time = "2025-10-01T15:13:26.348Z";
    r.event.event_time_ms = 1759331606348;
    r.event.wallet_id = wallet;
    r.event.payload = R"({"eventId":"d-)" + wallet + R"("})";
    DelegationMaterials m;
    m.wallet_id = wallet;
    m.user_id = "user-" + wallet;
    m.chain = "EVM";
    m.share = SecretBytes::copy_of(share);
    m.api_key = SecretBytes::copy_of("api-" + share);
    r.materials = std::move(m);
    auto w = store_.write(std::move(r));
    EXPECT_TRUE(w);
    return w ? w->row_id : 0;
  }

  std::int64_t store_event(const std::string& source, const std::string& key) {
    WriteRequest r;
    r.event.source = source;
    r.event.idempotency_key = key;
    r.event.event_name = "user.created";
    r.event.payload = R"({"eventId":")" + key + R"(","secret":"payload-)" + key + R"("})";
    auto w = store_.write(std::move(r));
    EXPECT_TRUE(w);
    return w ? w->row_id : 0;
  }

  std::vector<AuditRecord> audit_log() {
    auto records = store_.audit_records(0, 1000);
    EXPECT_TRUE(records);
    return records ? *records : std::vector<AuditRecord>{};
  }

  const RsaPair& rsa_ = shared_rsa(2048);
  Answers answers_;
  Metrics metrics_;
  FakeStore store_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, NoCertificateIs401AndAnUnknownClientIs403WithoutTouchingTheStore) {
  store_delegation("w-1", "share-1");
  const auto before = store_.calls();
  const Reply none = get("", "/v1/materials/w-1");
  EXPECT_EQ(none.status, 401U);
  EXPECT_EQ(member(none, "error"), "client_certificate_required");
  const Reply stranger = get("stranger", "/v1/materials/w-1");
  EXPECT_EQ(stranger.status, 403U);
  EXPECT_EQ(member(stranger, "error"), "forbidden");
  EXPECT_TRUE(none.secret_body.empty() && stranger.secret_body.empty());
  const auto after = store_.calls();
  EXPECT_EQ(after.materials, before.materials);
  EXPECT_EQ(after.audits, before.audits);
  const std::string m = metrics_.render();
  EXPECT_EQ(metric_sample(m, R"(hookvault_admin_denied_total{reason="no_certificate"})"), 1);
  EXPECT_EQ(metric_sample(m, R"(hookvault_admin_denied_total{reason="unknown_client"})"), 1);
}

TEST_F(AdminApiTest, UnknownRoutesAre404AndWrongMethods405) {
  EXPECT_EQ(get("operator", "/v1/nothing").status, 404U);
  EXPECT_EQ(get("operator", "/v1/materials/").status, 404U);
  EXPECT_EQ(get("operator", "/").status, 404U);
  EXPECT_EQ(ask(admin_request("operator", "/v1/events", "POST")).status, 405U);
  EXPECT_EQ(get("operator", "/v1/reprocess").status, 405U);
  EXPECT_EQ(ask(admin_request("operator", "/v1/materials/w-1", "DELETE")).status, 405U);
  // A wallet id that decodes to a '/' or a NUL, or a malformed escape.
  for (const char* bad : {"/v1/materials/a%2Fb", "/v1/materials/a%00", "/v1/materials/%zz"}) {
    const Reply r = get("operator", bad);
    EXPECT_EQ(r.status, 400U) << bad;
    EXPECT_EQ(member(r, "field"), "walletId") << bad;
  }
}

// Each role reaches its routes and only them; "admin" reaches every route.
TEST_F(AdminApiTest, EachRouteNeedsItsRoleAndAdminHoldsEveryRole) {
  store_delegation("w-1", "share-1");
  const std::int64_t id = store_event("dynamic", "e-1");
  const std::string event = "/v1/events/" + std::to_string(id);
  struct Case {
    const char* cn;
    std::string method;
    std::string target;
    unsigned status;
  };
  const std::vector<Case> cases = {
      {"signer", "GET", "/v1/materials/w-1", 200},
      {"signer", "GET", "/v1/events", 403},
      {"signer", "GET", event, 403},
      {"signer", "GET", "/metrics", 403},
      {"signer", "POST", "/v1/reprocess", 403},
      {"reader", "GET", "/v1/materials/w-1", 403},
      {"reader", "GET", "/v1/events", 200},
      {"reader", "GET", event, 200},
      {"reader", "GET", "/metrics", 403},
      {"reader", "POST", "/v1/reprocess", 403},
      {"scraper", "GET", "/v1/materials/w-1", 403},
      {"scraper", "GET", "/v1/events", 403},
      {"scraper", "GET", "/metrics", 200},
      {"scraper", "POST", "/v1/reprocess", 403},
      {"operator", "GET", "/v1/materials/w-1", 200},
      {"operator", "GET", "/v1/events", 200},
      {"operator", "GET", event, 200},
      {"operator", "GET", "/metrics", 200},
      {"operator", "POST", "/v1/reprocess", 200},
  };
  for (const Case& c : cases) {
    const Reply r = ask(admin_request(c.cn, c.target, c.method));
    EXPECT_EQ(r.status, c.status) << c.cn << " " << c.method << " " << c.target << " " << r.body;
    if (r.status == 403) {
      EXPECT_EQ(member(r, "error"), "forbidden");
      EXPECT_TRUE(r.secret_body.empty());
    }
  }
  // A denied attempt at a secret is audited too; other denials are not.
  std::set<std::string> denied;
  for (const auto& rec : audit_log()) {
    if (rec.entry.outcome == "denied") {
      denied.insert(rec.entry.actor + " " + rec.entry.action + " " + rec.entry.subject);
    }
  }
  EXPECT_EQ(denied, (std::set<std::string>{
                        "admin:signer event.read " + std::to_string(id),
                        "admin:reader materials.read dynamic/w-1",
                        "admin:scraper materials.read dynamic/w-1",
                    }));
}

TEST_F(AdminApiTest, MaterialsAreReleasedOnlyAfterTheirAuditRecordIsCommitted) {
  store_delegation("w-1", "share-1");
  store_.hold_completions();
  const std::size_t i = send(admin_request("signer", "/v1/materials/w-1"));
  ASSERT_TRUE(store_.wait_held(1));  // the audit append, not yet committed
  EXPECT_EQ(answers_.count(i), 0U) << "answered before the audit record was committed";
  store_.release_completions();
  const auto r = answers_.wait(i);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200U);
  EXPECT_TRUE(r->body.empty());
  const Json j = Json::parse(secret_text(*r));
  EXPECT_EQ(j["walletId"], "w-1");
  EXPECT_EQ(j["delegatedShare"], "share-1");
  EXPECT_EQ(j["walletApiKey"], "api-share-1");
  EXPECT_EQ(j["eventId"], "d-w-1");
  const auto log = audit_log();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0].entry.actor, "admin:signer");
  EXPECT_EQ(log[0].entry.action, "materials.read");
  EXPECT_EQ(log[0].entry.subject, "dynamic/w-1");
  EXPECT_EQ(log[0].entry.outcome, "ok");
}

TEST_F(AdminApiTest, MaterialsAreWithheld503WhenTheAuditRecordCannotBeWritten) {
  store_delegation("w-1", "share-1");
  for (const Errc e : {Errc::store_unavailable, Errc::kek_unavailable, Errc::store_corrupt}) {
    SCOPED_TRACE(error_name(e));
    store_.fail_next_audits(1, e);
    const Reply r = get("signer", "/v1/materials/w-1");
    EXPECT_EQ(r.status, 503U);
    EXPECT_EQ(member(r, "error"), "store_unavailable");
    EXPECT_TRUE(r.secret_body.empty());
    EXPECT_EQ(r.body.find("share-1"), std::string::npos);
  }
  EXPECT_TRUE(audit_log().empty());
  // Once the audit log takes records again, the read goes through.
  EXPECT_EQ(get("signer", "/v1/materials/w-1").status, 200U);
  EXPECT_EQ(audit_log().size(), 1U);
}

TEST_F(AdminApiTest, AnUnknownWalletIs404AndTheReadIsAudited) {
  const Reply r = get("signer", "/v1/materials/nobody");
  EXPECT_EQ(r.status, 404U);
  const auto log = audit_log();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0].entry.subject, "dynamic/nobody");
  EXPECT_EQ(log[0].entry.outcome, "not_found");
  // A source that is not configured, or a Nodit source asked by name, finds nothing.
  EXPECT_EQ(get("signer", "/v1/materials/w-1?source=unknown").status, 400U);
  EXPECT_EQ(get("signer", "/v1/materials/w-1?source=nodit").status, 404U);
}

TEST_F(AdminApiTest, TheEventsFeedPagesThroughEveryEventOnceWithNextTokens) {
  std::vector<std::int64_t> all, nodit;
  for (int i = 0; i < 11; ++i) {
    const bool is_nodit = i % 3 == 0;
    const auto id = store_event(is_nodit ? "nodit" : "dynamic", "k" + std::to_string(i));
    all.push_back(id);
    if (is_nodit) nodit.push_back(id);
  }
  const auto page_through = [&](const std::string& query) {
    std::vector<std::int64_t> seen;
    std::string after;
    for (int pages = 0; pages < 50; ++pages) {
      const Reply r =
          get("reader", "/v1/events?limit=3" + query + (after.empty() ? "" : "&after=" + after));
      EXPECT_EQ(r.status, 200U) << r.body;
      const Json j = Json::parse(r.body);
      EXPECT_TRUE(j["next"].is_string()) << r.body;
      EXPECT_LE(j["events"].size(), 3U);
      if (j["events"].empty()) {
        EXPECT_EQ(j["next"], after);
        break;
      }
      for (const auto& e : j["events"]) seen.push_back(std::stoll(e["id"].get<std::string>()));
      after = j["next"].get<std::string>();
    }
    return seen;
  };
  EXPECT_EQ(page_through(""), all);
  EXPECT_EQ(page_through("&source=nodit"), nodit);
  // Without a limit: the default page holds them all here.
  const Json whole = Json::parse(get("reader", "/v1/events").body);
  EXPECT_EQ(whole["events"].size(), all.size());
  EXPECT_EQ(whole["next"], std::to_string(all.back()));
  // Events stored after a page are read by the next one.
  const std::string next = whole["next"];
  const auto late = store_event("dynamic", "late");
  const Json more = Json::parse(get("reader", "/v1/events?after=" + next).body);
  ASSERT_EQ(more["events"].size(), 1U);
  EXPECT_EQ(more["events"][0]["id"], std::to_string(late));
}

TEST_F(AdminApiTest, BadEventsQueriesAre400NamingTheField) {
  const auto field_of = [&](const std::string& query) {
    const Reply r = get("reader", "/v1/events?" + query);
    EXPECT_EQ(r.status, 400U) << query;
    return member(r, "field");
  };
  EXPECT_EQ(field_of("after="), "after");
  EXPECT_EQ(field_of("after=abc"), "after");  // a token the store cannot read
  EXPECT_EQ(field_of("after=-5"), "after");
  EXPECT_EQ(field_of("limit=0"), "limit");
  EXPECT_EQ(field_of("limit=1001"), "limit");
  EXPECT_EQ(field_of("limit=x"), "limit");
  EXPECT_EQ(field_of("source=%zz"), "query");
  EXPECT_EQ(get("reader", "/v1/events?limit=1000").status, 200U);
}

TEST_F(AdminApiTest, AnEventIsShownWithItsPayloadAfterItsAuditRecord) {
  const std::int64_t id = store_event("dynamic", "e-1");
  const Reply r = get("reader", "/v1/events/" + std::to_string(id));
  ASSERT_EQ(r.status, 200U);
  const Json j = Json::parse(secret_text(r));
  EXPECT_EQ(j["id"], std::to_string(id));
  EXPECT_EQ(j["eventId"], "e-1");
  EXPECT_EQ(j["payload"]["secret"], "payload-e-1");
  auto log = audit_log();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0].entry.action, "event.read");
  EXPECT_EQ(log[0].entry.subject, std::to_string(id));
  EXPECT_EQ(log[0].entry.outcome, "ok");

  // Unknown ids are 404 (a number is audited as a read that found nothing).
  EXPECT_EQ(get("reader", "/v1/events/abc").status, 404U);
  EXPECT_EQ(get("reader", "/v1/events/0").status, 404U);
  EXPECT_EQ(get("reader", "/v1/events/" + std::to_string(id + 100)).status, 404U);
  log = audit_log();
  ASSERT_EQ(log.size(), 2U);
  EXPECT_EQ(log[1].entry.outcome, "not_found");

  // No record, no payload.
  store_.fail_next_audits(1, Errc::store_unavailable);
  const Reply withheld = get("reader", "/v1/events/" + std::to_string(id));
  EXPECT_EQ(withheld.status, 503U);
  EXPECT_TRUE(withheld.secret_body.empty());
}

TEST_F(AdminApiTest, ReprocessSettlesDecryptFailuresWithTheSourcesKeysAndAuditsEach) {
  // A delegation stored decrypt_failed (say, its key was not configured yet);
  // the source now has the key.
  WriteRequest r;
  r.event.source = "dynamic";
  r.event.idempotency_key = "d-1";
  r.event.event_name = "wallet.delegation.created";
  r.event.event_time = "2025-10-01T15:13:26.348Z";
  r.event.event_time_ms = 1759331606348;
  r.event.wallet_id = "w-1";
  r.event.payload = delegation("d-1", "w-1", rsa_.public_pem, "share-1", "api-key-1");
  r.decrypt_failure = "encryptedDelegatedShare: no_matching_key";
  auto w = store_.write(std::move(r));
  ASSERT_TRUE(w);
  ASSERT_EQ(w->materials, MaterialsState::decrypt_failed);

  const Reply reply = ask(admin_request("operator", "/v1/reprocess", "POST"));
  ASSERT_EQ(reply.status, 200U) << reply.body;
  const Json j = Json::parse(reply.body);
  ASSERT_EQ(j["results"].size(), 1U);
  EXPECT_EQ(j["results"][0]["id"], std::to_string(w->row_id));
  EXPECT_EQ(j["results"][0]["eventId"], "d-1");
  EXPECT_EQ(j["results"][0]["result"], "stored");
  auto m = store_.materials("dynamic", "w-1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->share.reveal_string(), "share-1");
  const auto log = audit_log();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0].entry.actor, "admin:operator");
  EXPECT_EQ(log[0].entry.action, "reprocess");
  EXPECT_EQ(log[0].entry.subject, std::to_string(w->row_id));
  EXPECT_EQ(log[0].entry.outcome, "stored");
  // Nothing is pending any more.
  const Json again = Json::parse(ask(admin_request("operator", "/v1/reprocess", "POST")).body);
  EXPECT_TRUE(again["results"].empty());
}

TEST_F(AdminApiTest, MetricsAreRenderedAsPrometheusText) {
  const Reply r = get("scraper", "/metrics");
  ASSERT_EQ(r.status, 200U);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("hookvault_admin_denied_total"), std::string::npos);
}

TEST_F(AdminApiTest, AClientOverItsRateIs429WithRetryAfterAndOthersAreNotHeldBack) {
  start(admin_config(/*rate=*/1, /*burst=*/2), 64);
  EXPECT_EQ(get("scraper", "/metrics").status, 200U);
  EXPECT_EQ(get("scraper", "/metrics").status, 200U);
  const Reply limited = get("scraper", "/metrics");
  EXPECT_EQ(limited.status, 429U);
  EXPECT_EQ(member(limited, "error"), "rate_limited");
  EXPECT_GE(limited.retry_after_s, 1U);
  // Buckets are per client.
  EXPECT_EQ(get("operator", "/metrics").status, 200U);
  // A reload with the same limits keeps the buckets: no way around them.
  api_->reload(admin_config(1, 2));
  EXPECT_EQ(get("scraper", "/metrics").status, 429U);
  EXPECT_EQ(
      metric_sample(metrics_.render(), R"(hookvault_admin_denied_total{reason="rate_limited"})"),
      2);
}

TEST_F(AdminApiTest, AReloadThatRemovesAClientRefusesItsNextRequest) {
  EXPECT_EQ(get("reader", "/v1/events").status, 200U);
  AdminConfig without = admin_config();
  without.clients.erase(without.clients.begin() + 1);  // "reader"
  api_->reload(without);
  EXPECT_EQ(get("reader", "/v1/events").status, 403U);
  EXPECT_EQ(get("signer", "/v1/materials/w-1").status, 404U);
}

TEST_F(AdminApiTest, AFullPoolIs503OverloadedAndReleasesNothing) {
  store_delegation("w-1", "share-1");
  start(admin_config(), 0);
  const Reply r = get("signer", "/v1/materials/w-1");
  EXPECT_EQ(r.status, 503U);
  EXPECT_EQ(member(r, "error"), "overloaded");
  EXPECT_GT(r.retry_after_s, 0U);
  EXPECT_TRUE(r.secret_body.empty());
  EXPECT_EQ(store_.calls().materials, 0U);
}

}  // namespace
}  // namespace hookvault::testing
