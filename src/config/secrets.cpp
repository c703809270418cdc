// Secret loading: files, environment variables and systemd credentials.
// Messages name the config key and the file or variable, never a value.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

#include "config/files.hpp"
#include "hookvault/config.hpp"

namespace hookvault {
namespace config_internal {
namespace {

std::string errno_text(int err) { return std::system_category().message(err); }

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

SecretBytes read_private_file(const std::filesystem::path& file, std::size_t max_bytes) {
  // O_NONBLOCK: a FIFO in place of a secret must not hang the reader; regular
  // files ignore the flag.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw std::runtime_error("cannot read " + file.string() + ": " + errno_text(errno));
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw std::runtime_error("cannot read " + file.string() + ": " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(file.string() + " is not a regular file");
  const auto too_large = [&] {
    return std::runtime_error(file.string() + " is larger than " + std::to_string(max_bytes) +
                              " bytes");
  };
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) throw too_large();

  // One byte more than the size fstat reported, so a file that grew is noticed.
  SecretBytes buffer(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t used = 0;
  for (;;) {
    if (used == buffer.size()) {
      if (used > max_bytes) throw too_large();
      buffer.resize(std::min(buffer.size() * 2, max_bytes + 1));  // the allocator wipes
    }
    auto room = buffer.reveal_mutable().subspan(used);
    const ssize_t n = ::read(fd, room.data(), room.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot read " + file.string() + ": " + errno_text(errno));
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  buffer.resize(used);
  return buffer;
}

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

SecretBytes read_secret_file(const SecretSource& source, const std::filesystem::path& file) {
  SecretBytes bytes;
  try {
    bytes = config_internal::read_private_file(file, config_internal::kMaxSecretBytes);
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
      return read_secret_file(
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
      return read_secret_file(source, std::filesystem::path(dir) / source.name);
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
