// Store contract tests (store_contract.hpp), run against every backend:
// idempotency, duplicates, payload and metadata round trips, the events feed,
// decrypt failures and their resolution, close, refusals, and leadership
// leases. The SQLite backend's own tests are store_test.cpp and its
// neighbours.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/kek.hpp"
#include "hookvault/store.hpp"
#include "manual_clock.hpp"
#include "store_contract.hpp"
#include "store_requests.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

using namespace requests;  // NOLINT(google-build-using-namespace)

WriteResult ok(Result<WriteResult> r) {
  EXPECT_TRUE(r) << (r ? "" : r.error().message());
  return r ? *r : WriteResult{};
}

std::string payload_of(Store& store, std::int64_t row_id) {
  auto p = store.event_payload(row_id);
  EXPECT_TRUE(p);
  if (!p || !*p) return "<none>";
  return std::string((*p)->reveal_string());
}

}  // namespace

// Every stored event, counted through the events feed.
std::int64_t StoreContract::count_events() {
  auto store = open_store();
  if (!store) return -1;
  std::int64_t n = 0;
  EventQuery q;
  q.limit = 1000;
  for (;;) {
    auto page = store->list_events(q);
    EXPECT_TRUE(page);
    if (!page || page->events.empty()) return n;
    n += static_cast<std::int64_t>(page->events.size());
    q.after = page->next;
  }
}

TEST_P(StoreContract, FirstWriteThenDuplicateChangesNothing) {
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->writable());
  const WriteResult first = ok(store->write(plain_event("evt-1", R"({"first":true})")));
  EXPECT_GT(first.row_id, 0);
  EXPECT_FALSE(first.duplicate);
  EXPECT_EQ(first.materials, MaterialsState::none);

  const WriteResult again = ok(store->write(plain_event("evt-1", R"({"second":true})")));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.row_id, first.row_id);
  EXPECT_EQ(again.materials, MaterialsState::none);
  EXPECT_EQ(count_events(), 1);
  EXPECT_EQ(payload_of(*store, first.row_id), R"({"first":true})");

  // The same key under another source is another event.
  const WriteResult other = ok(store->write(plain_event("evt-1", "{}", "nodit")));
  EXPECT_FALSE(other.duplicate);
  EXPECT_GT(other.row_id, first.row_id);

  auto found = store->find_event(kSource, "evt-1");
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, first.row_id);
  auto missing = store->find_event(kSource, "evt-2");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST_P(StoreContract, DuplicateOfADelegationReportsItsMaterialsState) {
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(ok(store->write(created("c1", "w1", 100))).materials, MaterialsState::stored);
  const WriteResult dup = ok(store->write(created("c1", "w1", 100, "other", "other")));
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.materials, MaterialsState::stored);
  auto m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->share.reveal_string(), "share");
}

TEST_P(StoreContract, PayloadRoundTripsByteForByte) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  const std::vector<std::string> bodies = {
      R"({"amount":18446744073709551616,"big":123456789012345678901234567890,"x":-0.0})",
      R"({ "spaced" :	"tab\u0000", "e":1E400 })",
      binary,
      std::string(1 << 20, 'x') + "\xff",
  };
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    ids.push_back(ok(store->write(plain_event("body-" + std::to_string(i), bodies[i]))).row_id);
  }
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    EXPECT_EQ(payload_of(*store, ids[i]), bodies[i]) << i;
  }
  auto unknown = store->event_payload(ids.back() + 100);
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
}

TEST_P(StoreContract, EventMetaRoundTrips) {
  auto store = open_store();
  ASSERT_TRUE(store);
  WriteRequest r = plain_event("meta-1");
  r.event.origin = Origin::history;
  r.event.event_name = "wallet.delegation.signature";
  r.event.wallet_id = "w-meta";
  r.event.event_time = "2025-10-01T15:13:26.348Z";
  r.event.event_time_ms = 1759331606348;
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const WriteResult w = ok(store->write(std::move(r)));
  auto meta = store->event_meta(w.row_id);
  ASSERT_TRUE(meta && *meta);
  const EventMeta& m = **meta;
  EXPECT_EQ(m.row_id, w.row_id);
  EXPECT_EQ(m.source, kSource);
  EXPECT_EQ(m.idempotency_key, "meta-1");
  EXPECT_EQ(m.event_name, "wallet.delegation.signature");
  EXPECT_EQ(m.message_id, "msg-meta-1");
  EXPECT_EQ(m.event_time, "2025-10-01T15:13:26.348Z");
  EXPECT_EQ(m.wallet_id, "w-meta");
  EXPECT_EQ(m.origin, Origin::history);
  EXPECT_EQ(m.materials, MaterialsState::none);
  EXPECT_TRUE(m.failure_reason.empty());
  EXPECT_FALSE(m.payload_redacted);
  EXPECT_GE(m.received_at_ms, before);
  EXPECT_LE(m.received_at_ms, before + 60000);
  auto none = store->event_meta(w.row_id + 1);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST_P(StoreContract, IdsIncreaseAndListEventsPagesThroughEveryEventOnce) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<std::int64_t> all, nodit;
  for (int i = 0; i < 53; ++i) {
    const bool is_nodit = i % 3 == 0;
    const auto w =
        ok(store->write(plain_event("k" + std::to_string(i), "", is_nodit ? "nodit" : kSource)));
    if (!all.empty()) {
      EXPECT_GT(w.row_id, all.back());
    }
    all.push_back(w.row_id);
    if (is_nodit) nodit.push_back(w.row_id);
  }
  const auto page_through = [&](std::optional<std::string> source, std::size_t limit) {
    std::vector<std::int64_t> seen;
    EventQuery q;
    q.source = std::move(source);
    q.limit = limit;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = store->list_events(q);
      EXPECT_TRUE(page);
      if (!page || page->events.empty()) break;
      EXPECT_LE(page->events.size(), limit);
      if (GetParam().feed_token_is_row_id) {
        EXPECT_EQ(page->next, std::to_string(page->events.back().row_id));
      }
      for (const auto& m : page->events) {
        if (q.source) {
          EXPECT_EQ(m.source, *q.source);
        }
        seen.push_back(m.row_id);
      }
      q.after = page->next;
    }
    return seen;
  };
  EXPECT_EQ(page_through(std::nullopt, 7), all);
  EXPECT_EQ(page_through(std::nullopt, 1000), all);
  EXPECT_EQ(page_through("nodit", 4), nodit);
  EXPECT_TRUE(page_through("unknown", 10).empty());

  EventQuery zero;
  zero.limit = 0;
  auto none = store->list_events(zero);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->events.empty());
}

// "0", the row id before the first (what a consumer written against SQLite
// starts from), reads from the start on every backend, as "" does.
TEST_P(StoreContract, AfterZeroReadsFromTheStartAsTheEmptyToken) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<std::int64_t> all;
  for (int i = 0; i < 3; ++i)
    all.push_back(ok(store->write(plain_event("z" + std::to_string(i)))).row_id);
  EventQuery q;
  q.after = "0";
  auto page = store->list_events(q);
  ASSERT_TRUE(page) << page.error().message();
  std::vector<std::int64_t> seen;
  for (const auto& m : page->events) seen.push_back(m.row_id);
  EXPECT_EQ(seen, all);
  q.after = page->next;
  auto rest = store->list_events(q);
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest->events.empty());
}

TEST_P(StoreContract, ConcurrentDuplicatesStoreEachKeyOnce) {
  auto store = open_store();
  ASSERT_TRUE(store);
  constexpr int kThreads = 8;
  constexpr int kKeys = 40;
  std::vector<std::vector<WriteResult>> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kKeys; ++k) {
        results[t].push_back(ok(store->write(plain_event("same-" + std::to_string(k)))));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < kKeys; ++k) {
    int firsts = 0;
    for (int t = 0; t < kThreads; ++t) {
      if (!results[t][k].duplicate) ++firsts;
      EXPECT_EQ(results[t][k].row_id, results[0][k].row_id);
    }
    EXPECT_EQ(firsts, 1) << k;
  }
  EXPECT_EQ(count_events(), kKeys);
}

TEST_P(StoreContract, DecryptFailureIsKeptAndResolvedLater) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const WriteResult w = ok(store->write(created_failed("f1", "w1", 100, "no_matching_key")));
  EXPECT_EQ(w.materials, MaterialsState::decrypt_failed);
  auto meta = store->event_meta(w.row_id);
  ASSERT_TRUE(meta && *meta);
  EXPECT_EQ((*meta)->materials, MaterialsState::decrypt_failed);
  EXPECT_EQ((*meta)->failure_reason, "no_matching_key");
  EXPECT_FALSE((*meta)->payload_redacted);
  auto failures = store->decrypt_failures();
  ASSERT_TRUE(failures);
  ASSERT_EQ(failures->size(), 1U);
  EXPECT_EQ(failures->front().row_id, w.row_id);
  EXPECT_EQ(failures->front().failure_reason, "no_matching_key");

  // Still failing: a new reason.
  auto again = store->resolve_decrypt_failure(w.row_id, std::string("auth_failed"), "cli:test");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, MaterialsState::decrypt_failed);
  meta = store->event_meta(w.row_id);
  ASSERT_TRUE(meta && *meta);
  EXPECT_EQ((*meta)->failure_reason, "auth_failed");

  // Fixed: materials stored under the event's identity.
  auto fixed = store->resolve_decrypt_failure(
      w.row_id, materials_for("w1", "late-share", "late-api"), "cli:test");
  ASSERT_TRUE(fixed) << fixed.error().message();
  EXPECT_EQ(*fixed, MaterialsState::stored);
  auto m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->event_id, "f1");
  EXPECT_EQ((*m)->created_at, iso(100));
  EXPECT_EQ((*m)->share.reveal_string(), "late-share");
  EXPECT_EQ((*m)->api_key.reveal_string(), "late-api");
  meta = store->event_meta(w.row_id);
  ASSERT_TRUE(meta && *meta);
  EXPECT_EQ((*meta)->materials, MaterialsState::stored);
  EXPECT_TRUE((*meta)->failure_reason.empty());
  failures = store->decrypt_failures();
  ASSERT_TRUE(failures);
  EXPECT_TRUE(failures->empty());
  const WriteResult dup = ok(store->write(created_failed("f1", "w1", 100)));
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.materials, MaterialsState::stored);

  // Not pending any more, or unknown.
  auto twice = store->resolve_decrypt_failure(w.row_id, materials_for("w1", "x", "y"), "cli:test");
  ASSERT_FALSE(twice);
  EXPECT_EQ(errc_of(twice.error()), Errc::not_found);
  auto unknown = store->resolve_decrypt_failure(w.row_id + 1000, std::string("x"), "cli:test");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(errc_of(unknown.error()), Errc::not_found);
  const auto plain = ok(store->write(plain_event("plain"))).row_id;
  auto not_failed = store->resolve_decrypt_failure(plain, std::string("x"), "cli:test");
  ASSERT_FALSE(not_failed);
  EXPECT_EQ(errc_of(not_failed.error()), Errc::not_found);

  // A failure older than the current materials is settled at once: there is
  // nothing to resolve, and its payload is redacted.
  const WriteResult old = ok(store->write(created_failed("f0", "w1", 50)));
  EXPECT_EQ(old.materials, MaterialsState::superseded);
  auto superseded =
      store->resolve_decrypt_failure(old.row_id, materials_for("w1", "s", "a"), "cli:test");
  ASSERT_FALSE(superseded);
  EXPECT_EQ(errc_of(superseded.error()), Errc::not_found);
  m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->event_id, "f1");

  // Materials for another wallet than the event's are refused.
  const WriteResult f2 = ok(store->write(created_failed("f2", "w2", 100)));
  auto wrong = store->resolve_decrypt_failure(f2.row_id, materials_for("w3", "s", "a"), "cli:test");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(errc_of(wrong.error()), Errc::invalid_field);
}

TEST_P(StoreContract, CloseDrainsTheQueueThenRefuses) {
  StoreOpenOptions small_batches;
  small_batches.max_batch = 16;
  auto store = open_store(nullptr, small_batches);
  ASSERT_TRUE(store);
  constexpr int kCount = 300;
  std::atomic<int> succeeded{0};
  std::atomic<int> completed{0};
  for (int i = 0; i < kCount; ++i) {
    store->submit(plain_event("q" + std::to_string(i)), [&](Result<WriteResult> r) {
      if (r) succeeded.fetch_add(1);
      completed.fetch_add(1);
    });
  }
  store->close();
  EXPECT_EQ(completed.load(), kCount);
  EXPECT_EQ(succeeded.load(), kCount);
  EXPECT_FALSE(store->writable());

  // After close: completes at once, on the caller's thread.
  bool called = false;
  store->submit(plain_event("late"), [&](Result<WriteResult> r) {
    called = true;
    ASSERT_FALSE(r);
    EXPECT_EQ(errc_of(r.error()), Errc::store_unavailable);
  });
  EXPECT_TRUE(called);
  auto w = store->write(plain_event("late2"));
  ASSERT_FALSE(w);
  EXPECT_EQ(errc_of(w.error()), Errc::store_unavailable);
  auto resolve = store->resolve_decrypt_failure(1, std::string("x"), "cli:test");
  ASSERT_FALSE(resolve);
  EXPECT_EQ(errc_of(resolve.error()), Errc::store_unavailable);
  auto read = store->event_meta(1);
  ASSERT_FALSE(read);
  EXPECT_EQ(errc_of(read.error()), Errc::store_unavailable);
  store->close();  // idempotent
  store.reset();

  EXPECT_EQ(count_events(), kCount);
}

TEST_P(StoreContract, BlockingCallsFromACompletionAreRefusedInsteadOfDeadlocking) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::promise<std::pair<bool, Errc>> write_outcome;
  std::promise<std::pair<bool, Errc>> resolve_outcome;
  store->submit(plain_event("outer"), [&](Result<WriteResult>) {
    auto w = store->write(plain_event("inner"));
    write_outcome.set_value({!w, w ? Errc::internal : errc_of(w.error())});
    auto r = store->resolve_decrypt_failure(1, std::string("x"), "cli:test");
    resolve_outcome.set_value({!r, r ? Errc::internal : errc_of(r.error())});
  });
  EXPECT_EQ(write_outcome.get_future().get(), std::make_pair(true, Errc::internal));
  EXPECT_EQ(resolve_outcome.get_future().get(), std::make_pair(true, Errc::internal));
  // submit() from a completion is fine.
  std::promise<bool> nested;
  store->submit(plain_event("outer2"), [&](Result<WriteResult>) {
    store->submit(plain_event("inner2"), [&](Result<WriteResult> r) { nested.set_value(bool(r)); });
  });
  EXPECT_TRUE(nested.get_future().get());
}

TEST_P(StoreContract, InvalidRequestsAreRefusedBeforeQueueing) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto expect = [&](WriteRequest r, Errc e) {
    auto w = store->write(std::move(r));
    ASSERT_FALSE(w);
    EXPECT_EQ(errc_of(w.error()), e);
  };
  WriteRequest no_source = plain_event("x");
  no_source.event.source.clear();
  expect(std::move(no_source), Errc::missing_field);
  WriteRequest no_key = plain_event("");
  expect(std::move(no_key), Errc::missing_field);
  WriteRequest revoke_without_wallet = revoked("r", "", 100);
  expect(std::move(revoke_without_wallet), Errc::missing_field);
  WriteRequest mismatch = created("c", "w1", 100);
  mismatch.materials->wallet_id = "w2";
  expect(std::move(mismatch), Errc::invalid_field);
  WriteRequest both = created("c", "w1", 100);
  both.revoke = true;
  expect(std::move(both), Errc::internal);
  EXPECT_EQ(count_events(), 0);
}

// --- leadership leases (store.hpp: try_lease) --------------------------------

TEST_P(StoreContract, ALeaseHasOneHolderAtATimeAndIsFreeOnceReleased) {
  ManualClock clock;
  StoreOpenOptions o;
  o.clock = &clock;
  auto a = open_store(nullptr, o);
  auto b = open_store(nullptr, o);
  ASSERT_TRUE(a && b);
  auto first = a->try_lease("backfill:nodit");
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_TRUE(*first);
  EXPECT_TRUE((*first)->held());
  // Nobody else, this store included, takes it while it is held.
  auto second = b->try_lease("backfill:nodit");
  ASSERT_TRUE(second);
  EXPECT_FALSE(*second);
  auto again = a->try_lease("backfill:nodit");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  // Names are independent.
  auto other = b->try_lease("rewrap");
  ASSERT_TRUE(other && *other);
  EXPECT_TRUE((*other)->held());
  // Released: another store takes it (the row goes within the holder's next
  // look at its leases, a second at most).
  first->reset();
  EXPECT_TRUE(eventually([&] {
    auto taken = b->try_lease("backfill:nodit");
    return taken && *taken && (*taken)->held();
  }));
}

TEST_P(StoreContract, ALeaseWhoseHolderStoppedRenewingLapsesAndIsTakenOver) {
  if (!GetParam().leases_lapse_by_clock)
    GTEST_SKIP() << "this backend's leases lapse with their connection";
  // The holder's clock stands still, so its store never finds the heartbeat
  // due: a holder that stopped renewing (hung, or cut off from the
  // database). The other store's clock moves.
  ManualClock stopped;
  ManualClock moving;
  StoreOpenOptions oa;
  oa.clock = &stopped;
  StoreOpenOptions ob;
  ob.clock = &moving;
  auto a = open_store(nullptr, oa);
  auto b = open_store(nullptr, ob);
  ASSERT_TRUE(a && b);
  auto held = a->try_lease("rewrap");
  ASSERT_TRUE(held && *held);
  moving.advance(std::chrono::milliseconds(59000));
  auto early = b->try_lease("rewrap");
  ASSERT_TRUE(early);
  EXPECT_FALSE(*early) << "taken before the lease time passed";
  moving.advance(std::chrono::milliseconds(2000));
  auto taken = b->try_lease("rewrap");
  ASSERT_TRUE(taken && *taken);
  EXPECT_TRUE((*taken)->held());
  // The old holder learns it at its next renewal, and never holds it again.
  stopped.advance(std::chrono::milliseconds(11000));
  EXPECT_TRUE(eventually([&] { return !(*held)->held(); }));
  stopped.advance(std::chrono::milliseconds(11000));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE((*held)->held());
  EXPECT_TRUE((*taken)->held());
}

TEST_P(StoreContract, AHolderKeepsItsLeaseWhileItsStoreRenewsItAndLosesItForGoodOnceItLapsed) {
  if (!GetParam().leases_lapse_by_clock)
    GTEST_SKIP() << "this backend's leases lapse with their connection";
  ManualClock clock;
  StoreOpenOptions o;
  o.clock = &clock;
  o.lease_heartbeat = std::chrono::milliseconds(1000);
  o.lease_time = std::chrono::milliseconds(3000);
  auto a = open_store(nullptr, o);
  auto b = open_store(nullptr, o);
  ASSERT_TRUE(a && b);
  auto lease = a->try_lease("backfill:dynamic");
  ASSERT_TRUE(lease && *lease);
  // Well past the lease time in steps of a heartbeat: the holder's store
  // renews it, so it stays held and nobody else takes it.
  for (int i = 0; i < 5; ++i) {
    clock.advance(std::chrono::milliseconds(1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // the store's look (1 s)
    ASSERT_TRUE((*lease)->held()) << "lost after " << i + 1 << " s";
  }
  auto other = b->try_lease("backfill:dynamic");
  ASSERT_TRUE(other);
  EXPECT_FALSE(*other);
  // A jump past the lease time before a renewal: lapsed, by the holder's
  // own clock, and never held again, even once its store renews.
  clock.advance(std::chrono::milliseconds(4000));
  EXPECT_FALSE((*lease)->held());
  auto taken = b->try_lease("backfill:dynamic");
  ASSERT_TRUE(taken && *taken);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE((*lease)->held());
  EXPECT_TRUE((*taken)->held());
}

TEST_P(StoreContract, LeaseNamesAreCheckedAndAClosedStoreTakesNone) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto empty = store->try_lease("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(to_errc(empty.error()), Errc::invalid_field);
  auto huge = store->try_lease(std::string(kMaxAuditFieldBytes + 1, 'x'));
  ASSERT_FALSE(huge);
  EXPECT_EQ(to_errc(huge.error()), Errc::invalid_field);
  auto held = store->try_lease("rewrap");
  ASSERT_TRUE(held && *held);
  store->close();
  EXPECT_FALSE((*held)->held());
  auto closed = store->try_lease("rewrap");
  ASSERT_FALSE(closed);
  EXPECT_EQ(to_errc(closed.error()), Errc::store_unavailable);
}

// kek_refs() names each (KEK id, version) that a wrapped key is stored under
// once: events', materials' and the audit key's, another KEK's rows too, and
// no version nothing uses (v2 here) nor a redacted event's: exactly the pairs
// kek_usage() counts.
TEST_P(StoreContract, KekRefsNamesEachPairAWrappedKeyIsStoredUnderOnce) {
  TempDir dir;
  const auto file = dir.path() / "kek.key";
  write_file(file, SecretBytes::random(32).reveal_string(), 0600);
  std::shared_ptr<Kek> kek = open_file_kek(file);
  auto store = open_store(kek);
  ASSERT_TRUE(store);
  ok(store->write(plain_event("v1-event")));
  ok(store->write(created("v1-delegation", "wallet-1", 1000)));
  rotate_file_kek(file);
  rotate_file_kek(file);
  kek->refresh();
  ASSERT_EQ(kek->version(), 3U);
  ok(store->write(plain_event("v3-event")));
  ok(store->write(created("v3-delegation", "wallet-2", 1000)));
  // Destroys wallet-1's materials (v1) and redacts its delegation's payload.
  ok(store->write(revoked("revoke-1", "wallet-1", 2000)));
  {
    auto other = open_store(make_memory_kek(SecretBytes::random(32), "other:1"));
    ASSERT_TRUE(other);
    ok(other->write(plain_event("other-event")));
    other->close();
  }

  auto refs = store->kek_refs();
  ASSERT_TRUE(refs) << refs.error().message();
  EXPECT_EQ(*refs, (std::vector<KekRef>{{kek->id(), 1}, {kek->id(), 3}, {"other:1", 1}}));
  auto usage = store->kek_usage();
  ASSERT_TRUE(usage) << usage.error().message();
  std::vector<KekRef> counted;
  for (const auto& u : *usage) counted.push_back(KekRef{u.kek_id, u.version});
  EXPECT_EQ(*refs, counted);
  store->close();
  EXPECT_FALSE(store->kek_refs());
}

}  // namespace hookvault::testing
