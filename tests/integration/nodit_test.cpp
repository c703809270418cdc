// Nodit webhooks end to end: the real daemon over real TLS, sequence tracking,
// and backfill from a local HTTPS fake of the Get Webhook History API.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include "e2e.hpp"
#include "fake_nodit.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

// The published test vector (docs/protocols.md, "Nodit: signature") (compact, exactly these bytes).
constexpr char kVectorKey[] = "7b8664b96de828e3b3bacf538c51e0ddcfa4fa6c686e738d8c0aeff5c8545ae7";
constexpr char kVectorSignature[] =
    "da5eedb3f1fa386e095dc4f66a8f21155d22964633e0e6f844c331296ef1abaa";
constexpr char kVectorBody[] =
    R"({"subscriptionId":"1","sequenceNumber":"1","description":"Signature Test","protocol":"APTOS","network":"TESTNET","subscriptionType":"WEBHOOK","notification":{"webhookUrl":"YOUR_WEBHOOK_ENDPOINT"},"eventType":"EVENT","event":{"eventType":"0x13a9f1a109368730f2e355d831ba8fbf5942fb82321863d55de54cb4ebe5d18f::just::RandomIndexEvent","eventAccountAddress":"0x0","messages":[{"guid":{"creation_number":"0","account_address":"0x0"},"sequence_number":"0","type":"0x13a9f1a109368730f2e355d831ba8fbf5942fb82321863d55de54cb4ebe5d18f::just::RandomIndexEvent","data":{"price":"44289819"},"event_index":2,"version":"6627015772"}]},"createdAt":"2025-02-18T05:52:53.559342615Z"})";

class NoditTest : public E2E {
 protected:
  // A Nodit source keyed with the published vector's key, optionally with history.
  // `with_admin`: an admin listener where the "signer" certificate `hookvault
  // init` made may read /metrics (scrape_metric).
  std::filesystem::path nodit_config(const FakeNodit* fake, const std::string& extra = "",
                                     bool with_admin = false, int page_size = 2) {
    ConfigOptions o;
    if (with_admin) {
      o.extra_toml +=
          admin_toml("[[admin.clients]]\nsubject_cn = \"signer\"\nroles = [\"metrics:read\"]\n");
    }
    add_nodit_source(o, kVectorKey);
    std::string toml;
    if (fake != nullptr) {
      write_file(dir_.path() / "nodit_api_key", "nodit-api-key-for-tests", 0600);
      toml +=
          "[sources.history]\napi_base_url = \"" + fake->base_url() + "\"\n" + "api_key_file = \"" +
          (dir_.path() / "nodit_api_key").string() + "\"\n" + "ca_file = \"" +
          fake->ca_file().string() + "\"\n" + "chain = \"ethereum\"\nnetwork = \"mainnet\"\n" +
          "gap_delay = \"200ms\"\npoll_interval = \"100ms\"\n" +
          "backoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\n" +
          "request_timeout = \"500ms\"\npage_size = " + std::to_string(page_size) + "\n" + extra;
    }
    o.extra_toml += toml;
    return write_config(o);
  }

  HttpResponse deliver(const std::string& body) { return post_nodit(client(), kVectorKey, body); }

  // A sample of /metrics on the admin listener (nodit_config(.., with_admin));
  // -1 when absent.
  double scrape_metric(const std::string& series) {
    // `hookvault init` puts the signer's files in its offline folder.
    const auto& offline = setup().offline;
    HttpsClient c(daemon_->admin_port(), setup().root / "tls/admin-ca.pem",
                  {offline / "signer-cert.pem", offline / "signer-key.pem"});
    auto r = c.request("GET", "/metrics");
    EXPECT_EQ(r.status, 200U) << r.body;
    return sample_value(r.body, series);
  }

  std::vector<Json> gaps() { return cli_json_lines({"nodit", "gaps"}); }

  std::vector<Json> nodit_events() {
    std::vector<Json> out;
    for (auto& e : events()) {
      if (e["source"] == "nodit") out.push_back(e);
    }
    return out;
  }
};

TEST_F(NoditTest, PublishedVectorVerifiesTamperedCopyFailsAndDuplicatesAreStoredOnce) {
  start(nodit_config(nullptr));
  auto post = [&](const std::string& body, const std::string& sig) {
    return client().request("POST", "/webhooks/nodit",
                            {{"Content-Type", "application/json"}, {"x-signature", sig}}, body);
  };
  auto r = post(kVectorBody, kVectorSignature);
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(Json::parse(r.body)["status"], "accepted");
  EXPECT_EQ(Json::parse(r.body)["eventId"], "1:1");
  auto again = post(kVectorBody, kVectorSignature);
  EXPECT_EQ(Json::parse(again.body)["status"], "duplicate");
  EXPECT_EQ(Json::parse(again.body)["id"], Json::parse(r.body)["id"]);

  std::string tampered = kVectorBody;
  tampered.replace(tampered.find("44289819"), 8, "44289818");
  auto bad = post(tampered, kVectorSignature);
  EXPECT_EQ(bad.status, 401U);
  EXPECT_EQ(Json::parse(bad.body)["error"], "invalid_signature");

  // Pretty-printed, signed in compact form (JSON.stringify): accepted as the same message.
  auto pretty = post(Json::parse(kVectorBody).dump(2), kVectorSignature);
  EXPECT_EQ(Json::parse(pretty.body)["status"], "duplicate");

  const auto stored = nodit_events();
  ASSERT_EQ(stored.size(), 1U);
  EXPECT_EQ(stored[0]["eventId"], "1:1");
  EXPECT_EQ(stored[0]["origin"], "signature");
  auto shown = cli({"events", "show", stored[0]["id"].get<std::string>()});
  EXPECT_NE(shown.out.find(kVectorBody), std::string::npos) << "payload stored byte for byte";
}

// The attack on the JSON.stringify fallback: one MAC over the compact form
// JavaScript prints for 2^60 admitted 2^60 + 1, + 2 and + 100, each stored as
// a new message (a replay under new idempotency keys), and a MAC over 0.1
// stored 0.1000000000000000055511151231257827, the text nobody signed.
TEST_F(NoditTest, ACompactSignatureAdmitsOnlyItsOwnMeaningAndStoresTheSignedText) {
  start(nodit_config(nullptr, "", /*with_admin=*/true));
  const std::string two_to_60 = "1152921504606847000";  // how JavaScript prints 2^60
  // What a JavaScript signer signs: JSON.stringify of the message.
  const auto js_compact = [](const std::string& text) {
    auto parsed = parse_strict(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed ? js_stringify(*parsed) : std::string();
  };
  std::string message = nodit_message("60", 1);
  message.replace(message.find(R"("sequenceNumber":"1")"), 20, "\"sequenceNumber\":" + two_to_60);
  const std::string signed_text = js_compact(message);
  const std::string mac = hmac_hex(kVectorKey, signed_text);
  auto post = [&](const std::string& body) {
    return client().request("POST", "/webhooks/nodit",
                            {{"Content-Type", "application/json"}, {"x-signature", mac}}, body);
  };
  for (const char* forged : {"1152921504606846977", "1152921504606846978", "1152921504606847076"}) {
    std::string body = signed_text;
    body.replace(body.find(two_to_60), two_to_60.size(), forged);
    auto r = post(body);
    EXPECT_EQ(r.status, 400U) << forged << ": " << r.body;
    EXPECT_EQ(Json::parse(r.body)["error"], "signed_form_mismatch") << r.body;
  }
  EXPECT_TRUE(nodit_events().empty());

  // The same meaning, pretty-printed: accepted, and stored as signed.
  const std::string pretty = "{\n  " + signed_text.substr(1, signed_text.size() - 2) + "\n}\n";
  auto first = post(pretty);
  ASSERT_EQ(first.status, 200U) << first.body;
  EXPECT_EQ(Json::parse(first.body)["status"], "accepted");
  EXPECT_EQ(Json::parse(first.body)["eventId"], "60:" + two_to_60);
  auto again = post(signed_text);
  EXPECT_EQ(Json::parse(again.body)["status"], "duplicate");

  // A MAC over 0.1 never stores a longer, unsigned, number.
  std::string decimal_message = nodit_message("61", 1);
  decimal_message.replace(decimal_message.find("\"block_number\":20000000"), 23, "\"amount\":0.1");
  const std::string signed_decimal = js_compact(decimal_message);
  std::string longer = signed_decimal;
  longer.replace(longer.find("0.1}"), 3, "0.1000000000000000055511151231257827");
  auto refused = client().request(
      "POST", "/webhooks/nodit",
      {{"Content-Type", "application/json"}, {"x-signature", hmac_hex(kVectorKey, signed_decimal)}},
      longer);
  EXPECT_EQ(refused.status, 400U) << refused.body;

  const auto stored = nodit_events();
  ASSERT_EQ(stored.size(), 1U);
  auto shown = cli({"events", "show", stored[0]["id"].get<std::string>()});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("\"payload\":" + signed_text + "}"), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("0.1000000000000000055511151231257827"), std::string::npos);
  EXPECT_EQ(scrape_metric("hookvault_signed_form_mismatches_total{source=\"nodit\"}"), 4);
  EXPECT_LE(scrape_metric("hookvault_signature_failures_total{source=\"nodit\"}"), 0)
      << "a mismatch is not a wrong signature";
}

TEST_F(NoditTest, IntegersBeyondTwoToThe53SurviveByteForByte) {
  start(nodit_config(nullptr));
  const std::string body = nodit_message("77", 1);
  ASSERT_EQ(deliver(body).status, 200U);
  auto shown = cli({"events", "show", "77:1"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("\"value\":123456789012345678901234567890"), std::string::npos);
}

TEST_F(NoditTest, MessageWithoutSequenceNumberIsKeyedByContentAndCounted) {
  start(nodit_config(nullptr));
  ASSERT_EQ(deliver(nodit_message("5", 1)).status, 200U);
  std::string unsequenced = nodit_message("5", 2);
  unsequenced.replace(unsequenced.find(R"("sequenceNumber":"2",)"), 21, "");
  auto r = deliver(unsequenced);
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(Json::parse(r.body)["eventId"].get<std::string>().rfind("content:", 0), 0U);
  EXPECT_EQ(Json::parse(deliver(unsequenced).body)["status"], "duplicate");
  auto g = gaps();
  ASSERT_EQ(g.size(), 1U);
  EXPECT_EQ(g[0]["unsequencedMessages"], 1);
  EXPECT_EQ(g[0]["highestContiguous"], 1);
}

// Sequence numbers count from 1: a signed message numbered 0 is the sender's
// error (400 naming the field), not the store's (it was answered 503, so Nodit
// retried it for ever), and nothing of it is stored.
TEST_F(NoditTest, SequenceNumberZeroIsRefused400AndNothingIsStored) {
  start(nodit_config(nullptr));
  ASSERT_EQ(deliver(nodit_message("5", 1)).status, 200U);
  const auto before = nodit_events();
  for (const std::string& zero : {std::string(R"("0")"), std::string("0")}) {
    std::string message = nodit_message("5", 2);
    message.replace(message.find(R"("sequenceNumber":"2")"), 20, "\"sequenceNumber\":" + zero);
    auto r = deliver(message);
    EXPECT_EQ(r.status, 400U) << zero << ": " << r.body;
    EXPECT_EQ(Json::parse(r.body)["error"], "invalid_field") << r.body;
    EXPECT_EQ(Json::parse(r.body)["field"], "sequenceNumber") << r.body;
    EXPECT_EQ(r.headers.count("retry-after"), 0U);
  }
  EXPECT_EQ(nodit_events(), before);
  auto g = gaps();
  ASSERT_EQ(g.size(), 1U);
  EXPECT_EQ(g[0]["highestContiguous"], 1);
  EXPECT_EQ(g[0]["unsequencedMessages"], 0);
}

// A signed message whose subscriptionId is not digits (docs/protocols.md) is
// refused before anything is stored: before, "abc" got a sequence ledger whose
// gaps the history API could never fill, so the backfiller asked about them
// for ever, and an id of any length was stored.
TEST_F(NoditTest, SubscriptionIdsOtherThanDigitsAreRefused400AndNothingIsStored) {
  FakeNodit fake("nodit-api-key-for-tests");
  start(nodit_config(&fake, "subscriptions = [\"5\"]\n"));
  ASSERT_TRUE(eventually([&] { return fake.request_count() >= 1; }));  // the start-up FAIL query
  ASSERT_EQ(deliver(nodit_message("5", 1)).status, 200U);
  const auto before = nodit_events();
  const auto gaps_before = gaps();
  for (const std::string& id :
       {std::string(R"("abc")"), std::string(R"("ha-sub-1")"), std::string(R"("007")"),
        std::string(R"(" 5")"), std::string(R"("\uff15")"), std::string("-5"),
        "\"" + std::string(65, '9') + "\"", "\"" + std::string(10'000, '1') + "\""}) {
    for (std::uint64_t seq : {1, 3}) {  // 1 then 3: what used to leave a gap to chase
      std::string message = nodit_message("5", seq);
      message.replace(message.find(R"("subscriptionId":"5")"), 20, "\"subscriptionId\":" + id);
      auto r = deliver(message);
      EXPECT_EQ(r.status, 400U) << id.substr(0, 40) << ": " << r.body;
      EXPECT_EQ(Json::parse(r.body)["error"], "invalid_field") << r.body;
      EXPECT_EQ(Json::parse(r.body)["field"], "subscriptionId") << r.body;
      EXPECT_EQ(r.headers.count("retry-after"), 0U);
    }
  }
  EXPECT_EQ(nodit_events(), before);
  EXPECT_EQ(gaps(), gaps_before);
  ASSERT_EQ(gaps_before.size(), 1U);
  EXPECT_EQ(gaps_before[0]["subscriptionId"], "5");
  // Several backfill passes later, the history API was asked about "5" only.
  // (gap_delay 200 ms, poll_interval 100 ms, backoff_max 400 ms: a second
  // holds several passes.)
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  for (const auto& req : fake.requests()) {
    EXPECT_EQ(req.query.count("subscriptionId") == 0 ? "" : req.query.at("subscriptionId"), "5")
        << req.target;
  }
  // The store still serves the message it had, and takes the next one.
  auto r = deliver(nodit_message("5", 2));
  EXPECT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(Json::parse(r.body)["status"], "accepted") << r.body;
  EXPECT_EQ(nodit_events().size(), before.size() + 1);
}

TEST_F(NoditTest, GapsAreBackfilledFromHistoryAcrossARestart) {
  FakeNodit fake("nodit-api-key-for-tests");
  const auto config = nodit_config(&fake);
  start(config);
  ASSERT_EQ(deliver(nodit_message("42", 1)).status, 200U);
  ASSERT_EQ(deliver(nodit_message("42", 2)).status, 200U);
  // Restart between deliveries: nothing lost, nothing duplicated.
  EXPECT_EQ(daemon_->stop(), 0);
  fake.clear_requests();  // the FAIL query awaited below is the restarted daemon's
  start(config);
  ASSERT_EQ(deliver(nodit_message("42", 5)).status, 200U);
  // The restarted daemon first asks for failed deliveries (status=FAIL) of
  // the subscriptions it knows. Had that query come after the history below
  // was added, it would fetch 3 (a FAIL) itself, and the gap's own query
  // would start at 4: wait for it first.
  ASSERT_TRUE(eventually([&] {
    for (const auto& req : fake.requests()) {
      if (req.query.count("status") && req.query.at("status") == "FAIL") return true;
    }
    return false;
  }));
  // 3 and 4 never arrive as webhooks; the history API has them.
  fake.add("42", 3, "FAIL", "2025-10-01T15:13:27.000Z", nodit_message("42", 3));
  fake.add("42", 4, "SUCCESS", "2025-10-01T15:13:28.000Z", nodit_message("42", 4));
  fake.add("42", 5, "SUCCESS", "2025-10-01T15:13:29.000Z", nodit_message("42", 5));

  ASSERT_TRUE(eventually([&] {
    auto g = gaps();
    return g.size() == 1 && g[0]["missingCount"] == 0;
  })) << gaps().front().dump();
  auto g = gaps().front();
  EXPECT_EQ(g["highestContiguous"], 5);
  EXPECT_EQ(g["missing"], Json::array());

  const auto stored = nodit_events();
  ASSERT_EQ(stored.size(), 5U);
  std::set<std::string> keys;
  for (const auto& e : stored) {
    keys.insert(e["eventId"].get<std::string>());
    const bool backfilled = e["eventId"] == "42:3" || e["eventId"] == "42:4";
    EXPECT_EQ(e["origin"], backfilled ? "history" : "signature") << e.dump();
  }
  EXPECT_EQ(keys, (std::set<std::string>{"42:1", "42:2", "42:3", "42:4", "42:5"}));
  // A backfilled message is stored as the API sent it: big integers intact.
  auto shown = cli({"events", "show", "42:3"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find(nodit_message("42", 3)), std::string::npos) << shown.out;
  // The fake saw the key and a query starting at the gap.
  bool asked_from_3 = false;
  for (const auto& req : fake.requests()) {
    EXPECT_TRUE(req.api_key_ok);
    if (req.query.count("startSequenceNumber") && req.query.at("startSequenceNumber") == "3") {
      asked_from_3 = true;
      EXPECT_EQ(req.query.at("subscriptionId"), "42");
      EXPECT_EQ(req.query.at("withEventMessage"), "true");
    }
  }
  EXPECT_TRUE(asked_from_3);
  // The API key never reaches the log.
  EXPECT_EQ(daemon_->log().find("nodit-api-key-for-tests"), std::string::npos);
}

TEST_F(NoditTest, HistoryFailuresLeaveTheGapListedAndWebhooksServed) {
  FakeNodit fake("nodit-api-key-for-tests");
  start(nodit_config(&fake));
  ASSERT_EQ(deliver(nodit_message("8", 1)).status, 200U);
  ASSERT_EQ(deliver(nodit_message("8", 3)).status, 200U);
  fake.add("8", 2, "SUCCESS", "2025-10-01T15:13:27.000Z", nodit_message("8", 2));

  std::uint64_t next_seq = 4;
  for (auto mode : {FakeNodit::Mode::error500, FakeNodit::Mode::hang, FakeNodit::Mode::garbage}) {
    fake.set_mode(mode);
    const auto seen = fake.request_count();
    ASSERT_TRUE(eventually([&] { return fake.request_count() >= seen + 2; }));
    // The gap stays listed, the store is intact, and webhooks are still served.
    auto g = gaps();
    ASSERT_EQ(g.size(), 1U);
    EXPECT_EQ(g[0]["missing"], Json::array({2}));
    EXPECT_EQ(g[0]["highestContiguous"], 1);
    auto r = deliver(nodit_message("8", next_seq));
    EXPECT_EQ(r.status, 200U);
    EXPECT_EQ(Json::parse(r.body)["status"], "accepted");
    ++next_seq;
    EXPECT_EQ(nodit_events().size(), next_seq - 2);
  }
  // Once the API recovers, the gap is filled.
  fake.set_mode(FakeNodit::Mode::normal);
  ASSERT_TRUE(eventually([&] { return gaps()[0]["missingCount"] == 0; }));
  EXPECT_EQ(gaps()[0]["highestContiguous"], next_seq - 1);
}

TEST_F(NoditTest, FailedDeliveriesAreFetchedAtStartUp) {
  FakeNodit fake("nodit-api-key-for-tests");
  const auto config = nodit_config(&fake, "subscriptions = [\"31\"]\n");
  start(config);
  ASSERT_EQ(deliver(nodit_message("31", 1, "2025-10-01T15:00:00.000Z")).status, 200U);
  EXPECT_EQ(daemon_->stop(), 0);
  // While hookvault was down, message 2 failed to reach it.
  fake.add("31", 2, "FAIL", "2025-10-01T15:05:00.000Z",
           nodit_message("31", 2, "2025-10-01T15:05:00.000Z"));
  start(config);
  ASSERT_TRUE(eventually([&] { return nodit_events().size() == 2; }));
  bool asked_for_failures = false;
  for (const auto& req : fake.requests()) {
    if (req.query.count("status") && req.query.at("status") == "FAIL") asked_for_failures = true;
  }
  EXPECT_TRUE(asked_for_failures);
  EXPECT_EQ(nodit_events().back()["origin"], "history");
}

// A history API that answers more than it is asked: the number already
// stored (forged), a number not delivered yet, a huge forged number. Only the
// missing number is stored, no gap opens towards the huge one, the later
// signed delivery of the not-yet-delivered number is accepted (not a
// "duplicate" of a forgery), and the signed delivery of the backfilled number
// replaces the history copy.
TEST_F(NoditTest, HistoryCopiesNeverPreemptSignedDeliveries) {
  FakeNodit fake("nodit-api-key-for-tests");
  // One page holds every answer to the gap's query.
  start(nodit_config(&fake, "", /*with_admin=*/true, /*page_size=*/100));
  ASSERT_EQ(deliver(nodit_message("50", 1)).status, 200U);
  ASSERT_EQ(deliver(nodit_message("50", 3)).status, 200U);
  const std::string copy_of_2 = nodit_message("50", 2, "2025-10-01T15:13:27.000000000Z");
  const std::string signed_2 = nodit_message("50", 2);
  ASSERT_NE(copy_of_2, signed_2);
  std::string forged_3 = nodit_message("50", 3);
  forged_3.replace(forged_3.find("0x4f1a"), 6, "0xbad0");
  fake.add("50", 2, "SUCCESS", "2025-10-01T15:13:27.000Z", copy_of_2);
  fake.add("50", 3, "SUCCESS", "2025-10-01T15:13:28.000Z", forged_3);
  fake.add("50", 4, "SUCCESS", "2025-10-01T15:13:29.000Z", nodit_message("50", 4));
  fake.add("50", std::uint64_t{1} << 62, "SUCCESS", "2025-10-01T15:13:30.000Z",
           nodit_message("50", std::uint64_t{1} << 62));

  ASSERT_TRUE(eventually([&] {
    auto g = gaps();
    return g.size() == 1 && g[0]["missingCount"] == 0;
  })) << gaps().front().dump();
  EXPECT_EQ(gaps().front()["highestContiguous"], 3);
  const auto origin_of = [&](const std::string& key) -> std::string {
    for (const auto& e : nodit_events()) {
      if (e["eventId"] == key) return e["origin"].get<std::string>();
    }
    return "<none>";
  };
  const auto payload_of = [&](const std::string& key) {
    auto shown = cli({"events", "show", key});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return shown.out;
  };
  EXPECT_EQ(nodit_events().size(), 3U);
  EXPECT_EQ(origin_of("50:2"), "history");
  EXPECT_EQ(origin_of("50:3"), "signature");
  EXPECT_NE(payload_of("50:3").find(nodit_message("50", 3)), std::string::npos);
  EXPECT_EQ(origin_of("50:4"), "<none>");

  // The genuine signed delivery of 4 is stored, not a duplicate.
  auto four = deliver(nodit_message("50", 4));
  ASSERT_EQ(four.status, 200U);
  EXPECT_EQ(Json::parse(four.body)["status"], "accepted");
  EXPECT_EQ(origin_of("50:4"), "signature");

  // The signed delivery of 2 replaces the history copy: a new event.
  std::string history_id;
  for (const auto& e : nodit_events()) {
    if (e["eventId"] == "50:2") history_id = e["id"].get<std::string>();
  }
  auto two = deliver(signed_2);
  ASSERT_EQ(two.status, 200U) << two.body;
  EXPECT_EQ(Json::parse(two.body)["status"], "accepted");
  EXPECT_NE(Json::parse(two.body)["id"].get<std::string>(), history_id);
  EXPECT_EQ(origin_of("50:2"), "signature");
  EXPECT_NE(payload_of("50:2").find(signed_2), std::string::npos);
  EXPECT_EQ(Json::parse(deliver(signed_2).body)["status"], "duplicate");
  EXPECT_EQ(Json::parse(deliver(copy_of_2).body)["status"], "duplicate");
  EXPECT_EQ(nodit_events().size(), 4U);
  EXPECT_EQ(gaps().front()["highestContiguous"], 4);
  EXPECT_EQ(scrape_metric("hookvault_history_copies_replaced_total{source=\"nodit\"}"), 1);
  EXPECT_GE(scrape_metric("hookvault_nodit_history_refused_total{source=\"nodit\"}"), 3);
}

// A history API that dates a failed delivery in 2099 (and ignores the
// window it was asked for) neither gets it stored nor moves the next
// start-up's window past the deliveries that really failed.
TEST_F(NoditTest, AForgedFutureCreatedAtDoesNotMoveTheStartUpWindow) {
  FakeNodit fake("nodit-api-key-for-tests");
  const auto config = nodit_config(&fake, "subscriptions = [\"31\"]\n");
  start(config);
  ASSERT_EQ(deliver(nodit_message("31", 1, "2025-10-01T15:00:00.000Z")).status, 200U);
  EXPECT_EQ(daemon_->stop(), 0);

  fake.set_mode(FakeNodit::Mode::ignore_filters);
  fake.add("31", 2, "FAIL", "2099-01-01T00:00:00.000Z",
           nodit_message("31", 2, "2099-01-01T00:00:00.000Z"));
  start(config);
  ASSERT_TRUE(daemon_->wait_for_log("history page fetched", 1)) << daemon_->log();
  EXPECT_EQ(daemon_->log_count("history items not asked for were refused"), 1U);
  EXPECT_EQ(daemon_->stop(), 0);
  EXPECT_EQ(nodit_events().size(), 1U);

  // While it was down again, message 3 failed to reach it.
  fake.set_mode(FakeNodit::Mode::normal);
  fake.add("31", 3, "FAIL", "2025-10-01T15:10:00.000Z",
           nodit_message("31", 3, "2025-10-01T15:10:00.000Z"));
  fake.clear_requests();
  start(config);
  ASSERT_TRUE(eventually([&] { return nodit_events().size() == 2; })) << nodit_events().size();
  std::set<std::string> keys;
  for (const auto& e : nodit_events()) keys.insert(e["eventId"].get<std::string>());
  EXPECT_EQ(keys, (std::set<std::string>{"31:1", "31:3"}));
  bool asked_from_the_signed_message = false;
  for (const auto& req : fake.requests()) {
    if (req.query.count("status") && req.query.at("status") == "FAIL") {
      EXPECT_EQ(req.query.at("startAt"), "2025-10-01T15:00:00.000Z");
      asked_from_the_signed_message = true;
    }
  }
  EXPECT_TRUE(asked_from_the_signed_message);
}

// A history response over the size limit is refused while it is read: the
// gap stays listed, webhooks are served, stored data is intact; once the API
// answers normally the gap is filled.
TEST_F(NoditTest, AnOversizedHistoryResponseIsRefusedAndStoredDataStaysIntact) {
  FakeNodit fake("nodit-api-key-for-tests");
  start(nodit_config(&fake));
  ASSERT_EQ(deliver(nodit_message("8", 1)).status, 200U);
  ASSERT_EQ(deliver(nodit_message("8", 3)).status, 200U);
  fake.add("8", 2, "SUCCESS", "2025-10-01T15:13:27.000Z", nodit_message("8", 2));
  const auto seen = fake.request_count();
  fake.set_mode(FakeNodit::Mode::oversized);  // 3 MiB

  // Refused, so asked again (with backoff) while the gap stays open.
  ASSERT_TRUE(eventually([&] { return fake.request_count() >= seen + 2; }));
  EXPECT_GE(daemon_->log_count("nodit history response too large"), 1U);
  auto g = gaps();
  ASSERT_EQ(g.size(), 1U);
  EXPECT_EQ(g[0]["missing"], Json::array({2}));
  auto r = deliver(nodit_message("8", 4));
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(Json::parse(r.body)["status"], "accepted");
  EXPECT_EQ(nodit_events().size(), 3U);
  for (std::uint64_t n : {1, 3, 4}) {
    auto shown = cli({"events", "show", "8:" + std::to_string(n)});
    ASSERT_EQ(shown.exit_code, 0) << shown.err;
    EXPECT_NE(shown.out.find(nodit_message("8", n)), std::string::npos) << n;
  }

  fake.set_mode(FakeNodit::Mode::normal);
  ASSERT_TRUE(eventually([&] { return gaps()[0]["missingCount"] == 0; }));
  EXPECT_EQ(gaps()[0]["highestContiguous"], 4);
}

}  // namespace
}  // namespace hookvault::testing
