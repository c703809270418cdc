#include "softhsm.hpp"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "test_support.hpp"

namespace hookvault::testing {
namespace {

constexpr std::string_view kSoPin = "test-so-pin-8d2e";

// The process's token folder and softhsm2.conf; SOFTHSM2_CONF points at it.
// Removed when the process exits (after its children, such as daemons, stopped).
const std::filesystem::path& softhsm_folder() {
  static const TempDir dir;
  static const bool configured = [] {
    const auto tokens = dir.path() / "tokens";
    std::filesystem::create_directories(tokens);
    write_file(dir.path() / "softhsm2.conf",
               "directories.tokendir = " + tokens.string() +
                   "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
               0600);
    return ::setenv("SOFTHSM2_CONF", (dir.path() / "softhsm2.conf").c_str(), 1) == 0;
  }();
  if (!configured) throw std::runtime_error("cannot set SOFTHSM2_CONF");
  return dir.path();
}

// A raw PKCS#11 session on the token, logged in as the user. Initializes the
// module unless the process already has (then leaves it initialized).
class RawSession {
 public:
  explicit RawSession(const SoftHsmToken& token) {
    void* lib = ::dlopen(token.module().c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) throw std::runtime_error("dlopen " + token.module().string());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib, "C_GetFunctionList"));
    if (get == nullptr || get(&fn_) != CKR_OK) throw std::runtime_error("C_GetFunctionList");
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV init = fn_->C_Initialize(&args);
    if (init != CKR_OK && init != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      throw std::runtime_error("C_Initialize");
    }
    finalize_ = init == CKR_OK;
    CK_ULONG count = 0;
    expect(fn_->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(count);
    expect(fn_->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList");
    for (CK_SLOT_ID slot : slots) {
      CK_TOKEN_INFO info{};
      if (fn_->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
      std::string label(reinterpret_cast<const char*>(info.label), sizeof info.label);
      while (!label.empty() && label.back() == ' ') label.pop_back();
      if (label != token.label()) continue;
      expect(fn_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                &session_),
             "C_OpenSession");
      std::string pin = token.pin();
      const CK_RV rv =
          fn_->C_Login(session_, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size());
      if (rv != CKR_USER_ALREADY_LOGGED_IN) expect(rv, "C_Login");
      return;
    }
    throw std::runtime_error("no token " + token.label());
  }
  ~RawSession() {
    if (session_ != CK_INVALID_HANDLE) fn_->C_CloseSession(session_);
    if (finalize_) fn_->C_Finalize(nullptr);
  }
  RawSession(const RawSession&) = delete;
  RawSession& operator=(const RawSession&) = delete;

  CK_FUNCTION_LIST* fn() const { return fn_; }
  CK_SESSION_HANDLE get() const { return session_; }

  std::vector<CK_OBJECT_HANDLE> find(std::string label) const {
    CK_OBJECT_CLASS klass = CKO_SECRET_KEY;
    std::array<CK_ATTRIBUTE, 2> query{
        {{CKA_CLASS, &klass, sizeof klass}, {CKA_LABEL, label.data(), label.size()}}};
    expect(fn_->C_FindObjectsInit(session_, query.data(), query.size()), "C_FindObjectsInit");
    std::vector<CK_OBJECT_HANDLE> out(16);
    CK_ULONG n = 0;
    expect(fn_->C_FindObjects(session_, out.data(), out.size(), &n), "C_FindObjects");
    expect(fn_->C_FindObjectsFinal(session_), "C_FindObjectsFinal");
    out.resize(n);
    return out;
  }

  static void expect(CK_RV rv, const char* what) {
    if (rv != CKR_OK) {
      throw std::runtime_error(std::string(what) + " failed: 0x" + std::to_string(rv));
    }
  }

 private:
  CK_FUNCTION_LIST* fn_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  bool finalize_ = false;
};

bool flag(const RawSession& s, CK_OBJECT_HANDLE key, CK_ATTRIBUTE_TYPE type) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE a{type, &value, sizeof value};
  RawSession::expect(s.fn()->C_GetAttributeValue(s.get(), key, &a, 1), "C_GetAttributeValue");
  return value == CK_TRUE;
}

}  // namespace

SoftHsmToken::SoftHsmToken(bool create_key) {
  static std::atomic<int> counter{0};
  (void)softhsm_folder();
  label_ = "hv-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const auto [status, output] =
      run_shell("softhsm2-util --init-token --free --label '" + label_ + "' --pin '" + pin_ +
                "' --so-pin '" + std::string(kSoPin) + "'");
  if (status != 0) throw std::runtime_error("softhsm2-util --init-token failed: " + output);
  if (create_key) {
    const std::uint32_t version = create_pkcs11_kek_version(options());
    if (version != 1) throw std::runtime_error("first KEK version is not 1");
  }
}

Pkcs11KekOptions SoftHsmToken::options_with_pin(std::string_view pin) const {
  Pkcs11KekOptions o;
  o.module = module();
  o.token_label = label_;
  o.pin = SecretBytes::copy_of(pin);
  o.key_label = key_label_;
  return o;
}

KeyInspection inspect_key(const SoftHsmToken& token, const std::string& label) {
  RawSession s(token);
  KeyInspection out;
  const auto keys = s.find(label);
  if (keys.size() != 1) return out;
  out.found = true;
  std::array<std::uint8_t, 64> value{};
  CK_ATTRIBUTE a{CKA_VALUE, value.data(), value.size()};
  out.value_rv = s.fn()->C_GetAttributeValue(s.get(), keys[0], &a, 1);
  out.value_len = a.ulValueLen;
  out.sensitive = flag(s, keys[0], CKA_SENSITIVE);
  out.extractable = flag(s, keys[0], CKA_EXTRACTABLE);
  out.token = flag(s, keys[0], CKA_TOKEN);
  out.is_private = flag(s, keys[0], CKA_PRIVATE);
  out.encrypt = flag(s, keys[0], CKA_ENCRYPT);
  out.decrypt = flag(s, keys[0], CKA_DECRYPT);
  CK_ULONG len = 0;
  CK_ATTRIBUTE l{CKA_VALUE_LEN, &len, sizeof len};
  RawSession::expect(s.fn()->C_GetAttributeValue(s.get(), keys[0], &l, 1), "CKA_VALUE_LEN");
  out.key_bytes = len;
  return out;
}

void import_aes_key(const SoftHsmToken& token, const std::string& label, const SecretBytes& key,
                    bool may_encrypt) {
  RawSession s(token);
  SecretBytes value = key.clone();
  std::string l = label;
  CK_OBJECT_CLASS klass = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL use = may_encrypt ? CK_TRUE : CK_FALSE;
  std::array<CK_ATTRIBUTE, 8> attrs{{
      {CKA_CLASS, &klass, sizeof klass},
      {CKA_KEY_TYPE, &type, sizeof type},
      {CKA_LABEL, l.data(), l.size()},
      {CKA_VALUE, value.reveal_mutable().data(), value.size()},
      {CKA_TOKEN, &yes, sizeof yes},
      {CKA_PRIVATE, &yes, sizeof yes},
      {CKA_ENCRYPT, &use, sizeof use},
      {CKA_DECRYPT, &use, sizeof use},
  }};
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  RawSession::expect(s.fn()->C_CreateObject(s.get(), attrs.data(), attrs.size(), &handle),
                     "C_CreateObject");
}

void destroy_key(const SoftHsmToken& token, const std::string& label) {
  RawSession s(token);
  for (CK_OBJECT_HANDLE key : s.find(label)) {
    RawSession::expect(s.fn()->C_DestroyObject(s.get(), key), "C_DestroyObject");
  }
}

}  // namespace hookvault::testing
