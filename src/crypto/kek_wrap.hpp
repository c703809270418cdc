// The KEK wrap format, shared by the file provider (kek_file.cpp) and the
// pkcs11 provider (kek_pkcs11.cpp) so that a wrapped key is byte for byte the
// same under either (kek.hpp states the contract):
//
//   offset 0    12 B   nonce
//   offset 12   32 B   AES-256-GCM ciphertext of the DEK under KEK version N
//   offset 44   16 B   GCM tag                                       (60 bytes)
//   AAD = "hookvault-kek-wrap-v1" || u32be(N) || associated_data
//
// Key versions are written as decimal digits (the file provider's "v<N>"
// lines, the pkcs11 provider's "<key_label>.v<N>" labels): 1 .. 2^32-1, no
// leading zero.
//
// Thread-safety: stateless. Private to hookvault's crypto stage: include as
// "crypto/kek_wrap.hpp".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "crypto/gcm.hpp"
#include "hookvault/aead.hpp"
#include "hookvault/bytes.hpp"

namespace hookvault {

inline constexpr std::size_t kKekBytes = 32;  // AES-256
inline constexpr std::size_t kWrapNonceBytes = kGcmNonceBytes;
inline constexpr std::size_t kWrapTagBytes = kGcmTagBytes;
inline constexpr std::size_t kWrappedBytes = kWrapNonceBytes + kDekBytes + kWrapTagBytes;
inline constexpr std::string_view kWrapLabel = "hookvault-kek-wrap-v1";
static_assert(kWrappedBytes == 60);

// "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
Bytes wrap_aad(std::uint32_t version, ByteView associated_data);

// The version written as `digits`, or nullopt unless they are 1 to 10 decimal
// digits without a leading zero naming 1 .. 2^32-1.
std::optional<std::uint32_t> parse_version_digits(std::string_view digits);

}  // namespace hookvault
