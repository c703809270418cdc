// Key-encryption key (KEK): wraps and unwraps the per-record data keys (DEKs)
// of the envelope-encrypted store.
//
// A Kek is identified by `id()` (stable, non-secret: e.g. "file:3f9a1c0e") and
// has a current `version()`; both are stored beside every wrapped key so that a
// later rotation (issue 4) can keep old versions readable. `associated_data` is
// bound into the wrap so a wrapped key cannot be moved to another row.
//
// Wrapped-key layout of the file provider (version 1):
//   nonce[12] || AES-256-GCM(kek, dek)[32] || tag[16]      (60 bytes)
// with AAD = "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
//
// The pkcs11 provider keeps the KEK inside an HSM token and never sees it. It
// needs a PKCS#11 v2.40 module whose token offers CKM_AES_GCM encrypt/decrypt
// (checked at open); tested with SoftHSM2, meant for the vendors' modules
// (CloudHSM, YubiHSM, Thales, cloud KMS) alike:
//   - Keys: AES-256 secret keys on the token named by `token_label`. The key
//     whose CKA_LABEL is "<key_label>" is version 1; version N >= 1 may also be
//     labelled "<key_label>.v<N>" (decimal, no leading zero). The current
//     version is the highest present when the Kek is opened; unwrap accepts
//     every version present, and looks again on the token when asked for one
//     it does not know (so a version another process created becomes readable
//     without a restart). Two keys for one version make that version unusable.
//   - Wrap: CKM_AES_GCM inside the token, 12-byte nonce (RAND_bytes; a module
//     that generates the IV itself and writes it back into CK_GCM_PARAMS.pIv,
//     as AWS CloudHSM does, is honoured), 128-bit tag, and the same AAD as above,
//     so the wrapped layout is byte for byte the file provider's. A wrapped
//     key that does not authenticate is Errc::store_corrupt; when a module
//     reports a bad tag only as CKR_GENERAL_ERROR (SoftHSM 2.6 does), a fresh
//     wrap/unwrap with the same key tells a bad row from a failing token.
//     GCM rather than CKM_AES_KEY_WRAP (RFC 3394): key wrap takes no
//     associated data, and the AAD is what binds a wrapped key to its row.
//   - id() is "pkcs11:<token_label>/<key_label>", the same for every version.
//   - version() is fixed for the life of the Kek (callers store it beside
//     what wrap() returned): a process wraps under the version that was
//     current when it opened the token, until it is restarted.
//   - Sessions: the module is loaded once per process (dlopen, C_Initialize
//     with CKF_OS_LOCKING_OK) and finalized when its last user closes. Each Kek
//     logs in once on an anchor session it keeps open (a PKCS#11 login holds
//     for all of the process's sessions on that token), and runs wrap/unwrap
//     on a pool of up to 8 sessions, opened on demand. A failed operation is
//     retried once on a fresh session (logging in again or looking up the key
//     handles again when the token says so). The PIN stays in SecretBytes for
//     that re-login. Within one process a second Kek on a token that is already
//     logged in does not have its PIN checked again (PKCS#11 semantics).
//
// Thread-safety: wrap/unwrap are const and safe from many threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

class Kek {
 public:
  virtual ~Kek() = default;
  virtual const std::string& id() const noexcept = 0;
  virtual std::uint32_t version() const noexcept = 0;
  // Wraps under the current version.
  virtual Result<Bytes> wrap(const SecretBytes& dek, ByteView associated_data) const = 0;
  // Errc::kek_unavailable for an unknown version, Errc::store_corrupt when the
  // wrapped key does not open under (version, associated_data).
  virtual Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                                     ByteView associated_data) const = 0;
};

// The file provider: the file holds the 32-byte KEK as base64 text (a trailing
// newline is ignored) or as 32 raw bytes. Throws std::runtime_error naming the
// file when it is missing, unreadable, or not 32 bytes (control plane only).
std::unique_ptr<Kek> open_file_kek(const std::filesystem::path& file);
std::unique_ptr<Kek> make_memory_kek(SecretBytes key, std::string id);  // tests, tooling

// The pkcs11 provider (scheme above).
struct Pkcs11KekOptions {
  std::filesystem::path module;  // the vendor's PKCS#11 library (.so)
  std::string token_label;       // CK_TOKEN_INFO.label, at most 32 bytes
  SecretBytes pin;               // the user (CKU_USER) PIN
  std::string key_label;         // version 1's CKA_LABEL; "<key_label>.v<N>" for N
};

// What open_pkcs11_kek() or create_pkcs11_kek_version() could not do, so that
// `check-config` can name the config key at fault. The message names the
// module, token or key label, and the PKCS#11 return code; never the PIN.
class Pkcs11Error : public std::runtime_error {
 public:
  enum class Stage {
    module,  // cannot load or initialize the module
    token,   // no such token (or more than one), or it lacks CKM_AES_GCM
    login,   // C_Login refused (wrong PIN, locked, ...)
    key,     // no usable key version, or creating one failed
  };
  Pkcs11Error(Stage stage, const std::string& message)
      : std::runtime_error(message), stage_(stage) {}
  Stage stage() const noexcept { return stage_; }

 private:
  Stage stage_;
};

// Opens the module, finds the token, logs in, finds every key version and
// checks the current one with a wrap/unwrap round trip. Throws Pkcs11Error
// (control plane only). The returned Kek's wrap/unwrap never throw: a token
// error or unknown version is Errc::kek_unavailable, a wrapped key that does
// not authenticate is Errc::store_corrupt.
std::unique_ptr<Kek> open_pkcs11_kek(Pkcs11KekOptions options);

// Generates the next version inside the token: AES-256, CKA_TOKEN, CKA_PRIVATE,
// CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_ENCRYPT/CKA_DECRYPT only. Labelled
// "<key_label>" when it is version 1, else "<key_label>.v<N>". Returns N.
// Throws Pkcs11Error. (What `hookvault keys rotate` calls; Kek instances
// already open keep wrapping under their version, see above.)
std::uint32_t create_pkcs11_kek_version(const Pkcs11KekOptions& options);

}  // namespace hookvault
