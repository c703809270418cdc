// OpenSSL handles owned by std::unique_ptr with per-type deleters (after Tink's
// internal/ssl_unique_ptr.h), so no early return leaks a context and no context
// outlives its scope.
//
//   PkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
//   if (!ctx) return Errc::internal;
//
// Private to hookvault's stages: include as "crypto/ssl_ptr.hpp". Only libcrypto
// types are named here; a stage linking libssl spells its own aliases with
// SslPtr, e.g. `using SslCtxPtr = SslPtr<SSL_CTX, SSL_CTX_free>;`.
//
// Thread-safety: like std::unique_ptr.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace hookvault {

// Calls `Free` on the handle; every OpenSSL *_free accepts nullptr.
template <auto Free>
struct SslDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

template <class T, auto Free>
using SslPtr = std::unique_ptr<T, SslDeleter<Free>>;

using BioPtr = SslPtr<BIO, BIO_free_all>;
using PkeyPtr = SslPtr<EVP_PKEY, EVP_PKEY_free>;
using PkeyCtxPtr = SslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using CipherCtxPtr = SslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;  // free cleanses the key
using MdCtxPtr = SslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using MacPtr = SslPtr<EVP_MAC, EVP_MAC_free>;
using MacCtxPtr = SslPtr<EVP_MAC_CTX, EVP_MAC_CTX_free>;
using X509Ptr = SslPtr<X509, X509_free>;

}  // namespace hookvault
