#include "hookvault/cidr.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace hookvault {

IpAddress ipv4_mapped(const std::uint8_t* v4) noexcept {
  IpAddress ip{};
  ip[10] = 0xff;
  ip[11] = 0xff;
  std::memcpy(ip.data() + 12, v4, 4);
  return ip;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  // inet_pton wants a NUL-terminated string; addresses are short.
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip{};
  if (text.find(':') == std::string_view::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, buf, &v4) != 1) return std::nullopt;
    return ipv4_mapped(reinterpret_cast<const std::uint8_t*>(&v4));
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) != 1) return std::nullopt;
  std::memcpy(ip.data(), &v6, 16);
  return ip;
}

namespace {

bool is_v4_mapped(const IpAddress& ip) noexcept {
  for (int i = 0; i < 10; ++i) {
    if (ip[i] != 0) return false;
  }
  return ip[10] == 0xff && ip[11] == 0xff;
}

}  // namespace

std::string ip_to_string(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4_mapped(ip)) {
    in_addr v4{};
    std::memcpy(&v4, ip.data() + 12, 4);
    return inet_ntop(AF_INET, &v4, buf, sizeof buf) ? buf : "";
  }
  in6_addr v6{};
  std::memcpy(&v6, ip.data(), 16);
  return inet_ntop(AF_INET6, &v6, buf, sizeof buf) ? buf : "";
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  const bool v4 = is_v4_mapped(*ip) && text.substr(0, slash).find(':') == std::string_view::npos;
  const unsigned family_bits = v4 ? 32 : 128;
  unsigned bits = family_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        bits > family_bits) {
      return std::nullopt;
    }
  }
  Cidr c;
  c.prefix_ = v4 ? 96 + bits : bits;
  c.network_ = *ip;
  c.text_ = std::string(text);
  // Clear the host bits, so contains() compares whole bytes.
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned first_bit = i * 8;
    if (first_bit >= c.prefix_) {
      c.network_[i] = 0;
    } else if (c.prefix_ - first_bit < 8) {
      c.network_[i] &= static_cast<std::uint8_t>(0xff << (8 - (c.prefix_ - first_bit)));
    }
  }
  return c;
}

bool Cidr::contains(const IpAddress& ip) const noexcept {
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned first_bit = i * 8;
    if (first_bit >= prefix_) return true;
    std::uint8_t mask = 0xff;
    if (prefix_ - first_bit < 8)
      mask = static_cast<std::uint8_t>(0xff << (8 - (prefix_ - first_bit)));
    if ((ip[i] & mask) != network_[i]) return false;
  }
  return true;
}

bool any_contains(std::span<const Cidr> ranges, const IpAddress& ip) noexcept {
  for (const auto& r : ranges) {
    if (r.contains(ip)) return true;
  }
  return false;
}

}  // namespace hookvault
