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
// (the handshake fails for a certificate from another CA; a client sending
// none is let through, to be refused by the handler). Throws
// std::runtime_error naming the file.
void require_client_certificates(boost::asio::ssl::context& ctx,
                                 const std::filesystem::path& ca_file);

// The subject CN of the verified client certificate of `ssl`; empty when the
// client sent none or it did not verify.
std::string verified_client_cn(SSL* ssl);

}  // namespace hookvault::net
