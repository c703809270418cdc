// The public listener's TLS policy seen from outside, with `openssl s_client`
// as the peer (issue 8, point 5; TlsTest in dynamic_test.cpp covers the
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

#include <cstdio>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

// Runs a shell command; its exit status and what it printed (stdout + stderr).
std::pair<int, std::string> shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {status, out};
}

// OPENSSL_CONF=/dev/null: without Debian's system policy, so the server decides.
std::string s_client(std::uint16_t port, const std::string& flags) {
  return "OPENSSL_CONF=/dev/null openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
         " " + flags;
}

class TlsPolicyTest : public E2E {};

TEST_F(TlsPolicyTest, OnlyEcdheAeadSuitesAreAcceptedOverTls12) {
  start();
  auto [rc, list] = shell(
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
        auto [status, out] =
            shell(s_client(port, "-tls1_2 -cipher '" + suites[i] + ":@SECLEVEL=0' </dev/null"));
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
      shell("(sleep 0.5; " + get + ") | " + s_client(daemon_->port(), "-tls1_2"));
  EXPECT_NE(ok_out.find("HTTP/1.1 200"), std::string::npos) << ok_out;
  // "R" asks s_client to renegotiate before sending the request.
  auto [rc, out] = shell("(sleep 0.5; printf 'R\\n'; sleep 0.5; " + get + ") | " +
                         s_client(daemon_->port(), "-tls1_2"));
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
