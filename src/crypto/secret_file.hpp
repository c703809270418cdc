// The one reader of small secret files (KEK files, RSA private keys, webhook
// secrets, PINs), and the file-descriptor helpers around it.
//
// Contract: read_secret_file() opens `file` read-only with O_CLOEXEC and
// O_NONBLOCK (a FIFO put in place of a secret fails instead of hanging the
// reader; regular files ignore the flag), requires a regular file of at most
// `max_bytes` bytes, and reads it with read(2) straight into SecretBytes, so
// no stdio buffer keeps a copy. It reads until end of file, so a file that
// grew past `max_bytes` after fstat() is refused too. On any failure it
// throws std::runtime_error with the message
//   <kind> "<file>": <reason>
// where <reason> is the system's text for errno, "not a regular file", or
// "larger than <max_bytes> bytes". The message names the file, never its
// content.
//
// Thread-safety: stateless; errno_text() is thread-safe (unlike strerror).
//
// Private to hookvault (the crypto and config stages): include as
// "crypto/secret_file.hpp".
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "hookvault/secret.hpp"

namespace hookvault {

// Upper bound for a PEM file: an RSA-4096 private key is about 3 KiB.
inline constexpr std::size_t kMaxPemBytes = std::size_t{1024} * 1024;

// The system's text for an errno value.
std::string errno_text(int err);

// Owns a file descriptor: closes it on destruction unless released. Move-only.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&&) = delete;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

SecretBytes read_secret_file(const std::filesystem::path& file, std::size_t max_bytes,
                             std::string_view kind);

}  // namespace hookvault
