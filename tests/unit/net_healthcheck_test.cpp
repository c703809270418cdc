// The healthcheck's choice of address: wildcards are probed on loopback.
#include <gtest/gtest.h>

#include "hookvault/healthcheck.hpp"

namespace hookvault {
namespace {

TEST(ProbeEndpoint, WildcardsBecomeLoopbackOfTheirFamily) {
  const Endpoint v4 = probe_endpoint({"0.0.0.0", 8443});
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.port, 8443);
  const Endpoint v6 = probe_endpoint({"::", 9000});
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 9000);
}

TEST(ProbeEndpoint, SpecificAddressesAreKept) {
  EXPECT_EQ(probe_endpoint({"127.0.0.1", 1}).host, "127.0.0.1");
  EXPECT_EQ(probe_endpoint({"10.1.2.3", 2}).host, "10.1.2.3");
  EXPECT_EQ(probe_endpoint({"::1", 3}).host, "::1");
  EXPECT_EQ(probe_endpoint({"fd00::5", 4}).host, "fd00::5");
}

TEST(ProbeListener, PortZeroAndAMissingCertificateAreProblemsNotThrows) {
  ServerConfig server;
  server.listen = {"0.0.0.0", 0};
  auto zero = probe_listener(server, "/readyz", std::chrono::milliseconds(100));
  EXPECT_FALSE(zero.ok);
  EXPECT_NE(zero.problem.find("port 0"), std::string::npos);
  server.listen = {"127.0.0.1", 9};
  server.tls_cert = "/nonexistent/cert.pem";
  auto missing = probe_listener(server, "/readyz", std::chrono::milliseconds(100));
  EXPECT_FALSE(missing.ok);
  EXPECT_EQ(missing.url, "https://127.0.0.1:9/readyz");
  EXPECT_NE(missing.problem.find("/nonexistent/cert.pem"), std::string::npos);
}

}  // namespace
}  // namespace hookvault
