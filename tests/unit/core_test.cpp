#include <gtest/gtest.h>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {
namespace {

TEST(SecretBytes, CopyRevealAndConstantTimeEquals) {
  auto s = SecretBytes::copy_of(std::string_view("dyn_secret"));
  EXPECT_EQ(s.reveal_string(), "dyn_secret");
  EXPECT_TRUE(s.equals(as_bytes("dyn_secret")));
  EXPECT_FALSE(s.equals(as_bytes("dyn_secreT")));
  EXPECT_FALSE(s.equals(as_bytes("dyn_secre")));
}

TEST(SecretBytes, MoveLeavesSourceEmpty) {
  auto a = SecretBytes::copy_of(std::string_view("abc"));
  SecretBytes b = std::move(a);
  EXPECT_EQ(b.reveal_string(), "abc");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): documented state
}

TEST(SecretBytes, RandomIsRandom) {
  auto a = SecretBytes::random(32);
  auto b = SecretBytes::random(32);
  EXPECT_EQ(a.size(), 32U);
  EXPECT_FALSE(a.equals(b.reveal()));
}

TEST(SecretBytes, WipingAllocatorZeroesReleasedMemory) {
  // The allocator must wipe before releasing; check the hook directly on a
  // buffer we still own.
  std::uint8_t buf[16];
  for (auto& b : buf) b = 0xAB;
  secure_wipe(buf, sizeof buf);
  for (auto b : buf) EXPECT_EQ(b, 0);
}

TEST(Errors, MapToHttpStatusAndStableNames) {
  EXPECT_EQ(http_status(Errc::invalid_signature), 401U);
  EXPECT_EQ(http_status(Errc::duplicate_key), 400U);
  EXPECT_EQ(http_status(Errc::body_too_large), 413U);
  EXPECT_EQ(http_status(Errc::unsupported_media_type), 415U);
  EXPECT_EQ(http_status(Errc::store_unavailable), 503U);
  EXPECT_EQ(error_name(Errc::duplicate_key), "duplicate_key");
  boost::system::error_code ec = Errc::auth_failed;
  EXPECT_EQ(to_errc(ec), Errc::auth_failed);
  EXPECT_EQ(ec.message(), "AES-GCM authentication failed");
}

TEST(Bytes, Hex) { EXPECT_EQ(to_hex(as_bytes("\x01\xab")), "01ab"); }

}  // namespace
}  // namespace hookvault
