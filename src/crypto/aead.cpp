// Store record encryption: AES-256-GCM with key commitment (layout in aead.hpp).
//
// aead_open() checks, in order: DEK length, sealed length, version byte, the
// key commitment (constant time), then GCM. Every failure is the one uniform
// Errc::store_corrupt. The plaintext is written only into SecretBytes.
//
// aead_seal() has no error channel: a DEK of the wrong length is a programming
// error and a failing CSPRNG or cipher leaves nothing safe to do, so both abort
// (as SecretBytes::random does).
#include "hookvault/aead.hpp"

#include <openssl/crypto.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <span>

#include "crypto/gcm.hpp"
#include "hookvault/hmac.hpp"
#include "hookvault/random.hpp"

namespace hookvault {
namespace {

constexpr std::uint8_t kVersion = 0x01;
constexpr std::size_t kNonceBytes = kGcmNonceBytes;
constexpr std::size_t kCommitBytes = 32;
constexpr std::size_t kTagBytes = kGcmTagBytes;
constexpr std::size_t kNonceOffset = 1;
constexpr std::size_t kCommitOffset = kNonceOffset + kNonceBytes;
constexpr std::size_t kCiphertextOffset = kCommitOffset + kCommitBytes;
constexpr std::string_view kCommitLabel = "hookvault-commit-v1";
constexpr std::string_view kAadLabel = "hookvault-aead-v1";
static_assert(kSealOverhead == kCiphertextOffset + kTagBytes);

using Commitment = Mac;
static_assert(sizeof(Commitment) == kCommitBytes);

[[noreturn]] void die(const char* what) {
  (void)std::fprintf(stderr, "hookvault: aead_seal: %s\n", what);
  std::abort();
}

// HMAC-SHA256(dek, "hookvault-commit-v1" || nonce). Not secret: it is stored.
bool commitment(const SecretBytes& dek, ByteView nonce, Commitment& out) {
  return hmac_sha256(dek.reveal(), {as_bytes(kCommitLabel), nonce}, out);
}

bool fits_int(std::size_t n) {
  return n <= static_cast<std::size_t>(std::numeric_limits<int>::max());
}

}  // namespace

Bytes aead_seal(const SecretBytes& dek, ByteView plaintext, ByteView associated_data) {
  if (dek.size() != kDekBytes) die("DEK must be 32 bytes");
  if (!fits_int(plaintext.size()) || !fits_int(associated_data.size())) die("input too large");

  Bytes sealed(kSealOverhead + plaintext.size());
  sealed[0] = kVersion;
  std::uint8_t* nonce = sealed.data() + kNonceOffset;
  if (!random_bytes({nonce, kNonceBytes})) die("CSPRNG failed");
  Commitment commit{};
  if (!commitment(dek, ByteView(nonce, kNonceBytes), commit)) die("HMAC failed");
  std::memcpy(sealed.data() + kCommitOffset, commit.data(), kCommitBytes);

  if (!gcm_seal(dek, ByteView(nonce, kNonceBytes), {as_bytes(kAadLabel), associated_data},
                plaintext, std::span(sealed).subspan(kCiphertextOffset, plaintext.size()),
                std::span(sealed).subspan(kCiphertextOffset + plaintext.size(), kTagBytes))) {
    die("AES-256-GCM encryption failed");
  }
  return sealed;
}

Result<SecretBytes> aead_open(const SecretBytes& dek, ByteView sealed, ByteView associated_data) {
  if (dek.size() != kDekBytes || sealed.size() < kSealOverhead || sealed[0] != kVersion ||
      !fits_int(sealed.size()) || !fits_int(associated_data.size())) {
    return Errc::store_corrupt;
  }
  const ByteView nonce = sealed.subspan(kNonceOffset, kNonceBytes);
  const ByteView stored_commit = sealed.subspan(kCommitOffset, kCommitBytes);
  const std::size_t ct_len = sealed.size() - kSealOverhead;
  const ByteView ct = sealed.subspan(kCiphertextOffset, ct_len);
  const ByteView tag = sealed.subspan(kCiphertextOffset + ct_len, kTagBytes);

  Commitment expected{};
  if (!commitment(dek, nonce, expected)) return Errc::store_corrupt;
  if (CRYPTO_memcmp(expected.data(), stored_commit.data(), kCommitBytes) != 0) {
    return Errc::store_corrupt;
  }

  SecretBytes plain(ct_len);
  if (!gcm_open(dek, nonce, {as_bytes(kAadLabel), associated_data}, ct, tag,
                plain.reveal_mutable())) {
    return Errc::store_corrupt;  // `plain` is wiped
  }
  return plain;
}

Bytes associated_data(std::initializer_list<std::string_view> parts) {
  std::size_t total = 0;
  for (auto part : parts) total += 4 + part.size();
  Bytes out;
  out.reserve(total);
  for (auto part : parts) {
    if (part.size() > std::numeric_limits<std::uint32_t>::max()) {
      (void)std::fprintf(stderr, "hookvault: associated_data: part too large\n");
      std::abort();
    }
    const auto n = static_cast<std::uint32_t>(part.size());
    out.push_back(static_cast<std::uint8_t>(n >> 24));
    out.push_back(static_cast<std::uint8_t>(n >> 16));
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n));
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

}  // namespace hookvault
