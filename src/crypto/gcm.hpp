// AES-256-GCM with a 12-byte nonce and a 16-byte tag: the one cipher sequence
// behind the store record AEAD (aead.cpp) and the KEK wrap (kek_file.cpp).
//
// Contract:
//   - `key` is 32 bytes, `nonce` 12 bytes, `tag` 16 bytes, and the output span
//     is exactly as long as the input; anything else fails.
//   - The AAD is the concatenation of `aad`, fed to GCM part by part in order
//     (empty parts are skipped); every part and the input must fit in an int.
//   - gcm_seal() writes the ciphertext to `ct` and the tag to `tag`; false on
//     any failure (bad sizes, setup, encryption), when the outputs are garbage.
//   - gcm_open() verifies `tag` and writes the plaintext to `plain`; on any
//     failure (including a wrong tag) it wipes `plain` before returning false.
//   - Neither throws. On failure OpenSSL's error queue is cleared; temporaries
//     are wiped and the cipher context is freed (which cleanses the key).
//
// Private to hookvault's crypto stage: include as "crypto/gcm.hpp".
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

#include "hookvault/bytes.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

inline constexpr std::size_t kGcmNonceBytes = 12;
inline constexpr std::size_t kGcmTagBytes = 16;

bool gcm_seal(const SecretBytes& key, ByteView nonce, std::initializer_list<ByteView> aad,
              ByteView plaintext, std::span<std::uint8_t> ct, std::span<std::uint8_t> tag) noexcept;

bool gcm_open(const SecretBytes& key, ByteView nonce, std::initializer_list<ByteView> aad,
              ByteView ct, ByteView tag, std::span<std::uint8_t> plain) noexcept;

}  // namespace hookvault
