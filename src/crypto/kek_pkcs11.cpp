// The pkcs11 KEK provider (contract, key versions and wrap layout in kek.hpp).
//
// Pieces, in order:
//   - Module: a PKCS#11 library loaded with dlopen and initialized once per
//     process; a process-wide registry counts its users and calls C_Finalize
//     when the last one goes. The library stays mapped (unloading a module
//     that registered state with OpenSSL or threads is not safe).
//   - Token lookup, login, and the key scan that maps versions to handles.
//   - Pkcs11Kek: an anchor session that holds the login and serves key scans
//     (serialized by scan_mu_), a pool of sessions for wrap/unwrap
//     (pool_mu_/pool_cv_; a session is used by one thread at a time), and the
//     key set in use, an immutable snapshot replaced whole after a self-test.
//   - create_pkcs11_kek_version(): C_GenerateKey of the next version;
//     destroy_pkcs11_kek_version(): C_DestroyObject of a retired one; both on
//     a read-write session of their own (with_admin_scan).
//
// The wrapped-key format is kek_wrap.hpp's, shared with the file provider.
//
// Every message names the module, token or key label and the CKR_ code; the
// PIN is only ever handed to C_Login, from a wiped copy.
#include <dlfcn.h>
#include <openssl/err.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/kek_wrap.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/random.hpp"

namespace hookvault {
namespace {

using Stage = Pkcs11Error::Stage;

constexpr std::size_t kSealedBytes = kDekBytes + kWrapTagBytes;  // ct || tag
constexpr std::size_t kMaxTokenLabelBytes = 32;                  // CK_TOKEN_INFO.label
constexpr std::size_t kMaxSessions = 8;
constexpr std::string_view kSelfTestData = "hookvault-pkcs11-self-test";
// PKCS#11 v3.0 code for a failed AEAD tag check; p11-kit 0.24's header predates it.
constexpr CK_RV kCkrAeadDecryptFailed = 0x35;

// ---------------------------------------------------------------------------
// Return codes

std::string rv_name(CK_RV rv) {
  switch (rv) {
#define HOOKVAULT_CKR(name) \
  case name:                \
    return #name;
    HOOKVAULT_CKR(CKR_OK)
    HOOKVAULT_CKR(CKR_HOST_MEMORY)
    HOOKVAULT_CKR(CKR_SLOT_ID_INVALID)
    HOOKVAULT_CKR(CKR_GENERAL_ERROR)
    HOOKVAULT_CKR(CKR_FUNCTION_FAILED)
    HOOKVAULT_CKR(CKR_ARGUMENTS_BAD)
    HOOKVAULT_CKR(CKR_CANT_LOCK)
    HOOKVAULT_CKR(CKR_ATTRIBUTE_SENSITIVE)
    HOOKVAULT_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    HOOKVAULT_CKR(CKR_ATTRIBUTE_VALUE_INVALID)
    HOOKVAULT_CKR(CKR_DATA_LEN_RANGE)
    HOOKVAULT_CKR(CKR_DEVICE_ERROR)
    HOOKVAULT_CKR(CKR_DEVICE_MEMORY)
    HOOKVAULT_CKR(CKR_DEVICE_REMOVED)
    HOOKVAULT_CKR(CKR_ENCRYPTED_DATA_INVALID)
    HOOKVAULT_CKR(CKR_ENCRYPTED_DATA_LEN_RANGE)
    HOOKVAULT_CKR(CKR_FUNCTION_NOT_SUPPORTED)
    HOOKVAULT_CKR(CKR_KEY_HANDLE_INVALID)
    HOOKVAULT_CKR(CKR_KEY_SIZE_RANGE)
    HOOKVAULT_CKR(CKR_KEY_TYPE_INCONSISTENT)
    HOOKVAULT_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    HOOKVAULT_CKR(CKR_MECHANISM_INVALID)
    HOOKVAULT_CKR(CKR_MECHANISM_PARAM_INVALID)
    HOOKVAULT_CKR(CKR_OBJECT_HANDLE_INVALID)
    HOOKVAULT_CKR(CKR_OPERATION_ACTIVE)
    HOOKVAULT_CKR(CKR_OPERATION_NOT_INITIALIZED)
    HOOKVAULT_CKR(CKR_PIN_INCORRECT)
    HOOKVAULT_CKR(CKR_PIN_INVALID)
    HOOKVAULT_CKR(CKR_PIN_LEN_RANGE)
    HOOKVAULT_CKR(CKR_PIN_EXPIRED)
    HOOKVAULT_CKR(CKR_PIN_LOCKED)
    HOOKVAULT_CKR(CKR_SESSION_CLOSED)
    HOOKVAULT_CKR(CKR_SESSION_COUNT)
    HOOKVAULT_CKR(CKR_SESSION_HANDLE_INVALID)
    HOOKVAULT_CKR(CKR_SESSION_READ_ONLY)
    HOOKVAULT_CKR(CKR_TEMPLATE_INCOMPLETE)
    HOOKVAULT_CKR(CKR_TEMPLATE_INCONSISTENT)
    HOOKVAULT_CKR(CKR_TOKEN_NOT_PRESENT)
    HOOKVAULT_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    HOOKVAULT_CKR(CKR_TOKEN_WRITE_PROTECTED)
    HOOKVAULT_CKR(CKR_USER_ALREADY_LOGGED_IN)
    HOOKVAULT_CKR(CKR_USER_NOT_LOGGED_IN)
    HOOKVAULT_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    HOOKVAULT_CKR(CKR_USER_TYPE_INVALID)
    HOOKVAULT_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
    HOOKVAULT_CKR(CKR_USER_TOO_MANY_TYPES)
    HOOKVAULT_CKR(CKR_BUFFER_TOO_SMALL)
    HOOKVAULT_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    HOOKVAULT_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef HOOKVAULT_CKR
    default:
      break;
  }
  std::array<char, 2 * sizeof(CK_RV)> hex{};
  const auto end = std::to_chars(hex.data(), hex.data() + hex.size(), rv, 16).ptr;
  return "CKR_0x" + std::string(hex.data(), end);
}

// Outcomes of a GCM open that mean "does not authenticate", not "token broken".
bool is_auth_failure(CK_RV rv) {
  return rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
         rv == kCkrAeadDecryptFailed;
}

// Failures a module may report for a wrong tag as well as for a fault.
bool is_generic_failure(CK_RV rv) { return rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED; }

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// ---------------------------------------------------------------------------
// Module: loaded once, initialized while it has users

struct ModuleEntry {
  std::size_t users = 0;
  bool finalize = false;  // false when someone else in the process initialized it
};

// Both outlive static destructors, so a Kek destroyed late still finds them.
std::mutex& registry_mutex() {
  static auto* m = new std::mutex;
  return *m;
}
std::map<CK_FUNCTION_LIST*, ModuleEntry>& registry() {
  static auto* r = new std::map<CK_FUNCTION_LIST*, ModuleEntry>;
  return *r;
}

// A counted reference to an initialized module. Move-only.
class ModuleRef {
 public:
  static ModuleRef open(const std::filesystem::path& module) {
    const std::string name = "PKCS#11 module " + module.string();
    void* lib = ::dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = ::dlerror();
      throw Pkcs11Error(Stage::module, name + ": cannot load: " + (why ? why : "dlopen failed"));
    }
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib, "C_GetFunctionList"));
    if (get_list == nullptr) {
      ::dlclose(lib);
      throw Pkcs11Error(Stage::module, name + ": not a PKCS#11 module (no C_GetFunctionList)");
    }
    CK_FUNCTION_LIST* fn = nullptr;
    if (const CK_RV rv = get_list(&fn); rv != CKR_OK || fn == nullptr) {
      ::dlclose(lib);
      throw Pkcs11Error(Stage::module, name + ": C_GetFunctionList failed: " + rv_name(rv));
    }
    std::lock_guard lock(registry_mutex());
    auto& entry = registry()[fn];
    if (entry.users == 0) {
      CK_C_INITIALIZE_ARGS args{};
      args.flags = CKF_OS_LOCKING_OK;  // the module makes its own locks; we call from many threads
      const CK_RV rv = fn->C_Initialize(&args);
      if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        registry().erase(fn);
        throw Pkcs11Error(Stage::module, name + ": C_Initialize failed: " + rv_name(rv));
      }
      entry.finalize = rv == CKR_OK;
    }
    ++entry.users;
    return ModuleRef(fn);
  }

  ModuleRef(ModuleRef&& other) noexcept : fn_(std::exchange(other.fn_, nullptr)) {}
  ModuleRef& operator=(ModuleRef&&) = delete;
  ModuleRef(const ModuleRef&) = delete;
  ModuleRef& operator=(const ModuleRef&) = delete;
  ~ModuleRef() {
    if (fn_ == nullptr) return;
    std::lock_guard lock(registry_mutex());
    auto it = registry().find(fn_);
    if (it == registry().end() || --it->second.users > 0) return;
    if (it->second.finalize) fn_->C_Finalize(nullptr);
    registry().erase(it);
  }

  CK_FUNCTION_LIST* operator->() const noexcept { return fn_; }

 private:
  explicit ModuleRef(CK_FUNCTION_LIST* fn) : fn_(fn) {}
  CK_FUNCTION_LIST* fn_;
};

// ---------------------------------------------------------------------------
// Token, login, keys

std::string_view padded_text(const unsigned char* data, std::size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  return s;
}

// Names used in messages.
struct Names {
  std::string module;  // "PKCS#11 module /usr/lib/..."
  std::string token;   // "PKCS#11 token \"hookvault\" (module /usr/lib/...)"

  explicit Names(const Pkcs11KekOptions& o)
      : module("PKCS#11 module " + o.module.string()),
        token("PKCS#11 token " + in_quotes(o.token_label) + " (module " + o.module.string() + ")") {
  }
};

void check_options(const Pkcs11KekOptions& o, const Names& names) {
  if (o.token_label.empty() || o.token_label.size() > kMaxTokenLabelBytes) {
    throw Pkcs11Error(Stage::token, names.token + ": a token label has 1 to 32 bytes");
  }
  if (o.key_label.empty()) throw Pkcs11Error(Stage::key, names.token + ": the key label is empty");
  if (o.pin.empty()) throw Pkcs11Error(Stage::login, names.token + ": the PIN is empty");
}

CK_SLOT_ID find_slot(const ModuleRef& fn, const Pkcs11KekOptions& o, const Names& names) {
  std::vector<CK_SLOT_ID> slots;
  CK_RV rv = CKR_OK;
  for (int attempt = 0; attempt < 4; ++attempt) {  // the list may grow between the two calls
    CK_ULONG count = 0;
    rv = fn->C_GetSlotList(CK_TRUE, nullptr, &count);
    if (rv != CKR_OK) break;
    slots.resize(count);
    rv = fn->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv == CKR_BUFFER_TOO_SMALL) continue;
    slots.resize(count);
    break;
  }
  if (rv != CKR_OK) {
    throw Pkcs11Error(Stage::token, names.module + ": C_GetSlotList failed: " + rv_name(rv));
  }
  std::vector<CK_SLOT_ID> matches;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (fn->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if (padded_text(info.label, sizeof info.label) == o.token_label) matches.push_back(slot);
  }
  if (matches.empty()) throw Pkcs11Error(Stage::token, names.token + ": no such token");
  if (matches.size() > 1) {
    throw Pkcs11Error(Stage::token, names.token + ": " + std::to_string(matches.size()) +
                                        " tokens have this label; labels must be unique");
  }
  CK_MECHANISM_INFO mech{};
  const CK_RV mrv = fn->C_GetMechanismInfo(matches.front(), CKM_AES_GCM, &mech);
  if (mrv != CKR_OK || (mech.flags & CKF_ENCRYPT) == 0 || (mech.flags & CKF_DECRYPT) == 0) {
    throw Pkcs11Error(Stage::token, names.token + ": does not offer CKM_AES_GCM encrypt/decrypt" +
                                        (mrv != CKR_OK ? " (" + rv_name(mrv) + ")" : ""));
  }
  return matches.front();
}

CK_RV open_session(const ModuleRef& fn, CK_SLOT_ID slot, bool read_write,
                   CK_SESSION_HANDLE* session) {
  CK_FLAGS flags = CKF_SERIAL_SESSION;
  if (read_write) flags |= CKF_RW_SESSION;
  return fn->C_OpenSession(slot, flags, nullptr, nullptr, session);
}

// C_Login as the user. Already logged in (by another Kek of this process) is success.
CK_RV login(const ModuleRef& fn, CK_SESSION_HANDLE session, const SecretBytes& pin) {
  SecretBytes copy = pin.clone();  // C_Login wants a non-const pointer; wiped on return
  const CK_RV rv = fn->C_Login(session, CKU_USER, copy.reveal_mutable().data(),
                               static_cast<CK_ULONG>(copy.size()));
  return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

// The version a label stands for, or nullopt when it is not one of ours.
std::optional<std::uint32_t> label_version(std::string_view label, std::string_view key_label) {
  if (label == key_label) return 1;
  if (!label.starts_with(key_label)) return std::nullopt;
  const std::string_view suffix = label.substr(key_label.size());
  if (!suffix.starts_with(".v")) return std::nullopt;
  return parse_version_digits(suffix.substr(2));
}

std::string version_label(std::string_view key_label, std::uint32_t version) {
  if (version == 1) return std::string(key_label);
  return std::string(key_label) + ".v" + std::to_string(version);
}

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
KeyScan scan_keys(const ModuleRef& fn, CK_SESSION_HANDLE session, std::string_view key_label) {
  KeyScan scan;
  CK_OBJECT_CLASS klass = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  std::array<CK_ATTRIBUTE, 2> query{
      {{CKA_CLASS, &klass, sizeof klass}, {CKA_KEY_TYPE, &type, sizeof type}}};
  scan.rv = fn->C_FindObjectsInit(session, query.data(), query.size());
  if (scan.rv != CKR_OK) return scan;
  std::vector<CK_OBJECT_HANDLE> handles;
  for (;;) {
    std::array<CK_OBJECT_HANDLE, 64> batch{};
    CK_ULONG found = 0;
    scan.rv = fn->C_FindObjects(session, batch.data(), batch.size(), &found);
    if (scan.rv != CKR_OK || found == 0) break;
    handles.insert(handles.end(), batch.begin(), batch.begin() + static_cast<long>(found));
  }
  const CK_RV final_rv = fn->C_FindObjectsFinal(session);
  if (scan.rv == CKR_OK) scan.rv = final_rv;
  if (scan.rv != CKR_OK) return scan;

  std::map<std::uint32_t, std::vector<CK_OBJECT_HANDLE>> by_version;
  std::map<std::uint32_t, std::vector<std::string>> labels;
  for (CK_OBJECT_HANDLE handle : handles) {
    CK_ATTRIBUTE label_attr{CKA_LABEL, nullptr, 0};
    if (fn->C_GetAttributeValue(session, handle, &label_attr, 1) != CKR_OK ||
        label_attr.ulValueLen == CK_UNAVAILABLE_INFORMATION || label_attr.ulValueLen > 4096) {
      continue;
    }
    std::string label(label_attr.ulValueLen, '\0');
    label_attr.pValue = label.data();
    if (fn->C_GetAttributeValue(session, handle, &label_attr, 1) != CKR_OK) continue;
    label.resize(label_attr.ulValueLen);
    const auto version = label_version(label, key_label);
    if (!version) continue;
    scan.highest_label = std::max(scan.highest_label, *version);
    CK_ULONG value_len = 0;
    CK_ATTRIBUTE len_attr{CKA_VALUE_LEN, &value_len, sizeof value_len};
    if (fn->C_GetAttributeValue(session, handle, &len_attr, 1) == CKR_OK &&
        value_len != kKekBytes) {
      scan.problems.push_back("key " + in_quotes(label) + " is AES-" +
                              std::to_string(value_len * 8) + ", not AES-256");
      continue;
    }
    by_version[*version].push_back(handle);
    labels[*version].push_back(label);
  }
  for (auto& [version, found] : by_version) {
    if (found.size() == 1) {
      scan.keys.emplace(version, found.front());
      continue;
    }
    std::string which;
    for (const auto& l : labels[version]) which += (which.empty() ? "" : ", ") + in_quotes(l);
    scan.problems.push_back(std::to_string(found.size()) + " keys for version " +
                            std::to_string(version) + " (" + which +
                            "); a version must have exactly one key");
  }
  return scan;
}

// Throws Pkcs11Error when the scan itself failed (the listing, or the login
// before it).
void check_listed(const KeyScan& scan, const std::string& token) {
  if (scan.login_failed) {
    throw Pkcs11Error(Stage::login, token + ": login failed: " + rv_name(scan.rv));
  }
  if (scan.rv != CKR_OK) {
    throw Pkcs11Error(Stage::key, token + ": cannot list keys: " + rv_name(scan.rv));
  }
}

// The keys of a scan a Kek may use. Throws Pkcs11Error (Stage::key, unless
// the login failed) when the scan failed, when a labelled key is unusable
// (two keys for one version, or not AES-256), or when there is no key at all.
KeySet usable_keys_or_throw(KeyScan scan, const std::string& token, std::string_view key_label) {
  check_listed(scan, token);
  if (!scan.problems.empty()) throw Pkcs11Error(Stage::key, token + ": " + scan.problems.front());
  if (scan.keys.empty()) {
    throw Pkcs11Error(Stage::key, token + ": no AES-256 key labelled " + in_quotes(key_label) +
                                      " (version 1) or " +
                                      in_quotes(std::string(key_label) + ".v<N>"));
  }
  return std::move(scan.keys);
}

// ---------------------------------------------------------------------------
// GCM inside the token

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

// ---------------------------------------------------------------------------
// The Kek

// The current version of a key set: its highest (0 when empty).
std::uint32_t current_of(const KeySet& keys) { return keys.empty() ? 0 : keys.rbegin()->first; }

std::optional<CK_OBJECT_HANDLE> find_handle(const KeySet& keys, std::uint32_t version) {
  const auto it = keys.find(version);
  if (it == keys.end()) return std::nullopt;
  return it->second;
}

// The token forgot the session (or its login): a new anchor session may help.
bool session_lost(CK_RV rv) {
  return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
         rv == CKR_USER_NOT_LOGGED_IN;
}

// The key set in use is one immutable KeySet behind a shared_ptr (keys_),
// replaced whole by install(); the current version is always its highest, so
// a wrap, an unwrap or version() sees one consistent set. install() self-tests
// a candidate's highest version before it replaces the set in use, and every
// change (open, refresh(), the rescans of unwrap and of stale handles) goes
// through it, one at a time (reload_mu_).
class Pkcs11Kek final : public Kek {
 public:
  // Logs in, scans the keys and self-tests the current version; throws Pkcs11Error.
  Pkcs11Kek(ModuleRef module, CK_SLOT_ID slot, Pkcs11KekOptions options, const Names& names)
      : module_(std::move(module)),
        slot_(slot),
        pin_(std::move(options.pin)),
        key_label_(std::move(options.key_label)),
        id_("pkcs11:" + options.token_label + "/" + key_label_),
        token_name_(names.token) {
    try {
      if (const CK_RV rv = open_session(module_, slot_, false, &anchor_); rv != CKR_OK) {
        throw Pkcs11Error(Stage::token, token_name_ + ": C_OpenSession failed: " + rv_name(rv));
      }
      if (const CK_RV rv = login(module_, anchor_, pin_); rv != CKR_OK) {
        throw Pkcs11Error(Stage::login, token_name_ + ": login failed: " + rv_name(rv));
      }
      std::lock_guard reload_lock(reload_mu_);
      install(usable_keys_or_throw(scan_on_anchor(), token_name_, key_label_));
    } catch (...) {
      close_all();
      throw;
    }
  }

  ~Pkcs11Kek() override { close_all(); }
  Pkcs11Kek(const Pkcs11Kek&) = delete;
  Pkcs11Kek& operator=(const Pkcs11Kek&) = delete;

  const std::string& id() const noexcept override { return id_; }
  std::uint32_t version() const noexcept override { return current_of(*snapshot()); }

  std::vector<std::uint32_t> versions() const override {
    std::vector<std::uint32_t> out;
    for (const auto& entry : *snapshot()) out.push_back(entry.first);
    return out;
  }

  Result<WrappedDek> wrap(const SecretBytes& dek, ByteView associated_data) const override {
    if (dek.size() != kDekBytes) return Errc::internal;     // caller bug, not data
    const std::uint32_t version = current_of(*snapshot());  // one version for the whole wrap
    Bytes out(kWrappedBytes);
    const CK_RV rv = run_installed(version, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
      return seal(module_, s, key, version, dek, associated_data,
                  std::span<std::uint8_t, kWrappedBytes>(out.data(), kWrappedBytes));
    });
    if (rv != CKR_OK) return Errc::kek_unavailable;
    return WrappedDek{version, std::move(out)};
  }

  // Scans the token, self-tests the highest version and makes it current.
  void refresh() override {
    std::lock_guard reload_lock(reload_mu_);
    install(usable_keys_or_throw(scan_on_anchor(), token_name_, key_label_));
  }

  Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                             ByteView associated_data) const override {
    if (wrapped.size() != kWrappedBytes) return Errc::store_corrupt;
    if (const auto keys = snapshot(); !keys->contains(version)) {
      // Only a version above the current one can have been created since; one
      // at or below it was retired (new versions are always the highest + 1).
      if (version <= current_of(*keys) || !reload_quietly() || !handle_of(version)) {
        return Errc::kek_unavailable;
      }
    }
    SecretBytes dek;
    const CK_RV rv = run_installed(version, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
      return open_sealed(module_, s, key, version, wrapped, associated_data, dek);
    });
    if (rv == CKR_OK) return dek;
    if (is_auth_failure(rv)) return Errc::store_corrupt;
    // Some modules report a failed tag as a generic failure (SoftHSM 2.6:
    // CKR_GENERAL_ERROR). If the same key wraps and unwraps a fresh DEK right
    // now, the token is fine and it is this wrapped key that does not open.
    if (is_generic_failure(rv)) {
      const auto key = handle_of(version);
      if (key && self_test(version, *key) == CKR_OK) return Errc::store_corrupt;
    }
    return Errc::kek_unavailable;
  }

 private:
  // A pool session, returned on destruction (or closed when discarded).
  class Lease {
   public:
    Lease(const Pkcs11Kek& kek, CK_SESSION_HANDLE session) : kek_(&kek), session_(session) {}
    Lease(Lease&& other) noexcept
        : kek_(other.kek_), session_(std::exchange(other.session_, CK_INVALID_HANDLE)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (session_ != CK_INVALID_HANDLE) kek_->release(session_, discard_);
    }
    CK_SESSION_HANDLE get() const noexcept { return session_; }
    void discard() noexcept { discard_ = true; }

   private:
    const Pkcs11Kek* kek_;
    CK_SESSION_HANDLE session_;
    bool discard_ = false;
  };

  // Runs `op(session, key)` on a pool session with the handle `key_of()`
  // gives for each attempt. On a failure that is not an authentication
  // failure, tries once more on a fresh session, after logging in again when
  // the token asks for it, or (with `reload_on_stale`) scanning the keys again
  // when it says the handle is stale. The lease is returned before either,
  // since a reload self-tests on a pool session of its own.
  template <class KeyOf, class Op>
  CK_RV run(KeyOf&& key_of, bool reload_on_stale, Op&& op) const {
    CK_RV rv = CKR_GENERAL_ERROR;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const std::optional<CK_OBJECT_HANDLE> key = key_of();
      if (!key) return CKR_KEY_HANDLE_INVALID;
      {
        std::optional<Lease> lease = acquire(rv);
        if (!lease) continue;
        rv = op(lease->get(), *key);
        if (rv == CKR_OK || is_auth_failure(rv)) return rv;
        lease->discard();  // also ends any operation the failure left active
      }
      if (rv == CKR_USER_NOT_LOGGED_IN) {
        relogin();
      } else if (reload_on_stale &&
                 (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID)) {
        reload_quietly();
      }
    }
    return rv;
  }

  // run() with the installed key of `version`.
  template <class Op>
  CK_RV run_installed(std::uint32_t version, Op&& op) const {
    return run([&] { return handle_of(version); }, true, std::forward<Op>(op));
  }

  std::optional<Lease> acquire(CK_RV& rv) const {
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return !idle_.empty() || open_ < kMaxSessions; });
    if (!idle_.empty()) {
      const CK_SESSION_HANDLE s = idle_.back();
      idle_.pop_back();
      return Lease(*this, s);
    }
    ++open_;
    lock.unlock();
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    rv = open_session(module_, slot_, false, &s);
    if (rv == CKR_OK) return Lease(*this, s);
    lock.lock();
    --open_;
    lock.unlock();
    pool_cv_.notify_one();
    return std::nullopt;
  }

  void release(CK_SESSION_HANDLE session, bool discard) const noexcept {
    {
      std::lock_guard lock(pool_mu_);
      if (!discard) {
        idle_.push_back(session);
      } else {
        --open_;
      }
    }
    if (discard) module_->C_CloseSession(session);
    pool_cv_.notify_one();
  }

  std::shared_ptr<const KeySet> snapshot() const {
    std::lock_guard lock(keys_mu_);
    return keys_;
  }

  std::optional<CK_OBJECT_HANDLE> handle_of(std::uint32_t version) const {
    return find_handle(*snapshot(), version);
  }

  // Self-tests the highest version of `candidate` and, when it passes, makes
  // `candidate` the key set in use. Throws Pkcs11Error, leaving the set in use
  // as it was. Caller holds reload_mu_.
  void install(KeySet candidate) const {
    const auto& [version, key] = *candidate.rbegin();  // usable_keys_or_throw: never empty
    if (const CK_RV rv = self_test(version, key); rv != CKR_OK) {
      throw Pkcs11Error(Stage::key, token_name_ + ": key " +
                                        in_quotes(version_label(key_label_, version)) +
                                        " failed a wrap/unwrap self-test: " + rv_name(rv));
    }
    auto keys = std::make_shared<const KeySet>(std::move(candidate));
    std::lock_guard lock(keys_mu_);
    keys_ = std::move(keys);
  }

  // refresh() for the request path: false, and the keys in use unchanged, when
  // the scan or the self-test failed.
  bool reload_quietly() const {
    try {
      std::lock_guard reload_lock(reload_mu_);
      install(usable_keys_or_throw(scan_on_anchor(), token_name_, key_label_));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  // Lists the keys on the anchor session, first opening a new one (logged in)
  // when the token forgot it.
  KeyScan scan_on_anchor() const {
    std::lock_guard scan_lock(scan_mu_);
    KeyScan scan = scan_keys(module_, anchor_, key_label_);
    if (session_lost(scan.rv)) {
      if (const CK_RV rv = reopen_anchor_locked(); rv != CKR_OK) {
        KeyScan failed;
        failed.rv = rv;
        failed.login_failed = true;
        return failed;
      }
      scan = scan_keys(module_, anchor_, key_label_);
    }
    return scan;
  }

  void relogin() const {
    std::lock_guard scan_lock(scan_mu_);
    if (login(module_, anchor_, pin_) != CKR_OK) reopen_anchor_locked();
  }

  // A new anchor session, logged in. Caller holds scan_mu_.
  CK_RV reopen_anchor_locked() const {
    if (anchor_ != CK_INVALID_HANDLE) module_->C_CloseSession(anchor_);
    anchor_ = CK_INVALID_HANDLE;
    CK_RV rv = open_session(module_, slot_, false, &anchor_);
    if (rv != CKR_OK) {
      anchor_ = CK_INVALID_HANDLE;
      return rv;
    }
    return login(module_, anchor_, pin_);
  }

  // Wraps and unwraps a random DEK under `key` as `version`. Never rescans
  // (a reload runs it on a candidate that is not installed yet).
  CK_RV self_test(std::uint32_t version, CK_OBJECT_HANDLE key) const {
    const auto key_of = [key] { return std::optional<CK_OBJECT_HANDLE>(key); };
    const SecretBytes dek = SecretBytes::random(kDekBytes);
    const ByteView ad = as_bytes(kSelfTestData);
    Bytes wrapped(kWrappedBytes);
    CK_RV rv = run(key_of, false, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k) {
      return seal(module_, s, k, version, dek, ad,
                  std::span<std::uint8_t, kWrappedBytes>(wrapped.data(), kWrappedBytes));
    });
    if (rv != CKR_OK) return rv;
    SecretBytes back;
    rv = run(key_of, false, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k) {
      return open_sealed(module_, s, k, version, wrapped, ad, back);
    });
    if (rv == CKR_OK && !dek.equals(back.reveal())) rv = CKR_FUNCTION_FAILED;
    return rv;
  }

  void close_all() noexcept {
    std::lock_guard lock(pool_mu_);
    for (CK_SESSION_HANDLE s : idle_) module_->C_CloseSession(s);
    idle_.clear();
    open_ = 0;
    if (anchor_ != CK_INVALID_HANDLE) module_->C_CloseSession(anchor_);
    anchor_ = CK_INVALID_HANDLE;
  }

  ModuleRef module_;  // first: outlives every session
  CK_SLOT_ID slot_;
  SecretBytes pin_;  // for logging in again after the token forgot us
  std::string key_label_;
  std::string id_;
  std::string token_name_;  // "PKCS#11 token \"x\" (module ...)", for messages

  mutable std::mutex reload_mu_;  // one install at a time (scan, self-test, swap)
  mutable std::mutex scan_mu_;    // the anchor session: key scans and re-logins
  mutable CK_SESSION_HANDLE anchor_ = CK_INVALID_HANDLE;

  mutable std::mutex keys_mu_;  // guards keys_ (the pointer, not the set)
  mutable std::shared_ptr<const KeySet> keys_ = std::make_shared<const KeySet>();

  mutable std::mutex pool_mu_;
  mutable std::condition_variable pool_cv_;
  mutable std::vector<CK_SESSION_HANDLE> idle_;
  mutable std::size_t open_ = 0;  // leased + idle
};

// A read-write session, logged in, closed on destruction (creating and
// destroying key versions).
class AdminSession {
 public:
  AdminSession(const ModuleRef& fn, CK_SLOT_ID slot, const SecretBytes& pin, const Names& names)
      : fn_(fn) {
    if (const CK_RV rv = open_session(fn_, slot, true, &session_); rv != CKR_OK) {
      throw Pkcs11Error(Stage::token,
                        names.token + ": C_OpenSession (read-write) failed: " + rv_name(rv));
    }
    if (const CK_RV rv = login(fn_, session_, pin); rv != CKR_OK) {
      fn_->C_CloseSession(session_);
      throw Pkcs11Error(Stage::login, names.token + ": login failed: " + rv_name(rv));
    }
  }
  ~AdminSession() { fn_->C_CloseSession(session_); }
  AdminSession(const AdminSession&) = delete;
  AdminSession& operator=(const AdminSession&) = delete;
  CK_SESSION_HANDLE get() const noexcept { return session_; }

 private:
  const ModuleRef& fn_;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

// How many secret keys carry exactly `label`.
CK_RV count_labelled(const ModuleRef& fn, CK_SESSION_HANDLE session, std::string label,
                     CK_ULONG& count) {
  CK_OBJECT_CLASS klass = CKO_SECRET_KEY;
  std::array<CK_ATTRIBUTE, 2> query{
      {{CKA_CLASS, &klass, sizeof klass}, {CKA_LABEL, label.data(), label.size()}}};
  count = 0;
  CK_RV rv = fn->C_FindObjectsInit(session, query.data(), query.size());
  if (rv != CKR_OK) return rv;
  for (;;) {
    std::array<CK_OBJECT_HANDLE, 8> batch{};
    CK_ULONG found = 0;
    rv = fn->C_FindObjects(session, batch.data(), batch.size(), &found);
    if (rv != CKR_OK || found == 0) break;
    count += found;
  }
  const CK_RV final_rv = fn->C_FindObjectsFinal(session);
  return rv != CKR_OK ? rv : final_rv;
}

// The module loaded and the token found (not logged in yet).
struct Token {
  Names names;
  ModuleRef module;
  CK_SLOT_ID slot;
};

Token find_token(const Pkcs11KekOptions& options) {
  Names names(options);
  check_options(options, names);
  ModuleRef module = ModuleRef::open(options.module);
  const CK_SLOT_ID slot = find_slot(module, options, names);
  return Token{std::move(names), std::move(module), slot};
}

// Calls `f(token, session, scan)` with a logged-in read-write session and the
// keys it lists. Throws Pkcs11Error.
template <class F>
auto with_admin_scan(const Pkcs11KekOptions& options, F&& f) {
  const Token token = find_token(options);
  const AdminSession session(token.module, token.slot, options.pin, token.names);
  const KeyScan scan = scan_keys(token.module, session.get(), options.key_label);
  check_listed(scan, token.names.token);
  return f(token, session.get(), scan);
}

}  // namespace

std::unique_ptr<Kek> open_pkcs11_kek(Pkcs11KekOptions options) {
  Token token = find_token(options);
  return std::make_unique<Pkcs11Kek>(std::move(token.module), token.slot, std::move(options),
                                     token.names);
}

std::uint32_t create_pkcs11_kek_version(const Pkcs11KekOptions& options) {
  return with_admin_scan(options, [&](const Token& token, CK_SESSION_HANDLE session,
                                      const KeyScan& scan) {
    const std::string& token_name = token.names.token;
    if (scan.highest_label == UINT32_MAX) {
      throw Pkcs11Error(Stage::key, token_name + ": no key version left after " +
                                        std::to_string(scan.highest_label));
    }
    const std::uint32_t version = scan.highest_label + 1;
    std::string label = version_label(options.key_label, version);

    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_ULONG length = kKekBytes;
    std::array<CK_ATTRIBUTE, 10> attrs{{
        {CKA_LABEL, label.data(), label.size()},
        {CKA_VALUE_LEN, &length, sizeof length},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_ENCRYPT, &yes, sizeof yes},
        {CKA_DECRYPT, &yes, sizeof yes},
        {CKA_WRAP, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},
    }};
    CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    const CK_RV rv = token.module->C_GenerateKey(session, &mech, attrs.data(), attrs.size(), &key);
    if (rv != CKR_OK) {
      throw Pkcs11Error(Stage::key, token_name + ": cannot generate key " + in_quotes(label) +
                                        ": " + rv_name(rv));
    }
    // Two rotations at once would both pick this version: keep neither's.
    CK_ULONG count = 0;
    if (count_labelled(token.module, session, label, count) == CKR_OK && count > 1) {
      token.module->C_DestroyObject(session, key);
      throw Pkcs11Error(Stage::key, token_name + ": another process created key " +
                                        in_quotes(label) + " at the same time; try again");
    }
    return version;
  });
}

void destroy_pkcs11_kek_version(const Pkcs11KekOptions& options, std::uint32_t version) {
  with_admin_scan(options, [&](const Token& token, CK_SESSION_HANDLE session, const KeyScan& scan) {
    const std::string& token_name = token.names.token;
    const std::string label = version_label(options.key_label, version);
    const auto key = find_handle(scan.keys, version);
    if (!key) {
      throw Pkcs11Error(Stage::key, token_name + ": no usable key " + in_quotes(label) +
                                        " for version " + std::to_string(version));
    }
    if (version >= scan.highest_label) {
      throw Pkcs11Error(Stage::key, token_name + ": key " + in_quotes(label) +
                                        " is the current version; rotate first");
    }
    if (const CK_RV rv = token.module->C_DestroyObject(session, *key); rv != CKR_OK) {
      throw Pkcs11Error(
          Stage::key, token_name + ": cannot destroy key " + in_quotes(label) + ": " + rv_name(rv));
    }
  });
}

}  // namespace hookvault
