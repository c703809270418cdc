// Store: idempotency, envelope encryption, ordering of delegations and
// revocations, group commit, WAL checkpoints (src/store/sqlite/checkpointer.hpp),
// reopen. Real SQLite files in a TempDir and a memory KEK. Fault injection (commit failures, open
// failures) is in store_fault_test.cpp.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gate_kek.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "manual_clock.hpp"
#include "raw_db.hpp"
#include "store_requests.hpp"
#include "test_support.hpp"

namespace {

using hookvault::DelegationMaterials;
using hookvault::Errc;
using hookvault::EventMeta;
using hookvault::EventQuery;
using hookvault::MaterialsState;
using hookvault::Metrics;
using hookvault::NewEvent;
using hookvault::Origin;
using hookvault::Result;
using hookvault::SecretBytes;
using hookvault::SqliteStoreOptions;
using hookvault::Store;
using hookvault::WriteRequest;
using hookvault::WriteResult;
using hookvault::testing::eventually;
using hookvault::testing::metric_sample;
using hookvault::testing::RawDb;
using hookvault::testing::TempDir;
using namespace hookvault::testing::requests;  // NOLINT(google-build-using-namespace)

class StoreTest : public ::testing::Test {
 protected:
  // Makes the materials insert of wallet "poison" fail after its event row
  // was inserted (a trigger), so that a request fails halfway: with ABORT the
  // statement fails, with ROLLBACK SQLite ends the whole transaction.
  void poison_wallet(std::string_view raise = "ABORT") {
    RawDb(path()).exec(
        "CREATE TRIGGER poison BEFORE INSERT ON materials WHEN NEW.wallet_id = 'poison' "
        "BEGIN SELECT RAISE(" +
        std::string(raise) + ", 'poisoned'); END");
  }

  // Holds the writer inside a batch of its own: an audit append whose
  // audit-key unwrap waits at the gate KEK (gate_kek.hpp). The returned
  // future is that append's answer, once gate_.release() let it through.
  std::future<Result<std::int64_t>> hold_writer(Store& store) {
    gate_->hold();
    auto answer = hookvault::testing::submit_audit(store, "writer");
    EXPECT_TRUE(gate_->wait_entered(1)) << "the writer never reached the gate";
    return answer;
  }

  // Submits `requests` while the writer is held (hold_writer), so that they
  // are written as one batch. Their results in order, and how many commits
  // the store made for them.
  struct Batched {
    std::vector<Result<WriteResult>> results;
    std::uint64_t commits = 0;
  };
  Batched submit_as_one_batch(Store& store, std::vector<WriteRequest> requests) {
    auto gate = hold_writer(store);
    std::vector<std::promise<Result<WriteResult>>> promises(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      store.submit(std::move(requests[i]),
                   [&promises, i](Result<WriteResult> r) { promises[i].set_value(r); });
    }
    const auto commits_before = store.stats().commits;
    gate_->release();
    EXPECT_TRUE(gate.get());
    Batched out;
    for (auto& p : promises) out.results.push_back(p.get_future().get());
    // Commits count once durable: the gate's batch is one of them.
    out.commits = store.stats().commits - commits_before - 1;
    return out;
  }

  std::unique_ptr<Store> open_store(std::size_t max_batch = 256) {
    SqliteStoreOptions options;
    options.max_batch = max_batch;
    return open_store(std::move(options));
  }
  std::unique_ptr<Store> open_store(SqliteStoreOptions options) {
    options.path = path();
    auto store = open_sqlite_store(options, kek_);
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }
  std::filesystem::path path() const { return dir_ / "hookvault.db"; }

  static WriteResult ok(Result<WriteResult> r) {
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? *r : WriteResult{};
  }

  std::string payload_of(Store& store, std::int64_t id) {
    auto p = store.event_payload(id);
    EXPECT_TRUE(p);
    if (!p || !*p) return "<none>";
    return std::string((*p)->reveal_string());
  }

  std::int64_t count_events() { return RawDb(path()).integer("SELECT count(*) FROM events"); }

  TempDir dir_;
  // Passes everything through until hold_writer() holds it.
  std::shared_ptr<hookvault::testing::GateKek> gate_ =
      std::make_shared<hookvault::testing::GateKek>(
          hookvault::make_memory_kek(SecretBytes::random(32), "test:1"));
  std::shared_ptr<const hookvault::Kek> kek_ = gate_;
};

// The store turns SQLite's global allocation statistics off (one process-wide
// mutex per allocation; src/store/sqlite/connection.cpp) before SQLite initializes. It
// can only do so in a process where nothing opened a database before it: ctest
// runs each test in a process of its own.
TEST(SqliteConfig, AllocationStatisticsAreOffOnceAStoreIsOpen) {
  TempDir dir;
  SqliteStoreOptions options;
  options.path = dir / "hookvault.db";
  auto store =
      open_sqlite_store(options, hookvault::make_memory_kek(SecretBytes::random(32), "t:1"));
  ASSERT_TRUE(store) << store.error().message();
  WriteRequest r;
  r.event.source = "nodit";
  r.event.idempotency_key = "sub:1";
  r.event.payload = R"({"n":1})";
  ASSERT_TRUE((*store)->write(std::move(r)));
  // With the statistics on, every allocation SQLite holds would be counted.
  EXPECT_EQ(sqlite3_memory_used(), 0);
  EXPECT_EQ(sqlite3_memory_highwater(0), 0);
}

TEST(StoreNames, OriginAndMaterialsState) {
  EXPECT_EQ(hookvault::origin_name(Origin::signature), "signature");
  EXPECT_EQ(hookvault::origin_name(Origin::history), "history");
  EXPECT_EQ(hookvault::materials_state_name(MaterialsState::none), "none");
  EXPECT_EQ(hookvault::materials_state_name(MaterialsState::stored), "stored");
  EXPECT_EQ(hookvault::materials_state_name(MaterialsState::superseded), "superseded");
  EXPECT_EQ(hookvault::materials_state_name(MaterialsState::revoked), "revoked");
  EXPECT_EQ(hookvault::materials_state_name(MaterialsState::decrypt_failed), "decrypt_failed");
}

TEST_F(StoreTest, ConcurrentSubmitsAllCompleteOnceInCommitOrderAndAreGrouped) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  constexpr std::size_t kMaxBatch = 64;
  auto store = open_store(kMaxBatch);
  ASSERT_TRUE(store);

  // Hold the writer until every request is queued, so the next commits must
  // take full batches.
  auto gate = hold_writer(*store);
  std::latch all_done(kThreads * kPerThread);
  std::vector<std::int64_t> completion_order;  // written on the syncer thread only
  std::atomic<int> failures{0};
  const auto record = [&](Result<WriteResult> r) {
    if (!r || r->duplicate) {
      failures.fetch_add(1);
    } else {
      completion_order.push_back(r->row_id);
    }
    all_done.count_down();
  };
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store->submit(plain_event("t" + std::to_string(t) + "-" + std::to_string(i)), record);
      }
    });
  }
  for (auto& th : threads) th.join();
  gate_->release();
  EXPECT_TRUE(gate.get());
  all_done.wait();

  EXPECT_EQ(failures.load(), 0);
  ASSERT_EQ(completion_order.size(), std::size_t{kThreads * kPerThread});
  EXPECT_TRUE(std::is_sorted(completion_order.begin(), completion_order.end()));
  EXPECT_EQ(std::set<std::int64_t>(completion_order.begin(), completion_order.end()).size(),
            completion_order.size());
  EXPECT_EQ(count_events(), kThreads * kPerThread);

  const auto stats = store->stats();
  EXPECT_EQ(stats.committed_requests, std::uint64_t{kThreads * kPerThread + 1});  // and the gate
  EXPECT_EQ(stats.largest_batch, kMaxBatch);
  EXPECT_LT(stats.commits, std::uint64_t{kThreads * kPerThread / 8});
  EXPECT_EQ(stats.failed_batches, 0U);

  EventQuery q;
  q.limit = 100000;
  auto listed = store->list_events(q);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->events.size(), completion_order.size());
  for (std::size_t i = 0; i < listed->events.size(); ++i) {
    EXPECT_EQ(listed->events[i].row_id, completion_order[i]);
  }
}

TEST_F(StoreTest, MaterialsFollowTheOrderingRules) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto current = [&]() -> std::string {
    auto m = store->materials(kSource, "w1");
    EXPECT_TRUE(m);
    if (!m || !*m) return "<none>";
    return (*m)->event_id + ":" + std::string((*m)->share.reveal_string());
  };

  EXPECT_EQ(current(), "<none>");
  EXPECT_EQ(ok(store->write(created("e100", "w1", 100, "s100", "a100"))).materials,
            MaterialsState::stored);
  {
    auto m = store->materials(kSource, "w1");
    ASSERT_TRUE(m && *m);
    const auto& sm = **m;
    EXPECT_EQ(sm.source, kSource);
    EXPECT_EQ(sm.wallet_id, "w1");
    EXPECT_EQ(sm.user_id, "user-w1");
    EXPECT_EQ(sm.chain, "EVM");
    EXPECT_EQ(sm.share_set_id, "set-w1");
    EXPECT_EQ(sm.event_id, "e100");
    EXPECT_EQ(sm.created_at, iso(100));
    EXPECT_EQ(sm.share.reveal_string(), "s100");
    EXPECT_EQ(sm.api_key.reveal_string(), "a100");
  }

  // Newer replaces; older is superseded.
  EXPECT_EQ(ok(store->write(created("e200", "w1", 200, "s200"))).materials, MaterialsState::stored);
  EXPECT_EQ(current(), "e200:s200");
  EXPECT_EQ(ok(store->write(created("e150", "w1", 150, "s150"))).materials,
            MaterialsState::superseded);
  EXPECT_EQ(current(), "e200:s200");

  // Same instant: the larger event id wins, whatever the arrival order.
  EXPECT_EQ(ok(store->write(created("e2zz", "w1", 200, "s2zz"))).materials, MaterialsState::stored);
  EXPECT_EQ(ok(store->write(created("e2aa", "w1", 200, "s2aa"))).materials,
            MaterialsState::superseded);
  EXPECT_EQ(current(), "e2zz:s2zz");

  // A share_set_id may be absent.
  WriteRequest no_set = created("e210", "w1", 210, "s210");
  no_set.materials->share_set_id.reset();
  no_set.materials->wallet_id.clear();  // defaults to the event's wallet
  EXPECT_EQ(ok(store->write(std::move(no_set))).materials, MaterialsState::stored);
  {
    auto m = store->materials(kSource, "w1");
    ASSERT_TRUE(m && *m);
    EXPECT_FALSE((*m)->share_set_id);
  }

  // Revocation at 300 destroys them; a late delegation older than it stays revoked.
  EXPECT_EQ(ok(store->write(revoked("r300", "w1", 300))).materials, MaterialsState::none);
  EXPECT_EQ(current(), "<none>");
  EXPECT_EQ(ok(store->write(created("e250", "w1", 250))).materials, MaterialsState::revoked);
  EXPECT_EQ(ok(store->write(created("e300", "w1", 300))).materials, MaterialsState::revoked);
  EXPECT_EQ(current(), "<none>");

  // A re-delegation newer than the tombstone is stored again.
  EXPECT_EQ(ok(store->write(created("e400", "w1", 400, "s400"))).materials, MaterialsState::stored);
  EXPECT_EQ(current(), "e400:s400");

  // A revocation older than the current materials leaves them, but still
  // raises the tombstone (to 350: the largest revocation time).
  EXPECT_EQ(ok(store->write(revoked("r350", "w1", 350))).materials, MaterialsState::none);
  EXPECT_EQ(current(), "e400:s400");
  EXPECT_EQ(ok(store->write(revoked("r100", "w1", 100))).materials, MaterialsState::none);
  EXPECT_EQ(ok(store->write(created("e340", "w1", 340))).materials, MaterialsState::revoked);
  EXPECT_EQ(ok(store->write(created("e360", "w1", 360))).materials, MaterialsState::superseded);
  EXPECT_EQ(current(), "e400:s400");
  EXPECT_EQ(RawDb(path()).integer("SELECT revoked_at_ms FROM tombstones WHERE wallet_id = 'w1'"),
            350);

  // Other wallets are independent.
  EXPECT_EQ(ok(store->write(created("x100", "w2", 100))).materials, MaterialsState::stored);
  auto w2 = store->materials(kSource, "w2");
  ASSERT_TRUE(w2 && *w2);
  auto w1_other_source = store->materials("nodit", "w1");
  ASSERT_TRUE(w1_other_source);
  EXPECT_FALSE(*w1_other_source);
}

TEST_F(StoreTest, RevocationRedactsOlderDelegationPayloads) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto c100 = ok(store->write(created("c100", "w1", 100))).row_id;
  const auto f120 = ok(store->write(created_failed("f120", "w1", 120))).row_id;
  const auto f180 = ok(store->write(created_failed("f180", "w1", 180))).row_id;
  WriteRequest sig = plain_event("sig100");
  sig.event.event_name = "wallet.delegation.signature";
  sig.event.wallet_id = "w1";
  sig.event.event_time_ms = 100;
  const auto s100 = ok(store->write(std::move(sig))).row_id;
  const auto other = ok(store->write(created("o100", "w2", 100))).row_id;
  const auto rev = ok(store->write(revoked("r150", "w1", 150))).row_id;

  const auto redacted = [&](std::int64_t id) {
    auto meta = store->event_meta(id);
    auto payload = store->event_payload(id);
    EXPECT_TRUE(meta && *meta && payload);
    if (!meta || !*meta || !payload) return false;
    EXPECT_EQ((*meta)->payload_redacted, !payload->has_value()) << id;
    return (*meta)->payload_redacted;
  };
  EXPECT_TRUE(redacted(c100));
  EXPECT_TRUE(redacted(f120));
  EXPECT_FALSE(redacted(f180));
  EXPECT_FALSE(redacted(s100));
  EXPECT_FALSE(redacted(other));
  EXPECT_FALSE(redacted(rev));
  {
    RawDb raw(path());
    EXPECT_EQ(raw.integer("SELECT count(*) FROM events WHERE payload IS NULL AND wrapped_dek IS "
                          "NULL AND kek_id IS NULL AND kek_version IS NULL"),
              2);
  }

  // The failed delegation at 120 no longer needs reprocessing; the one at 180 does.
  auto f120_meta = store->event_meta(f120);
  ASSERT_TRUE(f120_meta && *f120_meta);
  EXPECT_EQ((*f120_meta)->materials, MaterialsState::revoked);
  EXPECT_TRUE((*f120_meta)->failure_reason.empty());
  auto failures = store->decrypt_failures();
  ASSERT_TRUE(failures);
  ASSERT_EQ(failures->size(), 1U);
  EXPECT_EQ(failures->front().row_id, f180);
  auto none = store->materials(kSource, "w1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  // A late delegation covered by the tombstone is stored redacted.
  const auto late = ok(store->write(created("c140", "w1", 140)));
  EXPECT_EQ(late.materials, MaterialsState::revoked);
  EXPECT_TRUE(redacted(late.row_id));
  const auto late_failed = ok(store->write(created_failed("f130", "w1", 130)));
  EXPECT_EQ(late_failed.materials, MaterialsState::revoked);
  EXPECT_TRUE(redacted(late_failed.row_id));

  // Materials from after the revocation are stored; the delegation at 180,
  // older than them, can never be the wallet's any more: it is settled and
  // its payload goes too.
  const auto c200 = ok(store->write(created("c200", "w1", 200)));
  EXPECT_EQ(c200.materials, MaterialsState::stored);
  EXPECT_FALSE(redacted(c200.row_id));
  EXPECT_TRUE(redacted(f180));
  auto f180_meta = store->event_meta(f180);
  ASSERT_TRUE(f180_meta && *f180_meta);
  EXPECT_EQ((*f180_meta)->materials, MaterialsState::superseded);
  EXPECT_TRUE((*f180_meta)->failure_reason.empty());
  failures = store->decrypt_failures();
  ASSERT_TRUE(failures);
  EXPECT_TRUE(failures->empty());
  auto m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->event_id, "c200");
}

// A newer delegation replaces the wallet's materials: every older delegation
// event's payload (which holds the older share, RSA-encrypted to a key on
// this host) is redacted as a revocation redacts it, whatever the order of
// arrival: an older delegation that arrives after the newer one is stored
// redacted, a pending one is settled.
TEST_F(StoreTest, ANewerDelegationRedactsEveryOlderDelegationsPayload) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto redacted = [&](std::int64_t id) {
    auto meta = store->event_meta(id);
    auto payload = store->event_payload(id);
    EXPECT_TRUE(meta && *meta && payload);
    if (!meta || !*meta || !payload) return false;
    EXPECT_EQ((*meta)->payload_redacted, !payload->has_value()) << id;
    return (*meta)->payload_redacted;
  };
  const auto state_of = [&](std::int64_t id) {
    auto meta = store->event_meta(id);
    EXPECT_TRUE(meta && *meta);
    return meta && *meta ? (*meta)->materials : MaterialsState::none;
  };
  const auto c100 = ok(store->write(created("c100", "w1", 100))).row_id;
  const auto other_wallet = ok(store->write(created("o100", "w2", 100))).row_id;
  // Newer than the current materials: waits for `reprocess`, with its payload.
  const auto f150 = ok(store->write(created_failed("f150", "w1", 150))).row_id;
  EXPECT_EQ(state_of(f150), MaterialsState::decrypt_failed);
  EXPECT_FALSE(redacted(c100));
  EXPECT_FALSE(redacted(f150));

  const auto same_instant = ok(store->write(created("c200a", "w1", 200))).row_id;
  EXPECT_TRUE(redacted(c100));
  EXPECT_TRUE(redacted(f150));
  EXPECT_EQ(state_of(f150), MaterialsState::superseded);  // nothing left to reprocess
  EXPECT_FALSE(redacted(same_instant));

  const auto c200b = ok(store->write(created("c200b", "w1", 200)));
  EXPECT_EQ(c200b.materials, MaterialsState::stored);
  EXPECT_TRUE(redacted(same_instant));  // same time, smaller id: older by the rules
  EXPECT_FALSE(redacted(c200b.row_id));
  EXPECT_FALSE(redacted(other_wallet));
  EXPECT_EQ(state_of(c100), MaterialsState::stored);  // what happened then: it was stored

  // Older ones arriving now are stored redacted, materials or not.
  const auto late = ok(store->write(created("c150", "w1", 150)));
  EXPECT_EQ(late.materials, MaterialsState::superseded);
  EXPECT_TRUE(redacted(late.row_id));
  const auto late_failed = ok(store->write(created_failed("f120", "w1", 120)));
  EXPECT_EQ(late_failed.materials, MaterialsState::superseded);
  EXPECT_TRUE(redacted(late_failed.row_id));
  auto failures = store->decrypt_failures();
  ASSERT_TRUE(failures);
  EXPECT_TRUE(failures->empty());
  // A newer failure waits for `reprocess`, and keeps its payload for it.
  const auto newer_failed = ok(store->write(created_failed("f300", "w1", 300)));
  EXPECT_EQ(newer_failed.materials, MaterialsState::decrypt_failed);
  EXPECT_FALSE(redacted(newer_failed.row_id));
  EXPECT_FALSE(redacted(c200b.row_id));
  auto m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->event_id, "c200b");
  EXPECT_EQ(RawDb(path()).integer("SELECT count(*) FROM events WHERE payload IS NULL"), 5);
}

TEST_F(StoreTest, ConcurrentResolutionsOfOneFailureSettleItOnce) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto failed = ok(store->write(created_failed("f1", "w1", 100))).row_id;

  // Block the writer so that both resolutions pass their read-side check and
  // reach the writer in the same batch as an unrelated write.
  auto gate = hold_writer(*store);
  std::vector<Result<MaterialsState>> results(2, Result<MaterialsState>(MaterialsState::none));
  std::thread a([&] {
    results[0] =
        store->resolve_decrypt_failure(failed, materials_for("w1", "share-a", "api"), "cli:test");
  });
  std::thread b([&] {
    results[1] =
        store->resolve_decrypt_failure(failed, materials_for("w1", "share-b", "api"), "cli:test");
  });
  std::promise<Result<WriteResult>> unrelated;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  store->submit(plain_event("unrelated"), [&](Result<WriteResult> r) { unrelated.set_value(r); });
  gate_->release();
  EXPECT_TRUE(gate.get());
  a.join();
  b.join();
  EXPECT_FALSE(ok(unrelated.get_future().get()).duplicate);

  int stored = 0;
  std::string winner;
  for (int i = 0; i < 2; ++i) {
    if (results[i]) {
      EXPECT_EQ(*results[i], MaterialsState::stored);
      ++stored;
      winner = i == 0 ? "share-a" : "share-b";
    } else {
      EXPECT_EQ(errc_of(results[i].error()), Errc::not_found);
    }
  }
  EXPECT_EQ(stored, 1);
  auto m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->share.reveal_string(), winner);
}

TEST_F(StoreTest, OneFailingRequestDoesNotFailItsBatch) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("warm-up")));
  // The "bad" request fails after its event row was inserted: the batch's
  // second pass, with a SAVEPOINT per request, must undo that row.
  poison_wallet();
  std::vector<WriteRequest> requests;
  requests.push_back(created("before", "w1", 100));
  requests.push_back(created("bad", "poison", 100));
  requests.push_back(created("after", "w2", 100));
  auto batch = submit_as_one_batch(*store, std::move(requests));
  const auto& before = batch.results[0];
  const auto& bad = batch.results[1];
  const auto& after = batch.results[2];
  ASSERT_TRUE(before);
  ASSERT_FALSE(bad);
  EXPECT_EQ(errc_of(bad.error()), Errc::internal);
  ASSERT_TRUE(after);
  EXPECT_EQ(batch.commits, 1U);  // one batch
  EXPECT_TRUE(store->writable());

  auto bad_event = store->find_event(kSource, "bad");
  ASSERT_TRUE(bad_event);
  EXPECT_FALSE(*bad_event);
  auto w1 = store->materials(kSource, "w1");
  auto w2 = store->materials(kSource, "w2");
  ASSERT_TRUE(w1 && *w1 && w2 && *w2);
  EXPECT_GT(after->row_id, before->row_id);
}

// The batch first runs without savepoints; a failing request makes the writer
// roll it back and run it again with one SAVEPOINT per request. What the
// first pass did must not leak into the second: a revocation (its zero
// overwrite and its audit record, under the audit key the first pass read)
// commits once, next to the request that fails.
TEST_F(StoreTest, ARevocationBesideAFailingRequestCommitsOnceWithItsAuditRecord) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(created("kept", "w0", 100, "share-0", "api-0")));
  const std::string sealed_share =
      RawDb(path()).bytes("SELECT share FROM materials WHERE wallet_id = 'w0'");
  ASSERT_GE(sealed_share.size(), 16U);
  const auto audit_before = store->verify_audit();
  ASSERT_TRUE(audit_before && audit_before->ok) << (audit_before ? audit_before->problem : "");
  poison_wallet();
  std::vector<WriteRequest> requests;
  requests.push_back(revoked("revoke-w0", "w0", 200));
  requests.push_back(created("bad", "poison", 100));
  requests.push_back(plain_event("after"));
  auto batch = submit_as_one_batch(*store, std::move(requests));
  ASSERT_TRUE(batch.results[0]);
  ASSERT_FALSE(batch.results[1]);
  EXPECT_EQ(errc_of(batch.results[1].error()), Errc::internal);
  ASSERT_TRUE(batch.results[2]);
  EXPECT_EQ(batch.commits, 1U);

  auto w0 = store->materials(kSource, "w0");
  ASSERT_TRUE(w0);
  EXPECT_FALSE(*w0);  // revoked
  auto bad_event = store->find_event(kSource, "bad");
  ASSERT_TRUE(bad_event);
  EXPECT_FALSE(*bad_event);
  // Exactly one more audit record (the revocation's) besides the gate's that
  // held the writer (submit_as_one_batch), and the chain holds.
  const auto audit_after = store->verify_audit();
  ASSERT_TRUE(audit_after);
  EXPECT_TRUE(audit_after->ok) << audit_after->problem;
  EXPECT_EQ(audit_after->records, audit_before->records + 2);
  // The revocation's zero overwrite reached the files (checkpointed before the
  // answers): the sealed share is in neither the database nor its WAL.
  for (const auto& file : {path(), std::filesystem::path(path().string() + "-wal")}) {
    if (!std::filesystem::exists(file)) continue;
    EXPECT_EQ(hookvault::testing::read_file(file).find(sealed_share), std::string::npos) << file;
  }
}

// A request during which SQLite ends the whole transaction (RAISE(ROLLBACK)
// here; a full disk or an I/O error in production) fails its batch: nothing
// of it is stored, every request in it is told store_unavailable, and the
// next write goes through.
TEST_F(StoreTest, ATransactionEndedBySqliteFailsTheWholeBatch) {
  auto store = open_store();
  ASSERT_TRUE(store);
  poison_wallet("ROLLBACK");
  std::vector<WriteRequest> requests;
  requests.push_back(created("before", "w1", 100));
  requests.push_back(created("bad", "poison", 100));
  requests.push_back(plain_event("after"));
  auto batch = submit_as_one_batch(*store, std::move(requests));
  for (const auto& r : batch.results) {
    ASSERT_FALSE(r);
    EXPECT_EQ(errc_of(r.error()), Errc::store_unavailable);
  }
  EXPECT_EQ(batch.commits, 0U);
  for (const char* key : {"before", "bad", "after"}) {
    auto found = store->find_event(kSource, key);
    ASSERT_TRUE(found);
    EXPECT_FALSE(*found) << key;
  }
  EXPECT_TRUE(store->write(plain_event("later")));
  EXPECT_TRUE(store->writable());
}

TEST_F(StoreTest, RowsCannotBeSwapped) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto a = ok(store->write(plain_event("a", R"({"who":"a"})"))).row_id;
  const auto b = ok(store->write(plain_event("b", R"({"who":"b"})"))).row_id;
  const auto c = ok(store->write(plain_event("c", R"({"who":"c"})"))).row_id;
  ASSERT_TRUE(store->write(created("d1", "w1", 100, "share-1", "api-1")));
  ASSERT_TRUE(store->write(created("d2", "w2", 100, "share-2", "api-2")));
  const auto a_s = std::to_string(a);
  const auto b_s = std::to_string(b);
  const auto c_s = std::to_string(c);
  {
    RawDb raw(path());
    // b gets a's payload and a's wrapped key.
    raw.exec("UPDATE events SET payload = (SELECT payload FROM events WHERE id = " + a_s +
             "), wrapped_dek = (SELECT wrapped_dek FROM events WHERE id = " + a_s +
             ") WHERE id = " + b_s);
    // c gets only a's payload.
    raw.exec("UPDATE events SET payload = (SELECT payload FROM events WHERE id = " + a_s +
             ") WHERE id = " + c_s);
    // w2 gets w1's ciphertexts and key.
    raw.exec(
        "UPDATE materials SET (wrapped_dek, share, api_key) = (SELECT wrapped_dek, share, "
        "api_key FROM materials WHERE wallet_id = 'w1') WHERE wallet_id = 'w2'");
  }
  EXPECT_EQ(payload_of(*store, a), R"({"who":"a"})");
  for (auto id : {b, c}) {
    auto p = store->event_payload(id);
    ASSERT_FALSE(p) << id;
    EXPECT_EQ(errc_of(p.error()), Errc::store_corrupt);
  }
  auto w1 = store->materials(kSource, "w1");
  ASSERT_TRUE(w1 && *w1);
  EXPECT_EQ((*w1)->share.reveal_string(), "share-1");
  auto w2 = store->materials(kSource, "w2");
  ASSERT_FALSE(w2);
  EXPECT_EQ(errc_of(w2.error()), Errc::store_corrupt);

  {
    RawDb raw(path());
    // Within one row: share and api_key exchanged.
    raw.exec("UPDATE materials SET share = api_key, api_key = share WHERE wallet_id = 'w1'");
  }
  w1 = store->materials(kSource, "w1");
  ASSERT_FALSE(w1);
  EXPECT_EQ(errc_of(w1.error()), Errc::store_corrupt);

  {
    RawDb raw(path());
    raw.exec("UPDATE events SET kek_id = 'file:other' WHERE id = " + a_s);
    raw.exec("UPDATE events SET kek_version = 7 WHERE id = " + c_s);
  }
  auto other_kek = store->event_payload(a);
  ASSERT_FALSE(other_kek);
  EXPECT_EQ(errc_of(other_kek.error()), Errc::kek_unavailable);
  auto other_version = store->event_payload(c);
  ASSERT_FALSE(other_version);
  const Errc version_errc = errc_of(other_version.error());
  EXPECT_TRUE(version_errc == Errc::kek_unavailable || version_errc == Errc::store_corrupt);
}

// Reads a file whole (empty when absent).
std::string slurp(const std::filesystem::path& p) {
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) return {};
  return hookvault::testing::read_file(p);
}

TEST_F(StoreTest, PlaintextSecretsNeverReachTheFiles) {
  const std::string share = "SHARE-3b9f0c2e-plaintext-marker";
  const std::string api_key = "APIKEY-5d1e77aa-plaintext-marker";
  const std::string body = R"({"marker":"PAYLOAD-91c4e0d2-plaintext-marker"})";
  const std::vector<std::string> secrets = {share, api_key, "PAYLOAD-91c4e0d2"};
  const auto scan = [&](const char* when) {
    // The scan works: plaintext metadata (the user id) is found.
    EXPECT_NE((slurp(path()) + slurp(path().string() + "-wal")).find("user-w2"), std::string::npos)
        << when;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      const std::string data = slurp(path().string() + suffix);
      for (const auto& s : secrets) {
        EXPECT_EQ(data.find(s), std::string::npos) << when << ": " << s << " in file" << suffix;
      }
    }
  };
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    WriteRequest r = created("d1", "w1", 100, share, api_key);
    r.event.payload = body;
    ASSERT_TRUE(store->write(std::move(r)));
    ASSERT_TRUE(store->write(created("d2", "w1", 200, share, api_key)));  // replaces d1's
    WriteRequest failed = created_failed("f1", "w2", 100);
    failed.event.payload = body;
    const auto f1 = ok(store->write(std::move(failed))).row_id;
    ASSERT_TRUE(
        store->resolve_decrypt_failure(f1, materials_for("w2", share, api_key), "cli:test"));
    EXPECT_GT(slurp(path().string() + "-wal").size(), 0U);
    scan("open");
    ASSERT_TRUE(store->write(revoked("r1", "w1", 300)));
    scan("after revocation");
    auto m = store->materials(kSource, "w2");  // still readable
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->share.reveal_string(), share);
  }
  scan("closed");
  EXPECT_FALSE(std::filesystem::exists(path().string() + "-wal"));
}

TEST_F(StoreTest, ReopeningKeepsEverything) {
  std::int64_t last_id = 0;
  std::int64_t failed_id = 0;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->write(plain_event("p1", R"({"n":18446744073709551617})")));
    ASSERT_TRUE(store->write(created("c1", "w1", 100, "share-1", "api-1")));
    ASSERT_TRUE(store->write(created("c2", "w2", 100)));
    ASSERT_TRUE(store->write(revoked("r1", "w2", 150)));
    failed_id = ok(store->write(created_failed("f1", "w3", 100))).row_id;
    last_id = ok(store->write(plain_event("last"))).row_id;
    store->close();
    EXPECT_FALSE(store->writable());
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  auto p1 = store->find_event(kSource, "p1");
  ASSERT_TRUE(p1 && *p1);
  EXPECT_EQ(payload_of(*store, **p1), R"({"n":18446744073709551617})");
  auto m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->share.reveal_string(), "share-1");
  EXPECT_EQ((*m)->api_key.reveal_string(), "api-1");
  auto gone = store->materials(kSource, "w2");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
  EXPECT_EQ(ok(store->write(created("c0", "w2", 120))).materials, MaterialsState::revoked);
  auto failures = store->decrypt_failures();
  ASSERT_TRUE(failures);
  ASSERT_EQ(failures->size(), 1U);
  EXPECT_EQ(failures->front().row_id, failed_id);
  EXPECT_TRUE(ok(store->write(plain_event("p1"))).duplicate);
  EXPECT_GT(ok(store->write(plain_event("next"))).row_id, last_id + 1);  // c0 took last_id + 1
  store->close();

  // Another KEK cannot read the records: another id, or the same id with another key.
  SqliteStoreOptions options;
  options.path = path();
  auto foreign =
      open_sqlite_store(options, hookvault::make_memory_kek(SecretBytes::random(32), "test:2"));
  ASSERT_TRUE(foreign);
  auto by_other_id = (*foreign)->event_payload(**p1);
  ASSERT_FALSE(by_other_id);
  EXPECT_EQ(errc_of(by_other_id.error()), Errc::kek_unavailable);
  (*foreign)->close();
  auto impostor =
      open_sqlite_store(options, hookvault::make_memory_kek(SecretBytes::random(32), "test:1"));
  ASSERT_TRUE(impostor);
  auto by_other_key = (*impostor)->event_payload(**p1);
  ASSERT_FALSE(by_other_key);
  EXPECT_EQ(errc_of(by_other_key.error()), Errc::store_corrupt);
  auto materials_other_key = (*impostor)->materials(kSource, "w1");
  ASSERT_FALSE(materials_other_key);
  EXPECT_EQ(errc_of(materials_other_key.error()), Errc::store_corrupt);
}

TEST_F(StoreTest, DatabaseFileIsPrivateAndConfigured) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("x")));
  const auto perms = std::filesystem::status(path()).permissions();
  EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  RawDb raw(path());
  EXPECT_EQ(raw.integer("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
  EXPECT_EQ(raw.integer("SELECT value FROM meta WHERE key = 'schema_version'"), 2);
}

// Crypto-shredding: after a revocation, the wallet's sealed share and API
// key, the data key that sealed them (wrapped), and the sealed payload of the
// delegation that carried them are gone from every byte of the database file
// and its WAL, freed pages included; the plaintext never was there.
TEST_F(StoreTest, RevocationLeavesNoTraceInTheFileOrItsWal) {
  const std::string share = "SHARE-" + std::string(48, 'q') + "-end";
  const std::string api_key = "APIKEY-" + std::string(40, 'z') + "-end";
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto id = ok(store->write(created("c1", "w1", 100, share, api_key))).row_id;
  ok(store->write(plain_event("unrelated")));  // something that stays
  std::vector<std::pair<std::string, std::string>> sealed;
  {
    RawDb raw(path());
    for (const char* column : {"share", "api_key", "wrapped_dek"}) {
      sealed.emplace_back(
          std::string("materials.") + column,
          raw.bytes(std::string("SELECT ") + column + " FROM materials WHERE wallet_id = 'w1'"));
    }
    for (const char* column : {"payload", "wrapped_dek"}) {
      sealed.emplace_back(std::string("events.") + column,
                          raw.bytes(std::string("SELECT ") + column +
                                    " FROM events WHERE id = " + std::to_string(id)));
    }
  }
  const auto files = [this] {
    std::string all;
    for (const auto* suffix : {"", "-wal"}) {
      const auto p = path().string() + suffix;
      if (std::filesystem::exists(p)) all += hookvault::testing::read_file(p);
    }
    return all;
  };
  {
    const std::string before = files();
    for (const auto& [name, bytes] : sealed) {
      ASSERT_GE(bytes.size(), 16U) << name;
      EXPECT_NE(before.find(bytes), std::string::npos) << name << " should be on disk before";
    }
  }

  ok(store->write(revoked("r1", "w1", 200)));
  auto gone = store->materials(kSource, "w1");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());

  const std::string after = files();
  for (const auto& [name, bytes] : sealed) {
    // Any 16-byte window would do; the whole value is the strictest form.
    EXPECT_EQ(after.find(bytes.substr(0, 16)), std::string::npos) << name << " survives";
  }
  EXPECT_EQ(after.find(share), std::string::npos);
  EXPECT_EQ(after.find(api_key), std::string::npos);
  // What was not revoked still opens.
  auto kept = store->find_event(kSource, "unrelated");
  ASSERT_TRUE(kept && kept->has_value());
  auto payload = store->event_payload(**kept);
  ASSERT_TRUE(payload && payload->has_value());
}

// Crypto-shredding of a replaced delegation: once a newer delegation of the
// wallet is stored, the older delegation's sealed payload and its data key
// are gone from every byte of the database file and its WAL, like a revoked
// one's; and an older delegation that arrives after the newer one never puts
// its payload there at all.
TEST_F(StoreTest, AReplacedDelegationLeavesNoTraceInTheFileOrItsWal) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto older = ok(store->write(created("c100", "w1", 100))).row_id;
  ok(store->write(plain_event("unrelated")));
  std::vector<std::pair<std::string, std::string>> sealed;
  {
    RawDb raw(path());
    for (const char* column : {"share", "api_key", "wrapped_dek"}) {
      sealed.emplace_back(
          std::string("materials.") + column,
          raw.bytes(std::string("SELECT ") + column + " FROM materials WHERE wallet_id = 'w1'"));
    }
    for (const char* column : {"payload", "wrapped_dek"}) {
      sealed.emplace_back(std::string("events.") + column,
                          raw.bytes(std::string("SELECT ") + column +
                                    " FROM events WHERE id = " + std::to_string(older)));
    }
  }
  const auto files = [this] {
    std::string all;
    for (const auto* suffix : {"", "-wal"}) {
      const auto p = path().string() + suffix;
      if (std::filesystem::exists(p)) all += hookvault::testing::read_file(p);
    }
    return all;
  };
  {
    const std::string before = files();
    for (const auto& [name, bytes] : sealed) {
      ASSERT_GE(bytes.size(), 16U) << name;
      EXPECT_NE(before.find(bytes), std::string::npos) << name << " should be on disk before";
    }
  }

  EXPECT_EQ(ok(store->write(created("c200", "w1", 200))).materials, MaterialsState::stored);
  const std::string after = files();
  for (const auto& [name, bytes] : sealed) {
    EXPECT_EQ(after.find(bytes.substr(0, 16)), std::string::npos) << name << " survives";
  }
  auto meta = store->event_meta(older);
  ASSERT_TRUE(meta && *meta);
  EXPECT_TRUE((*meta)->payload_redacted);

  // An older delegation arriving late: superseded, and its payload never stored.
  const auto late = ok(store->write(created("c150", "w1", 150)));
  EXPECT_EQ(late.materials, MaterialsState::superseded);
  EXPECT_EQ(
      RawDb(path()).text("SELECT quote(payload) || quote(wrapped_dek) FROM events WHERE id = " +
                         std::to_string(late.row_id)),
      "NULLNULL");
  // The current delegation and the unrelated event still open.
  auto current = store->materials(kSource, "w1");
  ASSERT_TRUE(current && *current);
  EXPECT_EQ((*current)->event_id, "c200");
  auto kept = store->find_event(kSource, "unrelated");
  ASSERT_TRUE(kept && kept->has_value());
  auto payload = store->event_payload(**kept);
  ASSERT_TRUE(payload && payload->has_value());
}

// A file holding a whole payload of a delegation older than its wallet's
// current materials (as a version without the redaction of superseded
// delegations left it) gets that payload redacted on its next open, once.
// A leadership lease whose holder was a process of this host that is gone
// (a `keys rewrap` killed with SIGKILL leaves its row) is taken at once, not
// after its lease time; a live holder's, or one of another host, is not.
TEST_F(StoreTest, ALeaseOfAProcessOfThisHostThatIsGoneIsTakenAtOnce) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);  // its pid names no process now
  std::array<char, 256> host{};
  ASSERT_EQ(::gethostname(host.data(), host.size() - 1), 0);
  const std::string here = host.data();
  const auto far = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count() +
                                  3600000);
  const auto row = [&](const std::string& name, const std::string& on, std::int64_t pid) {
    RawDb(path()).exec(
        "INSERT INTO leases (name, holder, description, expires_ms, host, pid) VALUES ('" + name +
        "', 'other-holder', 'keys rewrap', " + far + ", '" + on + "', " + std::to_string(pid) +
        ")");
  };
  row("dead-here", here, child);
  row("alive-here", here, ::getppid());
  row("dead-elsewhere", here + "-elsewhere", child);

  auto taken = store->try_lease("dead-here");
  ASSERT_TRUE(taken) << taken.error().message();
  ASSERT_TRUE(*taken);
  EXPECT_TRUE((*taken)->held());
  EXPECT_EQ(RawDb(path()).integer("SELECT pid FROM leases WHERE name = 'dead-here'"), ::getpid());
  for (const char* name : {"alive-here", "dead-elsewhere"}) {
    auto refused = store->try_lease(name);
    ASSERT_TRUE(refused);
    EXPECT_FALSE(*refused) << name;
  }
}

// Retention reads the store's clock (SqliteStoreOptions::clock): payloads
// received longer ago than `retention` are redacted once the clock says so,
// a delegation still waiting for `reprocess` keeps its payload, and nothing
// waits for real hours to pass.
TEST_F(StoreTest, RetentionRedactsPayloadsOnceTheStoresClockSaysTheyExpired) {
  hookvault::testing::ManualClock clock;
  SqliteStoreOptions options;
  options.clock = &clock;
  options.retention = std::chrono::hours(24);
  options.retention_interval = std::chrono::hours(1);
  auto store = open_store(std::move(options));
  ASSERT_TRUE(store);
  const auto old_event = ok(store->write(plain_event("old"))).row_id;
  const auto pending = ok(store->write(created_failed("pending", "w1", 100))).row_id;
  clock.advance(std::chrono::hours(22));
  const auto young = ok(store->write(plain_event("young"))).row_id;
  // Not yet expired: a pass (due after an hour) redacts nothing.
  clock.advance(std::chrono::minutes(61));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the writer's look (1 s)
  EXPECT_EQ(payload_of(*store, old_event), R"({"eventId":"old"})");
  // Past 24 h for the first two (not for the young one): the next pass
  // redacts the plain one.
  clock.advance(std::chrono::minutes(61));
  EXPECT_TRUE(eventually([&] {
    auto meta = store->event_meta(old_event);
    return meta && *meta && (*meta)->payload_redacted;
  }));
  EXPECT_EQ(payload_of(*store, old_event), "<none>");
  EXPECT_NE(payload_of(*store, pending), "<none>");
  EXPECT_EQ(payload_of(*store, young), R"({"eventId":"young"})");
}

TEST_F(StoreTest, OpeningRedactsSupersededPayloadsAFileStillHolds) {
  std::string sealed;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ok(store->write(created("c100", "w1", 100)));
    ok(store->write(created_failed("f150", "w1", 150)));
    ok(store->write(created("c300", "w2", 300)));
    store->close();
  }
  {
    // c100 and f150 become delegations of w2, older than its materials
    // (their payloads' associated data names no wallet: they still open).
    RawDb raw(path());
    raw.exec("UPDATE events SET wallet_id = 'w2' WHERE idem_key IN ('c100', 'f150')");
    raw.exec("DELETE FROM meta WHERE key = 'superseded_redacted'");
    sealed = raw.bytes("SELECT payload FROM events WHERE idem_key = 'c100'");
    ASSERT_GE(sealed.size(), 16U);
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto meta_of = [&](const char* key) {
    auto id = store->find_event(kSource, key);
    EXPECT_TRUE(id && id->has_value());
    auto meta = store->event_meta(id && *id ? **id : 0);
    EXPECT_TRUE(meta && *meta);
    return meta && *meta ? **meta : EventMeta{};
  };
  EXPECT_TRUE(meta_of("c100").payload_redacted);
  EXPECT_TRUE(meta_of("f150").payload_redacted);
  EXPECT_EQ(meta_of("f150").materials, MaterialsState::superseded);
  EXPECT_FALSE(meta_of("c300").payload_redacted);
  RawDb raw(path());
  EXPECT_EQ(raw.text("SELECT value FROM meta WHERE key = 'superseded_redacted'"), "1");
  std::string files;
  for (const auto* suffix : {"", "-wal"}) {
    const auto p = path().string() + suffix;
    if (std::filesystem::exists(p)) files += hookvault::testing::read_file(p);
  }
  EXPECT_EQ(files.find(sealed.substr(0, 16)), std::string::npos);
}

// --- WAL checkpoints (src/store/sqlite/checkpointer.hpp) ---------------------------

constexpr std::uintmax_t kPage = 4096;

// A Nodit-like event of about 1 KiB, so that every few events fill a page.
WriteRequest nodit_event(int i) {
  const std::string sub = "sub-" + std::to_string(i % 4);
  const auto number = static_cast<std::uint64_t>(i / 4 + 1);
  WriteRequest r = plain_event(
      sub + ":" + std::to_string(number),
      R"({"n":)" + std::to_string(i) + R"(,"pad":")" + std::string(1000, 'x') + "\"}", "nodit");
  r.event.sequence = hookvault::SequencePosition{sub, number};
  return r;
}

class StoreCheckpointTest : public StoreTest {
 protected:
  std::unique_ptr<Store> open_store(int checkpoint_pages, int wal_limit_pages) {
    SqliteStoreOptions options;
    options.checkpoint_pages = checkpoint_pages;
    options.wal_limit_pages = wal_limit_pages;
    return StoreTest::open_store(std::move(options));
  }
  std::uintmax_t wal_bytes() const {
    std::error_code ec;
    const auto n = std::filesystem::file_size(path().string() + "-wal", ec);
    return ec ? 0 : n;
  }

  // Submits nodit_event(0 .. count - 1) keeping `window` of them waiting for
  // their commit, so the writer never idles; calls `each` after every
  // submission (on this thread). Returns how many failed or were duplicates.
  template <class F>
  static int write_continuously(Store& store, int count, int window, F&& each) {
    std::mutex mu;
    std::condition_variable cv;
    int waiting = 0;
    int bad = 0;
    for (int i = 0; i < count; ++i) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return waiting < window; });
      ++waiting;
      lock.unlock();
      store.submit(nodit_event(i), [&](Result<WriteResult> r) {
        std::lock_guard guard(mu);
        if (!r || r->duplicate) ++bad;
        --waiting;
        cv.notify_all();
      });
      each();
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return waiting == 0; });
    return bad;
  }
};

TEST_F(StoreCheckpointTest, TheCheckpointerCopiesTheWalIntoTheDatabaseFile) {
  // A WAL limit the test never reaches: only the checkpointer's thread
  // checkpoints, and the database file grows only through it.
  auto store = open_store(/*checkpoint_pages=*/16, /*wal_limit_pages=*/1 << 30);
  ASSERT_TRUE(store);
  const auto db_before = std::filesystem::file_size(path());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->write(nodit_event(i)));

  // 200 events of 1 KiB are at least 50 pages; the checkpoints copy them
  // (the thread may still be copying the last ones: wait for it).
  EXPECT_TRUE(eventually([&] {
    return std::filesystem::file_size(path()) >= db_before + 40 * kPage;
  })) << "database file: "
      << std::filesystem::file_size(path()) << " bytes";
  EXPECT_GT(store->stats().checkpoints, 0U);
  EXPECT_EQ(store->stats().checkpoint_failures, 0U);
  EXPECT_EQ(count_events(), 200);
}

// Every checkpoint counted in hookvault_store_wal_checkpoints_total is timed in
// hookvault_store_wal_checkpoint_seconds.
TEST_F(StoreCheckpointTest, EachCheckpointIsTimedInItsHistogram) {
  Metrics metrics;
  SqliteStoreOptions options;
  options.checkpoint_pages = 16;
  options.wal_limit_pages = 1 << 30;
  options.metrics = &metrics;
  auto store = StoreTest::open_store(std::move(options));
  ASSERT_TRUE(store);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->write(nodit_event(i)));
  // The thread may still be copying: wait until the two agree.
  double timed = -1;
  std::uint64_t counted = 0;
  eventually([&] {
    timed = metric_sample(metrics.render(), "hookvault_store_wal_checkpoint_seconds_count");
    counted = store->stats().checkpoints;
    return counted > 0 && timed == static_cast<double>(counted);
  });
  EXPECT_GT(counted, 0U);
  EXPECT_EQ(timed, static_cast<double>(counted));
  EXPECT_GT(metric_sample(metrics.render(), "hookvault_store_wal_checkpoint_seconds_sum"), 0);
}

TEST_F(StoreCheckpointTest, TheWalStaysBoundedWhileTheWriterNeverIdles) {
  constexpr int kLimit = 200;
  auto store = open_store(/*checkpoint_pages=*/20, /*wal_limit_pages=*/kLimit);
  ASSERT_TRUE(store);
  std::uintmax_t largest = 0;
  // 3,000 events of 1 KiB are more than 750 pages of table alone: without a
  // WAL restart the WAL would hold them all.
  const int bad =
      write_continuously(*store, 3000, 32, [&] { largest = std::max(largest, wal_bytes()); });
  EXPECT_EQ(bad, 0);
  // The limit, plus what one batch (at most 32 events, a few pages each) and
  // the commits that overlapped the writer's checkpoint can add.
  EXPECT_LE(largest, (kLimit + 400) * (kPage + 24) + 32) << "largest WAL: " << largest;
  EXPECT_GT(store->stats().checkpoints, 0U);
  EXPECT_EQ(store->stats().checkpoint_failures, 0U);

  store.reset();
  // close() folded the WAL in and removed it.
  EXPECT_FALSE(std::filesystem::exists(path().string() + "-wal"));
  RawDb raw(path());
  EXPECT_EQ(raw.integer("SELECT count(*) FROM events"), 3000);
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

TEST_F(StoreCheckpointTest, TheTruncateAfterAnOverwriteNeverCollidesWithTheCheckpointer) {
  // The thread checkpoints after every commit, right when the writer runs its
  // TRUNCATE after a revocation's zero-overwrites. Had the two collided,
  // SQLite would answer SQLITE_BUSY to one and the WAL would keep the
  // overwritten page images after the revocation was acknowledged.
  auto store = open_store(/*checkpoint_pages=*/1, /*wal_limit_pages=*/1 << 30);
  ASSERT_TRUE(store);
  for (int i = 0; i < 60; ++i) {
    const std::string wallet = "w" + std::to_string(i);
    ASSERT_TRUE(store->write(created("d" + std::to_string(i), wallet, 100)));
    ASSERT_TRUE(store->write(revoked("r" + std::to_string(i), wallet, 200)));
    ASSERT_EQ(wal_bytes(), 0U) << "revocation " << i << " left the WAL untruncated";
  }
  EXPECT_GT(store->stats().checkpoints, 0U);
  EXPECT_EQ(store->stats().checkpoint_failures, 0U);
}

}  // namespace
