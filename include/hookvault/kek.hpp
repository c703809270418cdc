// Key-encryption key (KEK): wraps and unwraps the per-record data keys (DEKs)
// of the envelope-encrypted store.
//
// A Kek is identified by `id()` (stable, non-secret: e.g. "file:3f9a1c0e") and
// holds one or more versions; `version()` is the current one, the highest
// present. wrap() always uses the current version and reports it; callers
// store it beside the wrapped key with the id, so that after a rotation old
// versions stay readable until `hookvault keys rewrap` has moved every wrapped
// key to the current one and `keys retire` removes them. `associated_data` is
// bound into the wrap so a wrapped key cannot be moved to another row.
//
// Versions and refresh
//   - versions() lists the versions this Kek can unwrap, ascending; the last
//     one is version().
//   - refresh() reads the keyring again (the file, or the token's key list)
//     and makes the highest version present current. `serve` calls it every
//     [kek] refresh_interval and on SIGHUP (kek_refresher.hpp), so a version
//     added by `keys rotate` is used for new records without a restart. A
//     version that disappeared (retired) is dropped. It throws
//     std::runtime_error (Pkcs11Error for pkcs11) naming the file or token
//     when the keyring cannot be read, is malformed, now belongs to
//     another KEK (another id), or changed the key of a version it had (for
//     pkcs11: or its highest version fails the self-test below); the Kek then
//     keeps the keyring it had. Control plane only.
//   - unwrap() of a version above the current one reads the keyring once more
//     (without throwing) before it answers Errc::kek_unavailable, so a version
//     another process created becomes readable, and current, without a reload
//     (for pkcs11 after the same self-test as refresh()). An unknown version at
//     or below the current one was retired (new versions are always the
//     highest + 1) and is Errc::kek_unavailable at once. A wrapped key that is
//     not 60 bytes is Errc::store_corrupt before any of this.
//
// Wrapped-key layout (both providers, every version):
//   nonce[12] || AES-256-GCM(kek version N, dek)[32] || tag[16]      (60 bytes)
// with AAD = "hookvault-kek-wrap-v1" || u32be(N) || associated_data.
//
// The file provider keeps the keyring in one file (mode 0600), in one of:
//   - legacy: 32 raw bytes, or one line of base64/base64url text of 32 bytes
//     (a trailing newline is ignored): version 1 only;
//   - keyring (what `keys rotate` writes): text lines, each either
//       v<N> <base64 of the 32-byte key>    N decimal, 1 .. 2^32-1, no leading 0
//       id <kek id>                          at most once
//     separated by LF (CRLF accepted, blank lines ignored). The highest N is
//     current. The id is "file:" + the first 8 hex digits of
//     SHA-256("hookvault-kek-id" || version 1's key), as for a legacy file, so
//     existing stores keep working; the "id" line keeps it once version 1 is
//     retired (when version 1 is present too, the two must agree).
//   A malformed line is an error naming the file and the line number, never
//   its content. rotate_file_kek() and retire_file_kek_version() rewrite the
//   file whole: a temporary file (0600) in the same folder, fsync, rename over
//   the KEK file, fsync of the folder, under an flock of the folder so two
//   rotations do not race. (A symlinked KEK file is replaced by a file.)
//
// The pkcs11 provider keeps the KEK inside an HSM token and never sees it. It
// needs a PKCS#11 v2.40 module whose token offers CKM_AES_GCM encrypt/decrypt
// (checked at open) and takes the 12-byte IV the caller supplies (checked at
// open too, by the self-test below). Only SoftHSM2 is tested; another module
// is usable when it passes those checks:
//   - Keys: AES-256 secret keys on the token named by `token_label`. The key
//     whose CKA_LABEL is "<key_label>" is version 1; version N >= 1 may also be
//     labelled "<key_label>.v<N>" (decimal, no leading zero). The current
//     version is the highest present when the Kek is opened or refreshed;
//     unwrap accepts every version present. Two keys for one version, or a
//     key labelled as a version that is not AES-256, make open and refresh()
//     refuse the token (Pkcs11Error, Stage::key) and the rescans of unwrap
//     fail quietly; the Kek keeps the keys it had.
//   - Wrap: CKM_AES_GCM inside the token, 12-byte nonce (random_bytes; a module
//     that writes an IV of its own back into CK_GCM_PARAMS.pIv has that IV
//     stored instead, untested), 128-bit tag, and the same AAD as above,
//     so the wrapped layout is byte for byte the file provider's. A wrapped
//     key that does not authenticate is Errc::store_corrupt; when a module
//     reports a bad tag only as CKR_GENERAL_ERROR (SoftHSM 2.6 does), a fresh
//     wrap/unwrap with the same key tells a bad row from a failing token.
//     GCM rather than CKM_AES_KEY_WRAP (RFC 3394): key wrap takes no
//     associated data, and the AAD is what binds a wrapped key to its row.
//   - id() is "pkcs11:<token_label>/<key_label>", the same for every version.
//   - Self-test: every key list the Kek takes (at open, on refresh(), and on
//     the rescans of unwrap or of a stale key handle) has its highest version
//     wrap and unwrap a random DEK first; a list whose self-test fails is not
//     taken (open and refresh() throw Pkcs11Error, a rescan fails quietly), so
//     the current version is always one that works and that unwrap knows.
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
// Thread-safety: id, version, versions, wrap and unwrap are const and safe
// from many threads, also while another thread runs refresh() (a wrap racing a
// refresh uses the old or the new current version, and reports which). Each
// works on one immutable snapshot of the keyring; refresh() and the rescans
// replace it whole, one at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

// What wrap() returns: the wrapped key and the version that wrapped it.
struct WrappedDek {
  std::uint32_t version = 0;
  Bytes bytes;  // the 60-byte layout above
};

class Kek {
 public:
  virtual ~Kek() = default;
  virtual const std::string& id() const noexcept = 0;
  // The current version (the highest present).
  virtual std::uint32_t version() const noexcept = 0;
  // Every version unwrap() accepts, ascending.
  virtual std::vector<std::uint32_t> versions() const = 0;
  // Wraps under the current version and says which.
  virtual Result<WrappedDek> wrap(const SecretBytes& dek, ByteView associated_data) const = 0;
  // Errc::store_corrupt when the wrapped key is not 60 bytes or does not open
  // under (version, associated_data); Errc::kek_unavailable for an unknown
  // version (after one look at the keyring when it is above version()).
  virtual Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                                     ByteView associated_data) const = 0;
  // Reads the keyring again (see above). Throws; the Kek is unchanged then.
  virtual void refresh() = 0;
};

// The file provider (keyring formats above). Throws std::runtime_error naming
// the file when it is missing, unreadable or malformed (control plane only).
std::unique_ptr<Kek> open_file_kek(const std::filesystem::path& file);
// Adds version (highest + 1) with a fresh random key, rewriting the file in
// the keyring format (legacy files are converted); returns the new version.
// Throws std::runtime_error naming the file.
std::uint32_t rotate_file_kek(const std::filesystem::path& file);
// Removes `version` from the keyring file. Refuses (std::runtime_error naming
// the file) a version that is not there or is the current (highest) one. Does
// not look at the store: `hookvault keys retire` checks that nothing uses it.
void retire_file_kek_version(const std::filesystem::path& file, std::uint32_t version);

// One version (1) of `key`; refresh() does nothing. Tests, tooling.
std::unique_ptr<Kek> make_memory_kek(SecretBytes key, std::string id);

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
// already open keep wrapping under their version until refresh(), see above.)
std::uint32_t create_pkcs11_kek_version(const Pkcs11KekOptions& options);

// Destroys the token object of `version` (C_DestroyObject). Refuses a version
// that has no key, or is the highest present (current). Throws Pkcs11Error
// (Stage::key). Does not look at the store: `hookvault keys retire` checks
// that nothing uses the version first.
void destroy_pkcs11_kek_version(const Pkcs11KekOptions& options, std::uint32_t version);

}  // namespace hookvault
