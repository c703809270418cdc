#include "hookvault/secret.hpp"

#include <openssl/crypto.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>

#include "hookvault/bytes.hpp"
#include "hookvault/random.hpp"

namespace hookvault {

void secure_wipe(void* p, std::size_t n) noexcept {
  if (p != nullptr && n > 0) OPENSSL_cleanse(p, n);
}

bool lock_secret_memory(std::size_t arena_bytes) {
  constexpr std::size_t kMinBlock = 32;
  // The arena is made once; later calls report how that went.
  static std::mutex mu;
  static std::optional<bool> locked;
  std::lock_guard lock(mu);
  if (!locked) {
    const int r = CRYPTO_secure_malloc_init(arena_bytes, kMinBlock);
    if (r == 0) throw std::runtime_error("cannot create the locked memory arena for secrets");
    locked = r == 1;
  }
  return *locked;
}

void* secret_alloc(std::size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (CRYPTO_secure_malloc_initialized() == 1) {
    if (void* p = OPENSSL_secure_malloc(bytes)) return p;
  }
  void* p = std::malloc(bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void secret_free(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  if (CRYPTO_secure_allocated(p) == 1) {
    OPENSSL_secure_clear_free(p, bytes);
    return;
  }
  secure_wipe(p, bytes);
  std::free(p);
}

SecretBytes SecretBytes::copy_of(std::span<const std::uint8_t> data) {
  SecretBytes s(data.size());
  if (!data.empty()) std::memcpy(s.bytes_.data(), data.data(), data.size());
  return s;
}

SecretBytes SecretBytes::copy_of(std::string_view data) { return copy_of(as_bytes(data)); }

SecretBytes SecretBytes::random(std::size_t n) {
  SecretBytes s(n);
  if (!random_bytes(s.reveal_mutable())) std::abort();
  return s;
}

SecretBytes SecretBytes::clone() const { return copy_of(reveal()); }

bool SecretBytes::equals(std::span<const std::uint8_t> other) const noexcept {
  if (other.size() != bytes_.size()) return false;
  if (bytes_.empty()) return true;
  return CRYPTO_memcmp(bytes_.data(), other.data(), bytes_.size()) == 0;
}

}  // namespace hookvault
