// The listener (hookvault::Server) in this process, over real TLS on
// loopback, with a RequestHandler of the test's own that can hold requests:
// what the daemon-level tests cannot arrange. A connection setup that fails
// closes that connection only; at the cap, a new connection is refused
// before TLS only when every open one has a request with the handler; and
// request ids are unpredictable.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/metrics.hpp"
#include "hookvault/server.hpp"
#include "net/http_session.hpp"
#include "test_support.hpp"
#include "tls_support.hpp"

namespace hookvault {
namespace {

using namespace std::chrono_literals;
using testing::RawTlsClient;

// Answers 200 at once, except GET /hold, which waits until release().
class HoldingHandler : public RequestHandler {
 public:
  void handle(Delivery d, std::function<void(Reply)> done) override {
    if (d.target != "/hold") return done(json_reply(200, "{\"ok\":true}"));
    std::lock_guard lock(mu_);
    held_.push_back(std::move(done));
    cv_.notify_all();
  }
  bool wait_held(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return held_.size() >= n; });
  }
  void release() {
    std::vector<std::function<void(Reply)>> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& done : held) done(json_reply(200, "{\"held\":true}"));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void(Reply)>> held_;
};

class ServerTest : public ::testing::Test {
 protected:
  // A refused client's ClientHello may meet a closed socket: EPIPE, not a
  // signal (OpenSSL's socket BIO writes with write(2)).
  void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }
  // `client_ca`: mutual TLS, as the admin listener (a client without a
  // certificate gets one answer).
  void start(std::size_t max_connections, std::function<void()> setup_hook = {},
             bool client_ca = false) {
    const auto files = testing::write_self_signed_cert(dir_.path());
    ServerConfig& cfg = cfg_;
    cfg.listen = {"127.0.0.1", 0};
    cfg.tls_cert = files.cert;
    cfg.tls_key = files.key;
    cfg.threads = 1;
    cfg.max_connections = max_connections;
    cfg.idle_timeout = 30s;
    ListenerOptions options;
    options.metrics = &metrics_;
    if (client_ca) options.client_ca = files.cert;
    server_ = std::make_unique<Server>(cfg, handler_, std::move(options));
    if (setup_hook) server_->set_connection_setup_hook(std::move(setup_hook));
    port_ = server_->local_endpoint().port;
    thread_ = std::thread([this] {
      server_->run(false);
      returned_ = true;
    });
  }
  void TearDown() override {
    if (!server_) return;
    handler_.release();
    server_->stop();
    thread_.join();
  }

  double metric(std::string_view name, std::string_view reason) {
    return metrics_.counter(std::string(name), "", {"listener", "reason"})
        .with({"public", reason})
        .value();
  }

  testing::TempDir dir_;
  ServerConfig cfg_;
  std::atomic<bool> returned_{false};  // run() returned
  HoldingHandler handler_;
  Metrics metrics_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// Reads one answer's status line from `c` (0 when none comes).
unsigned read_status(RawTlsClient& c) {
  const std::string bytes = c.read_once();
  if (bytes.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return static_cast<unsigned>(std::stoul(bytes.substr(9, 3)));
}

// The failure of one connection's set-up (SSL_new under memory pressure,
// here a test hook at the same point) closes that connection, is counted,
// and the listener goes on accepting.
TEST_F(ServerTest, ASetupFailureClosesOnlyThatConnectionAndTheListenerGoesOn) {
  std::atomic<int> accepted{0};
  start(16, [&accepted] {
    const int n = ++accepted;
    if (n == 1 || n == 3) throw std::runtime_error("SSL_new: out of memory (test)");
  });
  for (int i = 1; i <= 5; ++i) {
    RawTlsClient c(port_);
    if (i == 1 || i == 3) {
      EXPECT_FALSE(c.handshake()) << "connection " << i;
    } else {
      ASSERT_TRUE(c.handshake()) << "connection " << i << ": the listener stopped";
      EXPECT_EQ(c.get("/healthz"), 200U) << "connection " << i;
    }
  }
  EXPECT_EQ(metric("hookvault_connections_refused_total", "setup"), 2);
  EXPECT_EQ(accepted.load(), 5);
}

// When every open connection has a request with the handler, nothing can
// make room: a new connection is closed before TLS and counted. Once they
// are answered (idle), a new one is served in place of the longest idle.
TEST_F(ServerTest, AtTheCapANewConnectionIsRefusedWhenNoneCanMakeRoom) {
  start(2);
  RawTlsClient a(port_);
  RawTlsClient b(port_);
  ASSERT_TRUE(a.handshake());
  ASSERT_TRUE(b.handshake());
  ASSERT_TRUE(a.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(b.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(handler_.wait_held(2));
  {
    RawTlsClient c(port_);
    EXPECT_FALSE(c.handshake());
  }
  EXPECT_EQ(metric("hookvault_connections_refused_total", "cap"), 1);
  handler_.release();
  EXPECT_EQ(read_status(a), 200U);
  EXPECT_EQ(read_status(b), 200U);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(b.get("/healthz"), 200U);  // `a` is now the longest idle
  RawTlsClient d(port_);
  ASSERT_TRUE(d.handshake());
  EXPECT_EQ(d.get("/healthz"), 200U);
  EXPECT_TRUE(a.read_once(1).empty()) << "the longest-idle connection was not the one closed";
  EXPECT_EQ(b.get("/healthz"), 200U);
  EXPECT_EQ(metrics_.counter("hookvault_connections_evicted_total", "", {"listener", "phase"})
                .with({"public", "idle"})
                .value(),
            1);
  EXPECT_EQ(metric("hookvault_connections_refused_total", "cap"), 1);
}

// A new client trust (use_tls: another client CA, as a reload that revokes
// one) retires the connections accepted under the old one. One that was busy
// and then ended by itself is done with: it must not keep the listener's
// loop alive, so a stop that finds no connection open returns.
TEST_F(ServerTest, AConnectionRetiredByANewClientTrustThatEndsDoesNotKeepTheListenerRunning) {
  start(16, {}, /*client_ca=*/true);
  {
    RawTlsClient a(port_);
    ASSERT_TRUE(a.handshake());
    ASSERT_TRUE(a.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(handler_.wait_held(1));
    const auto other = testing::write_self_signed_cert(dir_.path() / "other-ca");
    server_->use_tls(Server::load_tls(cfg_, other.cert, {}));
    std::this_thread::sleep_for(300ms);  // the retirement looks at it a few times
    handler_.release();
    EXPECT_EQ(read_status(a), 200U);
  }
  auto& open = metrics_.gauge("hookvault_open_connections", "", {"listener"}).with({"public"});
  ASSERT_TRUE(testing::eventually([&] { return open.value() == 0; }, 10s));
  server_->stop();
  if (!testing::eventually([&] { return returned_.load(); }, 10s)) {
    ADD_FAILURE() << "run() did not return after stop() with no connection open";
    thread_.detach();   // still running: leave it (and its Server) to the process
    server_.release();  // NOLINT(bugprone-unused-return-value): deliberately leaked
  }
}

// X-Request-Id: 128 bits from the CSPRNG each, so neither the process nor
// the number of requests before can be read from one, nor the next guessed.
TEST(RequestId, IdsAreRandomAndCarryNoCounter) {
  ServerConfig cfg;
  HoldingHandler handler;
  Metrics metrics;
  std::atomic<bool> draining{false};
  net::HttpSessionContext ctx(cfg, handler, "public", metrics, draining);
  std::set<std::string> ids;
  std::set<std::string> halves;
  std::string previous;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = ctx.next_request_id();
    ASSERT_EQ(id.size(), 32U);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    ids.insert(id);
    // Neither half repeats (a boot id would), nor does one count up.
    halves.insert(id.substr(0, 16));
    halves.insert(id.substr(16));
    if (!previous.empty()) {
      EXPECT_NE(std::stoull(id.substr(16), nullptr, 16),
                std::stoull(previous.substr(16), nullptr, 16) + 1);
    }
    previous = id;
  }
  EXPECT_EQ(ids.size(), 1000U);
  EXPECT_EQ(halves.size(), 2000U);
}

}  // namespace
}  // namespace hookvault
