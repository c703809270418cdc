// Store: the hash-chained audit log (audit.hpp). Real SQLite files in a TempDir
// and a memory KEK; tampering is done through a separate sqlite3 connection,
// as someone with write access to the file (but not the KEK) would do it.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/audit.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "raw_db.hpp"
#include "test_support.hpp"

namespace {

using hookvault::AuditEntry;
using hookvault::AuditRecord;
using hookvault::AuditVerifyResult;
using hookvault::DelegationMaterials;
using hookvault::Errc;
using hookvault::Kek;
using hookvault::Result;
using hookvault::SecretBytes;
using hookvault::SqliteStoreOptions;
using hookvault::Store;
using hookvault::WriteRequest;
using hookvault::testing::RawDb;
using hookvault::testing::TempDir;

constexpr char kSource[] = "dynamic";

Errc errc_of(const boost::system::error_code& ec) { return hookvault::to_errc(ec); }

AuditEntry entry(int i) {
  return AuditEntry{"admin:signer-" + std::to_string(i % 3), "materials.read",
                    std::string(kSource) + "/wallet-" + std::to_string(i),
                    i % 5 == 0 ? "not_found" : "ok"};
}

WriteRequest created(const std::string& key, const std::string& wallet, std::int64_t t) {
  WriteRequest r;
  r.event.source = kSource;
  r.event.idempotency_key = key;
  r.event.event_name = "wallet.delegation.created";
  r.event.event_time = "t+" + std::to_string(t);
  r.event.event_time_ms = t;
  r.event.wallet_id = wallet;
  r.event.payload = R"({"eventId":")" + key + R"("})";
  DelegationMaterials m;
  m.wallet_id = wallet;
  m.user_id = "user";
  m.chain = "EVM";
  m.share = SecretBytes::copy_of("share-" + wallet);
  m.api_key = SecretBytes::copy_of("api-" + wallet);
  r.materials = std::move(m);
  return r;
}

WriteRequest revoked(const std::string& key, const std::string& wallet, std::int64_t t) {
  WriteRequest r;
  r.event.source = kSource;
  r.event.idempotency_key = key;
  r.event.event_name = "wallet.delegation.revoked";
  r.event.event_time = "t+" + std::to_string(t);
  r.event.event_time_ms = t;
  r.event.wallet_id = wallet;
  r.event.payload = R"({"eventName":"wallet.delegation.revoked"})";
  r.revoke = true;
  return r;
}

class StoreAuditTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open_store(std::shared_ptr<const Kek> kek = nullptr) {
    SqliteStoreOptions options;
    options.path = path();
    auto store = open_sqlite_store(options, kek ? std::move(kek) : kek_);
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }
  std::filesystem::path path() const { return dir_ / "hookvault.db"; }

  // Appends entries 1..n and checks they got seq 1..n.
  void append(Store& store, int n, int first = 1) {
    for (int i = first; i < first + n; ++i) {
      auto seq = store.audit_sync(entry(i));
      ASSERT_TRUE(seq) << seq.error().message();
      EXPECT_EQ(*seq, i);
    }
  }

  static AuditVerifyResult verified(const Store& store) {
    auto r = store.verify_audit();
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? *r : AuditVerifyResult{false, -1, std::nullopt, "verify_audit failed"};
  }

  static void expect_ok(const Store& store, std::int64_t records) {
    const auto r = verified(store);
    EXPECT_TRUE(r.ok) << r.problem;
    EXPECT_EQ(r.records, records);
    EXPECT_FALSE(r.first_bad_seq);
    EXPECT_EQ(r.problem, "");
  }

  static void expect_broken(const Store& store, std::int64_t first_bad, const std::string& words,
                            const std::string& what = "") {
    const auto r = verified(store);
    EXPECT_FALSE(r.ok) << what;
    EXPECT_EQ(r.first_bad_seq.value_or(-1), first_bad) << what << ": " << r.problem;
    EXPECT_NE(r.problem.find(words), std::string::npos) << what << ": " << r.problem;
  }

  TempDir dir_;
  std::shared_ptr<const Kek> kek_ = hookvault::make_memory_kek(SecretBytes::random(32), "test:1");
};

TEST_F(StoreAuditTest, EmptyLogVerifies) {
  auto store = open_store();
  ASSERT_TRUE(store);
  expect_ok(*store, 0);
  auto records = store->audit_records(0, 10);
  ASSERT_TRUE(records);
  EXPECT_TRUE(records->empty());
}

TEST_F(StoreAuditTest, ChainOfFiftyVerifiesAndReadsBackInOrder) {
  auto store = open_store();
  ASSERT_TRUE(store);
  append(*store, 50);
  expect_ok(*store, 50);

  auto all = store->audit_records(0, 1000);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 50U);
  std::set<std::string> hashes;
  std::int64_t last_time = 0;
  for (std::size_t i = 0; i < all->size(); ++i) {
    const AuditRecord& r = (*all)[i];
    const AuditEntry e = entry(static_cast<int>(i) + 1);
    EXPECT_EQ(r.seq, static_cast<std::int64_t>(i) + 1);
    EXPECT_EQ(r.entry.actor, e.actor);
    EXPECT_EQ(r.entry.action, e.action);
    EXPECT_EQ(r.entry.subject, e.subject);
    EXPECT_EQ(r.entry.outcome, e.outcome);
    EXPECT_EQ(r.hash_hex.size(), 64U);
    EXPECT_GE(r.time_ms, last_time);
    last_time = r.time_ms;
    hashes.insert(r.hash_hex);
  }
  EXPECT_EQ(hashes.size(), 50U);  // identical entries still chain to distinct MACs

  auto page = store->audit_records(45, 3);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 3U);
  EXPECT_EQ(page->front().seq, 46);
  EXPECT_EQ(page->back().seq, 48);
  auto none = store->audit_records(50, 10);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreAuditTest, AsyncAppendsCompleteAfterCommitWithDistinctSeqs) {
  auto store = open_store();
  ASSERT_TRUE(store);
  constexpr int kCount = 64;
  std::mutex mu;
  std::vector<std::int64_t> seqs;
  std::latch done(kCount);
  for (int i = 0; i < kCount; ++i) {
    store->audit(entry(i), [&](Result<std::int64_t> r) {
      {
        std::lock_guard lock(mu);
        seqs.push_back(r ? *r : -1);
      }
      done.count_down();
    });
  }
  done.wait();
  std::sort(seqs.begin(), seqs.end());
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(seqs[i], i + 1);
  expect_ok(*store, kCount);

  // Blocking from a completion would wait for its own thread: refused.
  std::promise<Errc> inner;
  store->audit(entry(0), [&](Result<std::int64_t>) {
    auto r = store->audit_sync(entry(1));
    inner.set_value(r ? Errc::invalid_field : errc_of(r.error()));
  });
  EXPECT_EQ(inner.get_future().get(), Errc::internal);
}

TEST_F(StoreAuditTest, InvalidEntriesAreRefusedAndNothingIsAppended) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto refused = [&](AuditEntry e, Errc expected) {
    auto r = store->audit_sync(std::move(e));
    ASSERT_FALSE(r);
    EXPECT_EQ(errc_of(r.error()), expected);
  };
  refused(AuditEntry{"", "materials.read", "s", "ok"}, Errc::missing_field);
  refused(AuditEntry{"cli:root", "", "s", "ok"}, Errc::missing_field);
  refused(AuditEntry{"cli:root", "materials.read", "s", ""}, Errc::missing_field);
  refused(AuditEntry{"cli:root", "materials.read",
                     std::string(hookvault::kMaxAuditFieldBytes + 1, 'x'), "ok"},
          Errc::invalid_field);
  // An empty subject, and fields of exactly the maximum size, are fine.
  auto ok = store->audit_sync(
      AuditEntry{std::string(hookvault::kMaxAuditFieldBytes, 'a'), "reprocess", "", "ok"});
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 1);
  expect_ok(*store, 1);
}

TEST_F(StoreAuditTest, EditingAnyFieldOfAnyRecordIsNamed) {
  auto store = open_store();
  ASSERT_TRUE(store);
  append(*store, 50);
  RawDb raw(path());
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"time_ms", "time_ms + 1"},    {"actor", "'admin:someone-else'"}, {"action", "'event.read'"},
      {"subject", "subject || 'x'"}, {"outcome", "'denied'"},           {"mac", "randomblob(32)"},
  };
  for (const std::int64_t seq : {1, 2, 17, 49, 50}) {
    for (const auto& [column, value] : edits) {
      const std::string where = " FROM audit WHERE seq = " + std::to_string(seq);
      const std::string original = raw.text("SELECT quote(" + column + ")" + where);
      raw.exec("UPDATE audit SET " + column + " = " + value +
               " WHERE seq = " + std::to_string(seq));
      expect_broken(*store, seq, "it was edited", column + " of record " + std::to_string(seq));
      raw.exec("UPDATE audit SET " + column + " = " + original +
               " WHERE seq = " + std::to_string(seq));
      expect_ok(*store, 50);
    }
  }
}

TEST_F(StoreAuditTest, RenumberingARecordIsNamed) {
  auto store = open_store();
  ASSERT_TRUE(store);
  append(*store, 50);
  {
    RawDb raw(path());
    raw.exec("UPDATE audit SET seq = 1000 WHERE seq = 17");
  }
  expect_broken(*store, 17, "record 17 is missing");
  {
    RawDb raw(path());
    raw.exec("UPDATE audit SET seq = 17 WHERE seq = 1000");
    raw.exec("UPDATE audit SET seq = 51 WHERE seq = 50");  // moved beyond the head
  }
  expect_broken(*store, 50, "record 50 is missing");
}

TEST_F(StoreAuditTest, DeletingMiddleRecordsIsNamed) {
  auto store = open_store();
  ASSERT_TRUE(store);
  append(*store, 50);
  {
    RawDb raw(path());
    raw.exec("DELETE FROM audit WHERE seq = 20");
  }
  expect_broken(*store, 20, "record 20 is missing");
  EXPECT_EQ(verified(*store).records, 49);
  {
    RawDb raw(path());
    raw.exec("DELETE FROM audit WHERE seq IN (21, 22)");
  }
  expect_broken(*store, 20, "records 20 to 22 are missing");
  {
    RawDb raw(path());
    raw.exec("DELETE FROM audit WHERE seq = 1");
  }
  expect_broken(*store, 1, "record 1 is missing");
}

TEST_F(StoreAuditTest, DeletingTheNewestRecordsIsNoticed) {
  auto store = open_store();
  ASSERT_TRUE(store);
  append(*store, 50);
  {
    RawDb raw(path());
    raw.exec("DELETE FROM audit WHERE seq = 50");
  }
  expect_broken(*store, 50, "the newest record was deleted");
  {
    RawDb raw(path());
    raw.exec("DELETE FROM audit WHERE seq >= 45");
  }
  expect_broken(*store, 50, "records 45 to 50 are missing");

  // Moving the head back to the last remaining record needs its tag: refused.
  {
    RawDb raw(path());
    raw.exec(
        "UPDATE meta SET value = '44' WHERE key = 'audit_head_seq';"
        "UPDATE meta SET value = (SELECT lower(hex(mac)) FROM audit WHERE seq = 44) "
        "WHERE key = 'audit_head_mac'");
  }
  expect_broken(*store, 44, "does not match its tag");
  // ... and the writer refuses to extend a chain whose head was altered.
  auto refused = store->audit_sync(entry(99));
  ASSERT_FALSE(refused);
  EXPECT_EQ(errc_of(refused.error()), Errc::store_corrupt);
}

TEST_F(StoreAuditTest, AppendsAfterADeletedTailStillShowTheGap) {
  auto store = open_store();
  ASSERT_TRUE(store);
  append(*store, 10);
  {
    RawDb raw(path());
    raw.exec("DELETE FROM audit WHERE seq = 10");
  }
  // The writer chains from the head, not from the table: the gap stays visible.
  append(*store, 2, 11);
  expect_broken(*store, 10, "record 10 is missing");
}

TEST_F(StoreAuditTest, SwappedRecordsAreNamed) {
  auto store = open_store();
  ASSERT_TRUE(store);
  append(*store, 50);
  const auto swap = [&](int a, int b) {
    RawDb raw(path());
    raw.exec("CREATE TEMP TABLE keep AS SELECT * FROM audit WHERE seq IN (" + std::to_string(a) +
             ", " + std::to_string(b) +
             ");"
             "UPDATE audit SET (time_ms, actor, action, subject, outcome, mac) = "
             "(SELECT time_ms, actor, action, subject, outcome, mac FROM keep "
             " WHERE keep.seq = " +
             std::to_string(a + b) + " - audit.seq) WHERE seq IN (" + std::to_string(a) + ", " +
             std::to_string(b) + "); DROP TABLE keep;");
  };
  swap(10, 30);
  expect_broken(*store, 10, "record 10 holds the contents of record 30");
  swap(10, 30);
  expect_ok(*store, 50);
  swap(24, 25);  // neighbours
  expect_broken(*store, 24, "record 24 holds the contents of record 25");
  swap(24, 25);
  swap(1, 50);  // the first and the newest
  expect_broken(*store, 1, "record 1 holds the contents of record 50");
}

TEST_F(StoreAuditTest, RevocationAppendsItsRecordInTheSameTransaction) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(created("c1", "w1", 100)));
  ASSERT_TRUE(store->audit_sync(entry(1)));
  auto revoke = store->write(revoked("r1", "w1", 200));
  ASSERT_TRUE(revoke) << revoke.error().message();

  auto records = store->audit_records(0, 10);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 2U);
  const AuditRecord& r = records->back();
  EXPECT_EQ(r.seq, 2);
  EXPECT_EQ(r.entry.actor, "source:dynamic");
  EXPECT_EQ(r.entry.action, "revoke");
  EXPECT_EQ(r.entry.subject, "w1");
  EXPECT_EQ(r.entry.outcome, "ok");
  expect_ok(*store, 2);

  // A duplicate delivery applies nothing and audits nothing.
  auto again = store->write(revoked("r1", "w1", 200));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  expect_ok(*store, 2);

  // When the record cannot be appended, the revocation is rolled back with it.
  ASSERT_TRUE(store->write(created("c2", "w2", 100)));
  std::string tag;
  {
    RawDb raw(path());
    tag = raw.text("SELECT value FROM meta WHERE key = 'audit_head_tag'");
    raw.exec("UPDATE meta SET value = '" + std::string(64, '0') + "' WHERE key = 'audit_head_tag'");
  }
  auto failed = store->write(revoked("r2", "w2", 200));
  ASSERT_FALSE(failed);
  EXPECT_EQ(errc_of(failed.error()), Errc::store_corrupt);
  auto still = store->materials(kSource, "w2");
  ASSERT_TRUE(still);
  EXPECT_TRUE(still->has_value());  // not revoked
  auto no_event = store->find_event(kSource, "r2");
  ASSERT_TRUE(no_event);
  EXPECT_FALSE(no_event->has_value());  // nor stored
  {
    RawDb raw(path());
    EXPECT_EQ(raw.integer("SELECT count(*) FROM tombstones WHERE wallet_id = 'w2'"), 0);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM audit"), 2);
    raw.exec("UPDATE meta SET value = '" + tag + "' WHERE key = 'audit_head_tag'");
  }
  // The provider's retry succeeds once the head is intact again.
  ASSERT_TRUE(store->write(revoked("r2", "w2", 200)));
  auto gone = store->materials(kSource, "w2");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
  auto after = store->audit_records(2, 10);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1U);
  EXPECT_EQ(after->front().entry.subject, "w2");
  expect_ok(*store, 3);
}

TEST_F(StoreAuditTest, TwoStoresOnOneFileAppendOneChain) {
  auto first = open_store();
  auto second = open_store();
  ASSERT_TRUE(first && second);
  constexpr int kThreadsPerStore = 3;
  constexpr int kPerThread = 40;
  std::mutex mu;
  std::vector<std::int64_t> seqs;
  std::vector<std::thread> threads;
  std::latch start(2 * kThreadsPerStore);
  for (Store* store : {first.get(), second.get()}) {
    for (int t = 0; t < kThreadsPerStore; ++t) {
      threads.emplace_back([&, store, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kPerThread; ++i) {
          auto seq = store->audit_sync(entry(t * kPerThread + i));
          std::lock_guard lock(mu);
          seqs.push_back(seq ? *seq : -1);
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  // Revocations from either store join the same chain.
  ASSERT_TRUE(first->write(created("c1", "w1", 100)));
  ASSERT_TRUE(second->write(revoked("r1", "w1", 200)));

  constexpr std::int64_t kTotal = 2 * kThreadsPerStore * kPerThread;
  std::sort(seqs.begin(), seqs.end());
  ASSERT_EQ(seqs.size(), static_cast<std::size_t>(kTotal));
  for (std::int64_t i = 0; i < kTotal; ++i) EXPECT_EQ(seqs[i], i + 1);  // no -1, no duplicate
  expect_ok(*first, kTotal + 1);
  expect_ok(*second, kTotal + 1);
}

TEST_F(StoreAuditTest, ReopeningKeepsTheChainAndTheKey) {
  std::string wrapped_key;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    append(*store, 5);
    store->close();
    RawDb raw(path());
    wrapped_key = raw.text("SELECT value FROM meta WHERE key = 'audit_key'");
    EXPECT_EQ(wrapped_key.size(), 120U);  // hex of the 60-byte wrap
    EXPECT_EQ(raw.text("SELECT value FROM meta WHERE key = 'audit_key_kek_id'"), "test:1");
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  expect_ok(*store, 5);
  append(*store, 3, 6);
  expect_ok(*store, 8);
  RawDb raw(path());
  EXPECT_EQ(raw.text("SELECT value FROM meta WHERE key = 'audit_key'"), wrapped_key);
  EXPECT_EQ(raw.integer("SELECT value FROM meta WHERE key = 'audit_head_seq'"), 8);
}

TEST_F(StoreAuditTest, AnotherKekCannotVerifyOrAppend) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    append(*store, 5);
    ASSERT_TRUE(store->write(created("c1", "w1", 100)));
  }
  const auto expect_refused = [&](std::shared_ptr<const Kek> kek, Errc expected) {
    auto store = open_store(std::move(kek));  // opens: other reads report their own errors
    ASSERT_TRUE(store);
    auto verify = store->verify_audit();
    ASSERT_FALSE(verify);
    EXPECT_EQ(errc_of(verify.error()), expected);
    auto append = store->audit_sync(entry(6));
    ASSERT_FALSE(append);
    EXPECT_EQ(errc_of(append.error()), expected);
    // An unauditable revocation is not applied.
    auto revoke = store->write(revoked("r1", "w1", 200));
    ASSERT_FALSE(revoke);
    EXPECT_EQ(errc_of(revoke.error()), expected);
    auto records = store->audit_records(0, 100);  // metadata stays listable
    ASSERT_TRUE(records);
    EXPECT_EQ(records->size(), 5U);
  };
  expect_refused(hookvault::make_memory_kek(SecretBytes::random(32), "test:2"),
                 Errc::kek_unavailable);
  expect_refused(hookvault::make_memory_kek(SecretBytes::random(32), "test:1"),
                 Errc::store_corrupt);
  auto store = open_store();  // the right KEK still verifies: nothing was changed
  ASSERT_TRUE(store);
  expect_ok(*store, 5);
}

TEST_F(StoreAuditTest, ARemovedAuditKeyIsNotReplaced) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    append(*store, 3);
  }
  {
    RawDb raw(path());
    raw.exec("DELETE FROM meta WHERE key LIKE 'audit_key%'");
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto r = verified(*store);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.records, 3);
  EXPECT_NE(r.problem.find("audit key is missing"), std::string::npos) << r.problem;
  auto append = store->audit_sync(entry(4));
  ASSERT_FALSE(append);
  EXPECT_EQ(errc_of(append.error()), Errc::store_corrupt);
  RawDb raw(path());
  EXPECT_EQ(raw.integer("SELECT count(*) FROM meta WHERE key LIKE 'audit_key%'"), 0);
}

TEST_F(StoreAuditTest, AVersionOneFileIsUpgraded) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->write(created("c1", "w1", 100)));
  }
  {
    // What version 1 left behind: no audit table, no audit keys.
    RawDb raw(path());
    raw.exec(
        "DROP TABLE audit; DELETE FROM meta WHERE key LIKE 'audit_%';"
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'");
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  {
    RawDb raw(path());
    EXPECT_EQ(raw.integer("SELECT value FROM meta WHERE key = 'schema_version'"), 2);
    EXPECT_EQ(raw.integer("SELECT value FROM meta WHERE key = 'audit_head_seq'"), 0);
  }
  expect_ok(*store, 0);
  append(*store, 2);
  expect_ok(*store, 2);
  auto m = store->materials(kSource, "w1");
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->share.reveal_string(), "share-w1");
}

TEST_F(StoreAuditTest, NoSecretReachesTheAuditLog) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(created("c1", "w1", 100)));
  ASSERT_TRUE(store->write(revoked("r1", "w1", 200)));
  RawDb raw(path());
  EXPECT_EQ(raw.integer("SELECT count(*) FROM audit WHERE actor || action || subject || outcome "
                        "LIKE '%share-%' OR actor || action || subject || outcome LIKE '%api-%'"),
            0);
}

}  // namespace

// A file written by an earlier hookvault (tests/unit/data/store_v2_written_by_de02e08.sql,
// whose header says how) still opens with this code: its payloads and
// materials decrypt, its revocation holds, its audit chain verifies and keeps
// growing. Catches any change to the envelope, key wrapping or audit MAC layout
// that would strand existing stores.
TEST(StoreCompatibility, OpensVerifiesAndExtendsAFileOfSchemaVersionTwo) {
  TempDir dir;
  const auto db = dir.path() / "hookvault.db";
  {
    const std::string dump =
        hookvault::testing::read_file(std::filesystem::path(HOOKVAULT_SOURCE_DIR) /
                                      "tests/unit/data/store_v2_written_by_de02e08.sql");
    ASSERT_FALSE(dump.empty());
    RawDb(db, RawDb::Mode::create).exec(dump);
    ASSERT_FALSE(::testing::Test::HasFailure());
  }
  SqliteStoreOptions options;
  options.path = db;
  auto opened = open_sqlite_store(
      options, hookvault::make_memory_kek(SecretBytes::copy_of("hookvault-fixture-kek-0123456789"),
                                          "fixture:1"));
  ASSERT_TRUE(opened) << opened.error().message();
  Store& store = **opened;

  auto p1 = store.find_event(kSource, "p1");
  ASSERT_TRUE(p1 && *p1);
  auto payload = store.event_payload(**p1);
  ASSERT_TRUE(payload && *payload);
  EXPECT_EQ((*payload)->reveal_string(), R"({"eventId":"p1","body":"payload of p1"})");

  auto w1 = store.materials(kSource, "w1");
  ASSERT_TRUE(w1 && *w1) << (w1 ? "no row" : w1.error().message());
  EXPECT_EQ((*w1)->share.reveal_string(), "share of w1");
  EXPECT_EQ((*w1)->api_key.reveal_string(), "api key of w1");
  EXPECT_EQ((*w1)->event_id, "c1");
  auto w2 = store.materials(kSource, "w2");
  ASSERT_TRUE(w2);
  EXPECT_FALSE(*w2);  // revoked by r2

  auto verify = store.verify_audit();
  ASSERT_TRUE(verify);
  EXPECT_TRUE(verify->ok) << verify->problem;
  EXPECT_EQ(verify->records, 4);
  auto records = store.audit_records(0, 10);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 4U);
  EXPECT_EQ((*records)[2].entry.actor, "admin:signer-\xc3\xa9");
  EXPECT_EQ((*records)[3].entry.outcome, "decrypt_failed: no \"key\"\n");

  auto seq = store.audit_sync(AuditEntry{"cli:test", "materials.read", "dynamic/w1", "ok"});
  ASSERT_TRUE(seq) << seq.error().message();
  EXPECT_EQ(*seq, 5);
  auto after = store.verify_audit();
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->ok) << after->problem;
  EXPECT_EQ(after->records, 5);
}
