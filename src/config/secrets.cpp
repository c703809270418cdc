// Secret loading: files, environment variables and systemd credentials.
// Messages name the config key and the file or variable, never a value.

#include <sys/stat.h>

#include <cstdlib>
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

bool readable_by_group_or_others(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return false;
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
