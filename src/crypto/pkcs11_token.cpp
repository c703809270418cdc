// Token lookup, login and the key scan (crypto/pkcs11.hpp).
#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <vector>

#include "crypto/pkcs11.hpp"

namespace hookvault::pkcs11 {

namespace {

std::string_view padded_text(const unsigned char* data, std::size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  return s;
}

}  // namespace

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

std::optional<CK_OBJECT_HANDLE> find_handle(const KeySet& keys, std::uint32_t version) {
  const auto it = keys.find(version);
  if (it == keys.end()) return std::nullopt;
  return it->second;
}

Token find_token(const Pkcs11KekOptions& options) {
  Names names(options);
  check_options(options, names);
  ModuleRef module = ModuleRef::open(options.module);
  const CK_SLOT_ID slot = find_slot(module, options, names);
  return Token{std::move(names), std::move(module), slot};
}

}  // namespace hookvault::pkcs11
