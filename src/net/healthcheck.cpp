// The healthcheck probe: one pinned-certificate HTTPS GET through
// https_exchange() (net/https_exchange.hpp). healthcheck.hpp says why the
// configured certificate is the trust anchor.
#include "hookvault/healthcheck.hpp"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <ostream>

#include "hookvault/proxy_protocol.hpp"
#include "net/https_exchange.hpp"

namespace hookvault {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// The first certificate of a PEM file (the leaf the listener serves); null
// when the file cannot be read or holds none.
X509Ptr first_certificate(const std::filesystem::path& file) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string url_of(const Endpoint& endpoint, const std::string& path) {
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  return "https://" + (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" +
         std::to_string(endpoint.port) + path;
}

std::string describe(const net::Exchange& ex, std::chrono::milliseconds timeout) {
  const std::string stage(ex.failed_stage);
  if (stage == "timeout" || ex.ec == beast::error::timeout) {
    return "timed out after " + std::to_string(timeout.count()) + "ms" +
           (stage == "timeout" ? std::string() : " (" + stage + ")");
  }
  if (stage == "peer_check") return "tls_handshake: the certificate is not the configured tls_cert";
  return stage + (ex.ec ? ": " + ex.ec.message() : std::string());
}

}  // namespace

Endpoint probe_endpoint(const Endpoint& listen) {
  if (listen.host == "0.0.0.0") return {"127.0.0.1", listen.port};
  if (listen.host == "::") return {"::1", listen.port};
  return listen;
}

ProbeResult probe_listener(const ServerConfig& server, const std::string& path,
                           std::chrono::milliseconds timeout) {
  ProbeResult result;
  const Endpoint target = probe_endpoint(server.listen);
  result.url = url_of(target, path);
  if (target.port == 0) {
    result.problem = "[server] listen has port 0 (any free port): nothing to probe";
    return result;
  }
  try {
    X509Ptr pinned = first_certificate(server.tls_cert);
    if (!pinned) {
      result.problem = "cannot read a certificate from tls_cert " + server.tls_cert.string();
      return result;
    }
    asio::ssl::context tls(asio::ssl::context::tls_client);
    SSL_CTX* native = tls.native_handle();
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(native, server.tls_cert.c_str(), nullptr) != 1) {
      result.problem = "cannot use tls_cert " + server.tls_cert.string() + " as trust anchor";
      return result;
    }
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(native), X509_V_FLAG_PARTIAL_CHAIN);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);

    net::HttpsPeer peer;
    peer.host = target.host;
    peer.port = std::to_string(target.port);
    peer.host_is_address = true;    // [server] listen is an IP address
    peer.verify_host_name = false;  // pinned instead, below
    if (server.proxy_protocol) {
      // The listener requires a PROXY v2 header: send the LOCAL form, the one a
      // load balancer uses for its own health checks (no client address).
      peer.preamble = std::string(kProxyV2Local, sizeof kProxyV2Local);
    }
    peer.check_peer = [&pinned](SSL* ssl) {
      X509* presented = SSL_get0_peer_certificate(ssl);
      return presented != nullptr && X509_cmp(presented, pinned.get()) == 0;
    };

    http::request<http::empty_body> req{http::verb::get, path, 11};
    const bool v6 = target.host.find(':') != std::string::npos;
    req.set(http::field::host, (v6 ? "[" + target.host + "]" : target.host) + ":" + peer.port);
    req.set(http::field::user_agent, "hookvault-healthcheck");
    req.keep_alive(false);

    // Small answers only: /readyz and /healthz send a few bytes of JSON.
    const net::Exchange ex = net::https_exchange(tls, peer, req, Clock::now() + timeout,
                                                 net::ExchangeLimits{16U * 1024, 64ULL * 1024});
    if (!ex.failed_stage.empty()) {
      result.problem = describe(ex, timeout);
      return result;
    }
    result.ok = true;
    result.status = ex.status;
    return result;
  } catch (const std::exception& e) {
    result.problem = std::string("internal: ") + e.what();
    return result;
  }
}

int healthcheck(const Config& config, const HealthcheckOptions& options, std::ostream& out,
                std::ostream& err) {
  const ProbeResult r =
      probe_listener(config.server, options.live ? "/healthz" : "/readyz", options.timeout);
  if (r.ok && r.status == 200) {
    out << "ok: " << r.url << " 200\n";
    return 0;
  }
  err << "unhealthy: " << r.url << ": " << (r.ok ? "HTTP " + std::to_string(r.status) : r.problem)
      << "\n";
  return 1;
}

}  // namespace hookvault
