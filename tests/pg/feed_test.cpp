// The events feed on PostgreSQL (src/store/pg/feed.hpp) on a real server:
// writers on several connections (as several instances) commit out of id
// order while a consumer pages with the `next` token, and the consumer sees
// every event exactly once.
#include "store/pg/feed.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "pg_cluster.hpp"
#include "store/pg/libpq.hpp"
#include "store/pg/schema.hpp"

namespace hookvault::store::pg {
namespace {

using testing::PgCluster;

TEST(PgFeedToken, RoundTripsAndRefusesEverythingElse) {
  auto start = feed::parse_token("");
  ASSERT_TRUE(start);
  EXPECT_EQ(start->txid, 0U);
  EXPECT_EQ(start->row_id, 0);
  auto t = feed::parse_token("18446744073709551615.9223372036854775807");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->txid, 18446744073709551615ULL);
  EXPECT_EQ(t->row_id, 9223372036854775807LL);
  EXPECT_EQ(feed::token(*t), "18446744073709551615.9223372036854775807");
  for (const char* bad : {"42", ".", "1.", ".1", "01.2", "1.02", "-1.2", "1.-2", "+1.2", "1.2.3",
                          "1 .2", "a.b", "18446744073709551616.1", "1.9223372036854775808"}) {
    EXPECT_EQ(feed::parse_token(bad).error(), make_error_code(Errc::invalid_field)) << bad;
  }
}

class PgFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = &testing::shared_pg_cluster();
    conninfo_ = cluster_->create_database("feed_" + std::to_string(::getpid()) + "_" +
                                          std::to_string(counter_++));
    auto c = connect();
    std::string why;
    ASSERT_TRUE(schema::ensure_schema(c, {}, &why)) << why;
  }
  Connection connect() const { return connect_to(conninfo_, {"SET synchronous_commit = off"}); }
  Connection connect_to(const std::string& conninfo,
                        const std::vector<const char*>& session) const {
    static const SecretBytes password = SecretBytes::copy_of(cluster_->password());
    ConnectOptions o;
    o.conninfo = conninfo;
    o.password = &password;
    PgError e;
    auto c = Connection::open(o, session, &e);
    if (!c) ADD_FAILURE() << e.message;
    return std::move(c).value();
  }

  PgCluster* cluster_ = nullptr;
  std::string conninfo_;
  static inline int counter_ = 0;
};

constexpr char kInsert[] =
    "INSERT INTO events (source, idempotency_key, event_name, message_id, event_time,"
    " event_time_ms, wallet_id, origin, received_at_ms, materials_state)"
    " VALUES ($1, $2, 'test', '', '', 0, '', 'signature', 0, 'none') RETURNING id";

TEST_F(PgFeedTest, AConsumerSeesEveryEventOnceWhileWritersCommitOutOfOrder) {
  constexpr int kWriters = 4;
  constexpr int kTransactionsEach = 150;
  std::atomic<int> writers_left{kWriters};
  std::mutex mu;
  std::set<std::int64_t> written;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto c = connect();
      std::mt19937 rng(static_cast<unsigned>(w) + 1);
      for (int t = 0; t < kTransactionsEach; ++t) {
        const int rows = 1 + static_cast<int>(rng() % 4);
        c.send("BEGIN");
        for (int r = 0; r < rows; ++r) {
          c.send(kInsert, Params()
                              .text(r % 2 == 0 ? "dynamic" : "nodit")
                              .text("w" + std::to_string(w) + "-" + std::to_string(t) + "-" +
                                    std::to_string(r)));
        }
        // Hold the transaction open for a moment so that others with later
        // ids commit first.
        c.send("SELECT pg_sleep($1::float8)",
               Params().text(std::to_string(static_cast<double>(rng() % 5) / 1000.0)));
        c.send("COMMIT");
        ASSERT_TRUE(c.sync());
        ASSERT_TRUE(c.next());
        std::vector<std::int64_t> ids;
        for (int r = 0; r < rows; ++r) {
          auto id = c.next();
          ASSERT_TRUE(id) << c.last_error().message;
          ids.push_back(id->int64(0, 0).value());
        }
        ASSERT_TRUE(c.next());
        ASSERT_TRUE(c.next());
        ASSERT_TRUE(c.finish_segment());
        std::lock_guard lock(mu);
        written.insert(ids.begin(), ids.end());
      }
      --writers_left;
    });
  }

  // The consumer pages from the start while the writers write.
  auto reader = connect();
  std::string next;
  std::vector<std::int64_t> seen;
  int empty_pages_after_writers = 0;
  while (empty_pages_after_writers < 2) {
    const bool writers_done = writers_left.load() == 0;
    auto cursor = feed::parse_token(next);
    ASSERT_TRUE(cursor);
    auto page = reader.exec(
        feed::kPage,
        Params().text(std::to_string(cursor->txid)).int64(cursor->row_id).null().int64(37));
    ASSERT_TRUE(page) << reader.last_error().message;
    for (int i = 0; i < page->size(); ++i) {
      const auto id = page->int64(i, 0).value();
      seen.push_back(id);
      next = feed::token({std::stoull(page->text(i, 1)), id});
    }
    if (page->empty() && writers_done) ++empty_pages_after_writers;
  }
  for (auto& t : writers) t.join();

  const std::set<std::int64_t> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "an event was returned twice";
  EXPECT_EQ(unique, written) << "the feed skipped " << (written.size() - unique.size()) << " of "
                             << written.size() << " events";
}

TEST_F(PgFeedTest, APageOfOneSourceSkipsTheOthers) {
  auto c = connect();
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(c.exec(
        kInsert, Params().text(i % 3 == 0 ? "nodit" : "dynamic").text("k" + std::to_string(i))));
  }
  auto page = c.exec(feed::kPage, Params().text("0").int64(0).text("nodit").int64(10));
  ASSERT_TRUE(page) << c.last_error().message;
  ASSERT_EQ(page->size(), 2);
  EXPECT_EQ(page->text(0, 2), "nodit");
  EXPECT_EQ(page->text(0, 3), "k0");
  EXPECT_EQ(page->text(1, 3), "k3");
}

// The feed stops before the oldest transaction still running anywhere on the
// server (transaction ids are the cluster's, not the database's): one left
// open in another database holds every new event back, and once it ends the
// consumer gets them all, none skipped.
TEST_F(PgFeedTest, ATransactionLeftOpenInAnyDatabaseHoldsTheFeedBackUntilItEnds) {
  const auto other_db = cluster_->create_database("feed_other_" + std::to_string(::getpid()) + "_" +
                                                  std::to_string(counter_++));
  auto other = connect_to(other_db, {});
  ASSERT_TRUE(other.exec("BEGIN")) << other.last_error().message;
  ASSERT_TRUE(other.exec("SELECT pg_current_xact_id()")) << other.last_error().message;

  auto c = connect();
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(c.exec(kInsert, Params().text("nodit").text("h" + std::to_string(i))));
  const auto page = [&] {
    auto rows = c.exec(feed::kPage, Params().text("0").int64(0).null().int64(10));
    EXPECT_TRUE(rows) << c.last_error().message;
    return rows ? rows->size() : -1;
  };
  EXPECT_EQ(page(), 0) << "the feed passed a transaction still running";
  ASSERT_TRUE(other.exec("COMMIT")) << other.last_error().message;
  EXPECT_EQ(page(), 3);
}

// hookvault's own sessions end a transaction left idle (a process stopped
// inside one) so that it cannot hold the feed for ever: the server ends such
// a session after idle_in_transaction_session_timeout, shown here at 1 s, and
// the feed moves on. Our sessions set it (schema::kSession).
TEST_F(PgFeedTest, ASessionIdleInATransactionIsEndedAndTheFeedMovesOn) {
  auto ours = connect_to(conninfo_, std::vector<const char*>(std::begin(schema::kSession),
                                                             std::end(schema::kSession)));
  auto shown = ours.exec("SHOW idle_in_transaction_session_timeout");
  ASSERT_TRUE(shown) << ours.last_error().message;
  EXPECT_EQ(shown->text(0, 0), "1min");

  auto stopped = connect_to(conninfo_, {"SET idle_in_transaction_session_timeout = '1s'"});
  ASSERT_TRUE(stopped.exec("BEGIN"));
  ASSERT_TRUE(stopped.exec("SELECT pg_current_xact_id()"));
  auto c = connect();
  ASSERT_TRUE(c.exec(kInsert, Params().text("nodit").text("after-idle")));
  auto held = c.exec(feed::kPage, Params().text("0").int64(0).null().int64(10));
  ASSERT_TRUE(held) << c.last_error().message;
  EXPECT_EQ(held->size(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto moved = c.exec(feed::kPage, Params().text("0").int64(0).null().int64(10));
  ASSERT_TRUE(moved) << c.last_error().message;
  EXPECT_EQ(moved->size(), 1) << "the idle transaction still holds the feed";
  EXPECT_FALSE(stopped.exec("SELECT 1")) << "the server should have ended the idle session";
}

}  // namespace
}  // namespace hookvault::store::pg
