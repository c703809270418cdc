// Creating and destroying key versions of the pkcs11 KEK provider (kek.hpp:
// create_pkcs11_kek_version, destroy_pkcs11_kek_version; `hookvault keys
// rotate` and `keys retire`), each on a read-write session of its own.
#include <array>
#include <cstdint>
#include <string>

#include "crypto/pkcs11.hpp"
#include "hookvault/kek.hpp"

namespace hookvault {
namespace {

using namespace pkcs11;

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
