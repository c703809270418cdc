// Retiring a KEK version through the store (store.hpp, "KEK registrations";
// src/store/sqlite/kek_registry.hpp): every open Store registers the version it wraps
// new keys under, a version is marked retired only when no live registration
// names it and no wrapped key uses it, and a key wrapped under a retired
// version is never stored. Real SQLite files and file KEKs (keyrings) in a
// TempDir; "daemon" and "cli" are two Stores on one file, as two processes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using hookvault::Errc;
using hookvault::Kek;
using hookvault::KekLease;
using hookvault::SecretBytes;
using hookvault::SqliteStoreOptions;
using hookvault::Store;
using hookvault::WriteRequest;
using hookvault::testing::eventually;
using hookvault::testing::TempDir;

WriteRequest event(const std::string& key) {
  WriteRequest r;
  r.event.source = "dynamic";
  r.event.idempotency_key = key;
  r.event.event_name = "user.created";
  r.event.payload = R"({"eventId":")" + key + R"("})";
  return r;
}

WriteRequest delegation(const std::string& key, const std::string& wallet) {
  WriteRequest r = event(key);
  r.event.event_name = "wallet.delegation.created";
  r.event.event_time_ms = 1000;
  r.event.wallet_id = wallet;
  hookvault::DelegationMaterials m;
  m.wallet_id = wallet;
  m.user_id = "user";
  m.chain = "EVM";
  m.share = SecretBytes::copy_of("share of " + key);
  m.api_key = SecretBytes::copy_of("api key of " + key);
  r.materials = std::move(m);
  return r;
}

class StoreKekRetireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hookvault::testing::write_file(kek_file(), SecretBytes::random(32).reveal_string());
  }

  std::filesystem::path kek_file() const { return dir_ / "kek.key"; }

  std::shared_ptr<Kek> open_kek() const { return hookvault::open_file_kek(kek_file()); }

  std::unique_ptr<Store> open_store(std::shared_ptr<const Kek> kek, const std::string& name,
                                    std::chrono::milliseconds lease_time = 60s) {
    SqliteStoreOptions options;
    options.path = dir_ / "hookvault.db";
    options.process_name = name;
    options.lease_time = lease_time;
    auto store = open_sqlite_store(options, std::move(kek));
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }

  static void rewrap_all(Store& store) {
    for (int i = 0; i < 1000; ++i) {
      auto p = store.rewrap_batch(100);
      ASSERT_TRUE(p) << p.error().message();
      if (p->remaining == 0) return;
    }
    FAIL() << "keys remain under older versions";
  }

  // The live leases of `store`'s database naming `version`.
  static std::vector<KekLease> leases_on(const Store& store, std::uint32_t version) {
    auto all = store.kek_leases();
    EXPECT_TRUE(all) << all.error().message();
    std::vector<KekLease> out;
    for (auto& l : *all) {
      if (l.version == version) out.push_back(l);
    }
    return out;
  }

  TempDir dir_;
};

TEST_F(StoreKekRetireTest, EveryOpenStoreRegistersItsVersionUntilItCloses) {
  auto daemon = open_store(open_kek(), "serve");
  auto cli = open_store(open_kek(), "cli");
  auto observer = open_store(open_kek(), "observer");
  auto leases = leases_on(*observer, 1);  // every other Store's, not its own
  ASSERT_EQ(leases.size(), 2U);
  const std::string pid = "(pid " + std::to_string(::getpid()) + " on ";
  for (const auto& l : leases) {
    EXPECT_EQ(l.kek_id, open_kek()->id());
    EXPECT_NE(l.description.find(pid), std::string::npos) << l.description;
    EXPECT_GT(l.expires_ms, l.heartbeat_ms);
    EXPECT_EQ(l.holder.size(), 32U);
  }
  EXPECT_NE(leases[0].holder, leases[1].holder);
  EXPECT_EQ(leases_on(*cli, 1).size(), 2U);  // the daemon's and the observer's
  daemon->close();
  leases = leases_on(*observer, 1);
  ASSERT_EQ(leases.size(), 1U);
  EXPECT_EQ(leases[0].description.rfind("cli (pid ", 0), 0U) << leases[0].description;
}

// The audit finding, below the CLI: `keys rotate`, `keys rewrap` (nothing
// left), `keys retire 1` while a daemon that has not taken version 2 still
// wraps under version 1. The retirement is refused and names the daemon; the
// daemon's next record is stored and opens; once the daemon has taken version
// 2 (its lease follows within a second) and the rewrap moved that record too,
// the retirement goes through and every record still opens without version 1.
TEST_F(StoreKekRetireTest, AVersionADaemonStillWrapsUnderIsNotRetired) {
  const auto daemon_kek = open_kek();
  auto daemon = open_store(daemon_kek, "serve");
  ASSERT_TRUE(daemon->write(delegation("before-rotate", "w1")));

  hookvault::rotate_file_kek(kek_file());  // keys rotate; the daemon is not told
  const auto cli_kek = open_kek();
  auto cli = open_store(cli_kek, "cli");
  ASSERT_EQ(cli_kek->version(), 2U);
  rewrap_all(*cli);

  auto refused = cli->retire_kek_version(1);
  ASSERT_TRUE(refused) << refused.error().message();
  EXPECT_FALSE(refused->retired);
  ASSERT_EQ(refused->holders.size(), 1U);
  EXPECT_EQ(refused->holders[0].description.rfind("serve (pid ", 0), 0U);
  EXPECT_EQ(refused->holders[0].version, 1U);
  EXPECT_EQ(refused->usage.events + refused->usage.materials, 0U);

  // The daemon keeps acknowledging records under version 1: they stay readable.
  auto after = daemon->write(delegation("after-rotate", "w2"));
  ASSERT_TRUE(after) << after.error().message();
  auto m = cli->materials("dynamic", "w2");
  ASSERT_TRUE(m && *m) << (m ? "absent" : m.error().message());
  EXPECT_EQ((*m)->api_key.reveal_string(), "api key of after-rotate");

  // The daemon takes version 2 (a refresh: SIGHUP or its own timer).
  daemon_kek->refresh();
  ASSERT_TRUE(eventually([&] { return leases_on(*cli, 1).empty(); }, 10s));
  refused = cli->retire_kek_version(1);
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->retired);
  EXPECT_TRUE(refused->holders.empty());
  EXPECT_EQ(refused->usage.events, 1U);  // "after-rotate"
  EXPECT_EQ(refused->usage.materials, 1U);

  rewrap_all(*cli);
  auto retired = cli->retire_kek_version(1);
  ASSERT_TRUE(retired) << retired.error().message();
  EXPECT_TRUE(retired->retired);
  hookvault::retire_file_kek_version(kek_file(), 1);
  daemon->close();
  cli->close();

  auto reader = open_store(open_kek(), "cli");
  for (const char* wallet : {"w1", "w2"}) {
    auto opened = reader->materials("dynamic", wallet);
    ASSERT_TRUE(opened && *opened) << wallet;
  }
  for (std::int64_t id = 1; id <= 2; ++id) {
    auto payload = reader->event_payload(id);
    ASSERT_TRUE(payload && *payload) << id;
  }
}

// A daemon whose lease lapsed (it stalled, or could not renew it) no longer
// keeps the version from being retired; what it then writes under the
// retired version is refused, not stored, so it was never acknowledged.
TEST_F(StoreKekRetireTest, AKeyWrappedUnderARetiredVersionIsRefusedAndNotStored) {
  const auto daemon_kek = open_kek();
  auto daemon = open_store(daemon_kek, "serve", 1ms);  // lapses at once
  hookvault::rotate_file_kek(kek_file());
  auto cli = open_store(open_kek(), "cli");
  rewrap_all(*cli);
  auto retired = cli->retire_kek_version(1);
  ASSERT_TRUE(retired) << retired.error().message();
  ASSERT_TRUE(retired->retired);

  auto refused = daemon->write(delegation("late", "w1"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(hookvault::to_errc(refused.error()), Errc::kek_unavailable);
  auto found = cli->find_event("dynamic", "late");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  // An audit record wraps nothing: it is still written.
  EXPECT_TRUE(daemon->audit_sync(hookvault::AuditEntry{"cli:test", "event.read", "1", "ok"}));

  daemon_kek->refresh();  // now under version 2: accepted
  auto accepted = daemon->write(delegation("late", "w1"));
  ASSERT_TRUE(accepted) << accepted.error().message();
  EXPECT_FALSE(accepted->duplicate);
  auto opened = cli->materials("dynamic", "w1");
  ASSERT_TRUE(opened && *opened);
}

TEST_F(StoreKekRetireTest, KeysUnderTheVersionOrItBeingCurrentSomewhereRefuseTheRetirement) {
  auto store = open_store(open_kek(), "cli");
  ASSERT_TRUE(store->write(delegation("d1", "w1")));
  hookvault::rotate_file_kek(kek_file());
  // Its own lease names version 1 (it has not refreshed): that is a holder too.
  auto r = store->retire_kek_version(1);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->retired);
  EXPECT_EQ(r->holders.size(), 1U);
  EXPECT_EQ(r->usage.events, 1U);
  EXPECT_EQ(r->usage.materials, 1U);
  EXPECT_TRUE(r->usage.audit_key);
  store->close();

  auto fresh = open_store(open_kek(), "cli");
  r = fresh->retire_kek_version(1);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->retired);
  EXPECT_TRUE(r->holders.empty());
  EXPECT_TRUE(r->usage.audit_key);
  rewrap_all(*fresh);
  r = fresh->retire_kek_version(1);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->retired);
  r = fresh->retire_kek_version(1);  // again: still retired
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->retired);
  EXPECT_FALSE(fresh->retire_kek_version(0));
}

}  // namespace
