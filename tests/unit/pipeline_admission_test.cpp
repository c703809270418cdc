// Admission (src/pipeline/admission.hpp) without a socket: every refusal of
// both providers, with the status and error code the public listener answers
// (README.md "What it does with a delivery", docs/protocols.md), and what an
// admitted delivery becomes.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hookvault/pipeline.hpp"
#include "hookvault/subscription_id.hpp"
#include "pipeline/admission.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

constexpr std::string_view kDynamicSecret = "dyn_secret_for_admission";
constexpr std::string_view kNoditSecret = "nodit_secret_for_admission";
// 2025-10-01T15:13:26.348Z, and a minute after it.
constexpr std::int64_t kEventMs = 1759331606348;
constexpr std::int64_t kNow = kEventMs + 60'000;

Source make_source(Provider provider, std::vector<std::string> allow_from = {},
                   std::chrono::seconds max_event_age = std::chrono::seconds(0)) {
  SourceConfig config;
  config.provider = provider;
  config.name = provider == Provider::dynamic ? "dynamic" : "nodit";
  config.path = "/webhooks/" + config.name;
  config.max_event_age = max_event_age;
  for (const auto& range : allow_from) config.allow_from.push_back(*Cidr::parse(range));
  std::vector<SecretBytes> secrets;
  secrets.push_back(
      SecretBytes::copy_of(provider == Provider::dynamic ? kDynamicSecret : kNoditSecret));
  return Source{config, SignatureVerifier(std::move(secrets)), std::nullopt};
}

// One request as the listener hands it over.
struct Request {
  std::string body;
  std::string content_type = "application/json";
  std::map<std::string, std::string> headers;
  std::string client = "127.0.0.1";
};

Request signed_request(Provider provider, std::string body) {
  Request r;
  if (provider == Provider::dynamic) {
    r.headers["x-dynamic-signature-256"] = "sha256=" + testing::hmac_hex(kDynamicSecret, body);
  } else {
    r.headers["x-signature"] = testing::hmac_hex(kNoditSecret, body);
  }
  r.body = std::move(body);
  return r;
}

Result<detail::Admitted, Refusal> admit(const Source& source, const Request& request,
                                        std::int64_t now = kNow) {
  Delivery d;
  d.method = "POST";
  d.target = source.config.path;
  d.content_type = request.content_type;
  d.header = [&request](std::string_view name) -> std::string_view {
    auto it = request.headers.find(std::string(name));
    return it == request.headers.end() ? std::string_view() : std::string_view(it->second);
  };
  d.body = request.body;
  d.request_id = "req-1";
  d.client = request.client;
  d.client_ip = *parse_ip(request.client);
  return detail::admit(source, d, now);
}

// The refusal, as the listener answers it: "<status> <error>[ <field>]".
std::string answer(const Result<detail::Admitted, Refusal>& r) {
  if (r) return "admitted";
  const Reply reply = error_reply(r.error());
  const Json body = Json::parse(reply.body);
  std::string out = std::to_string(reply.status) + " " + body["error"].get<std::string>();
  if (body.contains("field")) out += " " + body["field"].get<std::string>();
  return out;
}

std::string dynamic_body(std::string_view event_name, std::string_view extra = "",
                         std::string_view data = R"({"walletId":"w-1"})") {
  std::string body = R"({"eventId":"e-1","messageId":"m-1","eventName":")";
  body += event_name;
  body += R"(","timestamp":"2025-10-01T15:13:26.348Z")";
  body += extra;
  body += R"(,"data":)";
  body += data;
  body += "}";
  return body;
}

std::string nodit_body(std::string_view sequence_member = R"("sequenceNumber":"7",)",
                       std::string_view created_at = "2025-10-01T15:13:26.348123456Z") {
  std::string body = R"({"subscriptionId":"5",)";
  body += sequence_member;
  body += R"("eventType":"ADDRESS_ACTIVITY","event":{"n":1},"createdAt":")";
  body += created_at;
  body += R"("})";
  return body;
}

class AdmissionBothProviders : public ::testing::TestWithParam<Provider> {
 protected:
  Source source_ = make_source(GetParam());
  std::string body_ = GetParam() == Provider::dynamic ? dynamic_body("ping") : nodit_body();
};

TEST_P(AdmissionBothProviders, ClientOutsideAllowFromIs403BeforeTheSignatureIsRead) {
  const Source source = make_source(GetParam(), {"10.0.0.0/8", "::1/128"});
  Request unsigned_request;
  unsigned_request.body = body_;
  unsigned_request.client = "192.0.2.7";
  EXPECT_EQ(answer(admit(source, unsigned_request)), "403 forbidden");
  Request inside = signed_request(GetParam(), body_);
  inside.client = "10.1.2.3";
  EXPECT_EQ(answer(admit(source, inside)), "admitted");
}

TEST_P(AdmissionBothProviders, ContentTypeOtherThanJsonIs415) {
  for (const char* ct : {"text/plain", "", "application/x-www-form-urlencoded", "application/jsonx",
                         "json", "application/+jsonx"}) {
    Request r = signed_request(GetParam(), body_);
    r.content_type = ct;
    EXPECT_EQ(answer(admit(source_, r)), "415 unsupported_media_type") << ct;
  }
  for (const char* ct : {"application/json", "Application/JSON; charset=utf-8",
                         "application/cloudevents+json", " application/json ;q=1"}) {
    Request r = signed_request(GetParam(), body_);
    r.content_type = ct;
    EXPECT_EQ(answer(admit(source_, r)), "admitted") << ct;
  }
}

TEST_P(AdmissionBothProviders, MissingMalformedOrWrongSignatureIs401) {
  const bool dynamic = GetParam() == Provider::dynamic;
  const std::string header = dynamic ? "x-dynamic-signature-256" : "x-signature";
  const std::string prefix = dynamic ? "sha256=" : "";
  Request none;
  none.body = body_;
  EXPECT_EQ(answer(admit(source_, none)), "401 invalid_signature") << "no header";
  const std::string other_secret_mac = testing::hmac_hex("another secret", body_);
  for (const std::string& value :
       {prefix + "zz", prefix + other_secret_mac, prefix, prefix + other_secret_mac + "00",
        std::string("sha512=") +
            testing::hmac_hex(dynamic ? kDynamicSecret : kNoditSecret, body_)}) {
    Request r;
    r.body = body_;
    r.headers[header] = value;
    EXPECT_EQ(answer(admit(source_, r)), "401 invalid_signature") << value;
  }
  // The other provider's header carries nothing here.
  Request swapped = signed_request(dynamic ? Provider::nodit : Provider::dynamic, body_);
  EXPECT_EQ(answer(admit(source_, swapped)), "401 invalid_signature");
  // A tampered body under a valid MAC.
  Request tampered = signed_request(GetParam(), body_);
  tampered.body[tampered.body.size() - 2] ^= 1;
  EXPECT_EQ(answer(admit(source_, tampered)), "401 invalid_signature");
}

TEST_P(AdmissionBothProviders, SignedButNotStrictJsonIs400NamingTheProblem) {
  EXPECT_EQ(answer(admit(source_, signed_request(GetParam(), "{\"eventId\":"))),
            "400 malformed_json");
  EXPECT_EQ(answer(admit(source_, signed_request(GetParam(), R"({"a":1,"a":2})"))),
            "400 duplicate_key");
  // Unsigned, the same bodies are only 401: an unauthenticated sender learns nothing.
  Request unsigned_bad;
  unsigned_bad.body = R"({"a":1,"a":2})";
  unsigned_bad.headers["x-signature"] = std::string(64, '0');
  unsigned_bad.headers["x-dynamic-signature-256"] = "sha256=" + std::string(64, '0');
  EXPECT_EQ(answer(admit(source_, unsigned_bad)), "401 invalid_signature");
}

TEST_P(AdmissionBothProviders, OnlyTheCompactFormSignedAndABodyThatMeansOtherwiseIs400) {
  // JavaScript prints 2^60 as 1152921504606847000, and 2^60 + 1 the same:
  // the MAC over that compact form does not admit the body that says 2^60 + 1.
  const std::string two_to_60 = "1152921504606847000";
  const std::string message =
      GetParam() == Provider::dynamic
          ? R"({"eventId":"e","eventName":"ping","n":)" + two_to_60 + "}"
          : R"({"subscriptionId":"5","sequenceNumber":"8","n":)" + two_to_60 + "}";
  const std::string signed_text = js_stringify(*parse_strict(message));
  std::string body = signed_text;
  body.replace(body.find(two_to_60), two_to_60.size(), "1152921504606846977");
  Request r = signed_request(GetParam(), signed_text);
  r.body = body;
  EXPECT_EQ(answer(admit(source_, r)), "400 signed_form_mismatch");
  // Pretty-printed text of the same meaning is admitted, and the signed (compact) bytes are kept.
  Request pretty = signed_request(GetParam(), signed_text);
  pretty.body = Json::parse(signed_text).dump(2);
  auto admitted = admit(source_, pretty);
  ASSERT_EQ(answer(admitted), "admitted");
  EXPECT_EQ(admitted->plan.request.event.payload, signed_text);
}

INSTANTIATE_TEST_SUITE_P(Providers, AdmissionBothProviders,
                         ::testing::Values(Provider::dynamic, Provider::nodit),
                         [](const ::testing::TestParamInfo<Provider>& p) {
                           return std::string(p.param == Provider::dynamic ? "Dynamic" : "Nodit");
                         });

// ---- Dynamic's plan ---------------------------------------------------------------------------

std::string dynamic_answer(const std::string& body, std::int64_t now = kNow,
                           std::chrono::seconds max_age = std::chrono::seconds(0)) {
  const Source source = make_source(Provider::dynamic, {}, max_age);
  return answer(admit(source, signed_request(Provider::dynamic, body), now));
}

TEST(AdmissionDynamic, MissingOrMistypedEnvelopeFieldsAre400NamingTheField) {
  EXPECT_EQ(dynamic_answer("[]"), "400 invalid_field body");
  EXPECT_EQ(dynamic_answer(R"("ping")"), "400 invalid_field body");
  EXPECT_EQ(dynamic_answer(R"({"eventName":"ping","data":{}})"), "400 missing_field eventId");
  EXPECT_EQ(dynamic_answer(R"({"eventId":null,"eventName":"ping"})"), "400 missing_field eventId");
  EXPECT_EQ(dynamic_answer(R"({"eventId":"","eventName":"ping"})"), "400 missing_field eventId");
  EXPECT_EQ(dynamic_answer(R"({"eventId":7,"eventName":"ping"})"), "400 invalid_field eventId");
  EXPECT_EQ(dynamic_answer(R"({"eventId":"e"})"), "400 missing_field eventName");
  EXPECT_EQ(dynamic_answer(R"({"eventId":"e","eventName":""})"), "400 missing_field eventName");
  EXPECT_EQ(dynamic_answer(R"({"eventId":"e","eventName":["ping"]})"),
            "400 invalid_field eventName");
  EXPECT_EQ(dynamic_answer(R"({"eventId":"e","eventName":"ping","messageId":1})"),
            "400 invalid_field messageId");
  EXPECT_EQ(dynamic_answer(R"({"eventId":"e","eventName":"ping","timestamp":1})"),
            "400 invalid_field timestamp");
}

TEST(AdmissionDynamic, DelegationEventsNeedATimestampThatParsesAndAWalletId) {
  for (const char* name : {"wallet.delegation.created", "wallet.delegation.revoked"}) {
    SCOPED_TRACE(name);
    const std::string n = name;
    EXPECT_EQ(
        dynamic_answer(R"({"eventId":"e","eventName":")" + n + R"(","data":{"walletId":"w"}})"),
        "400 missing_field timestamp");
    EXPECT_EQ(dynamic_answer(R"({"eventId":"e","eventName":")" + n +
                             R"(","timestamp":"yesterday","data":{"walletId":"w"}})"),
              "400 invalid_field timestamp");
    EXPECT_EQ(dynamic_answer(R"({"eventId":"e","eventName":")" + n +
                             R"(","timestamp":"2025-10-01T15:13:26.348"})"),
              "400 invalid_field timestamp")
        << "no zone: ambiguous";
    EXPECT_EQ(dynamic_answer(dynamic_body(n, "", "null")), "400 missing_field data");
    EXPECT_EQ(dynamic_answer(dynamic_body(n, "", "[]")), "400 invalid_field data");
    EXPECT_EQ(dynamic_answer(dynamic_body(n, "", "{}")), "400 missing_field data.walletId");
    EXPECT_EQ(dynamic_answer(dynamic_body(n, "", R"({"walletId":""})")),
              "400 missing_field data.walletId");
    EXPECT_EQ(dynamic_answer(dynamic_body(n, "", R"({"walletId":5})")),
              "400 invalid_field data.walletId");
    EXPECT_EQ(dynamic_answer(dynamic_body(n)), "admitted");
  }
  // Other events need neither.
  EXPECT_EQ(dynamic_answer(R"({"eventId":"e","eventName":"ping","timestamp":"soon"})"), "admitted");
}

TEST(AdmissionDynamic, EventsOlderThanMaxEventAgeAre400StaleEvent) {
  const std::string body = dynamic_body("wallet.delegation.created");
  EXPECT_EQ(dynamic_answer(body, kEventMs + 61'000, std::chrono::seconds(60)),
            "400 stale_event timestamp");
  EXPECT_EQ(dynamic_answer(body, kEventMs + 59'000, std::chrono::seconds(60)), "admitted");
  EXPECT_EQ(dynamic_answer(body, kEventMs + 86'400'000), "admitted") << "no max_event_age";
}

TEST(AdmissionDynamic, ARefusalNamesTheEventForTheRequestLog) {
  const Source source = make_source(Provider::dynamic);
  auto r =
      admit(source, signed_request(Provider::dynamic,
                                   R"({"eventId":"e","eventName":"wallet.delegation.revoked"})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(error_reply(r.error()).event_name, "wallet.delegation.revoked");
}

TEST(AdmissionDynamic, WhatAnAdmittedDeliveryBecomes) {
  const Source source = make_source(Provider::dynamic);
  const std::string created = dynamic_body("wallet.delegation.created");
  auto c = admit(source, signed_request(Provider::dynamic, created));
  ASSERT_EQ(answer(c), "admitted");
  const NewEvent& ev = c->plan.request.event;
  EXPECT_EQ(ev.source, "dynamic");
  EXPECT_EQ(ev.idempotency_key, "e-1");
  EXPECT_EQ(ev.event_name, "wallet.delegation.created");
  EXPECT_EQ(ev.message_id, "m-1");
  EXPECT_EQ(ev.wallet_id, "w-1");
  EXPECT_EQ(ev.event_time_ms, kEventMs);
  EXPECT_EQ(ev.origin, Origin::signature);
  EXPECT_EQ(ev.payload, created);  // the signed bytes, as received
  EXPECT_FALSE(ev.sequence);
  EXPECT_TRUE(c->plan.decrypt);
  EXPECT_FALSE(c->plan.request.revoke);
  EXPECT_EQ(c->body["data"]["walletId"], "w-1");

  auto revoked =
      admit(source, signed_request(Provider::dynamic, dynamic_body("wallet.delegation.revoked")));
  ASSERT_EQ(answer(revoked), "admitted");
  EXPECT_TRUE(revoked->plan.request.revoke);
  EXPECT_FALSE(revoked->plan.decrypt);

  auto ping = admit(source, signed_request(Provider::dynamic, dynamic_body("ping", "", "{}")));
  ASSERT_EQ(answer(ping), "admitted");
  EXPECT_FALSE(ping->plan.decrypt);
  EXPECT_FALSE(ping->plan.request.revoke);
  EXPECT_TRUE(ping->plan.request.event.wallet_id.empty());
}

// ---- Nodit's plan -----------------------------------------------------------------------------

std::string nodit_answer(const std::string& body, std::int64_t now = kNow,
                         std::chrono::seconds max_age = std::chrono::seconds(0)) {
  const Source source = make_source(Provider::nodit, {}, max_age);
  return answer(admit(source, signed_request(Provider::nodit, body), now));
}

TEST(AdmissionNodit, UnusableIdsAre400InvalidField) {
  EXPECT_EQ(nodit_answer("[]"), "400 invalid_field body");
  EXPECT_EQ(nodit_answer(R"({"subscriptionId":{"id":5},"sequenceNumber":"1"})"),
            "400 invalid_field subscriptionId");
  EXPECT_EQ(nodit_answer(R"({"subscriptionId":"","sequenceNumber":"1"})"),
            "400 invalid_field subscriptionId");
  EXPECT_EQ(nodit_answer(R"({"subscriptionId":true,"sequenceNumber":"1"})"),
            "400 invalid_field subscriptionId");
  for (const char* seq : {R"("abc")", R"("")", R"("-1")", "-1", R"("1.5")", "1.5", R"(" 1")",
                          R"("9223372036854775808")", "9223372036854775808",
                          R"("18446744073709551616")", "[1]", "true"}) {
    EXPECT_EQ(nodit_answer(nodit_body(std::string(R"("sequenceNumber":)") + seq + ",")),
              "400 invalid_field sequenceNumber")
        << seq;
  }
  EXPECT_EQ(nodit_answer(nodit_body(R"("sequenceNumber":"9223372036854775807",)")), "admitted");
}

std::string nodit_with_subscription(std::string_view subscription_json) {
  return std::string(R"({"subscriptionId":)") + std::string(subscription_json) +
         R"(,"sequenceNumber":"1","eventType":"LOG","createdAt":"2025-10-01T15:13:26Z"})";
}

// subscriptionId is digits in a string (docs/protocols.md), the only ids the
// history API can answer about: an id of any other shape used to be admitted
// and given a sequence ledger whose gaps no history fetch could ever fill.
TEST(AdmissionNodit, SubscriptionIdsOtherThanDigitsAre400InvalidField) {
  const std::string digits64(64, '9');
  const std::string digits65(65, '9');
  const std::string huge(10'000, '1');
  for (const std::string& id : {std::string(R"("abc")"),
                                std::string(R"("ha-sub-1")"),
                                std::string(R"("12a")"),
                                std::string(R"("-5")"),
                                std::string(R"("+5")"),
                                std::string(R"("5.0")"),
                                std::string(R"(" 5")"),
                                std::string(R"("5 ")"),
                                std::string(R"("5\n")"),
                                std::string(R"("\t5")"),
                                std::string(R"("5\u0000")"),
                                std::string("\"\xd9\xa7\""),      // U+0667 ARABIC-INDIC DIGIT SEVEN
                                std::string("\"\xef\xbc\x95\""),  // U+FF15 FULLWIDTH DIGIT FIVE
                                std::string(R"("\uff15")"),       // the same, escaped
                                std::string(R"("007")"),
                                std::string(R"("00")"),
                                std::string(R"("01")"),  // leading zeros
                                "\"" + digits65 + "\"",
                                "\"" + huge + "\"",  // longer than 64 digits
                                std::string("-1"),
                                std::string("-9223372036854775808"),  // negative integers
                                std::string("5.0"),
                                std::string("1e3"),
                                std::string("18446744073709551616"),  // not integers
                                std::string("[5]"),
                                std::string("false")}) {
    EXPECT_EQ(nodit_answer(nodit_with_subscription(id)), "400 invalid_field subscriptionId")
        << id.substr(0, 80);
  }
  // The accepted forms, and the key each becomes.
  const Source source = make_source(Provider::nodit);
  const std::pair<std::string, std::string> accepted[] = {
      {R"("5")", "5"},
      {R"("0")", "0"},
      {R"("10")", "10"},
      {"\"" + digits64 + "\"", digits64},
      {"7", "7"},
      {"0", "0"},
      {"18446744073709551615", "18446744073709551615"},
  };
  for (const auto& [json, id] : accepted) {
    auto c = admit(source, signed_request(Provider::nodit, nodit_with_subscription(json)));
    ASSERT_EQ(answer(c), "admitted") << json.substr(0, 80);
    ASSERT_TRUE(c->plan.request.event.sequence);
    EXPECT_EQ(c->plan.request.event.sequence->subscription_id, id);
    EXPECT_EQ(c->plan.request.event.idempotency_key, id + ":1");
  }
}

// The rule itself, as admission and the history client share it.
TEST(SubscriptionId, CanonicalDigitsOnly) {
  EXPECT_TRUE(is_subscription_id("1"));
  EXPECT_TRUE(is_subscription_id("0"));
  EXPECT_TRUE(is_subscription_id(std::string(64, '1')));
  EXPECT_FALSE(is_subscription_id(""));
  EXPECT_FALSE(is_subscription_id(std::string(65, '1')));
  EXPECT_FALSE(is_subscription_id("07"));
  EXPECT_FALSE(is_subscription_id("1 "));
  EXPECT_FALSE(is_subscription_id(std::string_view("1\0", 2)));
  EXPECT_FALSE(is_subscription_id("\xd9\xa7"));
  EXPECT_EQ(subscription_id_of(Json(7)), "7");
  EXPECT_EQ(subscription_id_of(Json(std::uint64_t{7})), "7");
  EXPECT_EQ(subscription_id_of(Json(-7)), std::nullopt);
  EXPECT_EQ(subscription_id_of(Json("007")), std::nullopt);
  EXPECT_EQ(subscription_id_of(Json(7.0)), std::nullopt);
  EXPECT_EQ(subscription_id_of(Json("42")), "42");
}

// Sequence numbers count from 1; the store refuses 0, and the pipeline used to
// answer that refusal 503 (store_unavailable), so Nodit retried for ever.
TEST(AdmissionNodit, SequenceNumberZeroIs400InvalidField) {
  EXPECT_EQ(nodit_answer(nodit_body(R"("sequenceNumber":"0",)")),
            "400 invalid_field sequenceNumber");
  EXPECT_EQ(nodit_answer(nodit_body(R"("sequenceNumber":0,)")), "400 invalid_field sequenceNumber");
  EXPECT_EQ(nodit_answer(nodit_body(R"("sequenceNumber":"00",)")),
            "400 invalid_field sequenceNumber");
  EXPECT_EQ(nodit_answer(nodit_body(R"("sequenceNumber":"1",)")), "admitted");
  EXPECT_EQ(nodit_answer(nodit_body(R"("sequenceNumber":1,)")), "admitted");
}

TEST(AdmissionNodit, MessagesOlderThanMaxEventAgeAre400StaleEvent) {
  EXPECT_EQ(nodit_answer(nodit_body(), kEventMs + 61'000, std::chrono::seconds(60)),
            "400 stale_event createdAt");
  EXPECT_EQ(nodit_answer(nodit_body(), kEventMs + 59'000, std::chrono::seconds(60)), "admitted");
  EXPECT_EQ(nodit_answer(nodit_body(), kEventMs + 86'400'000), "admitted") << "no max_event_age";
}

TEST(AdmissionNodit, WhatAnAdmittedMessageBecomes) {
  const Source source = make_source(Provider::nodit);
  const std::string body = nodit_body();
  auto m = admit(source, signed_request(Provider::nodit, body));
  ASSERT_EQ(answer(m), "admitted");
  const NewEvent& ev = m->plan.request.event;
  EXPECT_EQ(ev.source, "nodit");
  EXPECT_EQ(ev.idempotency_key, "5:7");
  ASSERT_TRUE(ev.sequence);
  EXPECT_EQ(ev.sequence->subscription_id, "5");
  EXPECT_EQ(ev.sequence->number, 7U);
  EXPECT_EQ(ev.event_name, "ADDRESS_ACTIVITY");
  EXPECT_EQ(ev.event_time_ms, kEventMs);
  EXPECT_EQ(ev.payload, body);
  EXPECT_FALSE(m->plan.decrypt);

  // Integers for both ids are accepted.
  auto numeric =
      admit(source, signed_request(Provider::nodit, R"({"subscriptionId":12,"sequenceNumber":3})"));
  ASSERT_EQ(answer(numeric), "admitted");
  EXPECT_EQ(numeric->plan.request.event.idempotency_key, "12:3");

  // Without a sequence number: keyed by content, not sequence-tracked.
  auto unsequenced = admit(source, signed_request(Provider::nodit, nodit_body("")));
  ASSERT_EQ(answer(unsequenced), "admitted");
  EXPECT_EQ(unsequenced->plan.request.event.idempotency_key.rfind(detail::kContentKeyPrefix, 0),
            0U);
  EXPECT_FALSE(unsequenced->plan.request.event.sequence);
}

TEST(AdmissionSpecs, EachProviderHasItsOwn) {
  EXPECT_EQ(&detail::provider_spec(Provider::dynamic), &detail::kDynamicSpec);
  EXPECT_EQ(&detail::provider_spec(Provider::nodit), &detail::kNoditSpec);
  EXPECT_TRUE(detail::kDynamicSpec.needs_rsa_keys);
  EXPECT_FALSE(detail::kNoditSpec.needs_rsa_keys);
  EXPECT_TRUE(detail::kNoditSpec.sequenced);
}

}  // namespace
}  // namespace hookvault
