// HMAC-SHA256 (include/hookvault/hmac.hpp): RFC 4231's test vectors, keys of
// every length class, messages in parts, and many threads sharing the
// fetched template.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <thread>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/hmac.hpp"

namespace hookvault {
namespace {

std::string hex_of(const Mac& m) { return to_hex(ByteView(m.data(), m.size())); }

Bytes repeated(std::uint8_t byte, std::size_t n) { return Bytes(n, byte); }

// OpenSSL's one-shot HMAC(), the reference the fetched template must agree with.
std::string reference(ByteView key, ByteView message) {
  static constexpr std::uint8_t kNoKey = 0;
  Mac out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.empty() ? &kNoKey : key.data(), static_cast<int>(key.size()),
       message.data(), message.size(), out.data(), &len);
  return hex_of(out);
}

TEST(Hmac, Rfc4231TestCases) {
  // Test case 1: a 20-byte key.
  EXPECT_EQ(hex_of(hmac_sha256(repeated(0x0b, 20), as_bytes("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 2: a key shorter than the output.
  EXPECT_EQ(hex_of(hmac_sha256(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a 131-byte key, longer than SHA-256's block (hashed first).
  EXPECT_EQ(hex_of(hmac_sha256(repeated(0xaa, 131),
                               as_bytes("Test Using Larger Than Block-Size Key - Hash Key First"))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(Hmac, EveryCallUsesItsOwnKeyNotTheTemplatesOrThePreviousOne) {
  const Bytes message = repeated('m', 100);
  // An empty key, an all-zero 32-byte key (the template's own), then others:
  // each must give what HMAC() gives for that key alone.
  for (const Bytes& key : {Bytes{}, repeated(0, 32), repeated(1, 32), Bytes{}, repeated(7, 64),
                           repeated(9, 65), repeated(0, 31)}) {
    Mac out{};
    ASSERT_TRUE(hmac_sha256(key, {message}, out));
    EXPECT_EQ(hex_of(out), reference(key, message)) << "key of " << key.size() << " bytes";
  }
}

TEST(Hmac, AMessageInPartsIsTheirConcatenation) {
  const std::string a = "hookvault-commit-v1", b(12, '\x42'), c;
  const std::string whole = a + b + c;
  Mac parts{};
  ASSERT_TRUE(
      hmac_sha256(as_bytes("k"), {as_bytes(a), as_bytes(c), as_bytes(b), as_bytes(c)}, parts));
  EXPECT_EQ(hex_of(parts), reference(as_bytes("k"), as_bytes(whole)));
  Mac none{};
  ASSERT_TRUE(hmac_sha256(as_bytes("k"), {}, none));
  EXPECT_EQ(hex_of(none), reference(as_bytes("k"), {}));
}

TEST(Hmac, ThreadsShareTheTemplateSafely) {
  // Each thread its own key and message; every result checked against HMAC().
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      const Bytes key = repeated(static_cast<std::uint8_t>(t + 1), 16 + t * 20);
      for (int i = 0; i < 2000; ++i) {
        const std::string message = std::to_string(t) + ":" + std::to_string(i);
        if (hex_of(hmac_sha256(key, as_bytes(message))) != reference(key, as_bytes(message))) {
          ++wrong[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace hookvault
