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

}  // namespace hookvault::net
