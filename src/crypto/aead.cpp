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
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "crypto/ssl_ptr.hpp"

namespace hookvault {
namespace {

constexpr std::uint8_t kVersion = 0x01;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kCommitBytes = 32;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kNonceOffset = 1;
constexpr std::size_t kCommitOffset = kNonceOffset + kNonceBytes;
constexpr std::size_t kCiphertextOffset = kCommitOffset + kCommitBytes;
constexpr std::string_view kCommitLabel = "hookvault-commit-v1";
constexpr std::string_view kAadLabel = "hookvault-aead-v1";
static_assert(kSealOverhead == kCiphertextOffset + kTagBytes);

using Commitment = std::array<std::uint8_t, kCommitBytes>;

[[noreturn]] void die(const char* what) {
  (void)std::fprintf(stderr, "hookvault: aead_seal: %s\n", what);
  std::abort();
}

// HMAC-SHA256(dek, "hookvault-commit-v1" || nonce). Not secret: it is stored.
bool commitment(const SecretBytes& dek, ByteView nonce, Commitment& out) {
  std::array<std::uint8_t, kCommitLabel.size() + kNonceBytes> message{};
  std::memcpy(message.data(), kCommitLabel.data(), kCommitLabel.size());
  std::memcpy(message.data() + kCommitLabel.size(), nonce.data(), kNonceBytes);
  unsigned int len = 0;
  const bool ok = HMAC(EVP_sha256(), dek.reveal().data(), static_cast<int>(dek.size()),
                       message.data(), message.size(), out.data(), &len) != nullptr &&
                  len == kCommitBytes;
  if (!ok) ERR_clear_error();
  return ok;
}

// Sets up AES-256-GCM (12-byte nonce) and feeds the AAD
// "hookvault-aead-v1" || associated_data.
CipherCtxPtr gcm_init(bool encrypt, const SecretBytes& dek, ByteView nonce,
                      ByteView associated_data) {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, dek.reveal().data(), nonce.data(),
                        encrypt ? 1 : 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), nullptr, &len,
                       reinterpret_cast<const std::uint8_t*>(kAadLabel.data()),
                       static_cast<int>(kAadLabel.size())) != 1 ||
      (!associated_data.empty() &&
       EVP_CipherUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                        static_cast<int>(associated_data.size())) != 1)) {
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
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
  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) die("CSPRNG failed");
  Commitment commit{};
  if (!commitment(dek, ByteView(nonce, kNonceBytes), commit)) die("HMAC failed");
  std::memcpy(sealed.data() + kCommitOffset, commit.data(), kCommitBytes);

  CipherCtxPtr ctx = gcm_init(true, dek, ByteView(nonce, kNonceBytes), associated_data);
  if (!ctx) die("cipher setup failed");
  std::uint8_t* ct = sealed.data() + kCiphertextOffset;
  int len = 0;
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct, &len, plaintext.data(),
                                              static_cast<int>(plaintext.size())) != 1) {
    die("encryption failed");
  }
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ct + len, &final_len) != 1 ||
      static_cast<std::size_t>(len) + static_cast<std::size_t>(final_len) != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          ct + plaintext.size()) != 1) {
    die("encryption failed");
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

  CipherCtxPtr ctx = gcm_init(false, dek, nonce, associated_data);
  if (!ctx) return Errc::store_corrupt;
  SecretBytes plain(ct_len);
  int len = 0;
  if (ct_len > 0 && EVP_DecryptUpdate(ctx.get(), plain.reveal_mutable().data(), &len, ct.data(),
                                      static_cast<int>(ct_len)) != 1) {
    ERR_clear_error();
    return Errc::store_corrupt;
  }
  std::array<std::uint8_t, kTagBytes> tag_copy{};  // OpenSSL wants a non-const pointer
  std::memcpy(tag_copy.data(), tag.data(), kTagBytes);
  std::uint8_t final_block[16];  // GCM writes nothing here
  int final_len = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          tag_copy.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), final_block, &final_len) != 1 ||
      static_cast<std::size_t>(len) != ct_len || final_len != 0) {
    ERR_clear_error();
    return Errc::store_corrupt;  // `plain` is wiped on return
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
