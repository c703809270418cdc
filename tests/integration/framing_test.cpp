// HTTP/1.1 framing attacks against the real daemon over real TLS
// (src/net/http_framing.hpp): chunk extensions and trailers that never end or
// add up, trailer fields posing as header fields, transfer codings other than
// chunked (request smuggling). Each test ends by checking that the signed
// deliveries made around the attacks are stored, once, with their bytes, and
// nothing else is.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
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

constexpr char kNoditKey[] = "nodit-signing-key-for-the-framing-test";
constexpr std::size_t kHeaderLimit = 16384;  // max_header_bytes below

// VmRSS of a process, in KiB; 0 when it cannot be read.
std::size_t vm_rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

// Everything `c` receives until the daemon closes the connection (or
// `limit` passes), cut into answers; `closed` says whether it closed.
std::vector<RawResponse> answers_until_close(RawTlsClient& c, bool& closed,
                                             std::chrono::seconds limit = 5s) {
  timeval tv{static_cast<time_t>(limit.count()), 0};
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string bytes;
  const auto end = Clock::now() + limit;
  closed = false;
  while (Clock::now() < end) {
    char buf[4096];
    std::size_t n = 0;
    const int r = SSL_read_ex(c.ssl(), buf, sizeof buf, &n);
    if (r == 1) {
      bytes.append(buf, n);
      continue;
    }
    const int err = SSL_get_error(c.ssl(), r);
    closed = err == SSL_ERROR_ZERO_RETURN ||
             (err == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK) ||
             err == SSL_ERROR_SSL;
    break;
  }
  return take_responses(bytes);
}

std::string hex(std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[n % 16]);
    n /= 16;
  } while (n != 0);
  return out;
}

class HttpFramingTest : public E2E {
 protected:
  // `extra`: more [server] lines; `source_extra`: lines of the dynamic
  // [[sources]] table.
  void start_daemon(const std::string& extra = {}, const std::string& source_extra = {}) {
    ConfigOptions o;
    o.header_timeout = "10s";
    o.body_timeout = "30s";
    o.server_extra = "max_header_bytes = " + std::to_string(kHeaderLimit) + "\n" + extra;
    o.extra_toml = source_extra;
    add_nodit_source(o, kNoditKey);
    o.extra_toml += admin_toml(
        "rate_limit = 0\n[[admin.clients]]\nsubject_cn = \"signer\"\nroles = "
        "[\"metrics:read\"]\n");
    start(write_config(o));
  }

  // A signed Nodit delivery on a fresh connection; remembered for the end.
  void deliver(const std::string& sub, std::uint64_t seq) {
    const std::string body = nodit_message(sub, seq);
    HttpsClient c(daemon_->port(), setup().root / "tls/cert.pem");
    const auto r = post_nodit(c, kNoditKey, body);
    ASSERT_EQ(r.status, 200U) << r.body;
    delivered_[sub + ":" + std::to_string(seq)] = body;
  }

  double metric(const std::string& series) {
    const auto& root = setup().root;
    HttpsClient c(daemon_->admin_port(), root / "tls/admin-ca.pem",
                  {setup().offline / "signer-cert.pem", setup().offline / "signer-key.pem"});
    const auto r = c.request("GET", "/metrics");
    EXPECT_EQ(r.status, 200U) << r.body;
    return sample_value(r.body, series);
  }

  // Stops the daemon and checks the store holds exactly `delivered_` plus
  // `more` (idempotency key -> payload), each once and opening to its bytes.
  void expect_store_intact(const std::map<std::string, std::string>& more = {}) {
    ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
    SqliteStoreOptions options;
    options.path = dir_.path() / "data/hookvault.db";
    auto store = open_sqlite_store(options, open_file_kek(setup().root / "keys/kek.key"));
    ASSERT_TRUE(store) << store.error().message();
    std::string error;
    const auto events = open_all_events(**store, error);
    ASSERT_TRUE(error.empty()) << error;
    auto want = delivered_;
    want.insert(more.begin(), more.end());
    std::set<std::string> keys;
    for (const auto& [key, event] : events) keys.insert(key);
    std::set<std::string> want_keys;
    for (const auto& [key, body] : want) want_keys.insert(key);
    EXPECT_EQ(keys, want_keys);
    for (const auto& [key, body] : want) {
      const auto it = events.find(key);
      if (it != events.end()) {
        EXPECT_EQ(it->second.payload, body) << key;
      }
    }
  }

  // Streams `prefix` and then `filler` bytes in 64 KiB writes, up to
  // `total`, on a connection to `port`, until a write fails (the daemon
  // closed). Returns the bytes written; `peak_rss` is the daemon's highest
  // VmRSS seen meanwhile.
  std::size_t flood(std::uint16_t port, const std::string& prefix, char filler, std::size_t total,
                    std::size_t& peak_rss) {
    RawTlsClient c(port);
    EXPECT_TRUE(c.handshake());
    SigpipeBlocked blocked;
    const std::string block(64 * 1024, filler);
    std::size_t sent = 0;
    peak_rss = vm_rss_kib(daemon_->pid());
    if (!c.write(prefix)) return 0;
    for (std::size_t i = 0; sent < total; ++i) {
      if (!c.write(block)) break;
      sent += block.size();
      if (i % 8 == 0) peak_rss = std::max(peak_rss, vm_rss_kib(daemon_->pid()));
    }
    peak_rss = std::max(peak_rss, vm_rss_kib(daemon_->pid()));
    return sent;
  }

  std::map<std::string, std::string> delivered_;
};

const std::string kChunkedHead =
    "POST /webhooks/nodit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

// 128 MiB of chunk extension or trailer, as fast as TLS takes it. The daemon
// must close the connection after about the header limit, and hold no more
// than a few MiB meanwhile (before: every byte, until body_timeout).
constexpr std::size_t kFloodBytes = 128U << 20;
constexpr std::size_t kRssGrowthLimitKib = 16 * 1024;

TEST_F(HttpFramingTest, AnEndlessChunkExtensionIsRefusedAtTheHeaderLimit) {
  start_daemon();
  deliver("801", 1);
  // Exactly what fills the read buffer after the head: the parser still
  // waits for the end of the chunk-size line, so the read fails there,
  // every byte sent has been read, and the 431 arrives before the close.
  {
    RawTlsClient c(daemon_->port());
    ASSERT_TRUE(c.handshake());
    ASSERT_TRUE(c.write(kChunkedHead + "1;" + std::string(kHeaderLimit - 2, 'a')));
    bool closed = false;
    const auto answers = answers_until_close(c, closed, 10s);
    ASSERT_EQ(answers.size(), 1U);
    EXPECT_EQ(answers[0].status, 431U);
    EXPECT_EQ(answers[0].body, "{\"error\":\"header_too_large\"}");
    EXPECT_TRUE(closed);
  }
  // The flood: cut off long before its end, the daemon's memory flat.
  const std::size_t before = vm_rss_kib(daemon_->pid());
  std::size_t peak = 0;
  const std::size_t sent = flood(daemon_->port(), kChunkedHead + "1;", 'a', kFloodBytes, peak);
  EXPECT_LT(sent, kFloodBytes) << "the daemon read the whole flood";
  EXPECT_LT(peak - std::min(peak, before), kRssGrowthLimitKib)
      << "RSS " << before / 1024 << " MiB before, " << peak / 1024 << " MiB at the peak";
  deliver("802", 1);
  expect_store_intact();
}

TEST_F(HttpFramingTest, AnEndlessTrailerIsRefusedAtTheHeaderLimit) {
  start_daemon();
  deliver("801", 1);
  const std::size_t before = vm_rss_kib(daemon_->pid());
  std::size_t peak = 0;
  const std::size_t sent =
      flood(daemon_->port(), kChunkedHead + "1\r\n{\r\n0\r\nX-Trailer: ", 'a', kFloodBytes, peak);
  EXPECT_LT(sent, kFloodBytes) << "the daemon read the whole flood";
  EXPECT_LT(peak - std::min(peak, before), kRssGrowthLimitKib)
      << "RSS " << before / 1024 << " MiB before, " << peak / 1024 << " MiB at the peak";
  deliver("802", 1);
  expect_store_intact();
}

// The admin listener parses before it looks at the client certificate: a
// client without one gets the same limits.
TEST_F(HttpFramingTest, TheAdminListenerBoundsChunkedFramingBeforeAnyCertificate) {
  start_daemon();
  const std::string head =
      "POST /v1/materials HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  {
    RawTlsClient c(daemon_->admin_port());
    ASSERT_TRUE(c.handshake());
    ASSERT_TRUE(c.write(head + "1;" + std::string(kHeaderLimit - 2, 'a')));
    bool closed = false;
    const auto answers = answers_until_close(c, closed, 10s);
    ASSERT_EQ(answers.size(), 1U);
    EXPECT_EQ(answers[0].status, 431U);
    EXPECT_TRUE(closed);
  }
  const std::size_t before = vm_rss_kib(daemon_->pid());
  std::size_t peak = 0;
  const std::size_t sent =
      flood(daemon_->admin_port(), head + "1\r\na\r\n0\r\nX-Trailer: ", 'a', kFloodBytes, peak);
  EXPECT_LT(sent, kFloodBytes) << "the daemon read the whole flood";
  EXPECT_LT(peak - std::min(peak, before), kRssGrowthLimitKib)
      << "RSS " << before / 1024 << " MiB before, " << peak / 1024 << " MiB at the peak";
  // Both were answered 431 (the flood's answer went unread).
  EXPECT_EQ(metric("hookvault_http_requests_total{listener=\"admin\",source=\"\",event=\"\","
                   "status=\"431\"}"),
            2);
  deliver("802", 1);
  expect_store_intact();
}

// Many short extensions, or a trailer section that fits the read buffer,
// still count against max_header_bytes with the head: together they are
// refused as a head that size would be.
TEST_F(HttpFramingTest, ChunkExtensionsAndTrailersCountAgainstTheHeaderLimit) {
  start_daemon();
  const std::string padded_head =
      "POST /webhooks/nodit HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + std::string(8000, 'p') +
      "\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  const auto expect_431 = [&](const std::string& request, const std::string& what) {
    RawTlsClient c(daemon_->port());
    ASSERT_TRUE(c.handshake());
    ASSERT_TRUE(c.write(request));
    bool closed = false;
    const auto answers = answers_until_close(c, closed, 10s);
    ASSERT_EQ(answers.size(), 1U) << what;
    EXPECT_EQ(answers[0].status, 431U) << what;
    EXPECT_TRUE(closed) << what;
  };
  // 100 one-byte chunks, each with a 100-byte extension: 10 KB of extensions.
  std::string chunks;
  for (int i = 0; i < 100; ++i) chunks += "1;ext=" + std::string(94, 'e') + "\r\n{\r\n";
  expect_431(padded_head + chunks + "0\r\n\r\n", "extensions");
  // A 10 KB trailer field after the 8 KB head.
  expect_431(padded_head + "1\r\n{\r\n0\r\nX-Trailer: " + std::string(10000, 't') + "\r\n\r\n",
             "trailer");
  // And header_count counts trailer fields too (64 by default).
  std::string trailers;
  for (int i = 0; i < 70; ++i) trailers += "X-T" + std::to_string(i) + ": x\r\n";
  expect_431(kChunkedHead + "1\r\n{\r\n0\r\n" + trailers + "\r\n", "trailer count");
  deliver("802", 1);
  expect_store_intact();
}

// With trusted_proxies set (the peer, 127.0.0.1, is a trusted proxy),
// X-Forwarded-For names the client that allow_from checks. A trailer must
// not add to it, nor stand in for the signature or the content type.
TEST_F(HttpFramingTest, TrailerFieldsNeverStandInForHeaderFields) {
  start_daemon("trusted_proxies = [\"127.0.0.0/8\"]\n", "allow_from = [\"198.51.100.0/24\"]\n");
  std::map<std::string, std::string> bodies;
  // `headers` and `trailers` may hold {sig}: the body's signature field.
  const auto send = [&](const std::string& id, std::string headers, std::string trailers) {
    const std::string body = ping_event(id);
    bodies[id] = body;
    const std::string sig = "x-dynamic-signature-256: " + sign(body) + "\r\n";
    for (std::string* s : {&headers, &trailers}) {
      if (const auto at = s->find("{sig}"); at != std::string::npos) s->replace(at, 5, sig);
    }
    RawTlsClient c(daemon_->port());
    EXPECT_TRUE(c.handshake());
    EXPECT_TRUE(c.write("POST /webhooks/dynamic HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                        hex(body.size()) + "\r\n" + body + "\r\n0\r\n" + trailers + "\r\n"));
    bool closed = false;
    const auto answers = answers_until_close(c, closed);
    EXPECT_EQ(answers.size(), 1U) << id;
    return answers.empty() ? 0U : answers[0].status;
  };
  const std::string json = "Content-Type: application/json\r\n";

  // A forged client in a trailer: the client stays the peer, outside allow_from.
  EXPECT_EQ(send("xff-in-trailer", json + "{sig}", "X-Forwarded-For: 198.51.100.9\r\n"), 403U);
  // The header's client stands; a trailer cannot push it aside.
  EXPECT_EQ(send("xff-in-header", json + "{sig}X-Forwarded-For: 198.51.100.10\r\n",
                 "X-Forwarded-For: 203.0.113.5\r\n"),
            200U);
  // The signature only in a trailer: unsigned.
  const std::string allowed = "X-Forwarded-For: 198.51.100.11\r\n";
  EXPECT_EQ(send("sig-in-trailer", json + allowed, "{sig}"), 401U);
  // The content type only in a trailer: none.
  EXPECT_EQ(send("type-in-trailer", "{sig}" + allowed, json), 415U);

  const std::string log = daemon_->log();
  EXPECT_EQ(log.find("198.51.100.9"), std::string::npos) << log;
  EXPECT_EQ(log.find("203.0.113.5"), std::string::npos) << log;
  EXPECT_NE(log.find("\"client\":\"198.51.100.10\""), std::string::npos) << log;
  expect_store_intact({{"xff-in-header", bodies["xff-in-header"]}});
}

// RFC 9112 section 6: a request's framing is Content-Length, or
// Transfer-Encoding ending in chunked (alone: we decode no other coding).
// Anything else is refused and the connection closed, so a body can never
// be read as the next request.
TEST_F(HttpFramingTest, TransferCodingsOtherThanChunkedAreRefused) {
  start_daemon();
  const std::string smuggled = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const std::string post = "POST /webhooks/nodit HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  struct Case {
    std::string name;
    std::string request;
    unsigned status;
  };
  const std::vector<Case> cases = {
      {"gzip alone", post + "Transfer-Encoding: gzip\r\n\r\n" + smuggled, 400},
      {"chunked not last", post + "Transfer-Encoding: chunked, gzip\r\n\r\n" + smuggled, 400},
      {"chunked twice", post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + smuggled,
       400},
      {"gzip with Content-Length",
       post + "Transfer-Encoding: gzip\r\nContent-Length: " + std::to_string(smuggled.size()) +
           "\r\n\r\n" + smuggled,
       400},
      {"chunked with Content-Length",
       post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
      {"chunked in HTTP/1.0",
       "POST /webhooks/nodit HTTP/1.0\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n" +
           smuggled,
       400},
      {"empty Transfer-Encoding", post + "Transfer-Encoding: ,\r\n\r\n" + smuggled, 400},
      {"gzip under chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled,
       501},
      {"gzip and chunked in two fields",
       post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
       501},
  };
  for (const auto& c : cases) {
    RawTlsClient conn(daemon_->port());
    ASSERT_TRUE(conn.handshake()) << c.name;
    ASSERT_TRUE(conn.write(c.request)) << c.name;
    bool closed = false;
    const auto answers = answers_until_close(conn, closed);
    ASSERT_EQ(answers.size(), 1U) << c.name << ": the body was read as a request";
    EXPECT_EQ(answers[0].status, c.status) << c.name << ": " << answers[0].body;
    EXPECT_TRUE(closed) << c.name;
  }
  // chunked alone is the framing it is: the request is read (and refused
  // for its missing signature), the connection stays, the next request on
  // it is answered.
  {
    RawTlsClient conn(daemon_->port());
    ASSERT_TRUE(conn.handshake());
    ASSERT_TRUE(conn.write(post + "Transfer-Encoding: chunked\r\n"
                                  "Content-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n"));
    std::string bytes;
    std::vector<RawResponse> answers;
    while (answers.empty()) {
      const std::string part = conn.read_once();
      ASSERT_FALSE(part.empty());
      bytes += part;
      answers = take_responses(bytes);
    }
    EXPECT_EQ(answers[0].status, 401U);
    EXPECT_EQ(conn.get("/healthz"), 200U);
  }
  expect_store_intact();
}

}  // namespace
}  // namespace hookvault::testing
