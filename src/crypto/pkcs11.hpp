// The PKCS#11 pieces under the pkcs11 KEK provider (crypto/kek_pkcs11.cpp),
// private to src/crypto, one file each:
//   pkcs11_module.cpp   return codes, and the module: loaded with dlopen and
//                       initialized once per process; a process-wide registry
//                       counts its users and calls C_Finalize when the last one
//                       goes. The library stays mapped (unloading a module that
//                       registered state with OpenSSL or threads is not safe).
//   pkcs11_token.cpp    token lookup, login, and the key scan that maps
//                       versions to handles
//   pkcs11_gcm.cpp      AES-GCM inside the token: seal and open a DEK
// The Kek class is kek_pkcs11.cpp; creating and destroying key versions
// (`keys rotate`, `keys retire`) kek_pkcs11_versions.cpp.
//
// Every message names the module, token or key label and the CKR_ code; the
// PIN is only ever handed to C_Login, from a wiped copy.
#pragma once

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/kek_wrap.hpp"
#include "hookvault/bytes.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"

namespace hookvault::pkcs11 {

using Stage = Pkcs11Error::Stage;

constexpr std::size_t kSealedBytes = kDekBytes + kWrapTagBytes;  // ct || tag
constexpr std::size_t kMaxTokenLabelBytes = 32;                  // CK_TOKEN_INFO.label
// PKCS#11 v3.0 code for a failed AEAD tag check; p11-kit 0.24's header predates it.
constexpr CK_RV kCkrAeadDecryptFailed = 0x35;

// ---------------------------------------------------------------------------
// Return codes (pkcs11_module.cpp)

// "CKR_PIN_INCORRECT"; "CKR_0x<hex>" for a code without a name here.
std::string rv_name(CK_RV rv);
// Outcomes of a GCM open that mean "does not authenticate", not "token broken".
bool is_auth_failure(CK_RV rv);
// Failures a module may report for a wrong tag as well as for a fault.
bool is_generic_failure(CK_RV rv);
std::string in_quotes(std::string_view s);

// ---------------------------------------------------------------------------
// Module (pkcs11_module.cpp)

// A counted reference to an initialized module. Move-only.
class ModuleRef {
 public:
  // dlopen, C_GetFunctionList, C_Initialize when this process has no other
  // user of the module. Throws Pkcs11Error (Stage::module).
  static ModuleRef open(const std::filesystem::path& module);

  ModuleRef(ModuleRef&& other) noexcept : fn_(std::exchange(other.fn_, nullptr)) {}
  ModuleRef& operator=(ModuleRef&&) = delete;
  ModuleRef(const ModuleRef&) = delete;
  ModuleRef& operator=(const ModuleRef&) = delete;
  ~ModuleRef();  // C_Finalize when this was the last user and we initialized it

  CK_FUNCTION_LIST* operator->() const noexcept { return fn_; }

 private:
  explicit ModuleRef(CK_FUNCTION_LIST* fn) : fn_(fn) {}
  CK_FUNCTION_LIST* fn_;
};

// ---------------------------------------------------------------------------
// Token, login, keys (pkcs11_token.cpp)

// Names used in messages.
struct Names {
  std::string module;  // "PKCS#11 module /usr/lib/..."
  std::string token;   // "PKCS#11 token \"hookvault\" (module /usr/lib/...)"

  explicit Names(const Pkcs11KekOptions& o)
      : module("PKCS#11 module " + o.module.string()),
        token("PKCS#11 token " + in_quotes(o.token_label) + " (module " + o.module.string() + ")") {
  }
};

// Throws Pkcs11Error for an empty or too long token label, an empty key
// label or an empty PIN.
void check_options(const Pkcs11KekOptions& o, const Names& names);
// The one slot whose token has the label, offering CKM_AES_GCM. Throws Pkcs11Error.
CK_SLOT_ID find_slot(const ModuleRef& fn, const Pkcs11KekOptions& o, const Names& names);
CK_RV open_session(const ModuleRef& fn, CK_SLOT_ID slot, bool read_write,
                   CK_SESSION_HANDLE* session);
// C_Login as the user. Already logged in (by another Kek of this process) is success.
CK_RV login(const ModuleRef& fn, CK_SESSION_HANDLE session, const SecretBytes& pin);

// The version a label stands for, or nullopt when it is not one of ours.
std::optional<std::uint32_t> label_version(std::string_view label, std::string_view key_label);
// "<key_label>" for version 1, "<key_label>.v<N>" for the others.
std::string version_label(std::string_view key_label, std::uint32_t version);

// Key handles by version.
using KeySet = std::map<std::uint32_t, CK_OBJECT_HANDLE>;

struct KeyScan {
  CK_RV rv = CKR_OK;                  // of the search (or of the login before it)
  bool login_failed = false;          // rv is a failed login on a new session
  KeySet keys;                        // usable versions
  std::uint32_t highest_label = 0;    // including unusable ones
  std::vector<std::string> problems;  // "key \"x.v2\": ..."
};

// Every AES secret key of the token visible to `session`, sorted by version.
KeyScan scan_keys(const ModuleRef& fn, CK_SESSION_HANDLE session, std::string_view key_label);
// Throws Pkcs11Error when the scan itself failed (the listing, or the login
// before it).
void check_listed(const KeyScan& scan, const std::string& token);
// The keys of a scan a Kek may use. Throws Pkcs11Error (Stage::key, unless
// the login failed) when the scan failed, when a labelled key is unusable
// (two keys for one version, or not AES-256), or when there is no key at all.
KeySet usable_keys_or_throw(KeyScan scan, const std::string& token, std::string_view key_label);
std::optional<CK_OBJECT_HANDLE> find_handle(const KeySet& keys, std::uint32_t version);

// The module loaded and the token found (not logged in yet).
struct Token {
  Names names;
  ModuleRef module;
  CK_SLOT_ID slot;
};
// Throws Pkcs11Error.
Token find_token(const Pkcs11KekOptions& options);

// ---------------------------------------------------------------------------
// GCM inside the token (pkcs11_gcm.cpp)

// Seals `dek` into `out` (nonce || ct || tag). The nonce is ours unless the
// module writes back one of its own.
CK_RV seal(const ModuleRef& fn, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key,
           std::uint32_t version, const SecretBytes& dek, ByteView associated_data,
           std::span<std::uint8_t, kWrappedBytes> out);
// Opens `wrapped` (nonce || ct || tag, already of the right size) into `dek`.
CK_RV open_sealed(const ModuleRef& fn, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key,
                  std::uint32_t version, ByteView wrapped, ByteView associated_data,
                  SecretBytes& dek);

}  // namespace hookvault::pkcs11
