// Record encryption for the store: AES-256-GCM under a per-record data key (DEK)
// with key commitment, bound to its row by associated data.
//
// Sealed layout (version 1), as stored in the database:
//   offset 0   u8      format version = 0x01
//   offset 1   12 B    nonce (fresh from the CSPRNG per seal)
//   offset 13  32 B    key commitment = HMAC-SHA256(dek, "hookvault-commit-v1" || nonce)
//   offset 45  n B     AES-256-GCM ciphertext of the plaintext
//   offset 45+n 16 B   GCM tag
// AAD given to GCM = "hookvault-aead-v1" || associated_data.
// The commitment makes a ciphertext open under one DEK only (GCM alone is not
// key-committing); it is checked in constant time before GCM decryption.
//
// Thread-safety: stateless functions.
#pragma once

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

inline constexpr std::size_t kDekBytes = 32;
inline constexpr std::size_t kSealOverhead = 1 + 12 + 32 + 16;

Bytes aead_seal(const SecretBytes& dek, ByteView plaintext, ByteView associated_data);

// Errc::store_corrupt on any failure (wrong key, wrong AAD, tampering, bad length).
Result<SecretBytes> aead_open(const SecretBytes& dek, ByteView sealed, ByteView associated_data);

// Builds length-prefixed associated data from parts: u32be(len) || part, ...
// so ("ab","c") and ("a","bc") differ.
Bytes associated_data(std::initializer_list<std::string_view> parts);

}  // namespace hookvault
