// The listeners' TLS settings (net/tls.hpp) as OpenSSL holds them: what the
// s_client tests (tls_policy_test.cpp) cannot show on this machine, because
// Debian's libssl has no zlib and OpenSSL 3 refuses client renegotiation by
// default, is checked here on the context itself.
#include <openssl/ssl.h>

#include <gtest/gtest.h>

#include <boost/asio/ssl/context.hpp>
#include <string>

#include "net/tls.hpp"
#include "test_support.hpp"

namespace hookvault::net {
namespace {

class TlsSettingsTest : public ::testing::Test {
 protected:
  SSL_CTX* configure(const std::string& min_version) {
    const auto files = hookvault::testing::write_self_signed_cert(dir_.path());
    configure_server_tls(ctx_, files.cert, files.key, min_version);
    return ctx_.native_handle();
  }

  hookvault::testing::TempDir dir_;
  boost::asio::ssl::context ctx_{boost::asio::ssl::context::tls_server};
};

TEST_F(TlsSettingsTest, NoCompressionNoRenegotiationAndAeadOnlyOverTls12) {
  SSL_CTX* ctx = configure("1.2");
  const auto options = SSL_CTX_get_options(ctx);
  EXPECT_NE(options & SSL_OP_NO_COMPRESSION, 0U);
  EXPECT_NE(options & SSL_OP_NO_RENEGOTIATION, 0U);
  EXPECT_EQ(options & SSL_OP_ALLOW_CLIENT_RENEGOTIATION, 0U);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
  // Every suite the context would offer is AEAD with an ECDHE key exchange
  // (TLS 1.3 suites are AEAD by definition and use (EC)DHE).
  STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx);
  ASSERT_NE(ciphers, nullptr);
  int tls12 = 0;
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(ciphers, i);
    EXPECT_EQ(SSL_CIPHER_is_aead(c), 1) << SSL_CIPHER_get_name(c);
    const int kx = SSL_CIPHER_get_kx_nid(c);  // NID_kx_any: a TLS 1.3 suite
    if (kx != NID_kx_any) {
      ++tls12;
      EXPECT_EQ(kx, NID_kx_ecdhe) << SSL_CIPHER_get_name(c);
    }
  }
  EXPECT_GT(tls12, 0);
}

TEST_F(TlsSettingsTest, MinimumVersionThirteen) {
  EXPECT_EQ(SSL_CTX_get_min_proto_version(configure("1.3")), TLS1_3_VERSION);
}

}  // namespace
}  // namespace hookvault::net
