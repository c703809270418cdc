// `hookvault healthcheck`: is the public listener of this config serving?
// For Docker's HEALTHCHECK, a load balancer's sidecar or a shell script, in an
// image that has no curl.
//
// It reads the config, connects over TLS to [server] listen and sends
// GET /readyz (/healthz with `live`), Connection: close. With [server]
// proxy_protocol the connection starts with a PROXY v2 LOCAL header, as a
// load balancer's own health check does. A wildcard listen
// address is probed on loopback: 0.0.0.0 as 127.0.0.1, :: as ::1. Exit 0 on
// a 200 (and one "ok: URL 200" line on `out`), else 1 with one short line on
// `err`: "unhealthy: URL: <why>" (the status, or the step that failed and its
// error, or the timeout). Nothing secret is read or printed: only the
// certificate file is opened, never the key or a webhook secret.
//
// How the listener is trusted. Its certificate is usually self-signed, so the
// system trust store would refuse it and a hostname check would be
// meaningless on 127.0.0.1. Instead of turning verification off, the probe
// verifies the peer against the configured `tls_cert` file as its only trust
// anchor (every certificate in the file is trusted; X509_V_FLAG_PARTIAL_CHAIN
// lets a leaf or intermediate in it anchor the chain, so a CA-issued chain file
// can anchor it too; OpenSSL's verification also checks validity dates. The
// tests cover self-signed certificates only) and then requires the leaf the
// listener presented to be the file's first certificate, byte for byte. There
// is no hostname check: the certificate is pinned, which is stronger. A
// listener on the address that serves any other certificate, e.g. another
// process that took the port, is unhealthy.
//
// Thread-safety: stateless; each call blocks for at most `timeout` (plus
// name resolution, which loopback addresses do not need).
#pragma once

#include <chrono>
#include <iosfwd>
#include <string>

#include "hookvault/config.hpp"

namespace hookvault {

struct HealthcheckOptions {
  bool live = false;                        // GET /healthz instead of /readyz
  std::chrono::milliseconds timeout{3000};  // the whole exchange
};

// The address the probe connects to for a listen address: wildcards become
// loopback of the same family, anything else is kept.
Endpoint probe_endpoint(const Endpoint& listen);

struct ProbeResult {
  bool ok = false;      // connected, verified, and got an HTTP answer
  unsigned status = 0;  // the HTTP status when ok
  std::string url;      // "https://127.0.0.1:8443/readyz"
  std::string problem;  // when !ok: "connect: Connection refused", "timed out (tls_handshake)"
};

// One GET of `path` on the listener of `server`, trusting only its tls_cert
// (see above). Never throws.
ProbeResult probe_listener(const ServerConfig& server, const std::string& path,
                           std::chrono::milliseconds timeout);

// The subcommand: returns the exit code (0 healthy, 1 otherwise).
int healthcheck(const Config& config, const HealthcheckOptions& options, std::ostream& out,
                std::ostream& err);

}  // namespace hookvault
