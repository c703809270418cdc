#include "hookvault/secret.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <cstring>

#include "hookvault/bytes.hpp"

namespace hookvault {

void secure_wipe(void* p, std::size_t n) noexcept {
  if (p != nullptr && n > 0) OPENSSL_cleanse(p, n);
}

SecretBytes SecretBytes::copy_of(std::span<const std::uint8_t> data) {
  SecretBytes s(data.size());
  if (!data.empty()) std::memcpy(s.bytes_.data(), data.data(), data.size());
  return s;
}

SecretBytes SecretBytes::copy_of(std::string_view data) { return copy_of(as_bytes(data)); }

SecretBytes SecretBytes::random(std::size_t n) {
  SecretBytes s(n);
  if (n > 0 && RAND_bytes(s.bytes_.data(), static_cast<int>(n)) != 1) std::abort();
  return s;
}

SecretBytes SecretBytes::clone() const { return copy_of(reveal()); }

bool SecretBytes::equals(std::span<const std::uint8_t> other) const noexcept {
  if (other.size() != bytes_.size()) return false;
  if (bytes_.empty()) return true;
  return CRYPTO_memcmp(bytes_.data(), other.data(), bytes_.size()) == 0;
}

std::string to_hex(ByteView data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.resize(data.size() * 2);
  for (std::size_t i = 0; i < data.size(); ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xF];
  }
  return out;
}

}  // namespace hookvault
