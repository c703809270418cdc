// The PROXY protocol, version 2 (HAProxy's "proxy-protocol.txt", section 2.2):
// the binary header a load balancer sends at the start of a TCP connection,
// before TLS, to say who its client is. [server] proxy_protocol = true makes
// the listener require it on every connection (a connection without a valid
// header is closed: accepting it optionally would let any client name its own
// address).
//
// Reading is in two steps so no byte of the TLS stream is consumed: the fixed
// 16-byte prefix, then exactly proxy_v2_length(prefix) more bytes.
//
// Written by hand: no Debian 12 package parses PROXY v2 outside a proxy
// server, and the format is a fixed binary layout.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "hookvault/cidr.hpp"

namespace hookvault {

inline constexpr std::size_t kProxyV2PrefixBytes = 16;
// A whole header with the LOCAL command and no address block: what a proxy
// sends for its own connections (health checks).
inline constexpr char kProxyV2Local[kProxyV2PrefixBytes] = {
    '\x0D', '\x0A', '\x0D', '\x0A', '\x00', '\x0D', '\x0A', '\x51',
    '\x55', '\x49', '\x54', '\x0A', '\x20', '\x00', '\x00', '\x00'};

struct ProxyHeader {
  // PROXY command with a TCP over IPv4/IPv6 address block: the original
  // client. LOCAL command (the proxy's own health checks) or an UNSPEC/UNIX
  // family: nullopt, and the connection's own peer stands.
  std::optional<IpAddress> source;
  std::uint16_t source_port = 0;
};

// The number of bytes that follow the prefix (the address block and TLVs), or
// nullopt when `prefix` (16 bytes) is not a PROXY v2 header: wrong signature,
// version, command or family, or a length too short for the family.
std::optional<std::size_t> proxy_v2_length(std::span<const std::uint8_t> prefix);

// Parses the header from its prefix and the `rest` proxy_v2_length() asked for.
std::optional<ProxyHeader> parse_proxy_v2(std::span<const std::uint8_t> prefix,
                                          std::span<const std::uint8_t> rest);

}  // namespace hookvault
