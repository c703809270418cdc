// KEK rotation in the store (store.hpp, schema.hpp: KEK ROTATION): records of
// an old version keep opening after a rotation, rewrap_batch() moves every
// wrapped key (events, materials, the audit key) to the current version and
// changes nothing else, an interrupted rewrap continues where it stopped, and
// a daemon-like writer keeps working while another Store rewraps the file.
// Real SQLite files and a file KEK (keyring) in a TempDir.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "raw_db.hpp"
#include "test_support.hpp"

namespace {

using hookvault::AuditEntry;
using hookvault::DelegationMaterials;
using hookvault::Errc;
using hookvault::Kek;
using hookvault::KekUsage;
using hookvault::Result;
using hookvault::SecretBytes;
using hookvault::SqliteStoreOptions;
using hookvault::Store;
using hookvault::WriteRequest;
using hookvault::testing::RawDb;
using hookvault::testing::TempDir;

constexpr char kSource[] = "dynamic";

WriteRequest plain(const std::string& key) {
  WriteRequest r;
  r.event.source = kSource;
  r.event.idempotency_key = key;
  r.event.event_name = "user.created";
  r.event.event_time = "t";
  r.event.event_time_ms = 1000;
  r.event.payload = R"({"eventId":")" + key + R"(","body":"payload of )" + key + R"("})";
  return r;
}

WriteRequest created(const std::string& key, const std::string& wallet, std::int64_t t) {
  WriteRequest r = plain(key);
  r.event.event_name = "wallet.delegation.created";
  r.event.event_time_ms = t;
  r.event.wallet_id = wallet;
  DelegationMaterials m;
  m.wallet_id = wallet;
  m.user_id = "user-" + wallet;
  m.chain = "EVM";
  m.share = SecretBytes::copy_of("share of " + key);
  m.api_key = SecretBytes::copy_of("api key of " + key);
  r.materials = std::move(m);
  return r;
}

WriteRequest revoked(const std::string& key, const std::string& wallet, std::int64_t t) {
  WriteRequest r = plain(key);
  r.event.event_name = "wallet.delegation.revoked";
  r.event.event_time_ms = t;
  r.event.wallet_id = wallet;
  r.revoke = true;
  return r;
}

class StoreKekTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hookvault::testing::write_file(kek_file(), SecretBytes::random(32).reveal_string());
    kek_ = hookvault::open_file_kek(kek_file());
  }

  std::filesystem::path kek_file() const { return dir_ / "kek.key"; }
  std::filesystem::path path() const { return dir_ / "hookvault.db"; }

  std::unique_ptr<Store> open_store(std::shared_ptr<const Kek> kek = nullptr) {
    SqliteStoreOptions options;
    options.path = path();
    auto store = open_sqlite_store(options, kek ? std::move(kek) : kek_);
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }

  // A rotation as `keys rotate` + SIGHUP do it.
  void rotate() {
    const auto next = hookvault::rotate_file_kek(kek_file());
    kek_->refresh();
    ASSERT_EQ(kek_->version(), next);
  }

  static std::map<std::uint32_t, KekUsage> usage(const Store& store) {
    auto u = store.kek_usage();
    EXPECT_TRUE(u) << (u ? "" : u.error().message());
    std::map<std::uint32_t, KekUsage> out;
    if (u) {
      for (auto& row : *u) out[row.version] = row;
    }
    return out;
  }

  // Rewraps until nothing older remains; returns the number of keys moved.
  // Like `keys rewrap`, retries a batch whose commit failed with
  // store_unavailable: SQLite's busy handler is not fair, and a writer that
  // commits back to back (the test's "daemon") can keep another connection's
  // BEGIN IMMEDIATE waiting past its busy timeout.
  static std::uint64_t rewrap_all(Store& store, std::size_t batch) {
    std::uint64_t total = 0;
    int retries = 0;
    bool finished = false;
    for (int i = 0; i < 100000 && !finished; ++i) {
      auto p = store.rewrap_batch(batch);
      if (!p && hookvault::to_errc(p.error()) == Errc::store_unavailable && retries++ < 5) {
        continue;
      }
      EXPECT_TRUE(p) << (p ? "" : p.error().message());
      if (!p) return total;
      EXPECT_LE(p->rewrapped, batch);
      total += p->rewrapped;
      finished = p->remaining == 0;
    }
    EXPECT_TRUE(finished) << "keys still remain after " << total << " rewrapped";
    return total;
  }

  // Every column of every table except the wrapped keys and their versions.
  std::string everything_but_wrapped_keys() {
    RawDb raw(path(), RawDb::Mode::read_only);
    return raw.rows(
               "SELECT id, source, idem_key, event_name, message_id, event_time, event_time_ms, "
               "wallet_id, origin, received_at_ms, materials_state, failure_reason, kek_id, "
               "hex(payload), wrapped_dek IS NULL FROM events ORDER BY id") +
           raw.rows(
               "SELECT source, wallet_id, user_id, chain, share_set_id, event_id, created_at, "
               "created_at_ms, kek_id, hex(share), hex(api_key) FROM materials "
               "ORDER BY source, wallet_id") +
           raw.rows("SELECT * FROM tombstones ORDER BY source, wallet_id") +
           raw.rows(
               "SELECT seq, time_ms, actor, action, subject, outcome, hex(mac) FROM audit "
               "ORDER BY seq") +
           raw.rows(
               "SELECT key, value FROM meta WHERE key NOT IN ('audit_key', "
               "'audit_key_kek_version', 'writer_probe_ms') ORDER BY key") +
           raw.rows("SELECT * FROM sqlite_sequence");
  }

  std::string wrapped_keys() {
    RawDb raw(path(), RawDb::Mode::read_only);
    return raw.rows("SELECT id, kek_version, hex(wrapped_dek) FROM events ORDER BY id") +
           raw.rows(
               "SELECT wallet_id, kek_version, hex(wrapped_dek) FROM materials "
               "ORDER BY wallet_id") +
           raw.rows(
               "SELECT value FROM meta WHERE key IN ('audit_key', 'audit_key_kek_version') "
               "ORDER BY key");
  }

  // Every payload and every materials row opens with `kek`, as written.
  void expect_everything_opens(const std::shared_ptr<const Kek>& kek, int events, int wallets) {
    auto store = open_store(kek);
    ASSERT_TRUE(store);
    int opened = 0;
    for (std::int64_t id = 1; id <= events; ++id) {
      auto meta = store->event_meta(id);
      ASSERT_TRUE(meta && *meta) << id;
      auto payload = store->event_payload(id);
      ASSERT_TRUE(payload) << id << ": " << payload.error().message();
      if (!*payload) continue;  // redacted by a revocation
      EXPECT_NE((*payload)->reveal_string().find("payload of " + (*meta)->idempotency_key),
                std::string::npos);
      ++opened;
    }
    EXPECT_GT(opened, 0);
    int materials_opened = 0;
    for (int w = 0; w < wallets; ++w) {
      auto m = store->materials(kSource, "w" + std::to_string(w));
      ASSERT_TRUE(m) << w << ": " << m.error().message();
      if (!*m) continue;  // revoked
      EXPECT_EQ((*m)->share.reveal_string(), "share of " + (*m)->event_id);
      EXPECT_EQ((*m)->api_key.reveal_string(), "api key of " + (*m)->event_id);
      ++materials_opened;
    }
    EXPECT_GT(materials_opened, 0);
    auto verify = store->verify_audit();
    ASSERT_TRUE(verify) << verify.error().message();
    EXPECT_TRUE(verify->ok) << verify->problem;
  }

  // 30 plain events, 10 delegations, a revocation of w3 and 3 audit records.
  void fill(Store& store, const std::string& prefix) {
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(store.write(plain(prefix + "p" + std::to_string(i))));
    }
    for (int w = 0; w < 10; ++w) {
      ASSERT_TRUE(store.write(created(prefix + "c" + std::to_string(w), "w" + std::to_string(w),
                                      1000 + w + (prefix == "a" ? 0 : 100))));
    }
    ASSERT_TRUE(store.write(revoked(prefix + "r3", "w3", 5000 + (prefix == "a" ? 0 : 100))));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(store.audit_sync(AuditEntry{"cli:test", "event.read", prefix, "ok"}));
    }
  }

  TempDir dir_;
  std::shared_ptr<Kek> kek_;
};

TEST_F(StoreKekTest, AfterARotationNewRecordsUseTheNewVersionAndOldOnesStillOpen) {
  auto store = open_store();
  ASSERT_TRUE(store);
  fill(*store, "a");
  auto before = usage(*store);
  ASSERT_EQ(before.size(), 1U);
  EXPECT_EQ(before[1].kek_id, kek_->id());
  EXPECT_EQ(before[1].events, 41U - 1U);  // w3's delegation was redacted: no key
  EXPECT_EQ(before[1].materials, 9U);
  EXPECT_TRUE(before[1].audit_key);

  rotate();
  // Newer delegations replace the materials of every wallet but w3, and
  // redact the payloads of the 9 delegations they replace.
  fill(*store, "b");
  auto after = usage(*store);
  ASSERT_EQ(after.size(), 2U);
  EXPECT_EQ(after[1].events, 40U - 9U);
  EXPECT_EQ(after[1].materials, 0U);
  EXPECT_TRUE(after[1].audit_key);  // until rewrapped
  EXPECT_EQ(after[2].events, 40U);
  EXPECT_EQ(after[2].materials, 9U);
  EXPECT_FALSE(after[2].audit_key);
  store->close();
  expect_everything_opens(kek_, 82, 10);
}

TEST_F(StoreKekTest, RewrapMovesEveryWrappedKeyAndChangesNothingElse) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    fill(*store, "a");
  }
  const std::string content = everything_but_wrapped_keys();
  const std::string keys_before = wrapped_keys();
  rotate();
  auto store = open_store();
  ASSERT_TRUE(store);
  // 40 event keys + 9 materials keys + the audit key.
  EXPECT_EQ(rewrap_all(*store, 8), 50U);
  auto u = usage(*store);
  ASSERT_EQ(u.size(), 1U);
  EXPECT_EQ(u.count(1), 0U);
  EXPECT_EQ(u[2].events, 40U);
  EXPECT_EQ(u[2].materials, 9U);
  EXPECT_TRUE(u[2].audit_key);
  // Nothing to do any more.
  auto again = store->rewrap_batch(100);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->rewrapped, 0U);
  EXPECT_EQ(again->remaining, 0U);
  EXPECT_EQ(again->version, 2U);
  store->close();

  // Payload and materials ciphertext, the audit chain, metadata: byte for byte.
  EXPECT_EQ(everything_but_wrapped_keys(), content);
  const std::string keys_after = wrapped_keys();
  EXPECT_NE(keys_after, keys_before);
  RawDb raw(path(), RawDb::Mode::read_only);
  EXPECT_EQ(raw.rows("SELECT DISTINCT kek_version FROM events WHERE kek_version IS NOT NULL"),
            "2\n");
  EXPECT_EQ(raw.rows("SELECT DISTINCT kek_version FROM materials"), "2\n");
  EXPECT_EQ(raw.rows("SELECT value FROM meta WHERE key = 'audit_key_kek_version'"), "2\n");

  // With version 1 gone from the keyring, everything still opens and verifies.
  hookvault::retire_file_kek_version(kek_file(), 1);
  const std::shared_ptr<const Kek> only_v2 = hookvault::open_file_kek(kek_file());
  ASSERT_EQ(only_v2->versions(), std::vector<std::uint32_t>{2});
  expect_everything_opens(only_v2, 41, 10);
  auto reopened = open_store(only_v2);
  ASSERT_TRUE(reopened);
  EXPECT_TRUE(reopened->audit_sync(AuditEntry{"cli:test", "kek.retire", "v1", "ok"}));
  EXPECT_TRUE(reopened->write(revoked("r4", "w4", 9000)));  // a revocation appends too
}

TEST_F(StoreKekTest, AnInterruptedRewrapContinuesWhereItStopped) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    fill(*store, "a");
  }
  rotate();
  std::uint64_t done = 0;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    for (int i = 0; i < 3; ++i) {
      auto p = store->rewrap_batch(7);
      ASSERT_TRUE(p) << p.error().message();
      EXPECT_EQ(p->rewrapped, 7U);
      done += p->rewrapped;
      EXPECT_EQ(p->remaining, 50U - done);
    }
    // The process goes away here; its three batches are committed.
  }
  {
    const std::shared_ptr<const Kek> fresh = hookvault::open_file_kek(kek_file());
    auto store = open_store(fresh);
    ASSERT_TRUE(store);
    auto u = usage(*store);
    EXPECT_EQ(u[1].events + u[1].materials + (u[1].audit_key ? 1 : 0), 50U - done);
    EXPECT_EQ(rewrap_all(*store, 7), 50U - done);
  }
  expect_everything_opens(kek_, 41, 10);
}

TEST_F(StoreKekTest, ADaemonKeepsWritingRevokingAndAuditingWhileAnotherStoreRewraps) {
  auto daemon = open_store();
  ASSERT_TRUE(daemon);
  fill(*daemon, "a");
  rotate();  // the daemon's KEK (SIGHUP) and the rewrapping process's alike
  auto cli = open_store(hookvault::open_file_kek(kek_file()));
  ASSERT_TRUE(cli);

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    // Newer delegations for the same wallets race the rewrap of their
    // materials rows; revocations zero and redact rows being rewrapped.
    for (int i = 0; !stop.load() || i < 50; ++i) {
      const std::string w = "w" + std::to_string(i % 10);
      if (!daemon->write(created("d" + std::to_string(i), w, 2000 + i))) ++failures;
      if (i % 7 == 0 && !daemon->write(revoked("dr" + std::to_string(i), w, 2000 + i))) {
        ++failures;
      }
      if (!daemon->audit_sync(AuditEntry{"admin:signer", "materials.read", w, "ok"})) ++failures;
    }
  });
  const std::uint64_t moved = rewrap_all(*cli, 5);
  stop = true;
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(moved, 0U);
  EXPECT_EQ(rewrap_all(*cli, 5), 0U);
  auto u = usage(*cli);
  EXPECT_EQ(u.count(1), 0U);
  auto verify = daemon->verify_audit();
  ASSERT_TRUE(verify);
  EXPECT_TRUE(verify->ok) << verify->problem;
  cli->close();
  daemon->close();
  RawDb raw(path(), RawDb::Mode::read_only);
  const auto events = raw.integer("SELECT count(*) FROM events");
  expect_everything_opens(kek_, events, 10);
}

TEST_F(StoreKekTest, RowsOfAnotherKekAreReportedAndLeftAlone) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->write(plain("mine")));
  }
  {
    // Another KEK id writes into the same file (its audit appends would fail).
    auto other = open_store(hookvault::make_memory_kek(SecretBytes::random(32), "other:1"));
    ASSERT_TRUE(other);
    ASSERT_TRUE(other->write(plain("theirs")));
  }
  rotate();
  auto store = open_store();
  ASSERT_TRUE(store);
  auto all = store->kek_usage();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ(all->at(0).kek_id, kek_->id());  // "file:..." sorts before "other:1"
  EXPECT_EQ(all->at(1).kek_id, "other:1");
  EXPECT_EQ(all->at(1).events, 1U);
  EXPECT_EQ(rewrap_all(*store, 10), 2U);  // "mine" and the audit key
  auto after = store->kek_usage();
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 2U);
  EXPECT_EQ(after->at(0).version, 2U);
  EXPECT_EQ(after->at(1).kek_id, "other:1");
  EXPECT_EQ(after->at(1).version, 1U);
}

TEST_F(StoreKekTest, ATamperedWrappedKeyStopsTheRewrapAndNothingOfItsBatchIsWritten) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->write(plain("p" + std::to_string(i))));
  }
  {
    RawDb raw(path());
    // Row 3's wrapped key moved onto row 4: it does not open there.
    raw.exec(
        "UPDATE events SET wrapped_dek = (SELECT wrapped_dek FROM events WHERE id = 3) "
        "WHERE id = 4");
    ASSERT_EQ(raw.integer("SELECT count(DISTINCT wrapped_dek) FROM events WHERE id IN (3, 4)"), 1);
  }
  rotate();
  auto store = open_store();
  ASSERT_TRUE(store);
  auto p = store->rewrap_batch(100);
  ASSERT_FALSE(p);
  EXPECT_EQ(hookvault::to_errc(p.error()), Errc::store_corrupt);
  EXPECT_EQ(usage(*store)[1].events, 5U);
  EXPECT_EQ(usage(*store).count(2), 0U);
}

}  // namespace
