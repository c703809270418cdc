// The connection cap against the real daemon over real TLS
// (src/net/connection_table.hpp): at max_connections, connections that lose
// nothing acknowledged make room for a new one, so one address holding every
// slot (idle keep-alive connections, or trickled heads) cannot lock another
// out, and clients without a certificate cannot lock signers out of the
// admin listener. Each test ends by checking the store holds exactly the
// deliveries that were acknowledged.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "tls_fleet.hpp"
#include "tls_support.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kNoditKey[] = "nodit-signing-key-for-the-cap-test";

std::string nodit_request(const std::string& body) {
  return "POST /webhooks/nodit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "x-signature: " +
         hmac_hex(kNoditKey, body) + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Whether the daemon has closed `c` (EOF or reset) within `limit`, with no
// byte of an answer.
bool closed_silently(RawTlsClient& c, std::chrono::seconds limit = 5s) {
  timeval tv{static_cast<time_t>(limit.count()), 0};
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char byte = 0;
  std::size_t n = 0;
  const int r = SSL_read_ex(c.ssl(), &byte, 1, &n);
  if (r == 1) return false;
  const int err = SSL_get_error(c.ssl(), r);
  return err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SSL ||
         (err == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK);
}

class ConnectionCapTest : public E2E {
 protected:
  void start_daemon(const std::string& server_extra, const std::string& admin_extra = {}) {
    ConfigOptions o;
    o.header_timeout = "30s";
    o.idle_timeout = "60s";
    o.server_extra = server_extra;
    add_nodit_source(o, kNoditKey);
    o.extra_toml += admin_toml(admin_extra +
                               "rate_limit = 0\n[[admin.clients]]\nsubject_cn = \"signer\"\n"
                               "roles = [\"metrics:read\"]\n");
    start(write_config(o));
  }

  HttpsClient signer() {
    const auto& root = setup().root;
    return HttpsClient(daemon_->admin_port(), root / "tls/admin-ca.pem",
                       {setup().offline / "signer-cert.pem", setup().offline / "signer-key.pem"});
  }

  double metric(const std::string& series) {
    const auto r = signer().request("GET", "/metrics");
    EXPECT_EQ(r.status, 200U) << r.body;
    return sample_value(r.body, series);
  }

  // A signed delivery on `c`, answered 200; remembered for the end.
  void deliver(RawTlsClient& c, const std::string& sub, std::uint64_t seq) {
    const std::string body = nodit_message(sub, seq);
    ASSERT_TRUE(c.write(nodit_request(body)));
    std::string bytes;
    std::vector<RawResponse> answers;
    while (answers.empty()) {
      const std::string part = c.read_once();
      ASSERT_FALSE(part.empty()) << "no answer";
      bytes += part;
      answers = take_responses(bytes);
    }
    ASSERT_EQ(answers[0].status, 200U) << answers[0].body;
    delivered_[sub + ":" + std::to_string(seq)] = body;
  }

  void expect_store_intact() {
    ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
    SqliteStoreOptions options;
    options.path = dir_.path() / "data/hookvault.db";
    auto store = open_sqlite_store(options, open_file_kek(setup().root / "keys/kek.key"));
    ASSERT_TRUE(store) << store.error().message();
    std::string error;
    const auto events = open_all_events(**store, error);
    ASSERT_TRUE(error.empty()) << error;
    ASSERT_EQ(events.size(), delivered_.size());
    for (const auto& [key, body] : delivered_) {
      const auto it = events.find(key);
      ASSERT_NE(it, events.end()) << key << " not stored";
      EXPECT_EQ(it->second.payload, body) << key;
    }
  }

  std::map<std::string, std::string> delivered_;
};

const std::string kEvictedIdle =
    "hookvault_connections_evicted_total{listener=\"public\",phase=\"idle\"}";
const std::string kEvictedReading =
    "hookvault_connections_evicted_total{listener=\"public\",phase=\"reading\"}";
const std::string kRefusedAtCap =
    "hookvault_connections_refused_total{listener=\"public\",reason=\"cap\"}";
const std::string kOpen = "hookvault_open_connections{listener=\"public\"}";

// One host holds every slot with idle keep-alive connections (a tiny
// request now and then would keep them forever): a client from another
// address is served, in place of the longest-idle of them; and a new
// connection from the host itself takes the place of its own longest-idle
// one (the load balancer case: every connection from one address).
TEST_F(ConnectionCapTest, AnAddressHoldingEverySlotWithIdleConnectionsGivesOneUp) {
  constexpr std::size_t kCap = 20;
  start_daemon("max_connections = " + std::to_string(kCap) + "\n");
  std::vector<std::unique_ptr<RawTlsClient>> held;
  for (std::size_t i = 0; i < kCap; ++i) {
    held.push_back(std::make_unique<RawTlsClient>(daemon_->port(), "127.0.0.1"));
    ASSERT_TRUE(held.back()->handshake()) << i;
    ASSERT_EQ(held.back()->get("/healthz"), 200U) << i;
    std::this_thread::sleep_for(20ms);  // idle since: held[0] the longest
  }

  RawTlsClient other(daemon_->port(), "127.0.0.2");
  ASSERT_TRUE(other.handshake()) << "a client from another address was locked out";
  deliver(other, "201", 1);
  EXPECT_TRUE(closed_silently(*held[0])) << "the longest-idle connection was not the one closed";
  for (std::size_t i = 1; i < kCap; ++i) {
    EXPECT_EQ(held[i]->get("/healthz"), 200U) << i;
    std::this_thread::sleep_for(20ms);  // idle since, in this order
  }

  // The host that holds the most opens one more: its own longest-idle
  // connection (held[1], used first in the loop above) makes room.
  RawTlsClient again(daemon_->port(), "127.0.0.1");
  ASSERT_TRUE(again.handshake());
  deliver(again, "202", 1);
  EXPECT_TRUE(closed_silently(*held[1]));
  EXPECT_EQ(other.get("/healthz"), 200U);  // the other address's connection stays
  for (std::size_t i = 2; i < kCap; ++i) EXPECT_EQ(held[i]->get("/healthz"), 200U) << i;

  EXPECT_EQ(metric(kEvictedIdle), 2);
  EXPECT_LE(metric(kRefusedAtCap), 0);
  expect_store_intact();
}

// The same with trickled request heads: the slowest makes room.
TEST_F(ConnectionCapTest, AnAddressHoldingEverySlotWithTrickledHeadsGivesOneUp) {
  constexpr std::size_t kCap = 20;
  start_daemon("max_connections = " + std::to_string(kCap) + "\n");
  std::vector<std::unique_ptr<RawTlsClient>> held;
  for (std::size_t i = 0; i < kCap; ++i) {
    held.push_back(std::make_unique<RawTlsClient>(daemon_->port(), "127.0.0.1"));
    ASSERT_TRUE(held.back()->handshake()) << i;
    ASSERT_TRUE(held.back()->write("POST /webhooks/nodit HTTP/1.1\r\nX-Slow: ")) << i;
    std::this_thread::sleep_for(20ms);  // reading since: held[0] the longest
  }
  std::this_thread::sleep_for(200ms);  // every head is being read
  RawTlsClient other(daemon_->port(), "127.0.0.2");
  ASSERT_TRUE(other.handshake()) << "a client from another address was locked out";
  deliver(other, "201", 1);
  EXPECT_TRUE(closed_silently(*held[0]));
  EXPECT_EQ(metric(kEvictedReading), 1);
  EXPECT_LE(metric(kRefusedAtCap), 0);
  held.clear();  // or the shutdown waits shutdown_grace for their heads
  expect_store_intact();
}

// Admin listener: clients without a certificate get their one 401 and are
// closed; a flood of them, some silent after the handshake, some asking
// again and again, does not keep a signer with a certificate out.
TEST_F(ConnectionCapTest, ACertificatelessFloodDoesNotLockSignersOut) {
  constexpr std::size_t kAdminCap = 16;
  start_daemon("", "max_connections = " + std::to_string(kAdminCap) + "\n");
  const std::uint16_t admin = daemon_->admin_port();
  {
    // One answer, then the connection is closed at once.
    RawTlsClient c(admin);
    ASSERT_TRUE(c.handshake());
    ASSERT_TRUE(c.write("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    std::string bytes;
    std::vector<RawResponse> answers;
    while (answers.empty()) {
      const std::string part = c.read_once();
      ASSERT_FALSE(part.empty());
      bytes += part;
      answers = take_responses(bytes);
    }
    EXPECT_EQ(answers[0].status, 401U);
    const auto t0 = Clock::now();
    EXPECT_TRUE(closed_silently(c));
    EXPECT_LT(Clock::now() - t0, 2s) << "the connection outlived its one answer";
  }

  std::atomic<bool> stop{false};
  std::atomic<std::size_t> flood_answers{0};
  std::atomic<std::size_t> answered_twice{0};  // connections that outlived their 401
  std::thread driver([&] {
    SigpipeBlocked blocked;
    TlsFleet fleet(admin);
    std::vector<Clock::time_point> last_request;
    std::vector<std::size_t> answers;
    while (!stop) {
      // Twice the cap at all times, as fast as the listener takes them.
      if (fleet.open_count() < 2 * kAdminCap) fleet.open(4, 4, 2s);
      last_request.resize(fleet.size(), Clock::time_point{});
      answers.resize(fleet.size(), 0);
      const auto now = Clock::now();
      for (std::size_t i = 0; i < fleet.size(); ++i) {
        if (fleet[i].fd < 0 || !fleet[i].handshaken) continue;
        // Every other connection asks every 200 ms; the rest stay silent.
        if (i % 2 == 0 && now - last_request[i] > 200ms) {
          fleet.send(i, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
          last_request[i] = now;
        }
      }
      fleet.pump(10ms);
      for (std::size_t i = 0; i < fleet.size(); ++i) {
        for (const auto& a : take_responses(fleet[i].received)) {
          EXPECT_EQ(a.status, 401U);
          ++flood_answers;
          if (++answers[i] == 2) ++answered_twice;
        }
      }
    }
  });

  std::this_thread::sleep_for(1s);  // the flood fills the listener
  std::size_t served = 0;
  std::vector<std::string> failures;
  for (int i = 0; i < 20; ++i) {
    try {
      const auto r = signer().request("GET", "/metrics");
      if (r.status == 200) {
        ++served;
      } else {
        failures.push_back(std::to_string(r.status));
      }
    } catch (const std::exception& e) {
      failures.push_back(e.what());
    }
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  driver.join();
  EXPECT_EQ(served, 20U) << failures.size()
                         << " failed, first: " << (failures.empty() ? "" : failures.front());
  EXPECT_GT(flood_answers.load(), 20U) << "the flood never reached the listener";
  EXPECT_EQ(answered_twice.load(), 0U) << "cert-less connections were kept after their 401";
  EXPECT_GT(metric("hookvault_connections_evicted_total{listener=\"admin\",phase="
                   "\"unauthenticated\"}"),
            0);
  expect_store_intact();
}

}  // namespace
}  // namespace hookvault::testing
