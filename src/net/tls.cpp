#include "net/tls.hpp"

#include <openssl/ssl.h>

#include <stdexcept>

namespace hookvault::net {
namespace {

// Mozilla "intermediate" TLS 1.2 suites: ECDHE with AEAD ciphers only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace

void configure_server_tls(boost::asio::ssl::context& ctx, const std::filesystem::path& cert,
                          const std::filesystem::path& key, const std::string& min_version) {
  SSL_CTX* native = ctx.native_handle();
  const int min = min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(native, min) != 1) {
    throw std::runtime_error("cannot set the minimum TLS version");
  }
  // OpenSSL 3 refuses client-initiated renegotiation by default; refuse all.
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    throw std::runtime_error("cannot set the TLS cipher list");
  }
  if (SSL_CTX_use_certificate_chain_file(native, cert.c_str()) != 1) {
    throw std::runtime_error("cannot load TLS certificate " + cert.string());
  }
  if (SSL_CTX_use_PrivateKey_file(native, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("cannot load TLS private key " + key.string());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw std::runtime_error("TLS private key " + key.string() + " does not match " +
                             cert.string());
  }
  static const unsigned char kSessionContext[] = "hookvault";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
}

}  // namespace hookvault::net
