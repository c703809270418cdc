// AES-256-GCM seal/open (contract in gcm.hpp).
#include "crypto/gcm.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <limits>

#include "crypto/ssl_ptr.hpp"

namespace hookvault {
namespace {

constexpr std::size_t kKeyBytes = 32;

// AES-256-GCM fetched once: EVP_aes_256_gcm() would be looked up by name in
// the provider store at every EVP_CipherInit_ex (hmac.hpp says why that
// matters); the built-in one when the fetch fails.
const EVP_CIPHER* aes_256_gcm() noexcept {
  static const EVP_CIPHER* const cipher = [] {
    const EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    ERR_clear_error();
    return fetched != nullptr ? fetched : EVP_aes_256_gcm();
  }();
  return cipher;
}

bool fits_int(std::size_t n) {
  return n <= static_cast<std::size_t>(std::numeric_limits<int>::max());
}

// Sets up AES-256-GCM under `key`/`nonce` and feeds the AAD parts. nullptr on
// failure (the caller clears the error queue).
CipherCtxPtr gcm_init(bool encrypt, const SecretBytes& key, ByteView nonce,
                      std::initializer_list<ByteView> aad) {
  if (key.size() != kKeyBytes || nonce.size() != kGcmNonceBytes) return nullptr;
  for (ByteView part : aad) {
    if (!fits_int(part.size())) return nullptr;
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_CipherInit_ex(ctx.get(), aes_256_gcm(), nullptr, key.reveal().data(),
                                nonce.data(), encrypt ? 1 : 0) != 1) {
    return nullptr;
  }
  for (ByteView part : aad) {
    int len = 0;
    if (!part.empty() && EVP_CipherUpdate(ctx.get(), nullptr, &len, part.data(),
                                          static_cast<int>(part.size())) != 1) {
      return nullptr;
    }
  }
  return ctx;
}

}  // namespace

bool gcm_seal(const SecretBytes& key, ByteView nonce, std::initializer_list<ByteView> aad,
              ByteView plaintext, std::span<std::uint8_t> ct,
              std::span<std::uint8_t> tag) noexcept {
  CipherCtxPtr ctx;
  if (ct.size() == plaintext.size() && tag.size() == kGcmTagBytes && fits_int(plaintext.size())) {
    ctx = gcm_init(true, key, nonce, aad);
  }
  if (!ctx) {
    ERR_clear_error();
    return false;
  }
  int len = 0;
  int final_len = 0;
  if ((!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct.data(), &len, plaintext.data(),
                                               static_cast<int>(plaintext.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), ct.data() + len, &final_len) != 1 ||
      static_cast<std::size_t>(len) + static_cast<std::size_t>(final_len) != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagBytes),
                          tag.data()) != 1) {
    ERR_clear_error();
    return false;
  }
  return true;
}

bool gcm_open(const SecretBytes& key, ByteView nonce, std::initializer_list<ByteView> aad,
              ByteView ct, ByteView tag, std::span<std::uint8_t> plain) noexcept {
  CipherCtxPtr ctx;
  if (plain.size() == ct.size() && tag.size() == kGcmTagBytes && fits_int(ct.size())) {
    ctx = gcm_init(false, key, nonce, aad);
  }
  std::array<std::uint8_t, kGcmTagBytes> tag_copy{};  // OpenSSL wants a non-const pointer
  std::array<std::uint8_t, 16> final_block{};         // GCM writes nothing here
  int len = 0;
  int final_len = 0;
  bool ok = ctx != nullptr;
  if (ok) {
    std::memcpy(tag_copy.data(), tag.data(), kGcmTagBytes);
    ok = (ct.empty() || EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct.data(),
                                          static_cast<int>(ct.size())) == 1) &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagBytes),
                             tag_copy.data()) == 1 &&
         EVP_DecryptFinal_ex(ctx.get(), final_block.data(), &final_len) == 1 &&
         static_cast<std::size_t>(len) == ct.size() && final_len == 0;
  }
  secure_wipe(tag_copy.data(), tag_copy.size());
  secure_wipe(final_block.data(), final_block.size());
  if (!ok) {
    ERR_clear_error();
    secure_wipe(plain.data(), plain.size());
  }
  return ok;
}

}  // namespace hookvault
