// Floods, against the real daemon over real TLS:
// - 1,000 slow-header clients and 1,000 idle keep-alive connections, all open
//   at once, do not stop a legitimate client: each of its signed deliveries
//   is answered 200 and stored, its p99 latency stays within 50 ms (the only
//   timed assertion here), and the daemon's memory per connection stays
//   bounded. Then the slow clients, still trickling bytes, are cut off by
//   header_timeout without an answer.
// - at max_connections, a new connection is served in place of the
//   longest-idle open one, counted; the others are left alone, and idle ones
//   are cut off by idle_timeout (without an answer).
// - 10,000 copies of one event in flight at once (1,000 connections, 10
//   pipelined on each) are stored once, and every answer names that row.
// - Pipelined requests are answered in order, each as if it came alone.
// The flood's clients run on one thread (tls_fleet.hpp), so that on a small
// machine the daemon, not the test, is what gets measured. ctest runs these
// tests alone (RUN_SERIAL, tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "raw_db.hpp"
#include "tls_fleet.hpp"
#include "tls_support.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kNoditKey[] = "nodit-signing-key-for-the-flood-test";

const std::string kOpen = "hookvault_open_connections{listener=\"public\"}";
const std::string kMax = "hookvault_max_connections{listener=\"public\"}";
const std::string kRefused =
    "hookvault_connections_refused_total{listener=\"public\",reason=\"cap\"}";
const std::string kHeaderTimeouts =
    "hookvault_connection_timeouts_total{listener=\"public\",timeout=\"header\"}";
const std::string kIdleTimeouts =
    "hookvault_connection_timeouts_total{listener=\"public\",timeout=\"idle\"}";

// The value of `series` (name{labels} as rendered) in Prometheus text; -1
// when absent.
double sample_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// VmRSS of a process, in KiB; 0 when it cannot be read.
std::size_t vm_rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

// A signed Nodit delivery as the bytes of one HTTP/1.1 request.
std::string nodit_request(const std::string& body) {
  return "POST /webhooks/nodit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "x-signature: " +
         hmac_hex(kNoditKey, body) + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Reads from `c` until `count` answers have arrived (or a read fails).
std::vector<RawResponse> read_responses(RawTlsClient& c, std::size_t count) {
  std::vector<RawResponse> out;
  std::string bytes;
  while (out.size() < count) {
    const std::string part = c.read_once();
    if (part.empty()) break;
    bytes += part;
    for (auto& r : take_responses(bytes)) out.push_back(std::move(r));
  }
  return out;
}

// Waits (up to `limit`) until `value` is `want`.
bool wait_for(const std::atomic<std::size_t>& value, std::size_t want, Clock::duration limit) {
  const auto end = Clock::now() + limit;
  while (value != want) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// The test process's soft RLIMIT_NOFILE raised to its hard limit while the
// object lives (thousands of client sockets; the daemon, a child, inherits
// it too and raises its own further when its caps need it).
class FileLimitRaised {
 public:
  FileLimitRaised() {
    ok_ = ::getrlimit(RLIMIT_NOFILE, &saved_) == 0;
    rlimit raised = saved_;
    raised.rlim_cur = raised.rlim_max;
    ok_ = ok_ && ::setrlimit(RLIMIT_NOFILE, &raised) == 0;
  }
  ~FileLimitRaised() {
    if (ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  FileLimitRaised(const FileLimitRaised&) = delete;
  FileLimitRaised& operator=(const FileLimitRaised&) = delete;
  bool ok() const { return ok_; }
  rlim_t hard() const { return saved_.rlim_max; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

class FloodTest : public E2E {
 protected:
  void SetUp() override {
    E2E::SetUp();
    ASSERT_TRUE(files_.ok()) << "cannot raise RLIMIT_NOFILE";
  }

  // The fixture's config with a Nodit source and an admin listener whose
  // "signer" client (the certificate `hookvault init` made) may read /metrics.
  std::filesystem::path flood_config(ConfigOptions o) {
    const auto& root = setup().root;
    add_nodit_source(o, kNoditKey);
    o.extra_toml += "[admin]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"" +
                    (root / "tls/admin-cert.pem").string() + "\"\ntls_key = \"" +
                    (root / "tls/admin-key.pem").string() + "\"\nclient_ca = \"" +
                    (root / "tls/admin-ca.pem").string() +
                    "\"\nrate_limit = 0\n[[admin.clients]]\nsubject_cn = \"signer\"\n"
                    "roles = [\"metrics:read\"]\n";
    return write_config(o);
  }

  std::string scrape() {
    const auto& root = setup().root;
    HttpsClient c(daemon_->admin_port(), root / "tls/admin-ca.pem",
                  {setup().offline / "signer-cert.pem", setup().offline / "signer-key.pem"});
    auto r = c.request("GET", "/metrics");
    EXPECT_EQ(r.status, 200U) << r.body;
    return r.body;
  }
  double metric(const std::string& series) { return sample_value(scrape(), series); }

  // Waits (up to `limit`) for `series` to reach `want`; its last value.
  double wait_metric(const std::string& series, double want,
                     std::chrono::milliseconds limit = 20s) {
    const auto end = Clock::now() + limit;
    double v = metric(series);
    while (v != want && Clock::now() < end) {
      std::this_thread::sleep_for(50ms);
      v = metric(series);
    }
    return v;
  }

  HttpResponse deliver(HttpsClient& c, const std::string& body) {
    return post_nodit(c, kNoditKey, body);
  }

  // Every stored event, opened, after the daemon has stopped.
  std::map<std::string, OpenedEvent> stored_events() {
    SqliteStoreOptions options;
    options.path = dir_.path() / "data/hookvault.db";
    auto store = open_sqlite_store(options, open_file_kek(setup().root / "keys/kek.key"));
    EXPECT_TRUE(store) << store.error().message();
    if (!store) return {};
    std::string error;
    auto events = open_all_events(**store, error);
    EXPECT_TRUE(error.empty()) << error;
    return events;
  }

  FileLimitRaised files_;
};

// ---------------------------------------------------------------------------
// 1,000 slow-header clients and 1,000 idle connections

constexpr std::size_t kIdle = 1000;
constexpr std::size_t kSlow = 1000;
constexpr std::size_t kBaseline = 100;  // deliveries timed before the flood, for comparison
constexpr std::size_t kLegit = 300;     // deliveries timed with the flood open
constexpr std::size_t kHandshakesAtOnce = 32;
// The slow clients send their first bytes once the whole flood is open, so
// header_timeout must outlast the idle connections' requests and the
// measurement (kLegit deliveries: 2 to 4 s here under ASan). The idle
// connections' idle_timeout runs from their handshakes, so it would have to
// outlast the set-up of the whole flood too (2,000 handshakes: 12 to 17 s
// here under ASan while another build ran), and waiting for it would double
// this test's time: it is out of reach here, and the idle cut is shown at the
// cap (ConnectionCapMakesRoomByClosingTheLongestIdle).
constexpr auto kFloodHeaderTimeout = 10s;
constexpr auto kFloodIdleTimeout = 120s;
constexpr auto kTrickleEvery = 2s;  // each slow client sends one more byte of its head
// The legitimate client's p99 with the flood open must stay within 50 ms
// (docs/performance.md), or within kFloodSlowdown times its p99 without the
// flood in the same run, whichever is larger: the machines are shared, and a
// neighbour's load (a parallel build, the container tests) moves both
// figures. What this guards against, a client starved by the flood, waits
// for timeouts: seconds, far beyond either bound.
constexpr double kP99LimitMs = 50;
constexpr double kFloodSlowdown = 4;

// Memory per flood connection (the daemon's RSS growth / 2,000), bounded so
// that a per-connection buffer coming back fails the test. Measured on this
// 2-core machine: 35 to 42 KiB under ASan with the daemon's ASan quarantine
// at 16 MiB (below; with the default 256 MiB it was 162 KiB, the quarantine
// filling with the handshakes' freed memory), and about 19 KiB per idle
// connection in a release build (docs/performance.md). A 64 KiB buffer more
// per connection (what beast::ssl_stream held) exceeds either bound.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kRssPerConnectionKib = 64;
#else
constexpr std::size_t kRssPerConnectionKib = 40;
#endif

// The p50 and the nearest-rank p99 of latencies in ms.
std::pair<double, double> p50_p99(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[(ms.size() * 99 + 99) / 100 - 1]};
}

TEST_F(FloodTest, SlowAndIdleFloodsDoNotSlowALegitimateClient) {
  ConfigOptions o;
  o.header_timeout = std::to_string(kFloodHeaderTimeout.count()) + "s";
  o.idle_timeout = std::to_string(kFloodIdleTimeout.count()) + "s";
  // ASan keeps freed memory in a quarantine of up to 256 MiB, which the
  // flood's handshakes fill; at 16 MiB the RSS shows what is live.
  const char* asan = std::getenv("ASAN_OPTIONS");
  start(flood_config(o),  // the default max_connections (4096) admits the flood
        {{"ASAN_OPTIONS", std::string(asan == nullptr ? "" : asan) + ":quarantine_size_mb=16"}});
  const std::uint16_t port = daemon_->port();
  const auto cert = setup().root / "tls/cert.pem";
  std::vector<std::string> bodies;  // every delivery, in order: legit:1, legit:2, ...
  const auto timed_deliveries = [&](HttpsClient& c, std::size_t n) {
    std::vector<double> ms;
    for (std::size_t i = 0; i < n; ++i) {
      bodies.push_back(nodit_message("101", bodies.size() + 1));
      const auto t0 = Clock::now();
      const HttpResponse r = deliver(c, bodies.back());
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      EXPECT_EQ(r.status, 200U) << r.body;
      EXPECT_EQ(Json::parse(r.body).value("status", ""), "accepted") << r.body;
    }
    return ms;
  };
  double baseline_p99 = 0;
  {
    // Without the flood, for comparison (the first deliveries prepare
    // statements: not counted).
    HttpsClient c(port, cert);
    timed_deliveries(c, 5);
    const auto [p50, p99] = p50_p99(timed_deliveries(c, kBaseline));
    baseline_p99 = p99;
    std::cout << "[ flood    ] without the flood: p50 " << p50 << " ms, p99 " << p99 << " ms\n";
  }
  const double p99_limit = std::max(kP99LimitMs, kFloodSlowdown * baseline_p99);
  ASSERT_EQ(wait_metric(kOpen, 0), 0);
  const std::size_t rss_before = vm_rss_kib(daemon_->pid());

  // The flood: the idle connections, then the slow clients.
  TlsFleet fleet(port);
  const auto flood_began = Clock::now();
  const std::size_t idle_first = fleet.open(kIdle, kHandshakesAtOnce, 120s);
  const std::size_t slow_first = fleet.open(kSlow, kHandshakesAtOnce, 120s);
  ASSERT_EQ(fleet.open_count(), kIdle + kSlow) << "the flood's handshakes did not all complete";
  const double setup_s = std::chrono::duration<double>(Clock::now() - flood_began).count();
  // Each idle connection makes one request and then keeps the connection
  // (keep-alive) without another; each slow client sends the start of a
  // request head it never finishes.
  for (std::size_t i = idle_first; i < idle_first + kIdle; ++i) {
    fleet.send(i, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  }
  std::vector<std::size_t> answered(kIdle, 0);  // bytes of the /healthz answer
  ASSERT_TRUE(fleet.pump_until(
      [&] {
        for (std::size_t i = 0; i < kIdle; ++i) {
          std::string bytes = fleet[idle_first + i].received;
          const auto answers = take_responses(bytes);
          if (answers.size() != 1 || !bytes.empty()) return false;
          EXPECT_EQ(answers[0].status, 200U);
        }
        return true;
      },
      60s))
      << "the idle connections' requests were not all answered";
  for (std::size_t i = 0; i < kIdle; ++i) answered[i] = fleet[idle_first + i].received_total;
  for (std::size_t i = slow_first; i < slow_first + kSlow; ++i) {
    fleet.send(i, "POST /webhooks/nodit HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
  }
  ASSERT_EQ(wait_metric(kOpen, kIdle + kSlow), kIdle + kSlow);

  // One thread drives the whole flood: a byte from one slow client every
  // kTrickleEvery / kSlow, round robin, and the closes as they come.
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> idle_open{kIdle};
  std::atomic<std::size_t> slow_open{kSlow};
  std::thread driver([&] {
    const auto gap = std::chrono::duration_cast<Clock::duration>(kTrickleEvery) / kSlow;
    auto next_byte = Clock::now();
    auto next_count = Clock::now();
    std::size_t k = 0;
    while (!stop) {
      const auto now = Clock::now();
      for (; next_byte <= now; next_byte += gap, k = (k + 1) % kSlow) {
        if (fleet[slow_first + k].fd >= 0) fleet.send(slow_first + k, "a");
      }
      if (next_count <= now) {
        std::size_t idle = 0;
        std::size_t slow = 0;
        for (std::size_t i = 0; i < kIdle; ++i) idle += fleet[idle_first + i].fd >= 0 ? 1 : 0;
        for (std::size_t i = 0; i < kSlow; ++i) slow += fleet[slow_first + i].fd >= 0 ? 1 : 0;
        idle_open = idle;
        slow_open = slow;
        next_count = now + 50ms;
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_byte - now);
      fleet.pump(std::clamp(wait, 1ms, 20ms));
    }
  });

  // The legitimate client: a new connection, then signed deliveries one
  // after the other on it, each timed from its write to its whole answer.
  std::vector<double> latencies;
  {
    HttpsClient legit(port, cert);
    latencies = timed_deliveries(legit, kLegit);
  }
  const auto measured_until = Clock::now();
  const std::size_t rss_flood = vm_rss_kib(daemon_->pid());

  const auto [p50, p99] = p50_p99(latencies);
  EXPECT_LE(p99, p99_limit) << "p50 " << p50 << " ms, p99 without the flood " << baseline_p99
                            << " ms";
  const std::size_t grown = rss_flood > rss_before ? rss_flood - rss_before : 0;
  const std::size_t per_connection = grown / (kIdle + kSlow);
  EXPECT_LE(per_connection, kRssPerConnectionKib)
      << "RSS " << rss_before / 1024 << " MiB before the flood, " << rss_flood / 1024
      << " MiB with it";
  std::cout << "[ flood    ] " << kIdle << " idle + " << kSlow << " slow connections set up in "
            << setup_s << " s; legitimate client: " << kLegit << " deliveries, p50 " << p50
            << " ms, p99 " << p99 << " ms, max "
            << *std::max_element(latencies.begin(), latencies.end()) << " ms (limit " << p99_limit
            << " ms); daemon RSS " << rss_before / 1024 << " MiB before, " << rss_flood / 1024
            << " MiB with the flood open: " << per_connection << " KiB per connection (bound "
            << kRssPerConnectionKib << ")\n";

  // The slow clients are cut off by header_timeout, although they kept
  // sending: closed, without a byte of an answer (no 408). The idle
  // connections stay, untouched, until this side closes them.
  EXPECT_TRUE(wait_for(slow_open, 0, kFloodHeaderTimeout + 30s));
  stop = true;
  driver.join();
  std::size_t closed_early = 0;
  for (std::size_t i = slow_first; i < slow_first + kSlow; ++i) {
    EXPECT_TRUE(fleet[i].closed) << "slow client " << i << " was not cut off";
    EXPECT_EQ(fleet[i].received_total, 0U) << "slow client " << i << " got an answer";
    if (fleet[i].closed && fleet[i].closed_at <= measured_until) ++closed_early;
  }
  // The flood was open for the whole measurement.
  EXPECT_EQ(closed_early, 0U) << "slow clients cut off before the measurement ended";
  EXPECT_EQ(idle_open, kIdle);
  for (std::size_t i = idle_first; i < idle_first + kIdle; ++i) {
    EXPECT_EQ(fleet[i].received_total, answered[i - idle_first]) << "idle connection " << i;
    fleet.close(i);
  }
  EXPECT_EQ(wait_metric(kHeaderTimeouts, kSlow), kSlow);
  EXPECT_EQ(metric(kIdleTimeouts), 0);
  EXPECT_EQ(wait_metric(kOpen, 0), 0);

  // Every delivery is stored once, with its bytes.
  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  const auto stored = stored_events();
  EXPECT_EQ(stored.size(), bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const auto it = stored.find("101:" + std::to_string(i + 1));
    ASSERT_NE(it, stored.end()) << "101:" << i + 1 << " not stored";
    EXPECT_EQ(it->second.payload, bodies[i]);
  }
}

// ---------------------------------------------------------------------------
// max_connections

const std::string kEvictedIdle =
    "hookvault_connections_evicted_total{listener=\"public\",phase=\"idle\"}";

// Whether the daemon has closed `c` (EOF or reset) without a byte more.
bool closed_silently(RawTlsClient& c) { return c.read_once(1).empty(); }

// At the cap, each new connection is served in place of the longest-idle
// open one (all come from one address here); the listener never holds more
// than the cap once the closed ones are gone, the others are untouched, and
// left idle every connection is cut by idle_timeout. (A new connection is
// refused before TLS only when every open one has a request with the
// handler: ServerTest.AtTheCapANewConnectionIsRefusedWhenNoneCanMakeRoom.)
TEST_F(FloodTest, ConnectionCapMakesRoomByClosingTheLongestIdle) {
  constexpr std::size_t kCap = 50;
  ConfigOptions o;
  o.server_extra = "max_connections = " + std::to_string(kCap) + "\n";
  // Every step below uses each open connection within a few seconds; at the
  // end they are left idle until the daemon cuts them off.
  o.idle_timeout = "8s";
  start(flood_config(o));
  const std::uint16_t port = daemon_->port();
  EXPECT_EQ(metric(kMax), kCap);
  EXPECT_EQ(metric(kRefused), 0);

  std::vector<std::unique_ptr<RawTlsClient>> open;
  for (std::size_t i = 0; i < kCap; ++i) {
    open.push_back(std::make_unique<RawTlsClient>(port));
    ASSERT_TRUE(open.back()->handshake()) << "connection " << i + 1;
    ASSERT_EQ(open.back()->get("/healthz"), 200U) << "connection " << i + 1;
    std::this_thread::sleep_for(5ms);  // idle since, in this order
  }
  ASSERT_EQ(wait_metric(kOpen, kCap), kCap);

  // Beyond the cap: each is served, and the longest-idle open connection
  // (the first ones, in order) is closed for it, without a byte.
  constexpr std::size_t kExtra = 20;
  for (std::size_t i = 0; i < kExtra; ++i) {
    open.push_back(std::make_unique<RawTlsClient>(port));
    ASSERT_TRUE(open.back()->handshake()) << "extra connection " << i;
    EXPECT_EQ(open.back()->get("/healthz"), 200U) << "extra connection " << i;
    EXPECT_TRUE(closed_silently(*open[i])) << "connection " << i << " was not the one closed";
  }
  EXPECT_EQ(wait_metric(kOpen, kCap), kCap);
  EXPECT_EQ(metric(kEvictedIdle), kExtra);
  EXPECT_EQ(metric(kRefused), 0);
  // Logged, but not once per connection.
  const std::size_t lines =
      daemon_->log_count("max_connections are open: closed a connection to make room");
  EXPECT_GE(lines, 1U);
  EXPECT_LT(lines, kExtra) << daemon_->log();
  open.erase(open.begin(), open.begin() + kExtra);

  // The others are untouched: each still serves, and a signed delivery on
  // one of them is stored.
  for (auto& c : open) EXPECT_EQ(c->get("/healthz"), 200U);
  const std::string body = nodit_message("102", 1);
  ASSERT_TRUE(open.front()->write(nodit_request(body)));
  auto answers = read_responses(*open.front(), 1);
  ASSERT_EQ(answers.size(), 1U);
  EXPECT_EQ(answers[0].status, 200U) << answers[0].body;

  // Left idle, every connection is cut off by idle_timeout (closed, nothing
  // more sent), and the slots they held take new connections.
  ASSERT_EQ(wait_metric(kOpen, 0, 30s), 0);
  EXPECT_EQ(metric(kIdleTimeouts), kCap);
  for (auto& c : open) EXPECT_EQ(c->read_once(), "");
  RawTlsClient after(port);
  ASSERT_TRUE(after.handshake());
  EXPECT_EQ(after.get("/healthz"), 200U);
  EXPECT_EQ(metric(kEvictedIdle), kExtra);

  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  const auto stored = stored_events();
  ASSERT_EQ(stored.size(), 1U);
  EXPECT_EQ(stored.begin()->first, "102:1");
  EXPECT_EQ(stored.begin()->second.payload, body);
}

// ---------------------------------------------------------------------------
// 10,000 copies of one event

constexpr std::size_t kCopyConnections = 1000;
constexpr std::size_t kCopiesEach = 10;  // written back to back (pipelined) on each connection

TEST_F(FloodTest, TenThousandConcurrentCopiesOfOneEventAreStoredOnce) {
  ConfigOptions o;
  o.server_extra = "max_connections = " + std::to_string(kCopyConnections + 16) + "\n";
  o.header_timeout = "60s";  // nothing here is slow on purpose
  o.body_timeout = "60s";
  o.idle_timeout = "120s";
  start(flood_config(o));
  const std::string body = nodit_message("103", 1);
  const std::string event_id = "103:1";
  std::string requests;
  for (std::size_t i = 0; i < kCopiesEach; ++i) requests += nodit_request(body);

  TlsFleet fleet(daemon_->port());
  fleet.open(kCopyConnections, kHandshakesAtOnce, 120s);
  ASSERT_EQ(fleet.open_count(), kCopyConnections);

  // Every copy is written before any answer is read.
  const auto began = Clock::now();
  for (std::size_t i = 0; i < kCopyConnections; ++i) fleet.send(i, requests);
  std::vector<std::vector<RawResponse>> answers(kCopyConnections);
  std::size_t answered = 0;
  const bool all = fleet.pump_until(
      [&] {
        for (std::size_t i = 0; i < kCopyConnections; ++i) {
          if (answers[i].size() == kCopiesEach) continue;
          for (auto& r : take_responses(fleet[i].received)) {
            answers[i].push_back(std::move(r));
            ++answered;
          }
        }
        return answered == kCopyConnections * kCopiesEach;
      },
      120s);
  const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
  ASSERT_TRUE(all) << answered << " of " << kCopyConnections * kCopiesEach << " answered";

  // Exactly one "accepted"; every other copy "duplicate"; all 200 and all
  // naming the same id.
  std::size_t accepted = 0;
  std::size_t duplicates = 0;
  std::set<std::string> ids;
  for (const auto& list : answers) {
    for (const auto& r : list) {
      ASSERT_EQ(r.status, 200U) << r.body;
      const Json j = Json::parse(r.body);
      const std::string status = j.value("status", "");
      accepted += status == "accepted" ? 1 : 0;
      duplicates += status == "duplicate" ? 1 : 0;
      ids.insert(j.value("id", ""));
      EXPECT_EQ(j.value("eventId", ""), event_id) << r.body;
    }
  }
  EXPECT_EQ(accepted, 1U);
  EXPECT_EQ(duplicates, kCopyConnections * kCopiesEach - 1);
  ASSERT_EQ(ids.size(), 1U);
  std::cout << "[ copies   ] " << kCopyConnections * kCopiesEach << " copies on "
            << kCopyConnections << " connections (" << kCopiesEach
            << " pipelined on each) answered in " << seconds << " s\n";

  // One row, and it opens to the bytes sent.
  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  {
    RawDb db(dir_.path() / "data/hookvault.db", RawDb::Mode::read_only);
    EXPECT_EQ(db.integer("SELECT count(*) FROM events"), 1);
    EXPECT_EQ(db.integer("SELECT count(*) FROM events WHERE source = 'nodit' AND idem_key = '" +
                         event_id + "'"),
              1);
  }
  const auto stored = stored_events();
  ASSERT_EQ(stored.size(), 1U);
  ASSERT_EQ(stored.begin()->first, event_id);
  EXPECT_EQ(std::to_string(stored.begin()->second.id), *ids.begin());
  EXPECT_EQ(stored.begin()->second.payload, body);
}

// ---------------------------------------------------------------------------
// Pipelining

// Requests written back to back in one write are answered one by one, in
// order, each as if it had come alone: new events, a repeat, a bad
// signature, a health check.
TEST_F(FloodTest, PipelinedRequestsAreAnsweredInOrder) {
  start(flood_config({}));
  RawTlsClient c(daemon_->port());
  ASSERT_TRUE(c.handshake());
  struct Expected {
    unsigned status;
    std::string status_text;  // "accepted", "duplicate" or "" (no store answer)
    std::string event_id;
  };
  std::vector<Expected> expected;
  std::string all;
  std::vector<std::string> bodies;
  for (std::uint64_t i = 1; i <= 6; ++i) {
    bodies.push_back(nodit_message("104", i));
    all += nodit_request(bodies.back());
    expected.push_back({200, "accepted", "104:" + std::to_string(i)});
    if (i == 2) {
      all += "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      expected.push_back({200, "", ""});
    }
    if (i == 3) {
      std::string forged = nodit_request(nodit_message("104", 99));
      forged.replace(forged.find("x-signature: ") + 13, 8, "00000000");
      all += forged;
      expected.push_back({401, "", ""});
    }
    if (i == 4) {
      all += nodit_request(bodies.front());
      expected.push_back({200, "duplicate", "104:1"});
    }
  }
  ASSERT_TRUE(c.write(all));
  const auto answers = read_responses(c, expected.size());
  ASSERT_EQ(answers.size(), expected.size());
  std::map<std::string, std::string> id_of;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(answers[i].status, expected[i].status) << "answer " << i << ": " << answers[i].body;
    if (expected[i].status_text.empty()) continue;
    const Json j = Json::parse(answers[i].body);
    EXPECT_EQ(j.value("status", ""), expected[i].status_text) << answers[i].body;
    EXPECT_EQ(j.value("eventId", ""), expected[i].event_id) << answers[i].body;
    auto [it, fresh] = id_of.emplace(expected[i].event_id, j.value("id", ""));
    if (!fresh) {
      EXPECT_EQ(it->second, j.value("id", ""));
    }
  }
  EXPECT_EQ(answers[4].body, "{\"error\":\"invalid_signature\"}");
  // The connection still serves after the pipeline.
  EXPECT_EQ(c.get("/healthz"), 200U);

  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  const auto stored = stored_events();
  ASSERT_EQ(stored.size(), bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const auto it = stored.find("104:" + std::to_string(i + 1));
    ASSERT_NE(it, stored.end());
    EXPECT_EQ(it->second.payload, bodies[i]);
  }
}

}  // namespace
}  // namespace hookvault::testing
