// Leadership leases on PostgreSQL (src/store/pg/lease.hpp) on a real server.
#include "store/pg/lease.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "pg_cluster.hpp"

namespace hookvault::store::pg {
namespace {

using namespace std::chrono_literals;

ConnectOptions options() {
  static const SecretBytes password = SecretBytes::copy_of(testing::shared_pg_cluster().password());
  ConnectOptions o;
  o.conninfo = testing::shared_pg_cluster().primary_conninfo();
  o.password = &password;
  return o;
}

TEST(PgLease, OneHolderAtATimeAndTheNextTakesItOnRelease) {
  auto first = AdvisoryLease::try_take(options(), "backfill:nodit", 100ms);
  ASSERT_TRUE(first);
  ASSERT_NE(*first, nullptr);
  EXPECT_TRUE((*first)->held());
  auto second = AdvisoryLease::try_take(options(), "backfill:nodit", 100ms);
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, nullptr);
  // Another name is another lease.
  auto other = AdvisoryLease::try_take(options(), "rewrap", 100ms);
  ASSERT_TRUE(other);
  EXPECT_NE(*other, nullptr);
  first->reset();
  auto third = AdvisoryLease::try_take(options(), "backfill:nodit", 100ms);
  ASSERT_TRUE(third);
  ASSERT_NE(*third, nullptr);
  EXPECT_TRUE((*third)->held());
}

TEST(PgLease, AHolderWhoseConnectionIsTerminatedKnowsItLostTheLease) {
  auto holder = AdvisoryLease::try_take(options(), "backfill:lost", 100ms);
  ASSERT_TRUE(holder);
  ASSERT_NE(*holder, nullptr);
  const auto key = std::to_string(AdvisoryLease::key_of("backfill:lost"));
  const std::string pid = testing::shared_pg_cluster().psql(
      "primary",
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = " +
          std::to_string(static_cast<std::uint32_t>(AdvisoryLease::key_of("backfill:lost"))) +
          " AND granted");
  ASSERT_FALSE(pid.empty()) << "no session holds the lock " << key;
  testing::shared_pg_cluster().psql("primary", "SELECT pg_terminate_backend(" + pid + ")");
  // The server released the lock: another instance takes it at once.
  auto next = AdvisoryLease::try_take(options(), "backfill:lost", 100ms);
  ASSERT_TRUE(next);
  EXPECT_NE(*next, nullptr);
  // The old holder knows within its ping interval (and a margin).
  const auto until = std::chrono::steady_clock::now() + 5s;
  while ((*holder)->held() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_FALSE((*holder)->held());
}

TEST(PgLease, AnUnreachableServerIsUnavailable) {
  auto o = options();
  o.conninfo = "host=127.0.0.1 port=1 dbname=hookvault user=hookvault";
  o.connect_timeout = 2s;
  auto r = AdvisoryLease::try_take(o, "rewrap");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(Errc::store_unavailable));
}

}  // namespace
}  // namespace hookvault::store::pg
