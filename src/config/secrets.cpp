// Secret loading: files, environment variables and systemd credentials.
// Messages name the config key and the file or variable, never a value.

#include <acl/libacl.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "config/files.hpp"
#include "crypto/secret_file.hpp"
#include "hookvault/config.hpp"

namespace hookvault {
namespace config_internal {

void strip_trailing_newlines(SecretBytes& bytes) {
  auto view = bytes.reveal();
  std::size_t n = view.size();
  while (n > 0 && (view[n - 1] == '\n' || view[n - 1] == '\r')) --n;
  bytes.resize(n);
}

namespace {

struct AclFree {
  void operator()(void* p) const noexcept { acl_free(p); }
};

// With an access ACL, the mode's group bits are the ACL's mask, not the owning group's
// permissions: systemd hands a service its credentials this way where it cannot mount a
// private file system for them (in a container), as mode 0440 with one named entry for
// the service's user. Readable by others means: the owning group, a named group, another
// named user (each through the mask) or others may read. nullopt: no extended ACL (or a
// file system without ACLs), so the mode bits say it. An ACL that cannot be read is
// treated as readable by others (refused).
std::optional<bool> acl_grants_read_to_others(const std::filesystem::path& file) {
  std::unique_ptr<void, AclFree> acl(acl_get_file(file.c_str(), ACL_TYPE_ACCESS));
  if (!acl) return std::nullopt;
  auto* a = static_cast<acl_t>(acl.get());
  if (acl_equiv_mode(a, nullptr) == 0) return std::nullopt;  // the mode bits say it all
  bool mask_reads = true;
  acl_entry_t entry = nullptr;
  // First pass: the mask (it bounds named entries and the owning group).
  for (int id = ACL_FIRST_ENTRY; acl_get_entry(a, id, &entry) == 1; id = ACL_NEXT_ENTRY) {
    acl_tag_t tag = ACL_UNDEFINED_TAG;
    acl_permset_t perms = nullptr;
    if (acl_get_tag_type(entry, &tag) != 0 || acl_get_permset(entry, &perms) != 0) return true;
    if (tag == ACL_MASK) mask_reads = acl_get_perm(perms, ACL_READ) == 1;
  }
  bool others = false;
  for (int id = ACL_FIRST_ENTRY; acl_get_entry(a, id, &entry) == 1; id = ACL_NEXT_ENTRY) {
    acl_tag_t tag = ACL_UNDEFINED_TAG;
    acl_permset_t perms = nullptr;
    if (acl_get_tag_type(entry, &tag) != 0 || acl_get_permset(entry, &perms) != 0) return true;
    const bool reads = acl_get_perm(perms, ACL_READ) == 1;
    switch (tag) {
      case ACL_USER_OBJ:
      case ACL_MASK:
        break;
      case ACL_USER: {
        std::unique_ptr<void, AclFree> uid(acl_get_qualifier(entry));
        if (!uid) return true;
        if (*static_cast<uid_t*>(uid.get()) != ::geteuid()) others |= reads && mask_reads;
        break;
      }
      case ACL_GROUP_OBJ:
      case ACL_GROUP:
        others |= reads && mask_reads;
        break;
      case ACL_OTHER:
        others |= reads;
        break;
      default:
        return true;
    }
  }
  return others;
}

}  // namespace

bool readable_by_group_or_others(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return false;
  if (const auto acl = acl_grants_read_to_others(file)) return *acl;
  return (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
}

}  // namespace config_internal

namespace {

// The secret in `file`, trailing newlines removed; ConfigError naming the key.
SecretBytes load_secret_file(const SecretSource& source, const std::filesystem::path& file) {
  SecretBytes bytes;
  try {
    bytes = read_secret_file(file, config_internal::kMaxSecretBytes, "secret file");
  } catch (const std::runtime_error& e) {
    throw ConfigError(source.key + ": " + e.what());
  }
  config_internal::strip_trailing_newlines(bytes);
  if (bytes.empty()) throw ConfigError(source.key + ": " + file.string() + " is empty");
  return bytes;
}

}  // namespace

SecretBytes load_secret(const SecretSource& source) {
  switch (source.kind) {
    case SecretSource::Kind::file:
      return load_secret_file(
          source, source.path.empty() ? std::filesystem::path(source.name) : source.path);
    case SecretSource::Kind::env: {
      const char* value = std::getenv(source.name.c_str());
      if (value == nullptr) {
        throw ConfigError(source.key + ": environment variable " + source.name + " is not set");
      }
      auto bytes = SecretBytes::copy_of(std::string_view(value));
      config_internal::strip_trailing_newlines(bytes);
      if (bytes.empty()) {
        throw ConfigError(source.key + ": environment variable " + source.name + " is empty");
      }
      return bytes;
    }
    case SecretSource::Kind::credential: {
      // Resolved at load time: systemd sets $CREDENTIALS_DIRECTORY for the service.
      const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
      if (dir == nullptr || *dir == '\0') {
        throw ConfigError(source.key + ": credential " + source.name +
                          ": $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)");
      }
      return load_secret_file(source, std::filesystem::path(dir) / source.name);
    }
  }
  throw ConfigError(source.key + ": unknown secret kind");
}

std::vector<SecretBytes> load_secrets(const std::vector<SecretSource>& sources) {
  std::vector<SecretBytes> out;
  out.reserve(sources.size());
  for (const auto& source : sources) out.push_back(load_secret(source));
  return out;
}

}  // namespace hookvault
