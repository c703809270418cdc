// CIDR ranges for trusted_proxies and allow_from (cidr.hpp).
#include <gtest/gtest.h>

#include <string>

#include "hookvault/cidr.hpp"

namespace {

using hookvault::Cidr;
using hookvault::parse_ip;

bool in(const std::string& range, const std::string& address) {
  auto c = Cidr::parse(range);
  auto ip = parse_ip(address);
  EXPECT_TRUE(c) << range;
  EXPECT_TRUE(ip) << address;
  return c && ip && c->contains(*ip);
}

TEST(Cidr, Ipv4RangesContainTheirAddressesOnly) {
  EXPECT_TRUE(in("10.0.0.0/8", "10.255.1.2"));
  EXPECT_FALSE(in("10.0.0.0/8", "11.0.0.1"));
  EXPECT_TRUE(in("192.0.2.0/25", "192.0.2.127"));
  EXPECT_FALSE(in("192.0.2.0/25", "192.0.2.128"));
  EXPECT_TRUE(in("192.0.2.7", "192.0.2.7"));  // a bare address is a /32
  EXPECT_FALSE(in("192.0.2.7", "192.0.2.8"));
  EXPECT_TRUE(in("0.0.0.0/0", "203.0.113.9"));
  EXPECT_FALSE(in("0.0.0.0/0", "2001:db8::1"));  // an IPv4 range holds no IPv6 address
  EXPECT_TRUE(in("10.1.2.3/8", "10.9.9.9"));     // host bits ignored
}

TEST(Cidr, Ipv6RangesAndMappedIpv4) {
  EXPECT_TRUE(in("2001:db8::/32", "2001:db8:ffff::1"));
  EXPECT_FALSE(in("2001:db8::/32", "2001:db9::1"));
  EXPECT_TRUE(in("::1", "::1"));
  EXPECT_TRUE(in("2001:db8::/33", "2001:db8:7fff::1"));
  EXPECT_FALSE(in("2001:db8::/33", "2001:db8:8000::1"));
  // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
  EXPECT_TRUE(in("10.0.0.0/8", "::ffff:10.1.2.3"));
  EXPECT_TRUE(in("::ffff:10.0.0.0/104", "10.1.2.3"));
}

TEST(Cidr, MalformedRangesAreRefused) {
  for (const char* bad :
       {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0/8",
        "example.com", "10.0.0.0/8/8", "fe80::1%eth0", " 10.0.0.1", "10.0.0.01"}) {
    EXPECT_FALSE(Cidr::parse(bad)) << bad;
  }
}

TEST(Cidr, AddressesRoundTripToText) {
  EXPECT_EQ(hookvault::ip_to_string(*parse_ip("192.0.2.1")), "192.0.2.1");
  EXPECT_EQ(hookvault::ip_to_string(*parse_ip("::ffff:192.0.2.1")), "192.0.2.1");
  EXPECT_EQ(hookvault::ip_to_string(*parse_ip("2001:0db8:0:0:0:0:0:1")), "2001:db8::1");
  EXPECT_FALSE(parse_ip("300.1.1.1"));
}

}  // namespace
