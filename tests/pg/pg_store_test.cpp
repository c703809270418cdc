// The PostgreSQL store's own promises, on real servers (a primary and its
// synchronous standby, pg_cluster.hpp): what a 200 waits for, what a
// cancelled wait for the standby and a lost connection give, and the
// contract across two stores (two instances) sharing one database:
// idempotency, delegations of one wallet, one audit chain, the events feed.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "manual_clock.hpp"
#include "pg_store_support.hpp"
#include "store/pg/libpq.hpp"
#include "store_requests.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;
using namespace requests;  // NOLINT(google-build-using-namespace)

class PgStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open(PgStoreOptions o) {
    auto s = db_.open(kek_, std::move(o));
    EXPECT_TRUE(s) << (s ? "" : s.error().message());
    return s ? std::move(*s) : nullptr;
  }
  std::unique_ptr<Store> open() { return open(db_.options()); }

  std::string psql(const std::string& sql) {
    return shared_pg_cluster().psql("primary", sql, db_.name());
  }
  // The pid of this database's backend waiting for the synchronous standby,
  // once there is one (0 after 10 s).
  int wait_for_syncrep() {
    for (int i = 0; i < 200; ++i) {
      const auto pid = shared_pg_cluster().psql(
          "primary", "SELECT pid FROM pg_stat_activity WHERE datname = '" + db_.name() +
                         "' AND wait_event = 'SyncRep' LIMIT 1");
      if (!pid.empty()) return std::stoi(pid);
      std::this_thread::sleep_for(50ms);
    }
    return 0;
  }

  PgTestDatabase db_;
  std::shared_ptr<const Kek> kek_ = make_memory_kek(SecretBytes::random(32), "test:1");
};

// Starts the standby again however the test ends.
struct StandbyStopped {
  StandbyStopped() { shared_pg_cluster().run("stop-standby"); }
  ~StandbyStopped() { shared_pg_cluster().run("start-standby"); }
  StandbyStopped(const StandbyStopped&) = delete;
  StandbyStopped& operator=(const StandbyStopped&) = delete;
};

template <class T>
bool ready_within(std::future<T>& f, std::chrono::milliseconds d) {
  return f.wait_for(d) == std::future_status::ready;
}

// A duplicate's 200 confirms a row; it must not be given while what it
// confirms may exist on the primary only. A plain INSERT ... ON CONFLICT DO
// NOTHING of the same key writes nothing, so its commit does not wait for
// the standby: it returns at once (shown below), and a store built on it
// alone would acknowledge a row the standby may not have.
TEST_F(PgStoreTest, ADuplicateIsAnsweredOnlyOnceTheSynchronousStandbyHasItsCommit) {
  auto store = open();
  ASSERT_TRUE(store);
  const auto first = store->write(plain_event("dup-1"));
  ASSERT_TRUE(first) << first.error().message();

  std::promise<Result<WriteResult>> answered;
  auto answer = answered.get_future();
  {
    const StandbyStopped stopped;
    // The bare statement, on a session of its own: done at once.
    {
      store::pg::ConnectOptions co;
      co.conninfo = db_.conninfo();
      const auto password = SecretBytes::copy_of(shared_pg_cluster().password());
      co.password = &password;
      auto c = store::pg::Connection::open(co, {"SET synchronous_commit = on"});
      ASSERT_TRUE(c);
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c->exec(
          "INSERT INTO events (source, idempotency_key, event_name, message_id, event_time,"
          " event_time_ms, wallet_id, origin, received_at_ms, materials_state)"
          " VALUES ('dynamic', 'dup-1', 'x', '', '', 0, '', 'signature', 0, 'none')"
          " ON CONFLICT (source, idempotency_key) DO NOTHING",
          {}, std::chrono::steady_clock::now() + 5s);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->affected(), 0U);
      EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s)
          << "a commit that wrote nothing waited for the standby";
    }
    store->submit(plain_event("dup-1"),
                  [&](Result<WriteResult> r) { answered.set_value(std::move(r)); });
    EXPECT_FALSE(ready_within(answer, 3s)) << "a duplicate was answered without the standby";
    EXPECT_NE(wait_for_syncrep(), 0);
    // /readyz: not ready while its commits cannot complete.
    EXPECT_TRUE(eventually([&] { return !store->writable(); }, 10s));
    EXPECT_FALSE(ready_within(answer, 0ms));
  }
  ASSERT_TRUE(ready_within(answer, 60s));
  auto dup = answer.get();
  ASSERT_TRUE(dup) << dup.error().message();
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->row_id, first->row_id);
  EXPECT_TRUE(store->writable());
}

// An operator's pg_cancel_backend (or a fast shutdown) ends the wait for the
// standby: the server then reports the COMMIT as done, with a WARNING. The
// commit is local only, so the request is not acknowledged (503), and the
// provider's retry is answered by the idempotency key once the standby is
// back.
TEST_F(PgStoreTest, ACancelledWaitForTheStandbyIsStoreUnavailableAndTheRetryFindsTheRow) {
  auto store = open();
  ASSERT_TRUE(store);
  std::promise<Result<WriteResult>> answered;
  auto answer = answered.get_future();
  {
    const StandbyStopped stopped;
    store->submit(plain_event("cancelled"),
                  [&](Result<WriteResult> r) { answered.set_value(std::move(r)); });
    const int pid = wait_for_syncrep();
    ASSERT_NE(pid, 0);
    EXPECT_FALSE(ready_within(answer, 0ms));
    shared_pg_cluster().psql("primary", "SELECT pg_cancel_backend(" + std::to_string(pid) + ")");
    ASSERT_TRUE(ready_within(answer, 30s));
    auto r = answer.get();
    ASSERT_FALSE(r) << "a commit the standby may not have was acknowledged";
    EXPECT_EQ(errc_of(r.error()), Errc::store_unavailable);
    EXPECT_FALSE(store->writable());
    EXPECT_EQ(psql("SELECT count(*) FROM events WHERE idempotency_key = 'cancelled'"), "1")
        << "committed locally";
  }
  auto retry = store->write(plain_event("cancelled"));
  ASSERT_TRUE(retry) << retry.error().message();
  EXPECT_TRUE(retry->duplicate);
  EXPECT_TRUE(store->writable());
}

// A duplicate in a batch that also stores an event: the batch's COMMIT
// writes no writer's row (it writes the event), and still waits for the
// standby, which then holds the confirmed row too (committed before the
// batch read it). Here the confirmed row is committed on the primary only
// (its own wait was cancelled), and the two requests are queued while the
// writer waits, so that they share its next batch: neither answer comes
// while the standby is down; both come once it is back.
TEST_F(PgStoreTest, ADuplicateBesideANewEventWaitsForTheStandbyToo) {
  auto other = open();
  auto store = open();
  ASSERT_TRUE(other && store);
  // Submits `key`; its answer.
  const auto submit = [](Store& s, const std::string& key) {
    auto p = std::make_shared<std::promise<Result<WriteResult>>>();
    auto f = p->get_future();
    s.submit(plain_event(key), [p](Result<WriteResult> r) { p->set_value(std::move(r)); });
    return f;
  };
  // Cancels the wait for the standby of the one backend waiting: its
  // request is answered 503 and its row is committed on the primary only.
  const auto cancel_wait = [&](std::future<Result<WriteResult>>& answer) {
    const int pid = wait_for_syncrep();
    ASSERT_NE(pid, 0);
    shared_pg_cluster().psql("primary", "SELECT pg_cancel_backend(" + std::to_string(pid) + ")");
    ASSERT_TRUE(ready_within(answer, 30s));
    ASSERT_FALSE(answer.get());
  };
  std::future<Result<WriteResult>> dup;
  std::future<Result<WriteResult>> fresh;
  {
    const StandbyStopped stopped;
    auto local_only = submit(*other, "local-only");
    cancel_wait(local_only);
    ASSERT_EQ(psql("SELECT count(*) FROM events WHERE idempotency_key = 'local-only'"), "1");
    auto blocker = submit(*store, "blocker");
    EXPECT_NE(wait_for_syncrep(), 0);
    dup = submit(*store, "local-only");
    fresh = submit(*store, "beside-it");
    cancel_wait(blocker);
    EXPECT_NE(wait_for_syncrep(), 0);
    EXPECT_FALSE(ready_within(dup, 3s)) << "a duplicate was answered without the standby";
    EXPECT_FALSE(ready_within(fresh, 0ms));
  }
  ASSERT_TRUE(ready_within(dup, 60s));
  ASSERT_TRUE(ready_within(fresh, 60s));
  auto d = dup.get();
  auto f = fresh.get();
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_TRUE(d->duplicate);
  EXPECT_FALSE(f->duplicate);
  EXPECT_EQ(shared_pg_cluster().psql("standby",
                                     "SELECT count(*) FROM events WHERE idempotency_key IN "
                                     "('local-only', 'beside-it')",
                                     db_.name()),
            "2");
}

// The queue is bounded: while the writer waits (here for the standby), what
// does not fit is refused at once with Errc::overloaded (503 + Retry-After),
// and what was queued is stored once the wait ends.
TEST_F(PgStoreTest, AFullQueueRefusesAtOnceAndWhatWasQueuedIsStored) {
  PgStoreOptions o = db_.options();
  o.max_queue = 3;
  auto store = open(o);
  ASSERT_TRUE(store);
  std::atomic<int> ok{0};
  std::atomic<int> overloaded{0};
  std::atomic<int> other{0};
  const auto count = [&](Result<WriteResult> r) {
    if (r) {
      ok.fetch_add(1);
    } else if (errc_of(r.error()) == Errc::overloaded) {
      overloaded.fetch_add(1);
    } else {
      other.fetch_add(1);
    }
  };
  {
    const StandbyStopped stopped;
    store->submit(plain_event("q0"), count);
    ASSERT_NE(wait_for_syncrep(), 0);  // the writer holds q0's batch
    for (int i = 1; i <= 5; ++i) store->submit(plain_event("q" + std::to_string(i)), count);
    EXPECT_EQ(overloaded.load(), 2);
    EXPECT_EQ(ok.load(), 0);
  }
  store->close();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(psql("SELECT count(*) FROM events"), "4");
}

// Retention (the store's clock, moved by the test): payloads older than the
// retention are redacted by the idle writer, rows and metadata stay, and a
// delegation waiting for `reprocess` keeps its payload.
TEST_F(PgStoreTest, RetentionRedactsOldPayloadsButKeepsPendingDelegations) {
  ManualClock clock;
  PgStoreOptions o = db_.options();
  o.clock = &clock;
  o.retention = std::chrono::hours(24);
  o.retention_interval = std::chrono::minutes(1);
  auto store = open(o);
  ASSERT_TRUE(store);
  std::vector<std::int64_t> old_rows;
  for (int i = 0; i < 3; ++i) {
    auto w = store->write(plain_event("old-" + std::to_string(i)));
    ASSERT_TRUE(w);
    old_rows.push_back(w->row_id);
  }
  auto pending = store->write(created_failed("pending", "w1", 100));
  ASSERT_TRUE(pending);
  clock.advance(std::chrono::hours(25));
  auto fresh = store->write(plain_event("fresh"));
  ASSERT_TRUE(fresh);
  clock.advance(std::chrono::minutes(2));
  EXPECT_TRUE(eventually([&] {
    auto p = store->event_payload(old_rows.back());
    return p && !p->has_value();
  }));
  for (const auto row : old_rows) {
    auto meta = store->event_meta(row);
    ASSERT_TRUE(meta && *meta);
    EXPECT_TRUE((*meta)->payload_redacted);
  }
  auto kept = store->event_payload(pending->row_id);
  ASSERT_TRUE(kept && kept->has_value());
  auto young = store->event_payload(fresh->row_id);
  ASSERT_TRUE(young && young->has_value());
  EXPECT_EQ(psql("SELECT count(*) FROM events WHERE payload IS NULL"), "3");
  EXPECT_EQ(psql("SELECT count(*) FROM events"), "5");
}

// The group commits are measured as on SQLite (the same series).
TEST_F(PgStoreTest, CommitsAreMeasured) {
  Metrics metrics;
  PgStoreOptions o = db_.options();
  o.metrics = &metrics;
  auto store = open(o);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("m1")));
  ASSERT_TRUE(store->write(plain_event("m2")));
  const std::string text = metrics.render();
  EXPECT_NE(text.find("hookvault_store_batch_size_count 2"), std::string::npos) << text;
  EXPECT_NE(text.find("hookvault_store_commit_seconds_count 2"), std::string::npos) << text;
  EXPECT_EQ(store->stats().committed_requests, 2U);
}

// The server closed the writer's idle connection (a restart, an
// administrator): the next request is stored on a new connection.
TEST_F(PgStoreTest, AWriterWhoseConnectionWasTerminatedReconnects) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("before")));
  psql(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
      " AND pid <> pg_backend_pid()");
  auto after = store->write(plain_event("after"));
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_FALSE(after->duplicate);
  EXPECT_TRUE(store->writable());
  auto meta = store->event_meta(after->row_id);  // the reads reconnect too
  ASSERT_TRUE(meta) << meta.error().message();
  ASSERT_TRUE(*meta);
}

// Two instances on one database, the same keys submitted concurrently from
// both: the UNIQUE constraint decides, so each key is stored once and every
// answer names that one row.
TEST_F(PgStoreTest, ConcurrentSubmitsOfTheSameKeysOnTwoStoresStoreEachKeyOnce) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  constexpr int kKeys = 60;
  constexpr int kThreadsPerStore = 3;
  std::vector<std::vector<WriteResult>> results(2 * kThreadsPerStore);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreadsPerStore; ++t) {
    Store& s = t % 2 == 0 ? *a : *b;
    threads.emplace_back([&, t] {
      for (int k = 0; k < kKeys; ++k) {
        auto r = s.write(plain_event("same-" + std::to_string(k)));
        EXPECT_TRUE(r) << (r ? "" : r.error().message());
        results[t].push_back(r ? *r : WriteResult{});
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < kKeys; ++k) {
    int firsts = 0;
    for (const auto& per_thread : results) {
      if (!per_thread[k].duplicate) ++firsts;
      EXPECT_EQ(per_thread[k].row_id, results[0][k].row_id) << k;
    }
    EXPECT_EQ(firsts, 1) << k;
  }
  EXPECT_EQ(psql("SELECT count(*) FROM events"), std::to_string(kKeys));
}

// Two instances storing events of the same subscriptions, each thread going
// through them in its own order (the two stores in opposite orders), as a
// load balancer spreads one provider's deliveries: every batch's sequence
// rows are taken in one order, so the writers wait for each other and never
// deadlock (which PostgreSQL detects only after deadlock_timeout, a second,
// aborting a batch), and every number is counted once. The subscriptions
// exist before (their first message stored): two first batches that create
// the same new subscriptions' rows can still deadlock once.
TEST_F(PgStoreTest, BatchesOfSharedSubscriptionsFromTwoStoresNeverDeadlock) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  constexpr int kSubs = 8;
  constexpr int kThreadsPerStore = 8;
  constexpr int kPerThread = 24;
  std::array<std::atomic<std::uint64_t>, kSubs> next{};
  for (int sub = 0; sub < kSubs; ++sub) {
    WriteRequest r = plain_event("shared-" + std::to_string(sub) + "-1");
    r.event.sequence = SequencePosition{"sub-" + std::to_string(sub), 1};
    ASSERT_TRUE(a->write(std::move(r)));
    next[static_cast<std::size_t>(sub)] = 1;
  }
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreadsPerStore; ++t) {
    Store& s = t % 2 == 0 ? *a : *b;
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        const int sub = t % 2 == 0 ? (t + k) % kSubs : kSubs - 1 - (t + k) % kSubs;
        const std::uint64_t n = ++next[static_cast<std::size_t>(sub)];
        WriteRequest r = plain_event("shared-" + std::to_string(sub) + "-" + std::to_string(n));
        r.event.sequence = SequencePosition{"sub-" + std::to_string(sub), n};
        auto w = s.write(std::move(r));
        if (!w) {
          ADD_FAILURE() << w.error().message();
          ++failed;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  a.reset();
  b.reset();
  // A backend reports its statistics (the deadlocks) when it ends: wait until
  // only this query's own backend is left on the database.
  for (int i = 0; i < 200; ++i) {
    if (psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()") == "1") {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(psql("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"), "0");
  constexpr int kEvents = kSubs + 2 * kThreadsPerStore * kPerThread;
  EXPECT_EQ(psql("SELECT count(*) FROM events"), std::to_string(kEvents));
  EXPECT_EQ(psql("SELECT count(*) FROM sequences WHERE contiguous = highest"),
            std::to_string(kSubs));
  EXPECT_EQ(psql("SELECT sum(highest) FROM sequences"), std::to_string(kEvents));
}

// Delegations and a revocation of one wallet, spread over two instances and
// arriving concurrently in any order: the outcome is the ordering rules'
// (the newest delegation after the revocation is the materials, every older
// delegation's payload is gone, the tombstone holds the revocation), as on
// one instance.
TEST_F(PgStoreTest, DelegationsOfOneWalletFromTwoStoresFollowTheOrderingRules) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  constexpr int kDelegations = 30;
  constexpr std::int64_t kRevokedAt = 1015;
  std::vector<std::thread> threads;
  std::map<int, std::int64_t> rows;
  std::mutex rows_mu;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *a : *b;
      for (int i = t; i < kDelegations; i += 4) {
        auto r = s.write(created("c" + std::to_string(i), "w1", 1000 + i,
                                 "share-" + std::to_string(i), "api-" + std::to_string(i)));
        EXPECT_TRUE(r) << (r ? "" : r.error().message());
        if (r) {
          std::lock_guard lock(rows_mu);
          rows[i] = r->row_id;
        }
        if (i == 14) {
          auto rv = s.write(revoked("r1", "w1", kRevokedAt));
          EXPECT_TRUE(rv) << (rv ? "" : rv.error().message());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (Store* s : {a.get(), b.get()}) {
    auto m = s->materials(kSource, "w1");
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->event_id, "c" + std::to_string(kDelegations - 1));
    EXPECT_EQ((*m)->share.reveal_string(), "share-" + std::to_string(kDelegations - 1));
  }
  for (const auto& [i, row] : rows) {
    auto payload = a->event_payload(row);
    ASSERT_TRUE(payload);
    EXPECT_EQ(payload->has_value(), i == kDelegations - 1) << "c" << i;
    auto meta = a->event_meta(row);
    ASSERT_TRUE(meta && *meta);
    if (1000 + i <= kRevokedAt) {
      EXPECT_NE((*meta)->materials, MaterialsState::decrypt_failed);
    }
  }
  EXPECT_EQ(psql("SELECT revoked_at_ms FROM tombstones WHERE wallet_id = 'w1'"),
            std::to_string(kRevokedAt));
  EXPECT_EQ(psql("SELECT count(*) FROM materials"), "1");
  // A late delegation older than the revocation never brings materials back.
  auto late = b->write(created("c-late", "w2", 1, "s", "a"));
  ASSERT_TRUE(late);
  auto late_w1 = b->write(created("c-older", "w1", kRevokedAt - 1));
  ASSERT_TRUE(late_w1);
  EXPECT_EQ(late_w1->materials, MaterialsState::revoked);
  auto v = a->verify_audit();
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok);
  EXPECT_EQ(v->records, 1);  // the revocation's record
}

// One audit chain: appends from two instances, concurrently, make one
// unbroken chain that either verifies.
TEST_F(PgStoreTest, AuditAppendsFromTwoStoresMakeOneChainThatVerifies) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  constexpr int kPerThread = 40;
  std::vector<std::thread> threads;
  std::set<std::int64_t> seqs;
  std::mutex mu;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *a : *b;
      for (int i = 0; i < kPerThread; ++i) {
        auto seq = s.audit_sync(AuditEntry{"admin:t" + std::to_string(t), "materials.read",
                                           "dynamic/w" + std::to_string(i), "ok"});
        EXPECT_TRUE(seq) << (seq ? "" : seq.error().message());
        if (seq) {
          std::lock_guard lock(mu);
          EXPECT_TRUE(seqs.insert(*seq).second) << "seq " << *seq << " given twice";
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(seqs.size(), 4U * kPerThread);
  EXPECT_EQ(*seqs.begin(), 1);
  EXPECT_EQ(*seqs.rbegin(), 4 * kPerThread);
  for (Store* s : {a.get(), b.get()}) {
    auto v = s->verify_audit();
    ASSERT_TRUE(v) << v.error().message();
    EXPECT_TRUE(v->ok) << v->problem;
    EXPECT_EQ(v->records, 4 * kPerThread);
  }
  // An edited record breaks it.
  psql("UPDATE audit SET outcome = 'denied' WHERE seq = 7");
  auto broken = a->verify_audit();
  ASSERT_TRUE(broken);
  EXPECT_FALSE(broken->ok);
}

// The events feed while two instances write concurrently: a consumer that
// starts at the beginning and follows `next` sees every stored event
// exactly once.
TEST_F(PgStoreTest, TheFeedGivesEveryEventOnceWhileTwoStoresWrite) {
  auto a = open();
  auto b = open();
  auto reader = open();
  ASSERT_TRUE(a && b && reader);
  constexpr int kPerThread = 150;
  std::atomic<int> writers_left{4};
  std::vector<std::thread> threads;
  std::set<std::int64_t> written;
  std::mutex mu;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *a : *b;
      for (int i = 0; i < kPerThread; ++i) {
        auto r = s.write(plain_event("f" + std::to_string(t) + "-" + std::to_string(i)));
        EXPECT_TRUE(r);
        if (r) {
          std::lock_guard lock(mu);
          written.insert(r->row_id);
        }
      }
      writers_left.fetch_sub(1);
    });
  }
  std::vector<std::int64_t> seen;
  EventQuery q;
  q.limit = 17;
  for (;;) {
    const bool done = writers_left.load() == 0;
    auto page = reader->list_events(q);
    ASSERT_TRUE(page) << page.error().message();
    for (const auto& e : page->events) seen.push_back(e.row_id);
    q.after = page->next;
    if (page->events.empty()) {
      if (done) break;
      std::this_thread::sleep_for(2ms);
    }
  }
  for (auto& th : threads) th.join();
  const std::set<std::int64_t> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "an event was read twice";
  EXPECT_EQ(unique, written) << "an event was skipped";

  // A bare row id (what `events list` prints) is a cursor too: paging by
  // the last row id reads the same feed.
  std::vector<std::int64_t> by_id;
  EventQuery r;
  r.limit = 50;
  for (;;) {
    auto page = reader->list_events(r);
    ASSERT_TRUE(page) << page.error().message();
    if (page->events.empty()) break;
    for (const auto& e : page->events) by_id.push_back(e.row_id);
    r.after = std::to_string(page->events.back().row_id);
  }
  EXPECT_EQ(by_id, seen);
  r.after = "999999999";
  auto unknown = reader->list_events(r);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(to_errc(unknown.error()), Errc::invalid_field);
}

}  // namespace
}  // namespace hookvault::testing

namespace hookvault::testing {
namespace {

// A request the server refuses (text that is not UTF-8) in a batch of plain
// events: the batch's one-round-trip path rolls back and the batch runs
// again request by request, so it fails alone (invalid_field) and the
// others are stored.
TEST_F(PgStoreTest, ARequestTheServerRefusesFailsAloneInItsBatch) {
  auto store = open();
  ASSERT_TRUE(store);
  std::vector<WriteRequest> plain;
  for (int i = 0; i < 40; ++i) {
    WriteRequest r = plain_event("batch-" + std::to_string(i));
    if (i == 17) r.event.message_id = "not utf-8 \xff";
    r.event.sequence = SequencePosition{"sub", static_cast<std::uint64_t>(i + 1)};
    plain.push_back(std::move(r));
  }
  auto results = submit_together(*store, std::move(plain));
  for (int i = 0; i < 40; ++i) {
    if (i == 17) {
      ASSERT_FALSE(results[i]);
      EXPECT_EQ(errc_of(results[i].error()), Errc::invalid_field);
    } else {
      EXPECT_TRUE(results[i]) << i << ": " << results[i].error().message();
    }
  }
  EXPECT_EQ(psql("SELECT count(*) FROM events"), "39");
  auto seq = store->sequences("dynamic");
  ASSERT_TRUE(seq);
  ASSERT_EQ(seq->size(), 1U);
  EXPECT_EQ((*seq)[0].highest, 40U);
  ASSERT_EQ((*seq)[0].gaps.size(), 1U);
  EXPECT_EQ((*seq)[0].gaps[0].first, 18U);
  EXPECT_EQ((*seq)[0].gaps[0].last, 18U);
  EXPECT_TRUE(store->writable());

  // The same in a batch of delegations (a savepoint per request from the
  // start): the refused one leaves nothing, not even its event.
  std::vector<WriteRequest> delegations;
  for (int i = 0; i < 40; ++i) {
    WriteRequest r = created("d-" + std::to_string(i), "w" + std::to_string(i % 5), 100 + i);
    if (i == 23) r.materials->user_id = "not utf-8 \xfe";
    delegations.push_back(std::move(r));
  }
  results = submit_together(*store, std::move(delegations));
  for (int i = 0; i < 40; ++i) {
    if (i == 23) {
      ASSERT_FALSE(results[i]);
      EXPECT_EQ(errc_of(results[i].error()), Errc::invalid_field);
    } else {
      EXPECT_TRUE(results[i]) << i << ": " << results[i].error().message();
    }
  }
  EXPECT_EQ(psql("SELECT count(*) FROM events WHERE idempotency_key LIKE 'd-%'"), "39");
  EXPECT_EQ(psql("SELECT count(*) FROM events WHERE idempotency_key = 'd-23'"), "0");
  auto w3 = store->materials(kSource, "w3");
  ASSERT_TRUE(w3 && *w3);
  EXPECT_EQ((*w3)->event_id, "d-38");
}

}  // namespace
}  // namespace hookvault::testing
