// PKCS#11 return codes and modules (crypto/pkcs11.hpp).
#include <dlfcn.h>

#include <array>
#include <charconv>
#include <map>
#include <mutex>
#include <string>

#include "crypto/pkcs11.hpp"

namespace hookvault::pkcs11 {
namespace {

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

}  // namespace

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

ModuleRef ModuleRef::open(const std::filesystem::path& module) {
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

ModuleRef::~ModuleRef() {
  if (fn_ == nullptr) return;
  std::lock_guard lock(registry_mutex());
  auto it = registry().find(fn_);
  if (it == registry().end() || --it->second.users > 0) return;
  if (it->second.finalize) fn_->C_Finalize(nullptr);
  registry().erase(it);
}

}  // namespace hookvault::pkcs11
