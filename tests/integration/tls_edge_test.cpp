// The listeners' TLS at its edges, end to end: clients that stall inside a
// TLS record, close without close_notify, reset the connection during the
// handshake or while idle, and ask for a TLS 1.3 KeyUpdate. A raw OpenSSL
// client on a plain socket (tls_support.hpp) does what the Beast test
// client cannot.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "e2e.hpp"
#include "tls_support.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Whether the server closes `fd` (EOF or reset) within `limit`; bytes that
// arrive meanwhile (an alert, close_notify) are skipped.
bool closed_within(int fd, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left <= 0ms) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

const std::string kOpen = "hookvault_open_connections{listener=\"public\"}";
const std::string kFailedHandshakes = "hookvault_tls_handshake_failures_total{listener=\"public\"}";

// The daemon with its admin listener, for the connection metrics.
class TlsEdgeTest : public E2E {
 protected:
  void SetUp() override {
    E2E::SetUp();
    ConfigOptions o;
    o.extra_toml =
        admin_toml("[[admin.clients]]\nsubject_cn = \"prometheus\"\nroles = [\"metrics:read\"]\n");
    start(write_config(o));
    const auto& root = setup().root;
    prometheus_ = make_client_cert(dir_.path(), "prometheus", root / "tls/admin-ca.pem",
                                   setup().offline / "admin-ca.key");
  }

  double metric(const std::string& series) {
    HttpsClient c(daemon_->admin_port(), setup().root / "tls/admin-ca.pem", prometheus_);
    auto r = c.request("GET", "/metrics");
    EXPECT_EQ(r.status, 200U) << r.body;
    return sample_value(r.body, series);
  }

  // Waits up to 5 s for `series` to reach `want`; its last value.
  double wait_metric(const std::string& series, double want) {
    double v = -1;
    for (int i = 0; i < 50; ++i) {
      v = metric(series);
      if (v == want) break;
      std::this_thread::sleep_for(100ms);
    }
    return v;
  }

  // The daemon still answers, on a fresh connection and on the fixture's.
  void expect_healthy() {
    RawTlsClient fresh(daemon_->port());
    ASSERT_TRUE(fresh.handshake());
    EXPECT_EQ(fresh.get("/healthz"), 200U);
    EXPECT_EQ(client().request("GET", "/healthz").status, 200U);
  }

  ClientCertificate prometheus_;
};

TEST_F(TlsEdgeTest, AStallInsideATlsRecordIsCutByTheHeaderTimeout) {
  RawTlsClient c(daemon_->port());
  ASSERT_TRUE(c.handshake());
  // A complete record holding half a request head, then the first bytes of
  // a record whose rest never comes: OpenSSL waits for it under
  // header_timeout (1 s).
  ASSERT_TRUE(c.write("POST /webhooks/dynamic HTTP/1.1\r\nHost: x\r\n"));
  ASSERT_TRUE(c.write_raw(std::string("\x17\x03\x03\x01\x00", 5) + std::string(10, 'x')));
  const auto t0 = Clock::now();
  EXPECT_TRUE(closed_within(c.fd(), 4s));
  EXPECT_GE(Clock::now() - t0, 800ms);
  EXPECT_EQ(wait_metric(kOpen, 0), 0);
  expect_healthy();
}

TEST_F(TlsEdgeTest, AStallInsideTheClientHelloIsCutByTheHeaderTimeout) {
  const double before = metric(kFailedHandshakes);
  const int fd = connect_loopback(daemon_->port());
  const std::string record_start("\x16\x03\x01\x02", 4);  // a handshake record, unfinished
  ASSERT_EQ(::send(fd, record_start.data(), record_start.size(), MSG_NOSIGNAL), 4);
  const auto t0 = Clock::now();
  EXPECT_TRUE(closed_within(fd, 4s));
  EXPECT_GE(Clock::now() - t0, 800ms);
  ::close(fd);
  EXPECT_EQ(wait_metric(kFailedHandshakes, before + 1), before + 1);
  EXPECT_EQ(wait_metric(kOpen, 0), 0);
}

TEST_F(TlsEdgeTest, APeerThatClosesWithoutCloseNotifyIsForgotten) {
  for (int i = 0; i < 5; ++i) {
    RawTlsClient c(daemon_->port());
    ASSERT_TRUE(c.handshake());
    EXPECT_EQ(c.get("/healthz"), 200U);
    ::shutdown(c.fd(), SHUT_RDWR);  // a FIN, no close_notify
  }
  EXPECT_EQ(wait_metric(kOpen, 0), 0);
  expect_healthy();
}

// The server's close_notify then meets a reset connection: send() fails
// with EPIPE or ECONNRESET, and must not raise SIGPIPE in the daemon.
TEST_F(TlsEdgeTest, APeerThatResetsAnIdleConnectionLeavesTheDaemonRunning) {
  for (int i = 0; i < 5; ++i) {
    RawTlsClient c(daemon_->port());
    ASSERT_TRUE(c.handshake());
    EXPECT_EQ(c.get("/healthz"), 200U);
    c.reset();
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(wait_metric(kOpen, 0), 0);
  expect_healthy();
}

TEST_F(TlsEdgeTest, AResetDuringTheHandshakeIsAFailedHandshake) {
  const double before = metric(kFailedHandshakes);
  {
    // The ClientHello, then a reset before the client's Finished: the
    // server has answered and waits for it.
    RawTlsClient c(daemon_->port());
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    ASSERT_NE(SSL_do_handshake(ssl), 1);  // wants the ServerHello
    char* hello = nullptr;
    const long hello_size = BIO_get_mem_data(out, &hello);
    ASSERT_GT(hello_size, 0);
    ASSERT_TRUE(c.write_raw(std::string(hello, static_cast<std::size_t>(hello_size))));
    pollfd p{c.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);  // the ServerHello is on its way
    c.reset();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  EXPECT_EQ(wait_metric(kFailedHandshakes, before + 1), before + 1);
  EXPECT_EQ(wait_metric(kOpen, 0), 0);
  expect_healthy();
}

TEST_F(TlsEdgeTest, KeyUpdatesFromTheClientAreAnsweredOnTheSameConnection) {
  RawTlsClient c(daemon_->port());
  ASSERT_TRUE(c.handshake());
  ASSERT_STREQ(c.version(), "TLSv1.3");
  EXPECT_EQ(c.get("/healthz"), 200U);
  // The client's new keys only ("k" in s_client).
  ASSERT_TRUE(c.key_update(false));
  EXPECT_EQ(c.get("/healthz"), 200U);
  EXPECT_EQ(c.key_updates_received(), 0);
  // New keys and a request for the server's ("K"): the server's read must
  // write its own KeyUpdate before answering.
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(c.key_update(true));
    EXPECT_EQ(c.get("/readyz"), 200U);
    EXPECT_EQ(c.key_updates_received(), i);
  }
  EXPECT_EQ(metric(kOpen), 1);
}

}  // namespace
}  // namespace hookvault::testing
