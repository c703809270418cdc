// Test-only SoftHSM2 tokens (Debian's `softhsm2`) for the pkcs11 KEK provider.
//
// The first token of a test process creates a temporary token folder and a
// softhsm2.conf for it and points SOFTHSM2_CONF at it (process-wide, so child
// processes such as the daemon see the same tokens). Every SoftHsmToken then
// initializes a fresh token with a unique label in that folder through
// `softhsm2-util --init-token --free` and, unless asked not to, creates KEK
// version 1 with create_pkcs11_kek_version().
//
// SoftHSM2 reads its token list in C_Initialize: create tokens while no Kek of
// the process is open (the provider finalizes the module when its last Kek
// closes), e.g. in a fixture's SetUp().
//
// Thread-safety: construct and inspect from one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"

namespace hookvault::testing {

// Debian's SoftHSM2 module.
inline constexpr std::string_view kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";

class SoftHsmToken {
 public:
  explicit SoftHsmToken(bool create_key = true);
  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;

  const std::string& label() const { return label_; }
  const std::string& key_label() const { return key_label_; }
  // The user PIN: a fixed, recognizable test value (tests check it never
  // appears in messages).
  const std::string& pin() const { return pin_; }
  std::filesystem::path module() const { return std::filesystem::path(kSoftHsmModule); }

  // Options for open_pkcs11_kek()/create_pkcs11_kek_version(), with a fresh
  // copy of the PIN (or `pin` instead).
  Pkcs11KekOptions options() const { return options_with_pin(pin_); }
  Pkcs11KekOptions options_with_pin(std::string_view pin) const;

 private:
  std::string label_;
  std::string key_label_ = "hookvault-kek";
  std::string pin_ = "test-user-pin-4f1c9a";
};

// What a raw PKCS#11 session sees of the secret key labelled `label`.
struct KeyInspection {
  bool found = false;
  unsigned long value_rv = 0;   // C_GetAttributeValue(CKA_VALUE)'s CK_RV
  unsigned long value_len = 0;  // its ulValueLen afterwards
  bool sensitive = false;
  bool extractable = true;
  bool token = false;
  bool is_private = false;
  bool encrypt = false;
  bool decrypt = false;
  unsigned long key_bytes = 0;  // CKA_VALUE_LEN
};
KeyInspection inspect_key(const SoftHsmToken& token, const std::string& label);

// Creates an AES key of known value labelled `label` on the token (C_CreateObject),
// so a test can compare the pkcs11 provider with the file provider byte for byte.
// With `may_encrypt` false the key has CKA_ENCRYPT and CKA_DECRYPT false: a key
// the provider finds but cannot use (its self-test fails).
void import_aes_key(const SoftHsmToken& token, const std::string& label, const SecretBytes& key,
                    bool may_encrypt = true);

// Destroys every secret key labelled `label` (a key lost under a running Kek).
void destroy_key(const SoftHsmToken& token, const std::string& label);

}  // namespace hookvault::testing
