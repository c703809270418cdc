// NoditHistoryClient against FakeNodit over real TLS, and parse_history_page's
// lenient parsing.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "fake_nodit.hpp"
#include "hookvault/json.hpp"
#include "hookvault/nodit_history.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey = "nodit-test-key-5f1c";

// A delivered body as Nodit would send it, pretty-printed (so compaction is
// visible) with an integer beyond 2^53, non-ASCII text and a '/'.
std::string event_message(const std::string& sub, std::uint64_t seq) {
  return "{\n  \"subscriptionId\": \"" + sub + "\",\n  \"sequenceNumber\": \"" +
         std::to_string(seq) +
         "\",\n  \"description\": \"h\u00e9llo / backfill\",\n  \"protocol\": \"ETHEREUM\",\n"
         "  \"network\": \"MAINNET\",\n  \"subscriptionType\": \"WEBHOOK\",\n"
         "  \"notification\": { \"webhookUrl\": \"https://example.com/webhooks/nodit\" },\n"
         "  \"eventType\": \"LOG\",\n"
         "  \"event\": { \"value\": 123456789012345678901, \"blockNumber\": " +
         std::to_string(1000 + seq) +
         ", \"tags\": [ 1, 2.50, -0 ] },\n"
         "  \"createdAt\": \"2025-02-18T05:52:53.559342615Z\"\n}";
}

std::string created_at(std::uint64_t seq) {
  return "2025-02-18T05:52:" + std::string(seq < 10 ? "0" : "") + std::to_string(seq) + ".000Z";
}

bool is_io_error(const Result<HistoryPage>& r) {
  return !r && r.error() == make_error_code(Errc::io_error);
}

class NoditHistoryTest : public ::testing::Test {
 protected:
  HistoryClientOptions options(const std::string& key = kKey) const {
    HistoryClientOptions o;
    o.api_base_url = fake_.base_url();
    o.chain = "ethereum";
    o.network = "mainnet";
    o.api_key = SecretBytes::copy_of(std::string_view(key));
    o.ca_file = fake_.ca_file();
    o.timeout = 5s;
    return o;
  }

  void add_range(const std::string& sub, std::uint64_t first, std::uint64_t last,
                 const std::string& status = "SUCCESS") {
    for (auto seq = first; seq <= last; ++seq) {
      fake_.add(sub, seq, status, created_at(seq), event_message(sub, seq));
    }
  }

  static std::vector<std::uint64_t> sequence_numbers(const HistoryPage& page) {
    std::vector<std::uint64_t> out;
    for (const auto& item : page.items) out.push_back(item.sequence_number);
    return out;
  }

  FakeNodit fake_{kKey};
};

TEST_F(NoditHistoryTest, FetchesOnePageWithCompactMessages) {
  add_range("7", 1, 3);
  fake_.add("8", 1, "SUCCESS", created_at(1), event_message("8", 1));  // another subscription
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  auto page = client.fetch(q);
  ASSERT_TRUE(page.has_value()) << page.error().message();
  EXPECT_EQ(page->total, 3u);
  EXPECT_EQ(page->page, 1u);
  EXPECT_EQ(page->rpp, 100u);
  EXPECT_EQ(page->skipped, 0u);
  ASSERT_EQ(page->items.size(), 3u);
  for (std::uint64_t i = 0; i < 3; ++i) {
    const auto& item = page->items[i];
    EXPECT_EQ(item.subscription_id, "7");
    EXPECT_EQ(item.sequence_number, i + 1);
    EXPECT_EQ(item.status, "SUCCESS");
    EXPECT_EQ(item.created_at, created_at(i + 1));
    // Byte for byte as the API sent it: whitespace, non-ASCII, '/' and the
    // integer beyond 2^53 (which a parse and re-serialization would round).
    EXPECT_EQ(item.event_message, event_message("7", i + 1));
  }
  EXPECT_NE(page->items[0].event_message.find("\"value\": 123456789012345678901"),
            std::string::npos)
      << page->items[0].event_message;
}

TEST_F(NoditHistoryTest, SendsTheDocumentedRequest) {
  add_range("7", 1, 1);
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  q.page = 2;
  q.rpp = 50;
  ASSERT_TRUE(client.fetch(q).has_value());
  auto requests = fake_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/v1/ethereum/mainnet/webhooks/history");
  EXPECT_EQ(r.target,
            "/v1/ethereum/mainnet/webhooks/history?subscriptionId=7&page=2&rpp=50"
            "&withEventMessage=true");
  EXPECT_TRUE(r.api_key_present);
  EXPECT_TRUE(r.api_key_ok);
  EXPECT_EQ(r.headers.count("x-api-key"), 0u);
  EXPECT_EQ(r.headers.at("accept"), "application/json");
  EXPECT_EQ(r.headers.at("host"), "127.0.0.1:" + std::to_string(fake_.port()));
  EXPECT_EQ(r.headers.at("connection"), "close");
}

TEST_F(NoditHistoryTest, EncodesQueryValues) {
  fake_.add("12", 1, "FAIL", "2025-02-18T05:00:00.000Z", event_message("12", 1));
  fake_.add("12", 2, "FAIL", "2025-02-18T06:00:00.000Z", event_message("12", 2));
  fake_.add("12", 3, "FAIL", "2025-02-18T07:00:00.000Z", event_message("12", 3));
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "12";
  q.status = "FAIL";
  q.start_at = "2025-02-18T05:30:00.000Z";
  q.end_at = "2025-02-18T06:30:00+00:00";  // '+' and ':' must be escaped
  q.start_sequence_number = 1;
  auto page = client.fetch(q);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(sequence_numbers(*page), std::vector<std::uint64_t>{2});
  const auto r = fake_.requests().at(0);
  EXPECT_EQ(r.target,
            "/v1/ethereum/mainnet/webhooks/history?subscriptionId=12&page=1&rpp=100"
            "&withEventMessage=true&status=FAIL&startAt=2025-02-18T05%3A30%3A00.000Z"
            "&endAt=2025-02-18T06%3A30%3A00%2B00%3A00&startSequenceNumber=1");
  EXPECT_EQ(r.query.at("endAt"), "2025-02-18T06:30:00+00:00");
  EXPECT_EQ(r.query.at("startAt"), "2025-02-18T05:30:00.000Z");
}

TEST_F(NoditHistoryTest, PaginatesWithSmallPages) {
  add_range("7", 1, 5);
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  q.rpp = 2;
  std::vector<std::vector<std::uint64_t>> pages;
  for (q.page = 1; q.page <= 4; ++q.page) {
    auto page = client.fetch(q);
    ASSERT_TRUE(page.has_value()) << "page " << q.page;
    EXPECT_EQ(page->total, 5u);
    EXPECT_EQ(page->page, q.page);
    EXPECT_EQ(page->rpp, 2u);
    pages.push_back(sequence_numbers(*page));
  }
  EXPECT_EQ(pages, (std::vector<std::vector<std::uint64_t>>{{1, 2}, {3, 4}, {5}, {}}));
  EXPECT_EQ(fake_.request_count(), 4u);
}

TEST_F(NoditHistoryTest, FiltersByStartSequenceNumber) {
  add_range("7", 1, 6);
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  q.start_sequence_number = 4;
  auto page = client.fetch(q);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->total, 3u);
  EXPECT_EQ(sequence_numbers(*page), (std::vector<std::uint64_t>{4, 5, 6}));
  EXPECT_EQ(fake_.requests().at(0).query.at("startSequenceNumber"), "4");
}

TEST_F(NoditHistoryTest, FiltersByFailedStatus) {
  add_range("7", 1, 2, "SUCCESS");
  add_range("7", 3, 4, "FAIL");
  add_range("7", 5, 5, "SUCCESS");
  add_range("7", 6, 6, "FAIL");
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  q.status = "FAIL";
  auto page = client.fetch(q);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(sequence_numbers(*page), (std::vector<std::uint64_t>{3, 4, 6}));
  for (const auto& item : page->items) EXPECT_EQ(item.status, "FAIL");
  EXPECT_EQ(fake_.requests().at(0).query.at("status"), "FAIL");
}

TEST_F(NoditHistoryTest, WrongApiKeyIsAnIoError) {
  add_range("7", 1, 1);
  NoditHistoryClient client(options("not-the-key"));
  HistoryQuery q;
  q.subscription_id = "7";
  EXPECT_TRUE(is_io_error(client.fetch(q)));
  const auto r = fake_.requests().at(0);
  EXPECT_TRUE(r.api_key_present);
  EXPECT_FALSE(r.api_key_ok);
}

TEST_F(NoditHistoryTest, ServerErrorIsAnIoError) {
  add_range("7", 1, 1);
  fake_.set_mode(FakeNodit::Mode::error500);
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  EXPECT_TRUE(is_io_error(client.fetch(q)));
  EXPECT_EQ(fake_.request_count(), 1u);
}

TEST_F(NoditHistoryTest, HangingServerTimesOut) {
  add_range("7", 1, 1);
  fake_.set_mode(FakeNodit::Mode::hang);
  auto o = options();
  o.timeout = 500ms;
  NoditHistoryClient client(std::move(o));
  HistoryQuery q;
  q.subscription_id = "7";
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(is_io_error(client.fetch(q)));
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_GE(elapsed, 450ms);
  EXPECT_LT(elapsed, 2500ms);
  EXPECT_EQ(fake_.request_count(), 1u);  // the request arrived; no answer came

  // The same client works again once the server answers.
  fake_.set_mode(FakeNodit::Mode::normal);
  auto page = client.fetch(q);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->items.size(), 1u);
}

TEST_F(NoditHistoryTest, GarbageBodyIsAnIoError) {
  add_range("7", 1, 1);
  fake_.set_mode(FakeNodit::Mode::garbage);
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  EXPECT_TRUE(is_io_error(client.fetch(q)));
}

TEST_F(NoditHistoryTest, AlternateSchemaParsesTheSame) {
  add_range("7", 1, 3);
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  q.rpp = 2;
  auto normal = client.fetch(q);
  fake_.set_mode(FakeNodit::Mode::alternate_schema);
  auto alternate = client.fetch(q);
  ASSERT_TRUE(normal.has_value());
  ASSERT_TRUE(alternate.has_value());
  EXPECT_EQ(alternate->total, 3u);
  EXPECT_EQ(alternate->page, 1u);
  EXPECT_EQ(alternate->rpp, 2u);
  EXPECT_EQ(alternate->skipped, 0u);
  ASSERT_EQ(alternate->items.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(alternate->items[i].subscription_id, normal->items[i].subscription_id);
    EXPECT_EQ(alternate->items[i].sequence_number, normal->items[i].sequence_number);
    EXPECT_EQ(alternate->items[i].status, normal->items[i].status);
    EXPECT_EQ(alternate->items[i].created_at, normal->items[i].created_at);
    EXPECT_EQ(alternate->items[i].event_message, normal->items[i].event_message);
    EXPECT_EQ(alternate->items[i].event_message, event_message("7", i + 1));
  }
}

// The response size limit is enforced while the body is read: a body over it
// is refused, and a head announcing 1 GiB fails at once, not at the timeout.
TEST_F(NoditHistoryTest, ResponsesOverTheSizeLimitAreRefusedWhileReading) {
  add_range("7", 1, 3);
  HistoryQuery q;
  q.subscription_id = "7";
  auto o = options();
  ASSERT_EQ(o.max_response_bytes, 2U * 1024 * 1024);
  NoditHistoryClient client(std::move(o));

  fake_.set_mode(FakeNodit::Mode::oversized);  // a valid page, padded to 3 MiB
  auto big = client.fetch(q);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error(), make_error_code(Errc::body_too_large));

  fake_.set_oversized_bytes(2 * 1024 * 1024 - 1024);  // just under: a page like any other
  auto under = client.fetch(q);
  ASSERT_TRUE(under.has_value()) << under.error().message();
  EXPECT_EQ(sequence_numbers(*under), (std::vector<std::uint64_t>{1, 2, 3}));

  fake_.set_mode(FakeNodit::Mode::announce_huge);
  const auto started = std::chrono::steady_clock::now();
  auto huge = client.fetch(q);
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.error(), make_error_code(Errc::body_too_large));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);  // the timeout is 5 s
}

TEST_F(NoditHistoryTest, APageOfMoreItemsThanAskedForIsAnIoError) {
  add_range("7", 1, 3);
  fake_.set_mode(FakeNodit::Mode::ignore_filters);
  NoditHistoryClient client(options());
  HistoryQuery q;
  q.subscription_id = "7";
  q.rpp = 3;
  auto three = client.fetch(q);
  ASSERT_TRUE(three.has_value());
  EXPECT_EQ(three->items.size(), 3U);
  q.rpp = 2;  // the fake still answers 3
  EXPECT_TRUE(is_io_error(client.fetch(q)));
  EXPECT_TRUE(is_io_error(parse_history_page(
      R"({"items":[{"subscriptionId":"7","sequenceNumber":"1","eventMessage":{}},)"
      R"({"subscriptionId":"7","sequenceNumber":"2","eventMessage":{}},)"
      R"({"subscriptionId":"7","sequenceNumber":"3","eventMessage":{}}]})",
      2)));
}

TEST_F(NoditHistoryTest, UntrustedCertificateIsAnIoError) {
  add_range("7", 1, 1);
  HistoryQuery q;
  q.subscription_id = "7";
  {
    auto o = options();
    o.ca_file.clear();  // the system store does not know the fake's certificate
    NoditHistoryClient client(std::move(o));
    EXPECT_TRUE(is_io_error(client.fetch(q)));
  }
  {
    TempDir other;
    auto o = options();
    o.ca_file = write_self_signed_cert(other.path()).cert;  // same names, another key
    NoditHistoryClient client(std::move(o));
    EXPECT_TRUE(is_io_error(client.fetch(q)));
  }
  {
    auto o = options();
    o.ca_file = "/nonexistent/ca.pem";
    NoditHistoryClient client(std::move(o));
    EXPECT_TRUE(is_io_error(client.fetch(q)));
  }
  EXPECT_EQ(fake_.request_count(), 0u);  // no request left the client
}

TEST_F(NoditHistoryTest, VerifiesAHostNameToo) {
  add_range("7", 1, 1);
  auto o = options();
  o.api_base_url = "https://localhost:" + std::to_string(fake_.port()) + "/v1/";
  NoditHistoryClient client(std::move(o));
  HistoryQuery q;
  q.subscription_id = "7";
  auto page = client.fetch(q);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->items.size(), 1u);
  const auto r = fake_.requests().at(0);
  EXPECT_EQ(r.path, "/v1/ethereum/mainnet/webhooks/history");  // trailing '/' dropped
  EXPECT_EQ(r.headers.at("host"), "localhost:" + std::to_string(fake_.port()));
}

TEST_F(NoditHistoryTest, RefusedConnectionIsAnIoError) {
  std::uint16_t closed_port = 0;
  {
    FakeNodit gone("k");
    closed_port = gone.port();
  }
  auto o = options();
  o.api_base_url = "https://127.0.0.1:" + std::to_string(closed_port) + "/v1";
  NoditHistoryClient client(std::move(o));
  HistoryQuery q;
  q.subscription_id = "7";
  EXPECT_TRUE(is_io_error(client.fetch(q)));
}

TEST_F(NoditHistoryTest, RejectsUnusableBaseUrls) {
  const std::string port = std::to_string(fake_.port());
  for (const std::string& url : std::vector<std::string>{
           "http://127.0.0.1:" + port + "/v1", "ftp://127.0.0.1:" + port, "https://", "https:///v1",
           "127.0.0.1:" + port, "https://user@127.0.0.1:" + port + "/v1",
           "https://127.0.0.1:" + port + "/v1?x=1", "https://127.0.0.1:" + port + "/v1#f",
           "https://127.0.0.1:0/v1", "https://127.0.0.1:70000/v1", "https://127.0.0.1:/v1",
           "https://127.0.0.1:12ab/v1", "https://127.0.0.1 :" + port, "https://[::1/v1",
           "https://[nothost]:443/v1", "https://h\xc3\xa9st/v1"}) {
    auto o = options();
    o.api_base_url = url;
    NoditHistoryClient client(std::move(o));
    HistoryQuery q;
    q.subscription_id = "7";
    EXPECT_TRUE(is_io_error(client.fetch(q))) << url;
  }
  EXPECT_EQ(fake_.request_count(), 0u);
}

TEST_F(NoditHistoryTest, RejectsUnusableQueriesAndOptions) {
  NoditHistoryClient client(options());
  HistoryQuery q;
  // Not a subscription id (subscription_id.hpp): never sent.
  for (const std::string& id : {std::string(), std::string("abc"), std::string("007"),
                                std::string(" 7"), std::string(65, '7')}) {
    q.subscription_id = id;
    EXPECT_EQ(client.fetch(q).error(), make_error_code(Errc::invalid_field)) << id;
  }
  EXPECT_EQ(fake_.request_count(), 0u);
  q.subscription_id = "7";
  q.rpp = 0;
  EXPECT_EQ(client.fetch(q).error(), make_error_code(Errc::invalid_field));
  q.rpp = 101;
  EXPECT_EQ(client.fetch(q).error(), make_error_code(Errc::invalid_field));
  q.rpp = 100;
  q.page = 0;
  EXPECT_EQ(client.fetch(q).error(), make_error_code(Errc::invalid_field));

  q.page = 1;
  NoditHistoryClient with_newline(options("key\r\nX-Injected: 1"));
  EXPECT_TRUE(is_io_error(with_newline.fetch(q)));
  NoditHistoryClient without_key(options(""));
  EXPECT_TRUE(is_io_error(without_key.fetch(q)));
  EXPECT_EQ(fake_.request_count(), 0u);
}

// ---------------------------------------------------------------------------
// parse_history_page

const std::string kMessage = R"({ "subscriptionId": "7", "sequenceNumber": "3", "x": [1, 2.0] })";

TEST(ParseHistoryPage, AcceptsStringAndIntegerNumbers) {
  const std::string body =
      R"({"total":"2","page":1,"rpp":"10","items":[)"
      R"({"subscriptionId":7,"sequenceNumber":"3","status":"FAIL","createdAt":"t1",)"
      R"("eventMessage":)" +
      kMessage +
      R"(},{"subscriptionId":"7","sequenceNumber":4,"status":"SUCCESS","eventMessage":{"a":1}}]})";
  auto page = parse_history_page(body);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->total, 2u);
  EXPECT_EQ(page->page, 1u);
  EXPECT_EQ(page->rpp, 10u);
  EXPECT_EQ(page->skipped, 0u);
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].subscription_id, "7");
  EXPECT_EQ(page->items[0].sequence_number, 3u);
  EXPECT_EQ(page->items[0].status, "FAIL");
  EXPECT_EQ(page->items[0].created_at, "t1");
  EXPECT_EQ(page->items[0].event_message, kMessage);
  EXPECT_EQ(page->items[1].sequence_number, 4u);
  EXPECT_EQ(page->items[1].created_at, "");
  EXPECT_EQ(page->items[1].event_message, R"({"a":1})");
}

// Regression: a skipped item must not shift the raw texts of the items after
// it (numbers beyond 2^64 compare equal as doubles, so only position is safe).
TEST(ParseHistoryPage, SkippedItemsDoNotShiftRawMessages) {
  const std::string body =
      R"({"items":[{"sequenceNumber":"1","eventMessage":{"v":100000000000000000000001}},)"
      R"({"subscriptionId":"7","sequenceNumber":"2","eventMessage":{"v":100000000000000000000002}}]})";
  auto page = parse_history_page(body);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->skipped, 1u);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].event_message, R"({"v":100000000000000000000002})");
}

TEST(ParseHistoryPage, AcceptsEventMessageAsAString) {
  const std::string body =
      R"({"items":[{"subscriptionId":"7","sequenceNumber":"3","eventMessage":)" +
      Json(kMessage).dump() + "}]}";
  auto page = parse_history_page(body);
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].event_message, kMessage);
  EXPECT_EQ(page->total, 0u);  // absent
  EXPECT_EQ(page->page, 0u);
  EXPECT_EQ(page->rpp, 0u);
}

TEST(ParseHistoryPage, SkipsUnusableItems) {
  const std::string body = R"({"total":14,"items":[
    {"subscriptionId":"7","sequenceNumber":"1","eventMessage":{"ok":true}},
    {"sequenceNumber":"2","eventMessage":{}},
    {"subscriptionId":"7","eventMessage":{}},
    {"subscriptionId":"7","sequenceNumber":"3"},
    {"subscriptionId":"7","sequenceNumber":0,"eventMessage":{}},
    {"subscriptionId":"7","sequenceNumber":-4,"eventMessage":{}},
    {"subscriptionId":"7","sequenceNumber":5.5,"eventMessage":{}},
    {"subscriptionId":"7","sequenceNumber":" 6","eventMessage":{}},
    {"subscriptionId":"7","sequenceNumber":"18446744073709551616","eventMessage":{}},
    {"subscriptionId":"abc","sequenceNumber":"8","eventMessage":{}},
    {"subscriptionId":"07","sequenceNumber":"8","eventMessage":{}},
    {"subscriptionId":-7,"sequenceNumber":"8","eventMessage":{}},
    {"subscriptionId":"7","sequenceNumber":"9","eventMessage":[1]},
    {"subscriptionId":"7","sequenceNumber":"10","eventMessage":"not json"},
    {"subscriptionId":"7","sequenceNumber":"11","eventMessage":null},
    {"subscriptionId":"7","sequenceNumber":"12","eventMessage":{"sequenceNumber":"13"}},
    {"subscriptionId":"7","sequenceNumber":"14","eventMessage":"[1]"},
    {"subscriptionId":"7","sequenceNumber":"15","eventMessage":"{\"subscriptionId\":\"8\"}"},
    {"subscriptionId":"7","sequenceNumber":"16","eventMessage":"{\"a\":1,\"a\":2}"},
    "item",
    {"subscriptionId":"7","sequenceNumber":"18446744073709551615","eventMessage":{"z":0}}
  ]})";
  auto page = parse_history_page(body);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->total, 14u);
  EXPECT_EQ(page->skipped, 19u);
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].sequence_number, 1u);
  EXPECT_EQ(page->items[0].event_message, R"({"ok":true})");
  EXPECT_EQ(page->items[1].sequence_number, 18446744073709551615u);
}

TEST(ParseHistoryPage, FindsTheListWhereverTheSchemaPutsIt) {
  const std::string item = R"({"subscriptionId":"7","sequenceNumber":"3","eventMessage":{"a":1}})";
  for (const std::string& body : std::vector<std::string>{
           R"({"data":{"total":5,"page":2,"rpp":1,"items":[)" + item + "]}}",
           R"({"total":5,"page":2,"rpp":1,"data":[)" + item + "]}",
           R"({"total":5,"page":2,"rpp":1,"result":[)" + item + "]}",
           R"({"total":5,"page":2,"rpp":1,"result":{"items":[)" + item + "]}}",
           R"({"total":5,"data":{"page":2,"rpp":1,"data":[)" + item + "]}}",
       }) {
    auto page = parse_history_page(body);
    ASSERT_TRUE(page.has_value()) << body;
    EXPECT_EQ(page->total, 5u) << body;
    EXPECT_EQ(page->page, 2u) << body;
    EXPECT_EQ(page->rpp, 1u) << body;
    ASSERT_EQ(page->items.size(), 1u) << body;
    EXPECT_EQ(page->items[0].event_message, R"({"a":1})");
  }
  auto bare = parse_history_page("[" + item + "]");
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->items.size(), 1u);
}

TEST(ParseHistoryPage, RejectsBodiesThatAreNotAPage) {
  for (const std::string body : {"", "<html>", "{\"items\":[]", R"({"items":[],"items":[]})",
                                 R"({"total":1})", R"({"items":null})", R"({"data":{"items":{}}})",
                                 "42", "\"items\"", R"({"error":"rate limited"})"}) {
    auto page = parse_history_page(body);
    EXPECT_FALSE(page.has_value()) << body;
    if (!page) {
      EXPECT_EQ(page.error(), make_error_code(Errc::io_error)) << body;
    }
  }
}

TEST(ParseHistoryPage, UnusableCountsReadAsZero) {
  auto page = parse_history_page(R"({"total":"-1","page":4294967296,"rpp":"x","items":[]})");
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->total, 0u);
  EXPECT_EQ(page->page, 0u);
  EXPECT_EQ(page->rpp, 0u);
  EXPECT_TRUE(page->items.empty());
  EXPECT_EQ(page->skipped, 0u);
}

}  // namespace
}  // namespace hookvault::testing
