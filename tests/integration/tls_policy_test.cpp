// The public listener's TLS policy seen from outside, with `openssl s_client`
// as the peer (TlsTest in dynamic_test.cpp covers the
// protocol versions):
// - of every TLS 1.2 cipher suite this OpenSSL knows, the listener accepts
//   exactly the ECDHE + AEAD suites of Mozilla's "intermediate" profile that
//   fit its ECDSA certificate;
// - a client-initiated renegotiation is refused and the connection serves
//   nothing after it, where the same request without it is answered.
// OpenSSL 3 refuses client renegotiation by default and this libssl has no
// zlib, so the context's own options (no renegotiation, no compression) are
// checked in tests/unit/net_tls_test.cpp, where removing them fails a test.
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

class TlsPolicyTest : public E2E {};

TEST_F(TlsPolicyTest, OnlyEcdheAeadSuitesAreAcceptedOverTls12) {
  start();
  auto [rc, list] = run_shell(
      "OPENSSL_CONF=/dev/null openssl ciphers -tls1_2 "
      "'ALL:COMPLEMENTOFALL:@SECLEVEL=0'");
  ASSERT_EQ(rc, 0) << list;
  std::vector<std::string> suites;
  std::stringstream ss(list.substr(0, list.find('\n')));
  for (std::string name; std::getline(ss, name, ':');) {
    if (name.rfind("TLS_", 0) != 0) suites.push_back(name);  // TLS 1.3 suites are all AEAD
  }
  ASSERT_GT(suites.size(), 50U) << list;  // the client can offer the weak ones

  std::mutex mu;
  std::set<std::string> accepted;
  std::vector<std::thread> workers;
  const std::uint16_t port = daemon_->port();
  for (unsigned w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      for (std::size_t i = w; i < suites.size(); i += 4) {
        auto [status, out] = run_shell(
            s_client_command(port, "-tls1_2 -cipher '" + suites[i] + ":@SECLEVEL=0' </dev/null"));
        if (status == 0) {
          std::lock_guard lock(mu);
          accepted.insert(suites[i]);
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(accepted,
            (std::set<std::string>{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                                   "ECDHE-ECDSA-CHACHA20-POLY1305"}));
  EXPECT_EQ(daemon_->stop(), 0);
}

TEST_F(TlsPolicyTest, ClientInitiatedRenegotiationIsRefused) {
  start();
  const std::string get = "printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 1";
  // Control: the same client and request without renegotiating is answered.
  auto [ok_rc, ok_out] =
      run_shell("(sleep 0.5; " + get + ") | " + s_client_command(daemon_->port(), "-tls1_2"));
  EXPECT_NE(ok_out.find("HTTP/1.1 200"), std::string::npos) << ok_out;
  // "R" asks s_client to renegotiate before sending the request.
  auto [rc, out] = run_shell("(sleep 0.5; printf 'R\\n'; sleep 0.5; " + get + ") | " +
                             s_client_command(daemon_->port(), "-tls1_2"));
  EXPECT_NE(out.find("RENEGOTIATING"), std::string::npos) << out;
  EXPECT_NE(out.find("no renegotiation"), std::string::npos) << out;
  EXPECT_EQ(out.find("HTTP/1.1 200"), std::string::npos) << out;
  EXPECT_NE(rc, 0) << out;
  // The daemon is unharmed.
  EXPECT_EQ(post_signed(ping_event("after-renegotiation")).status, 200U);
  EXPECT_EQ(daemon_->stop(), 0);
}

}  // namespace
}  // namespace hookvault::testing
