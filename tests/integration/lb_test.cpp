// Behind a load balancer: drain on SIGTERM, PROXY protocol v2, X-Forwarded-For
// from trusted proxies, per-source allow_from. The real daemon, real TLS on
// loopback.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"
#include "hookvault/proxy_protocol.hpp"
#include "tls_support.hpp"

namespace hookvault::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::map<std::string, std::string> dynamic_headers(const E2E& t, const std::string& body) {
  return {{"Content-Type", "application/json"}, {"x-dynamic-signature-256", t.sign(body)}};
}

// A PROXY v2 header (PROXY command, TCP over IPv4) naming `a.b.c.d:port` as
// the client.
std::string proxy_v2(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                     std::uint16_t port) {
  std::string h("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);
  h += '\x21';  // version 2, PROXY
  h += '\x11';  // TCP over IPv4
  h += std::string("\x00\x0C", 2);
  for (std::uint8_t byte :
       {a, b, c, d, std::uint8_t{127}, std::uint8_t{0}, std::uint8_t{0}, std::uint8_t{1}}) {
    h += static_cast<char>(byte);
  }
  h += static_cast<char>(port >> 8);
  h += static_cast<char>(port & 0xff);
  h += std::string("\x20\xFB", 2);  // destination port 8443
  return h;
}
// LOCAL command: the load balancer's own connection (health checks).
std::string proxy_v2_local() { return std::string(kProxyV2Local, sizeof kProxyV2Local); }

std::set<std::string> stored_event_ids(E2E& t) {
  std::set<std::string> ids;
  for (const auto& e : t.events()) ids.insert(e["eventId"].get<std::string>());
  return ids;
}

class LoadBalancerTest : public E2E {};

// SIGTERM during a burst: /readyz answers 503 while the listener still
// accepts (drain_delay), then the listener closes; every delivery that got
// 200 is stored, and none that was sent on an open connection lost its
// answer (only new connections are refused once the listener is closed).
TEST_F(LoadBalancerTest, SigtermDrainsABurstWithoutLosingAnAnswer) {
  ConfigOptions o;
  o.server_extra = "drain_delay = \"1500ms\"\nshutdown_grace = \"10s\"\n";
  start(write_config(o));
  const std::uint16_t port = daemon_->port();

  std::mutex mu;
  std::vector<std::string> accepted;
  std::vector<std::string> lost;  // sent, no answer
  std::vector<std::string> odd;   // answered, but not 200
  std::atomic<int> accepted_after_sigterm{0};
  std::atomic<bool> sigterm_sent{false};
  std::atomic<bool> done{false};

  auto sender = [&](int n) {
    std::unique_ptr<HttpsClient> c;
    int refused_in_a_row = 0;
    for (int i = 0; !done && refused_in_a_row < 50; ++i) {
      if (!c) {
        try {
          c = std::make_unique<HttpsClient>(port);
          refused_in_a_row = 0;
        } catch (const std::exception&) {
          ++refused_in_a_row;  // listener closed (or the handshake was cut): never sent
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
      }
      const std::string id = "drain-" + std::to_string(n) + "-" + std::to_string(i);
      const std::string body = ping_event(id);
      const bool after = sigterm_sent;
      HttpResponse r;
      try {
        r = c->request("POST", "/webhooks/dynamic", dynamic_headers(*this, body), body);
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        lost.push_back(id + ": " + e.what());
        c.reset();
        continue;
      }
      {
        std::lock_guard lock(mu);
        if (r.status == 200) {
          accepted.push_back(id);
        } else {
          odd.push_back(id + ": " + std::to_string(r.status) + " " + r.body);
        }
      }
      if (r.status == 200 && after) ++accepted_after_sigterm;
      if (r.headers["connection"] == "close") c.reset();
    }
  };

  // Readiness as a load balancer sees it: a fresh connection per probe.
  std::optional<Clock::time_point> first_503;
  std::optional<Clock::time_point> first_refused;
  int ready_before = 0;
  // It runs until it has seen a refusal (the daemon may be gone before the
  // senders notice), or 60 s.
  auto prober = [&] {
    const auto give_up = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < give_up) {
      try {
        HttpsClient c(port);
        const auto r = c.request("GET", "/readyz");
        if (r.status == 200 && !sigterm_sent) ++ready_before;
        if (r.status == 503 && !first_503) first_503 = Clock::now();
      } catch (const std::exception&) {
        if (sigterm_sent && !first_refused) first_refused = Clock::now();
        if (first_refused) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  };

  std::vector<std::thread> threads;
  for (int n = 0; n < 6; ++n) threads.emplace_back(sender, n);
  std::thread probe(prober);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const auto sigterm_at = Clock::now();
  sigterm_sent = true;
  daemon_->terminate();
  EXPECT_EQ(daemon_->wait(std::chrono::seconds(30)), 0) << daemon_->log();
  done = true;
  for (auto& t : threads) t.join();
  probe.join();

  EXPECT_TRUE(lost.empty()) << lost.size() << " lost answers, first: " << lost.front();
  EXPECT_TRUE(odd.empty()) << odd.front();
  EXPECT_GT(accepted.size(), 20U);
  EXPECT_GT(accepted_after_sigterm.load(), 0) << "nothing was served during the drain delay";
  EXPECT_GT(ready_before, 0);
  ASSERT_TRUE(first_503) << "readyz never answered 503";
  ASSERT_TRUE(first_refused) << "the listener never closed";
  EXPECT_GE(*first_503, sigterm_at);
  EXPECT_LT(*first_503, *first_refused);
  // The listener stayed open for (about) the drain delay.
  EXPECT_GE(*first_refused - sigterm_at, std::chrono::milliseconds(1400));

  const std::string log = daemon_->log();
  const auto draining = log.find("\"msg\":\"draining\"");
  const auto closed = log.find("\"msg\":\"listener closed\"");
  ASSERT_NE(draining, std::string::npos) << log;
  ASSERT_NE(closed, std::string::npos) << log;
  EXPECT_LT(draining, closed);

  const auto stored = stored_event_ids(*this);
  std::size_t missing = 0;
  for (const auto& id : accepted) missing += stored.count(id) == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0U) << "acknowledged but not stored";
}

// A second SIGTERM during the drain delay closes the listener at once.
TEST_F(LoadBalancerTest, ASecondSigtermCutsTheDrainDelayShort) {
  ConfigOptions o;
  o.server_extra = "drain_delay = \"60s\"\n";
  start(write_config(o));
  const auto t0 = Clock::now();
  daemon_->terminate();
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"draining\"", 1));
  EXPECT_EQ(HttpsClient(daemon_->port()).request("GET", "/readyz").status, 503U);
  EXPECT_EQ(HttpsClient(daemon_->port()).request("GET", "/healthz").status, 200U);
  daemon_->terminate();
  EXPECT_EQ(daemon_->wait(std::chrono::seconds(10)), 0) << daemon_->log();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
}

// proxy_protocol = true: the client address comes from the PROXY v2 header
// of a trusted proxy, allow_from is checked against it, and a connection
// without the header is closed before TLS.
TEST_F(LoadBalancerTest, ProxyProtocolNamesTheClientAndAllowFromChecksIt) {
  ConfigOptions o;
  o.server_extra = "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n";
  o.extra_toml = "allow_from = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n";
  start(write_config(o));
  const std::uint16_t port = daemon_->port();

  {
    HttpsClient c(port, {}, {}, proxy_v2(203, 0, 113, 7, 50000));
    const std::string body = ping_event("proxied-allowed");
    const auto r = c.request("POST", "/webhooks/dynamic", dynamic_headers(*this, body), body);
    EXPECT_EQ(r.status, 200U) << r.body;
    // Keep-alive: the next request on the connection is the same client.
    const std::string body2 = ping_event("proxied-allowed-2");
    EXPECT_EQ(c.request("POST", "/webhooks/dynamic", dynamic_headers(*this, body2), body2).status,
              200U);
  }
  {
    HttpsClient c(port, {}, {}, proxy_v2(198, 51, 100, 1, 40000));
    const std::string body = ping_event("proxied-refused");
    const auto r = c.request("POST", "/webhooks/dynamic", dynamic_headers(*this, body), body);
    EXPECT_EQ(r.status, 403U);
    EXPECT_EQ(Json::parse(r.body)["error"], "forbidden");
  }
  {
    // LOCAL: the balancer's own health check; the TCP peer (127.0.0.1) stands.
    HttpsClient c(port, {}, {}, proxy_v2_local());
    EXPECT_EQ(c.request("GET", "/healthz").status, 200U);
    const std::string body = ping_event("local-refused");
    EXPECT_EQ(c.request("POST", "/webhooks/dynamic", dynamic_headers(*this, body), body).status,
              403U);
  }
  // No header: the first bytes are a ClientHello, not PROXY v2; closed.
  EXPECT_THROW(HttpsClient{port}, std::exception);
  // Garbage in the header's place: closed too, and the daemon keeps serving.
  EXPECT_THROW((HttpsClient{port, {}, {}, std::string(16, 'x')}), std::exception);
  EXPECT_EQ(HttpsClient(port, {}, {}, proxy_v2_local()).request("GET", "/healthz").status, 200U);
  // `hookvault healthcheck` speaks PROXY v2 (LOCAL) to such a listener. The
  // config says port 0, so it is pointed at the bound port.
  {
    const std::string text = read_file(config_);
    const auto at = text.find("listen = \"127.0.0.1:0\"");
    ASSERT_NE(at, std::string::npos);
    std::string probe = text;
    probe.replace(at, std::string("listen = \"127.0.0.1:0\"").size(),
                  "listen = \"127.0.0.1:" + std::to_string(port) + "\"");
    const auto probe_config = dir_.path() / "probe.toml";
    write_file(probe_config, probe, 0600);
    const auto r = run_hookvault({"healthcheck", "--config", probe_config.string()});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  const std::string log = daemon_->log();
  EXPECT_NE(log.find("\"client\":\"203.0.113.7\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"client address not in allow_from\""), std::string::npos) << log;
  EXPECT_EQ(daemon_->log_count("connection without a valid PROXY v2 header closed"), 2U);
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  EXPECT_EQ(stored_event_ids(*this),
            (std::set<std::string>{"proxied-allowed", "proxied-allowed-2"}));
}

// trusted_proxies: X-Forwarded-For is believed only from a trusted peer, and
// only its rightmost untrusted entry (what the trusted proxy itself saw).
TEST_F(LoadBalancerTest, ForwardedForFromATrustedProxyNamesTheClient) {
  ConfigOptions o;
  o.server_extra = "trusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n";
  o.extra_toml = "allow_from = [\"198.51.100.0/24\"]\n";
  start(write_config(o));
  auto post_from = [&](const std::string& id, const std::string& xff) {
    const std::string body = ping_event(id);
    auto headers = dynamic_headers(*this, body);
    if (!xff.empty()) headers["X-Forwarded-For"] = xff;
    return HttpsClient(daemon_->port()).request("POST", "/webhooks/dynamic", headers, body).status;
  };
  EXPECT_EQ(post_from("xff-plain", "198.51.100.9"), 200U);
  EXPECT_EQ(post_from("xff-chain", "203.0.113.1, 198.51.100.10, 10.1.1.1"), 200U);
  // A forged entry on the left does not help: the rightmost untrusted one counts.
  EXPECT_EQ(post_from("xff-forged", "198.51.100.9, 203.0.113.5"), 403U);
  EXPECT_EQ(post_from("xff-none", ""), 403U);  // the proxy itself is not allowed
  EXPECT_EQ(post_from("xff-garbage", "not-an-address"), 403U);
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("\"client\":\"198.51.100.10\""), std::string::npos) << log;
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  EXPECT_EQ(stored_event_ids(*this), (std::set<std::string>{"xff-plain", "xff-chain"}));
}

TEST_F(LoadBalancerTest, ForwardedForFromAnUntrustedPeerIsIgnored) {
  ConfigOptions o;
  o.server_extra = "trusted_proxies = [\"10.0.0.0/8\"]\n";
  o.extra_toml = "allow_from = [\"198.51.100.0/24\"]\n";
  start(write_config(o));
  const std::string body = ping_event("xff-untrusted");
  auto headers = dynamic_headers(*this, body);
  headers["X-Forwarded-For"] = "198.51.100.9";
  EXPECT_EQ(HttpsClient(daemon_->port()).request("POST", "/webhooks/dynamic", headers, body).status,
            403U);
  EXPECT_NE(daemon_->log().find("\"client\":\"127.0.0.1\""), std::string::npos);
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  EXPECT_TRUE(stored_event_ids(*this).empty());
}

// proxy_protocol: a PROXY header is believed only from trusted_proxies. A
// peer outside them (here 127.0.0.1, with a header naming an allowed
// client) is closed before a byte is read, counted, and gets nowhere near
// allow_from.
TEST_F(LoadBalancerTest, ProxyHeadersFromPeersOutsideTrustedProxiesAreRefused) {
  ConfigOptions o;
  o.server_extra = "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
  o.extra_toml =
      "allow_from = [\"203.0.113.0/24\"]\n" +
      admin_toml("[[admin.clients]]\nsubject_cn = \"signer\"\nroles = [\"metrics:read\"]\n");
  start(write_config(o));
  for (int i = 0; i < 3; ++i) {
    EXPECT_THROW((HttpsClient{daemon_->port(), {}, {}, proxy_v2(203, 0, 113, 7, 50000)}),
                 std::exception);
  }
  const auto& root = setup().root;
  HttpsClient signer(daemon_->admin_port(), root / "tls/admin-ca.pem",
                     {setup().offline / "signer-cert.pem", setup().offline / "signer-key.pem"});
  const std::string metrics = signer.request("GET", "/metrics").body;
  EXPECT_EQ(sample_value(metrics,
                         "hookvault_connections_refused_total{listener=\"public\","
                         "reason=\"untrusted_proxy\"}"),
            3)
      << metrics;
  EXPECT_GE(daemon_->log_count("connection from a peer outside trusted_proxies closed"), 1U);
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  EXPECT_TRUE(stored_event_ids(*this).empty());
}

TEST_F(LoadBalancerTest, ProxyProtocolWithoutTrustedProxiesIsAConfigError) {
  ConfigOptions o;
  o.server_extra = "proxy_protocol = true\n";
  const auto config = write_config(o);
  const auto check = run_hookvault({"check-config", "--config", config.string()});
  EXPECT_NE(check.exit_code, 0);
  EXPECT_NE(check.err.find("server.proxy_protocol"), std::string::npos) << check.err;
  EXPECT_NE(check.err.find("trusted_proxies"), std::string::npos) << check.err;
  // serve refuses to start (a daemon that started would run until killed).
  ChildProcess serve({"serve", "--config", config.string()}, dir_.path() / "serve.out",
                     dir_.path() / "serve.err");
  const auto give_up = Clock::now() + std::chrono::seconds(20);
  while (serve.running() && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(serve.running()) << "serve started";
  EXPECT_NE(serve.exit_status(), 0);
  EXPECT_NE(serve.err().find("server.proxy_protocol"), std::string::npos) << serve.err();
}

// A PROXY v2 header announces its length; one longer than a real header
// needs (kProxyV2MaxLength) is refused at once, before anything is
// allocated for it or waited for, while a real one with TLVs is served.
TEST_F(LoadBalancerTest, AProxyHeaderLongerThanARealOneIsRefusedAtOnce) {
  ConfigOptions o;
  o.header_timeout = "10s";
  o.server_extra = "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n";
  start(write_config(o));
  std::string longest = proxy_v2(203, 0, 113, 7, 50000);
  {
    const int fd = connect_loopback(daemon_->port());
    std::string prefix = longest.substr(0, 14) + std::string("\xFF\xFF", 2);
    ASSERT_EQ(::send(fd, prefix.data(), prefix.size(), MSG_NOSIGNAL), 16);
    const auto t0 = Clock::now();
    char byte = 0;
    const ssize_t n = ::recv(fd, &byte, 1, 0);  // the close (receive timeout: 10 s)
    EXPECT_LE(n, 0);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2)) << "the daemon waited for 64 KiB";
    ::close(fd);
  }
  // The longest header accepted: address block and TLVs (type 0xE0, a
  // custom one) filling kProxyV2MaxLength.
  const std::size_t tlv_value = kProxyV2MaxLength - 12 - 3;
  longest[14] = static_cast<char>(kProxyV2MaxLength >> 8);
  longest[15] = static_cast<char>(kProxyV2MaxLength & 0xff);
  longest += '\xE0';
  longest += static_cast<char>(tlv_value >> 8);
  longest += static_cast<char>(tlv_value & 0xff);
  longest += std::string(tlv_value, 'v');
  EXPECT_EQ(HttpsClient(daemon_->port(), {}, {}, longest).request("GET", "/healthz").status, 200U);
  EXPECT_EQ(daemon_->log_count("connection without a valid PROXY v2 header closed"), 1U);
  // (The request's log line follows its answer.)
  EXPECT_TRUE(daemon_->wait_for_log("\"client\":\"203.0.113.7\"", 1)) << daemon_->log();
}

// At the cap, connections are grouped by the client a trusted PROXY header
// names, not by the balancer's address (which they all share): the client
// holding the most gives up its own longest-idle connection, not another
// client's.
TEST_F(LoadBalancerTest, AtTheCapProxiedConnectionsAreGroupedByTheirClient) {
  ConfigOptions o;
  o.server_extra =
      "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\nmax_connections = 4\n";
  o.idle_timeout = "60s";
  start(write_config(o));
  const std::uint16_t port = daemon_->port();
  std::vector<std::unique_ptr<HttpsClient>> busy_client;
  for (int i = 0; i < 3; ++i) {
    busy_client.push_back(std::make_unique<HttpsClient>(
        port, std::filesystem::path{}, ClientCertificate{},
        proxy_v2(203, 0, 113, 7, static_cast<std::uint16_t>(50000 + i))));
    ASSERT_EQ(busy_client.back()->request("GET", "/healthz").status, 200U);
  }
  HttpsClient quiet(port, {}, {}, proxy_v2(198, 51, 100, 1, 40000));
  ASSERT_EQ(quiet.request("GET", "/healthz").status, 200U);
  // `quiet` is now the longest-idle connection of all.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (auto& c : busy_client) ASSERT_EQ(c->request("GET", "/healthz").status, 200U);
  // At the cap, one more from 203.0.113.7: one of its own makes room.
  HttpsClient more(port, {}, {}, proxy_v2(203, 0, 113, 7, 50010));
  EXPECT_EQ(more.request("GET", "/healthz").status, 200U);
  EXPECT_EQ(quiet.request("GET", "/healthz").status, 200U) << "another client's connection closed";
  int closed = 0;
  for (auto& c : busy_client) {
    try {
      c->request("GET", "/healthz");
    } catch (const std::exception&) {
      ++closed;
    }
  }
  EXPECT_EQ(closed, 1);
}

}  // namespace
}  // namespace hookvault::testing
