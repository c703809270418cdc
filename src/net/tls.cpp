#include "net/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "hookvault/log.hpp"
#include "hookvault/log_throttle.hpp"

namespace hookvault::net {
namespace {

// Mozilla "intermediate" TLS 1.2 suites: ECDHE with AEAD ciphers only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The subject CN of `cert`, or "" (for log lines).
std::string common_name(X509* cert) {
  if (cert == nullptr) return {};
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) < 0) {
    return {};
  }
  return cn;
}

// Logs why a client certificate was refused (revoked, an expired CRL,
// another CA); the handshake fails as OpenSSL decided.
int log_refused_client(int ok, X509_STORE_CTX* store) {
  static LogThrottle throttle;
  if (ok == 0) {
    if (std::uint64_t n = 0; throttle.due(n)) {
      const int error = X509_STORE_CTX_get_error(store);
      log(LogLevel::warn, "client certificate refused",
          {{"reason", X509_verify_cert_error_string(error)},
           {"client", common_name(X509_STORE_CTX_get_current_cert(store))},
           {"refused", n}});
    }
  }
  return ok;
}

void load_crls(SSL_CTX* native, const std::filesystem::path& crl_file) {
  using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
  BioPtr bio(BIO_new_file(crl_file.c_str(), "r"), &BIO_free);
  if (!bio) {
    ERR_clear_error();
    throw std::runtime_error("cannot read client CRL " + crl_file.string());
  }
  X509_STORE* store = SSL_CTX_get_cert_store(native);
  int loaded = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    const int added = X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    if (added != 1) {
      ERR_clear_error();
      throw std::runtime_error("cannot use client CRL " + crl_file.string());
    }
    ++loaded;
  }
  ERR_clear_error();  // the end of the file
  if (loaded == 0) throw std::runtime_error("client CRL " + crl_file.string() + " holds no CRL");
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
}

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

void require_client_certificates(boost::asio::ssl::context& ctx,
                                 const std::filesystem::path& ca_file,
                                 const std::filesystem::path& crl_file) {
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_load_verify_locations(native, ca_file.c_str(), nullptr) != 1) {
    throw std::runtime_error("cannot load client CA " + ca_file.string());
  }
  // Tell clients which CA to pick a certificate for.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str());
  if (names == nullptr) throw std::runtime_error("cannot read client CA " + ca_file.string());
  SSL_CTX_set_client_CA_list(native, names);
  if (!crl_file.empty()) load_crls(native, crl_file);
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER, log_refused_client);
  SSL_CTX_set_verify_depth(native, 4);
  static const unsigned char kSessionContext[] = "hookvault-admin";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
}

std::string verified_client_cn(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  X509_NAME* subject = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return {};
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return {};
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  // A CN with a NUL byte could impersonate a shorter name: refuse it.
  if (cn.find('\0') != std::string::npos) return {};
  return cn;
}

}  // namespace hookvault::net
