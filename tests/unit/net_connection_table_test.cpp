// Whom a full listener closes to make room (net/connection_table.hpp), and
// the phase moves a closed connection's loop then fails
// (net/connection_phase.hpp).
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "net/connection_table.hpp"

namespace hookvault::net {
namespace {

using namespace std::chrono_literals;

IpAddress ip(const char* text) { return *parse_ip(text); }

class ConnectionTableTest : public ::testing::Test {
 protected:
  // A connection from `from` in `phase`, added now.
  std::shared_ptr<TrackedConnection> add(const char* from, ConnectionPhase::Value phase) {
    auto c = std::make_shared<TrackedConnection>();
    EXPECT_TRUE(c->phase.enter(phase));
    table_.add(c, ip(from));
    held_.push_back(c);
    std::this_thread::sleep_for(1ms);  // distinct phase times: the order of adding
    return c;
  }

  ConnectionTable table_;
  std::vector<std::shared_ptr<TrackedConnection>> held_;
};

TEST_F(ConnectionTableTest, TheLongestIdleOfTheAddressHoldingTheMostGoesFirst) {
  auto lone = add("192.0.2.1", ConnectionPhase::idle);  // idle the longest of all
  auto first = add("198.51.100.7", ConnectionPhase::idle);
  auto second = add("198.51.100.7", ConnectionPhase::idle);
  add("198.51.100.7", ConnectionPhase::reading);
  auto e = table_.evict_for(ip("203.0.113.1"));
  EXPECT_EQ(e.conn, first);
  EXPECT_EQ(e.reason, "idle");
  EXPECT_EQ(first->phase.get(), ConnectionPhase::evicted);
  EXPECT_FALSE(first->phase.enter(ConnectionPhase::reading)) << "its loop must stop";
  // Evicted connections are not chosen again (they stay listed until their
  // loop has ended and removed them).
  EXPECT_EQ(table_.evict_for(ip("203.0.113.1")).conn, second);
  table_.remove(first.get());
  table_.remove(second.get());
  // 198.51.100.7 and 192.0.2.1 now hold one each: a tie goes to the
  // newcomer's own address, else it is the idle one there is.
  EXPECT_EQ(table_.evict_for(ip("192.0.2.1")).conn, lone);
}

TEST_F(ConnectionTableTest, ANewcomerFromTheBusiestAddressReplacesItsOwnLongestIdle) {
  auto other = add("192.0.2.1", ConnectionPhase::idle);
  auto own = add("10.0.0.5", ConnectionPhase::idle);
  add("10.0.0.5", ConnectionPhase::idle);
  EXPECT_EQ(table_.evict_for(ip("10.0.0.5")).conn, own);
  EXPECT_EQ(other->phase.get(), ConnectionPhase::idle);
}

TEST_F(ConnectionTableTest, WithoutIdleConnectionsTheOldestOpeningOrReadingGoes) {
  add("192.0.2.1", ConnectionPhase::handling);
  auto reading = add("192.0.2.2", ConnectionPhase::reading);
  auto opening = add("192.0.2.3", ConnectionPhase::opening);
  auto e = table_.evict_for(ip("203.0.113.1"));
  EXPECT_EQ(e.conn, reading);
  EXPECT_EQ(e.reason, "reading");
  e = table_.evict_for(ip("203.0.113.1"));
  EXPECT_EQ(e.conn, opening);
  EXPECT_EQ(e.reason, "opening");
  // Only a connection with a request at the handler is left: nothing.
  EXPECT_EQ(table_.evict_for(ip("203.0.113.1")).conn, nullptr);
}

TEST_F(ConnectionTableTest, AConnectionWithoutACertificateOnAMutualTlsListenerGoesFirst) {
  add("127.0.0.1", ConnectionPhase::idle);  // a signer, idle the longest
  auto certless = add("127.0.0.1", ConnectionPhase::reading);
  certless->unauthenticated = true;
  auto e = table_.evict_for(ip("127.0.0.1"));
  EXPECT_EQ(e.conn, certless);
  EXPECT_EQ(e.reason, "unauthenticated");
}

TEST_F(ConnectionTableTest, AConnectionWhoseRequestReachedTheHandlerIsNeverChosen) {
  auto c = add("192.0.2.1", ConnectionPhase::idle);
  ASSERT_TRUE(c->phase.enter(ConnectionPhase::handling));
  EXPECT_EQ(table_.evict_for(ip("192.0.2.1")).conn, nullptr);
  EXPECT_FALSE(c->phase.evict(ConnectionPhase::reading));
  EXPECT_TRUE(c->phase.enter(ConnectionPhase::idle));
}

// IPv6 addresses count per /64: one host (or site) with many addresses is
// one client group.
TEST_F(ConnectionTableTest, IPv6AddressesAreGroupedByTheirSlash64) {
  EXPECT_EQ(client_group(ip("2001:db8:1:2::1")), client_group(ip("2001:db8:1:2:ffff::9")));
  EXPECT_NE(client_group(ip("2001:db8:1:2::1")), client_group(ip("2001:db8:1:3::1")));
  EXPECT_EQ(client_group(ip("192.0.2.1")), ip("192.0.2.1"));
  add("2001:db8:1:2::1", ConnectionPhase::idle);
  auto first = add("192.0.2.1", ConnectionPhase::idle);
  add("2001:db8:1:2::2", ConnectionPhase::idle);
  add("192.0.2.1", ConnectionPhase::idle);
  add("2001:db8:1:2::3", ConnectionPhase::idle);
  // The /64 holds three, 192.0.2.1 two: the /64's longest idle goes.
  EXPECT_EQ(table_.evict_for(ip("203.0.113.1")).conn, held_[0]);
  (void)first;
}

// Behind a balancer with PROXY protocol: connections move to the client
// the header names, and count there.
TEST_F(ConnectionTableTest, RegroupedConnectionsCountForTheClientTheProxyNamed) {
  auto a = add("10.0.0.1", ConnectionPhase::idle);  // the balancer's own, idle longest
  auto b = add("10.0.0.1", ConnectionPhase::idle);
  auto c = add("10.0.0.1", ConnectionPhase::idle);
  table_.regroup(b.get(), ip("203.0.113.7"));
  table_.regroup(c.get(), ip("203.0.113.7"));
  EXPECT_EQ(table_.evict_for(ip("10.0.0.1")).conn, b);
  EXPECT_EQ(table_.size(), 3U);
  EXPECT_FALSE(table_.remove(b.get()));
  EXPECT_FALSE(table_.remove(a.get()));
  EXPECT_TRUE(table_.remove(c.get()));
}

}  // namespace
}  // namespace hookvault::net
