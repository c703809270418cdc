// Fuzzes a whole request: bytes into the listener's own request loop
// (net::serve_requests, src/net/http_session.hpp) through an in-memory stream,
// into the real Pipeline (signature, strict JSON, Nodit and Dynamic handling,
// RSA/AES decryption on a WorkPool) and a real Store (a SQLite file in a
// temporary folder, a memory KEK).
//
// Input: the first byte sets the size of each read the stream hands out
// (1-64 bytes: heads and bodies split anywhere); the rest is what a client
// sends on one connection (one request or several, pipelined). Two
// placeholders let mutations reach past the signature check:
//   {{sig}}  becomes the hex HMAC-SHA256 of the first request's body (after
//            the first blank line, Content-Length bytes or to the end) under
//            the secret of both sources;
//   {{ek}}   becomes base64url RSA-OAEP(kAesKey) to this run's RSA key (made
//            at start, never written anywhere), so a seed's delegation can
//            carry AES-GCM fields made with kAesKey (tests/fuzz/make_seeds.js).
// Properties: every byte written back parses as HTTP/1.1 responses, each
// with an X-Request-Id; none is a 500 (an unexpected failure).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "fuzz_support.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/log.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "hookvault/work_pool.hpp"
#include "memory_stream.hpp"
#include "net/http_session.hpp"

using namespace hookvault;
using fuzz::check;
using fuzz::make_run_key;
using fuzz::MemoryStream;
using fuzz::RunKey;
namespace asio = boost::asio;
namespace http = boost::beast::http;

namespace {

constexpr std::string_view kSecret = "whsec_fuzz_request";
// The AES key of the seeds' delegations (make_seeds.js): a test constant.
constexpr unsigned char kAesKey[32] = {
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

struct World {
  std::filesystem::path dir;
  std::string ek;  // base64url RSA-OAEP(kAesKey)
  Metrics metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<WorkPool> pool;
  std::unique_ptr<Pipeline> pipeline;
  ServerConfig server;
  std::atomic<bool> draining{false};
  std::unique_ptr<net::HttpSessionContext> sessions;
};

World& world() {
  static World* w = [] {
    auto* out = new World;
    char tmpl[] = "/tmp/hookvault-fuzz-request-XXXXXX";
    check(mkdtemp(tmpl) != nullptr, "mkdtemp");
    out->dir = tmpl;
    std::atexit([] { std::filesystem::remove_all(world().dir); });
    init_logging("json", "critical");

    std::vector<std::shared_ptr<const Source>> sources;
    for (const Provider provider : {Provider::nodit, Provider::dynamic}) {
      SourceConfig config;
      config.provider = provider;
      config.name = provider == Provider::nodit ? "nodit" : "dynamic";
      config.path = provider == Provider::nodit ? "/webhooks/nodit" : "/webhooks/dynamic";
      std::vector<SecretBytes> secrets;
      secrets.push_back(SecretBytes::copy_of(kSecret));
      std::optional<HybridDecryptor> decryptor;
      if (provider == Provider::dynamic) {
        std::vector<std::pair<std::string, SecretBytes>> keys;
        const RunKey run_key = make_run_key(kAesKey);
        out->ek = run_key.ek;
        keys.emplace_back("", SecretBytes::copy_of(std::string_view(run_key.pem)));
        decryptor = HybridDecryptor::from_pem(keys);
      }
      sources.push_back(std::make_shared<const Source>(
          Source{std::move(config), SignatureVerifier(std::move(secrets)), std::move(decryptor)}));
    }
    SqliteStoreOptions options;
    options.path = out->dir / "fuzz.db";
    std::shared_ptr<const Kek> kek = make_memory_kek(SecretBytes::random(32), "fuzz");
    auto store = open_sqlite_store(options, kek);
    check(store.has_value(), "store open");
    out->store = std::move(*store);
    out->pool = std::make_unique<WorkPool>(1, 64);
    out->pipeline = std::make_unique<Pipeline>(sources, *out->store, *out->pool, out->metrics);
    out->server.max_body_bytes = 65536;
    out->server.max_header_bytes = 4096;
    out->server.max_header_count = 16;
    out->server.trusted_proxies.push_back(*Cidr::parse("10.0.0.0/8"));
    out->sessions = std::make_unique<net::HttpSessionContext>(out->server, *out->pipeline, "public",
                                                              out->metrics, out->draining);
    return out;
  }();
  return *w;
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// The first request's body: after the first blank line, Content-Length bytes
// (when a Content-Length field says so) or to the end.
std::string_view first_body(std::string_view text) {
  const auto blank = text.find("\r\n\r\n");
  if (blank == std::string_view::npos) return {};
  const std::string_view head = text.substr(0, blank);
  std::string_view body = text.substr(blank + 4);
  constexpr std::string_view kLength = "Content-Length: ";
  if (const auto at = head.find(kLength); at != std::string_view::npos) {
    const std::size_t n =
        std::strtoul(std::string(head.substr(at + kLength.size(), 12)).c_str(), nullptr, 10);
    body = body.substr(0, n);
  }
  return body;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  World& w = world();
  const std::size_t chunk = 1 + data[0] % 64;
  std::string input(fuzz::as_text(data + 1, size - 1));
  replace_all(input, "{{ek}}", w.ek);
  if (input.find("{{sig}}") != std::string::npos) {
    // The body as it will be sent: {{sig}} is in the head, and its
    // replacement does not change the body's bytes.
    std::string probe = input;
    replace_all(probe, "{{sig}}", "");
    const Mac mac = hmac_sha256(as_bytes(kSecret), as_bytes(first_body(probe)));
    replace_all(input, "{{sig}}", to_hex(ByteView(mac.data(), mac.size())));
  }

  asio::io_context ioc;
  MemoryStream stream(ioc.get_executor(), input, chunk);
  net::ConnectionPhase phase;
  net::Peer who{"10.1.2.3:4444", net::Client{*parse_ip("10.1.2.3"), "10.1.2.3"}, "", false};
  asio::co_spawn(ioc, net::serve_requests(*w.sessions, stream, phase, std::move(who)),
                 asio::detached);
  ioc.run();

  // What was written back: whole responses, each with an X-Request-Id, no 500.
  std::string_view out = stream.written();
  while (!out.empty()) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    boost::system::error_code ec;
    const std::size_t used = parser.put(asio::buffer(out.data(), out.size()), ec);
    check(!ec && parser.is_done(), "the answer is a whole HTTP response");
    const auto& res = parser.get();
    check(res.result_int() != 500, "no request makes a 500");
    if (res.result_int() != 100) {
      check(!res["X-Request-Id"].empty(), "every answer names its request");
    }
    out.remove_prefix(used);
  }
  return 0;
}
