// IP address ranges in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or a
// bare address for a single host), for [server] trusted_proxies and the
// per-source allow_from lists.
//
// Addresses are compared as 16 bytes: IPv4 is held as its IPv4-mapped IPv6
// form (::ffff:a.b.c.d), so "10.0.0.0/8" also matches a peer that a dual-stack
// listener reports as ::ffff:10.1.2.3. Parsing is inet_pton's (POSIX): no
// hostnames, no zone ids, no shortened IPv4 forms.
//
// Thread-safety: values; const use from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hookvault {

using IpAddress = std::array<std::uint8_t, 16>;  // IPv6, or IPv4-mapped IPv6

// The IPv4-mapped form (::ffff:a.b.c.d) of the 4 address bytes at `v4`, in
// network order.
IpAddress ipv4_mapped(const std::uint8_t* v4) noexcept;
// "192.0.2.1", "::1", "::ffff:192.0.2.1"; nullopt for anything else.
std::optional<IpAddress> parse_ip(std::string_view text);
// Back to text: dotted quad for an IPv4-mapped address, else RFC 5952 form.
std::string ip_to_string(const IpAddress& ip);

class Cidr {
 public:
  // nullopt for a malformed range or a prefix beyond the family's length (32 for
  // IPv4, 128 for IPv6). Host bits set below the prefix are allowed and ignored.
  static std::optional<Cidr> parse(std::string_view text);

  bool contains(const IpAddress& ip) const noexcept;
  const std::string& text() const noexcept { return text_; }

 private:
  IpAddress network_{};
  unsigned prefix_ = 0;  // in IPv6 bits (an IPv4 /n is 96 + n)
  std::string text_;
};

// True when any range of `ranges` contains `ip`.
bool any_contains(std::span<const Cidr> ranges, const IpAddress& ip) noexcept;

}  // namespace hookvault
