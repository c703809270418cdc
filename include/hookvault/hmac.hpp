// HMAC-SHA256, the one MAC of hookvault: webhook signatures (signature.hpp),
// the store records' key commitment (aead.hpp) and the audit chain (audit.hpp).
//
// OpenSSL 3's one-shot HMAC() looks the HMAC and SHA-256 implementations up
// by name in the provider store on every call (a lock, name comparisons,
// parameter parsing and a few allocations). Here they are fetched once per
// process, into a keyed template context; each call copies the template and
// sets its own key (about 0.8 us for a short message against 1.8 us for
// HMAC() on this machine: bench/crypto_bench.cpp). The copy is freed, and so
// cleansed, before the call returns: no key outlives it.
//
// Thread-safety: safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

#include "hookvault/bytes.hpp"

namespace hookvault {

using Mac = std::array<std::uint8_t, 32>;

// HMAC-SHA256(key, the parts of `message` one after another) into `out`.
// False only when OpenSSL fails (allocation); `out` is then unspecified. Any
// key length, including 0.
bool hmac_sha256(ByteView key, std::initializer_list<ByteView> message, Mac& out) noexcept;

// HMAC-SHA256(key, message); aborts when OpenSSL fails, never returns a wrong MAC.
Mac hmac_sha256(ByteView key, ByteView message);

}  // namespace hookvault
