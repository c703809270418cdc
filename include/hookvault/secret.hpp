// SecretBytes: the one type that holds secret material (keys, shares, API keys,
// webhook secrets, decrypted payloads).
//
// - Move-only; the buffer is wiped with OPENSSL_cleanse whenever memory is
//   released (destruction, move-assignment, reallocation on growth).
// - No implicit conversion to string and no formatter: logging a secret does not
//   compile. The bytes are reached only through the explicit, greppable
//   `reveal()` / `reveal_mutable()` / `reveal_string()` calls.
// - `equals()` compares in constant time (length first, then CRYPTO_memcmp).
// - Locked memory: once lock_secret_memory() has run (the daemon does it at
//   start-up), secret buffers come from OpenSSL's secure heap, an arena locked
//   into RAM (mlock) and left out of core dumps (MADV_DONTDUMP), where the
//   RLIMIT_MEMLOCK allows; OpenSSL puts its own private-key numbers there too.
//   A buffer that does not fit the arena falls back to the ordinary heap (still
//   wiped).
//
// Thread-safety: like std::vector; a const SecretBytes may be read concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace hookvault {

// Creates the locked arena secret buffers are taken from (call once, before
// secrets are loaded). Returns true when its pages are locked into RAM, false
// when the arena exists but mlock was refused (RLIMIT_MEMLOCK), and throws
// std::runtime_error when it cannot be created.
bool lock_secret_memory(std::size_t arena_bytes);

// The raw allocation behind WipingAllocator: the locked arena when it has room,
// else the ordinary heap. secret_free wipes before releasing.
void* secret_alloc(std::size_t bytes);
void secret_free(void* p, std::size_t bytes) noexcept;

// Allocator that wipes memory before handing it back.
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>& /*other*/) noexcept {}  // NOLINT
  T* allocate(std::size_t n) { return static_cast<T*>(secret_alloc(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept;
  template <class U>
  bool operator==(const WipingAllocator<U>& /*other*/) const noexcept {
    return true;
  }
};

void secure_wipe(void* p, std::size_t n) noexcept;

template <class T>
void WipingAllocator<T>::deallocate(T* p, std::size_t n) noexcept {
  secret_free(p, n * sizeof(T));
}

// Text that carries secrets (a reply body, a CLI's output): wiped when
// released. Build it with push_back/insert; it has no formatter either.
using SecretText = std::vector<char, WipingAllocator<char>>;

class SecretBytes {
 public:
  SecretBytes() = default;
  // `n` zero bytes, to be filled through reveal_mutable().
  explicit SecretBytes(std::size_t n) : bytes_(n) {}
  static SecretBytes copy_of(std::span<const std::uint8_t> data);
  static SecretBytes copy_of(std::string_view data);
  // `n` bytes from the CSPRNG (random_bytes). Aborts if the CSPRNG fails.
  static SecretBytes random(std::size_t n);

  SecretBytes(SecretBytes&&) noexcept = default;
  SecretBytes& operator=(SecretBytes&&) noexcept = default;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes() = default;  // the allocator wipes

  // An explicit copy, for the rare place that must keep two.
  SecretBytes clone() const;

  std::size_t size() const noexcept { return bytes_.size(); }
  bool empty() const noexcept { return bytes_.empty(); }
  void resize(std::size_t n) { bytes_.resize(n); }
  void append(std::span<const std::uint8_t> data) {
    bytes_.insert(bytes_.end(), data.begin(), data.end());
  }

  std::span<const std::uint8_t> reveal() const noexcept { return {bytes_.data(), bytes_.size()}; }
  std::span<std::uint8_t> reveal_mutable() noexcept { return {bytes_.data(), bytes_.size()}; }
  std::string_view reveal_string() const noexcept {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }

  // Constant-time equality (length first).
  bool equals(std::span<const std::uint8_t> other) const noexcept;

 private:
  std::vector<std::uint8_t, WipingAllocator<std::uint8_t>> bytes_;
};

}  // namespace hookvault
