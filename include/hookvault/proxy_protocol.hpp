// The PROXY protocol, version 2 (HAProxy's "proxy-protocol.txt", section 2.2):
// the binary header a load balancer sends at the start of a TCP connection,
// before TLS, to say who its client is. [server] proxy_protocol = true makes
// the listener require it on every connection (a connection without a valid
// header is closed: accepting it optionally would let any client name its own
// address), and believe it only from a peer in [server] trusted_proxies (a
// connection from any other peer is closed before a byte is read; the config
// is refused when trusted_proxies is empty).
//
// Reading is in two steps so no byte of the TLS stream is consumed: the fixed
// 16-byte prefix, then exactly proxy_v2_length(prefix) more bytes, at most
// kProxyV2MaxLength (a header announcing more is refused before it is read).
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
// What a real header needs after its prefix: the largest address block (216
// bytes, for UNIX sockets) and the TLVs balancers add (a VPC endpoint or
// private link id, the TLS details, the authority, a unique id of up to 128
// bytes, a CRC32C), with room to spare. The format allows 65,535.
inline constexpr std::size_t kProxyV2MaxLength = 1024;
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
// version, command or family, a length too short for the family, or one over
// kProxyV2MaxLength.
std::optional<std::size_t> proxy_v2_length(std::span<const std::uint8_t> prefix);

// Parses the header from its prefix and the `rest` proxy_v2_length() asked for.
std::optional<ProxyHeader> parse_proxy_v2(std::span<const std::uint8_t> prefix,
                                          std::span<const std::uint8_t> rest);

}  // namespace hookvault
