#include "hookvault/proxy_protocol.hpp"

#include <cstring>

namespace hookvault {
namespace {

constexpr std::uint8_t kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::uint8_t kVersion2 = 0x20;
constexpr std::uint8_t kLocal = 0x00;
constexpr std::uint8_t kProxy = 0x01;
constexpr std::uint8_t kUnspec = 0x00;
constexpr std::uint8_t kTcp4 = 0x11;
constexpr std::uint8_t kTcp6 = 0x21;
constexpr std::uint8_t kUnixStream = 0x31;  // carries no address we can use, like UNSPEC
constexpr std::size_t kTcp4Block = 12;      // src, dst addresses (4 each), ports (2 each)
constexpr std::size_t kTcp6Block = 36;      // 16 + 16 + 2 + 2

}  // namespace

std::optional<std::size_t> proxy_v2_length(std::span<const std::uint8_t> prefix) {
  if (prefix.size() != kProxyV2PrefixBytes) return std::nullopt;
  if (std::memcmp(prefix.data(), kSignature, sizeof kSignature) != 0) return std::nullopt;
  const std::uint8_t version = prefix[12] & 0xF0;
  const std::uint8_t command = prefix[12] & 0x0F;
  if (version != kVersion2 || (command != kLocal && command != kProxy)) return std::nullopt;
  const std::size_t length = (std::size_t{prefix[14]} << 8) | prefix[15];
  if (length > kProxyV2MaxLength) return std::nullopt;
  const std::uint8_t family = prefix[13];
  if (command == kProxy) {
    if (family == kTcp4 && length < kTcp4Block) return std::nullopt;
    if (family == kTcp6 && length < kTcp6Block) return std::nullopt;
  }
  return length;
}

std::optional<ProxyHeader> parse_proxy_v2(std::span<const std::uint8_t> prefix,
                                          std::span<const std::uint8_t> rest) {
  const auto length = proxy_v2_length(prefix);
  if (!length || rest.size() != *length) return std::nullopt;
  ProxyHeader h;
  if ((prefix[12] & 0x0F) == kLocal) return h;
  const std::uint8_t family = prefix[13];
  if (family == kTcp4) {
    h.source = ipv4_mapped(rest.data());
    h.source_port = static_cast<std::uint16_t>((rest[8] << 8) | rest[9]);
  } else if (family == kTcp6) {
    IpAddress ip{};
    std::memcpy(ip.data(), rest.data(), 16);
    h.source = ip;
    h.source_port = static_cast<std::uint16_t>((rest[32] << 8) | rest[33]);
  } else if (family != kUnspec && family != kUnixStream) {
    return std::nullopt;  // UDP or unknown: not the header of a TCP connection
  }
  return h;
}

}  // namespace hookvault
