// TLS server context settings shared by hookvault's listeners.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <string>

namespace hookvault::net {

// TLS 1.2+ (or 1.3 only), AEAD-only suites (Mozilla "intermediate"), no
// compression, no renegotiation, server-side session cache for resumption.
// Throws std::runtime_error naming the file when the certificate or key does
// not load.
void configure_server_tls(boost::asio::ssl::context& ctx, const std::filesystem::path& cert,
                          const std::filesystem::path& key, const std::string& min_version);

// Mutual TLS: ask for a client certificate and verify it against `ca_file`
// and, when `crl_file` is not empty, the certificate revocation lists in it
// (PEM; the leaf is checked: a revoked certificate, or any certificate once
// the list has expired, fails the handshake). A certificate from another CA
// fails too; a client sending none is let through, to be refused by the
// handler. A client certificate refused is logged (at most one line per 10 s)
// with the reason and its subject CN. Throws std::runtime_error naming the
// file. (check-config checks the list itself: its signer and its dates.)
void require_client_certificates(boost::asio::ssl::context& ctx,
                                 const std::filesystem::path& ca_file,
                                 const std::filesystem::path& crl_file = {});

// The subject CN of the verified client certificate of `ssl`; empty when the
// client sent none or it did not verify.
std::string verified_client_cn(SSL* ssl);

}  // namespace hookvault::net
