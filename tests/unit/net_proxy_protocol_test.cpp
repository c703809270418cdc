// PROXY protocol v2 headers (proxy_protocol.hpp), byte layouts as in HAProxy's
// proxy-protocol.txt section 2.2.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "hookvault/proxy_protocol.hpp"

namespace {

using Bytes = std::vector<std::uint8_t>;

const Bytes kSig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

Bytes header(std::uint8_t ver_cmd, std::uint8_t family, const Bytes& rest) {
  Bytes h = kSig;
  h.push_back(ver_cmd);
  h.push_back(family);
  h.push_back(static_cast<std::uint8_t>(rest.size() >> 8));
  h.push_back(static_cast<std::uint8_t>(rest.size() & 0xff));
  h.insert(h.end(), rest.begin(), rest.end());
  return h;
}

std::optional<hookvault::ProxyHeader> parse(const Bytes& h) {
  if (h.size() < hookvault::kProxyV2PrefixBytes) return std::nullopt;
  const std::span<const std::uint8_t> prefix(h.data(), hookvault::kProxyV2PrefixBytes);
  const auto length = hookvault::proxy_v2_length(prefix);
  if (!length || *length != h.size() - hookvault::kProxyV2PrefixBytes) return std::nullopt;
  return hookvault::parse_proxy_v2(prefix, std::span<const std::uint8_t>(h).subspan(16));
}

TEST(ProxyV2, Tcp4GivesTheSourceAddressAndPort) {
  const Bytes rest = {203, 0, 113, 7, 10, 0, 0, 1, 0xC3, 0x50, 0x20, 0xFB};  // :50000 -> :8443
  auto h = parse(header(0x21, 0x11, rest));
  ASSERT_TRUE(h);
  ASSERT_TRUE(h->source);
  EXPECT_EQ(hookvault::ip_to_string(*h->source), "203.0.113.7");
  EXPECT_EQ(h->source_port, 50000);
}

TEST(ProxyV2, Tcp6WithTlvsAfterTheAddresses) {
  Bytes rest(36, 0);
  rest[0] = 0x20;
  rest[1] = 0x01;
  rest[2] = 0x0d;
  rest[3] = 0xb8;
  rest[15] = 0x05;
  rest[32] = 0x01;
  rest[33] = 0xBB;
  const Bytes tlv = {0x04, 0x00, 0x02, 'a', 'b'};  // PP2_TYPE_NOOP, skipped
  rest.insert(rest.end(), tlv.begin(), tlv.end());
  auto h = parse(header(0x21, 0x21, rest));
  ASSERT_TRUE(h);
  ASSERT_TRUE(h->source);
  EXPECT_EQ(hookvault::ip_to_string(*h->source), "2001:db8::5");
  EXPECT_EQ(h->source_port, 443);
}

TEST(ProxyV2, LocalAndUnspecKeepTheConnectionsOwnPeer) {
  auto local = parse(header(0x20, 0x00, {}));
  ASSERT_TRUE(local);
  EXPECT_FALSE(local->source);
  // The constant a client (hookvault healthcheck) sends is exactly that.
  const Bytes constant(hookvault::kProxyV2Local,
                       hookvault::kProxyV2Local + sizeof hookvault::kProxyV2Local);
  EXPECT_EQ(constant, header(0x20, 0x00, {}));
  auto unspec = parse(header(0x21, 0x00, {1, 2, 3}));
  ASSERT_TRUE(unspec);
  EXPECT_FALSE(unspec->source);
}

TEST(ProxyV2, MalformedHeadersAreRefused) {
  const Bytes v4 = {203, 0, 113, 7, 10, 0, 0, 1, 0xC3, 0x50, 0x20, 0xFB};
  Bytes wrong_sig = header(0x21, 0x11, v4);
  wrong_sig[3] = 0x0B;
  EXPECT_FALSE(parse(wrong_sig));
  EXPECT_FALSE(parse(header(0x11, 0x11, v4)));  // version 1 byte layout
  EXPECT_FALSE(parse(header(0x22, 0x11, v4)));  // unknown command
  EXPECT_FALSE(parse(header(0x21, 0x11, Bytes(v4.begin(), v4.begin() + 11))));  // too short
  EXPECT_FALSE(parse(header(0x21, 0x21, v4)));  // TCP6 needs 36 bytes
  EXPECT_FALSE(parse(header(0x21, 0x12, v4)));  // UDP over IPv4
  // The PROXY v1 text form is not v2.
  const std::string v1 = "PROXY TCP4 203.0.113.7 10.0.0.1 50000 8443\r\n";
  EXPECT_FALSE(parse(Bytes(v1.begin(), v1.end())));
  // A TLS ClientHello (what a client without a proxy sends first).
  EXPECT_FALSE(parse(Bytes{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00,
                           0x00, 0x00, 0x00, 0x00}));
}

}  // namespace
