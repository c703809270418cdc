// AES-GCM inside the token: a DEK sealed and opened under a token key
// (crypto/pkcs11.hpp; the layout is kek_wrap.hpp's).
#include <algorithm>
#include <array>

#include "crypto/pkcs11.hpp"
#include "hookvault/random.hpp"

namespace hookvault::pkcs11 {

namespace {

CK_GCM_PARAMS gcm_params(std::uint8_t* nonce, Bytes& aad) {
  CK_GCM_PARAMS p{};
  p.pIv = nonce;
  p.ulIvLen = kWrapNonceBytes;
  p.ulIvBits = kWrapNonceBytes * 8;
  p.pAAD = aad.empty() ? nullptr : aad.data();
  p.ulAADLen = aad.size();
  p.ulTagBits = kWrapTagBytes * 8;
  return p;
}

}  // namespace

// Seals `dek` into `out` (nonce || ct || tag). The nonce is ours unless the
// module writes back one of its own.
CK_RV seal(const ModuleRef& fn, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key,
           std::uint32_t version, const SecretBytes& dek, ByteView associated_data,
           std::span<std::uint8_t, kWrappedBytes> out) {
  if (!random_bytes(std::span(out).first(kWrapNonceBytes))) return CKR_FUNCTION_FAILED;
  Bytes aad = wrap_aad(version, associated_data);
  CK_GCM_PARAMS params = gcm_params(out.data(), aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
  CK_RV rv = fn->C_EncryptInit(session, &mech, key);
  if (rv != CKR_OK) return rv;
  SecretBytes plain = dek.clone();  // C_Encrypt wants a non-const pointer; wiped on return
  CK_ULONG len = kSealedBytes;
  rv = fn->C_Encrypt(session, plain.reveal_mutable().data(), static_cast<CK_ULONG>(plain.size()),
                     out.data() + kWrapNonceBytes, &len);
  if (rv == CKR_OK && len != kSealedBytes) rv = CKR_FUNCTION_FAILED;
  return rv;
}

// Opens `wrapped` (nonce || ct || tag, already of the right size) into `dek`.
CK_RV open_sealed(const ModuleRef& fn, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key,
                  std::uint32_t version, ByteView wrapped, ByteView associated_data,
                  SecretBytes& dek) {
  std::array<std::uint8_t, kWrapNonceBytes> nonce{};
  std::copy_n(wrapped.begin(), kWrapNonceBytes, nonce.begin());
  std::array<std::uint8_t, kSealedBytes> sealed{};
  std::copy_n(wrapped.begin() + kWrapNonceBytes, kSealedBytes, sealed.begin());
  Bytes aad = wrap_aad(version, associated_data);
  CK_GCM_PARAMS params = gcm_params(nonce.data(), aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
  CK_RV rv = fn->C_DecryptInit(session, &mech, key);
  if (rv != CKR_OK) return rv;
  // Room for the whole input: some modules (SoftHSM among them) want an output
  // buffer as long as the ciphertext and tag before they check the tag.
  SecretBytes out(kSealedBytes);
  CK_ULONG len = kSealedBytes;
  rv = fn->C_Decrypt(session, sealed.data(), sealed.size(), out.reveal_mutable().data(), &len);
  if (rv != CKR_OK) return rv;
  if (len != kDekBytes) return CKR_ENCRYPTED_DATA_LEN_RANGE;
  out.resize(kDekBytes);  // shrinking keeps the buffer; the allocator wipes it all later
  dek = std::move(out);
  return CKR_OK;
}

}  // namespace hookvault::pkcs11
