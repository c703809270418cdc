// Failover without a restart, on a cluster of the test's own (the shared one
// must survive): the primary is killed (kill -9) while a store writes, the
// synchronous standby is promoted, and the store, given both hosts with
// target_session_attrs=read-write, follows it. writable() (/readyz) is
// false while there is no writable primary, and every write acknowledged
// before or after is on the new primary.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/kek.hpp"
#include "hookvault/pg_store.hpp"
#include "pg_cluster.hpp"
#include "store_requests.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

TEST(PgFailover, TheStoreFollowsAPromotedStandbyAndNoAcknowledgedWriteIsLost) {
  PgCluster cluster;
  cluster.create_database("failover");
  const std::shared_ptr<const Kek> kek = make_memory_kek(SecretBytes::random(32), "test:1");
  PgStoreOptions o;
  o.conninfo = "host=127.0.0.1,127.0.0.1 port=" + cluster.env("PRIMARY_PORT") + "," +
               cluster.env("STANDBY_PORT") +
               " dbname=failover user=hookvault target_session_attrs=read-write";
  o.password = std::make_shared<const SecretBytes>(SecretBytes::copy_of(cluster.password()));
  o.connect_timeout = 2s;
  auto opened = open_pg_store(o, kek);
  ASSERT_TRUE(opened) << opened.error().message();
  auto& store = **opened;
  PgStoreOptions strict = o;
  strict.require_synchronous_standby = true;
  auto strict_opened = open_pg_store(strict, kek);
  ASSERT_TRUE(strict_opened);
  auto& strict_store = **strict_opened;
  ASSERT_TRUE(strict_store.write(requests::plain_event("strict-before")));

  std::mutex mu;
  std::set<std::string> acknowledged;
  std::atomic<int> failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string key = "k" + std::to_string(t) + "-" + std::to_string(i);
        auto r = store.write(requests::plain_event(key));
        if (r) {
          std::lock_guard lock(mu);
          acknowledged.insert(key);
        } else {
          failed.fetch_add(1);
          std::this_thread::sleep_for(50ms);
        }
      }
    });
  }
  const auto acknowledged_count = [&] {
    std::lock_guard lock(mu);
    return acknowledged.size();
  };
  ASSERT_TRUE(eventually([&] { return acknowledged_count() >= 100; }, 30s));
  cluster.run("kill-primary");
  EXPECT_TRUE(eventually([&] { return !store.writable(); }, 10s)) << "writable without a primary";
  const std::size_t before_promotion = acknowledged_count();
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(store.writable());
  EXPECT_EQ(acknowledged_count(), before_promotion) << "acknowledged without a primary";
  cluster.run("promote");
  EXPECT_TRUE(eventually([&] { return store.writable(); }, 30s))
      << "never followed the new primary";
  ASSERT_TRUE(eventually([&] { return acknowledged_count() >= before_promotion + 100; }, 30s));
  stop.store(true);
  for (auto& w : writers) w.join();
  EXPECT_GT(failed.load(), 0) << "the outage was not seen";

  // Every write acknowledged, before the kill or after the promotion, is on
  // the new primary (the former standby).
  std::set<std::string> stored;
  std::istringstream rows(
      cluster.psql("standby", "SELECT idempotency_key FROM events", "failover"));
  for (std::string line; std::getline(rows, line);) stored.insert(line);
  for (const auto& key : acknowledged) EXPECT_EQ(stored.count(key), 1U) << key << " lost";

  // The new primary has no synchronous standby (pg-cluster promote): a store
  // that requires one acknowledges nothing there, and says it is not ready.
  auto strict_write = strict_store.write(requests::plain_event("strict-after"));
  ASSERT_FALSE(strict_write);
  EXPECT_EQ(to_errc(strict_write.error()), Errc::store_unavailable);
  EXPECT_FALSE(strict_store.writable());
  EXPECT_EQ(
      cluster.psql("standby", "SELECT count(*) FROM events WHERE idempotency_key = 'strict-after'",
                   "failover"),
      "0");
  store.close();
  strict_store.close();

  // The promoted standby is the one server left, and stopping the cluster
  // stops it (the destructor would too, and fails the test if it could not).
  EXPECT_EQ(cluster.running_servers().size(), 1U);
  EXPECT_TRUE(cluster.stop().empty()) << "pg-cluster stop left a server running";
  EXPECT_TRUE(cluster.running_servers().empty());
}

}  // namespace
}  // namespace hookvault::testing
