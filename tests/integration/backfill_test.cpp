// The Backfiller (backfill.hpp) with the real history client over TLS and a
// real store, against a FakeNodit that answers more than it is asked: it
// stores only what it asked for.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>

#include "e2e.hpp"
#include "fake_nodit.hpp"
#include "hookvault/backfill.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/nodit_history.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

std::string iso8601(std::int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  (void)std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(ms % 1000));
  return buf;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr const char* kKey = "nodit-test-key-5f1c";

std::string created_at(std::uint64_t seq) {
  return "2025-10-01T15:13:" + std::string(seq < 10 ? "0" : "") + std::to_string(seq % 60) +
         ".000Z";
}

class BackfillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteStoreOptions so;
    so.path = dir_.path() / "hookvault.db";
    auto store = open_sqlite_store(so, make_memory_kek(SecretBytes::random(32), "test:1"));
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    SourceConfig sc;
    sc.name = "nodit";
    sc.provider = Provider::nodit;
    sc.path = "/webhooks/nodit";
    HistoryConfig h;
    h.gap_delay = 0ms;
    h.poll_interval = 50ms;
    h.page_size = 100;
    sc.history = h;
    source_ = std::make_shared<const Source>(Source{sc, SignatureVerifier({}), std::nullopt});
  }

  std::unique_ptr<Backfiller> backfiller() {
    return std::make_unique<Backfiller>(source_, *store_,
                                        [this](const HistoryQuery& q) { return client_.fetch(q); });
  }

  // A message of `sub` as if it had arrived signed.
  void deliver_signed(const std::string& sub, std::uint64_t seq, const std::string& body,
                      std::int64_t time_ms = 1759331606348) {
    WriteRequest r;
    r.event.source = "nodit";
    r.event.idempotency_key = sub + ":" + std::to_string(seq);
    r.event.event_name = "LOG";
    r.event.event_time_ms = time_ms;
    r.event.origin = Origin::signature;
    r.event.payload = body;
    r.event.sequence = SequencePosition{sub, seq};
    auto w = store_->write(std::move(r));
    ASSERT_TRUE(w && !w->duplicate);
  }

  // Every stored event: key -> (origin, payload).
  std::map<std::string, std::pair<Origin, std::string>> stored() {
    std::map<std::string, std::pair<Origin, std::string>> out;
    auto all = store_->list_events(EventQuery{std::nullopt, "", 1000});
    EXPECT_TRUE(all);
    if (!all) return out;
    for (const auto& m : all->events) {
      auto p = store_->event_payload(m.row_id);
      EXPECT_TRUE(p && *p);
      out[m.idempotency_key] = {m.origin, p && *p ? std::string((*p)->reveal_string()) : ""};
    }
    return out;
  }

  SubscriptionSequence sequence(const std::string& sub) {
    auto all = store_->sequences("nodit");
    EXPECT_TRUE(all);
    for (auto& s : *all) {
      if (s.subscription_id == sub) return s;
    }
    ADD_FAILURE() << "no sequence state for " << sub;
    return {};
  }

  HistoryClientOptions options() const {
    HistoryClientOptions o;
    o.api_base_url = fake_.base_url();
    o.chain = "ethereum";
    o.network = "mainnet";
    o.api_key = SecretBytes::copy_of(std::string_view(kKey));
    o.ca_file = fake_.ca_file();
    o.timeout = 5s;
    return o;
  }

  FakeNodit fake_{kKey};
  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::shared_ptr<const Source> source_;
  NoditHistoryClient client_{options()};
};

// The API answers more than the gap's missing number: numbers already stored
// (with other content), numbers not delivered yet, a huge forged number. Only
// the missing number is stored; nothing pre-empts a later signed delivery,
// and no gap opens towards the huge number.
TEST_F(BackfillTest, AGapFetchStoresOnlyTheMissingNumbers) {
  deliver_signed("7", 1, nodit_message("7", 1));
  deliver_signed("7", 3, nodit_message("7", 3));
  ASSERT_EQ(sequence("7").gaps.size(), 1U);
  std::string forged_3 = nodit_message("7", 3);
  forged_3.replace(forged_3.find("hookvault test"), 14, "FORGED message");
  fake_.add("7", 2, "SUCCESS", created_at(2), nodit_message("7", 2));
  fake_.add("7", 3, "SUCCESS", created_at(3), forged_3);
  fake_.add("7", 4, "SUCCESS", created_at(4), nodit_message("7", 4));
  fake_.add("7", 5, "SUCCESS", created_at(5), nodit_message("7", 5));
  const std::uint64_t huge = std::uint64_t{1} << 62;
  fake_.add("7", huge, "SUCCESS", created_at(6), nodit_message("7", huge));

  auto b = backfiller();
  EXPECT_EQ(b->run_once(), 1U);
  const auto stats = b->stats();
  EXPECT_EQ(stats.stored, 1U);
  EXPECT_EQ(stats.refused, 4U);  // 3 (not missing), 4 and 5 (not missing yet), the huge one

  const auto events = stored();
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events.at("7:1").first, Origin::signature);
  EXPECT_EQ(events.at("7:2").first, Origin::history);
  EXPECT_EQ(events.at("7:2").second, nodit_message("7", 2));
  EXPECT_EQ(events.at("7:3").first, Origin::signature);
  EXPECT_EQ(events.at("7:3").second, nodit_message("7", 3));
  const auto seq = sequence("7");
  EXPECT_EQ(seq.contiguous, 3U);
  EXPECT_EQ(seq.highest, 3U);
  EXPECT_TRUE(seq.gaps.empty());
  // Nothing left to chase: the next pass asks nothing.
  fake_.clear_requests();
  EXPECT_EQ(b->run_once(), 0U);
  EXPECT_EQ(fake_.request_count(), 0U);
}

// Of two hookvault processes on one database, one backfills a source at a
// time: while another store holds the lease "backfill:nodit", a pass asks
// the API nothing and stores nothing; once it is released, the pass runs.
TEST_F(BackfillTest, APassRunsOnlyWhileItsProcessHoldsTheSourcesLease) {
  deliver_signed("7", 1, nodit_message("7", 1));
  deliver_signed("7", 3, nodit_message("7", 3));
  fake_.add("7", 2, "SUCCESS", created_at(2), nodit_message("7", 2));
  SqliteStoreOptions so;
  so.path = dir_.path() / "hookvault.db";
  auto other = open_sqlite_store(so, make_memory_kek(SecretBytes::random(32), "test:1"));
  ASSERT_TRUE(other) << other.error().message();
  auto held = (*other)->try_lease("backfill:nodit");
  ASSERT_TRUE(held && *held);

  auto b = backfiller();
  fake_.clear_requests();
  EXPECT_EQ(b->run_once(), 0U);
  EXPECT_EQ(fake_.request_count(), 0U);
  EXPECT_EQ(b->stats().passes_left, 1U);
  EXPECT_EQ(sequence("7").gaps.size(), 1U);

  held->reset();  // released: the other store deletes its row within a second
  EXPECT_TRUE(eventually([&] { return b->run_once() == 1U; }));
  EXPECT_TRUE(sequence("7").gaps.empty());
  EXPECT_EQ(stored().at("7:2").first, Origin::history);
}

// At start-up the backfill asks for the FAIL deliveries created since the
// newest signed message. The API answers everything: a delivery that did not
// fail, one created in 2099, one created before the window, one numbered far
// past the sequence. Only the failed delivery of the window is stored, and
// the forged createdAt never becomes the next start-up's window.
TEST_F(BackfillTest, TheStartUpFetchStoresOnlyFailedDeliveriesOfItsWindow) {
  const std::int64_t now = now_ms();
  const std::int64_t hour = 3600 * 1000;
  deliver_signed("7", 1, nodit_message("7", 1), now - hour);
  fake_.set_mode(FakeNodit::Mode::ignore_filters);
  fake_.add("7", 2, "FAIL", iso8601(now - hour / 2), nodit_message("7", 2));
  fake_.add("7", 3, "SUCCESS", iso8601(now - hour / 3), nodit_message("7", 3));
  fake_.add("7", 4, "FAIL", "2099-01-01T00:00:00.000Z", nodit_message("7", 4));
  fake_.add("7", 5, "FAIL", iso8601(now - 2 * hour), nodit_message("7", 5));
  fake_.add("7", 5000, "FAIL", iso8601(now - hour / 4), nodit_message("7", 5000));

  auto b = backfiller();
  b->start();
  ASSERT_TRUE(eventually([&] {
    const auto s = b->stats();
    return s.stored + s.refused >= 5;
  })) << b->stats().stored
      << " " << b->stats().refused;
  b->stop();
  EXPECT_EQ(b->stats().stored, 1U);

  auto failed_query = fake_.requests().at(0);
  EXPECT_EQ(failed_query.query.at("status"), "FAIL");
  EXPECT_EQ(failed_query.query.at("startAt"), iso8601(now - hour));
  const auto events = stored();
  ASSERT_EQ(events.size(), 2U) << "only the failed delivery of the window";
  EXPECT_EQ(events.at("7:2").first, Origin::history);
  EXPECT_TRUE(sequence("7").gaps.empty());
  EXPECT_EQ(sequence("7").highest, 2U);
  auto latest = store_->latest_event_time_ms("nodit");
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ(**latest, now - hour);
}

}  // namespace
}  // namespace hookvault::testing
