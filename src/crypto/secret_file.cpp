// Secret-file reader (contract in secret_file.hpp).
#include "crypto/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <system_error>

namespace hookvault {
namespace {

[[noreturn]] void fail(const std::filesystem::path& file, std::string_view kind,
                       std::string_view reason) {
  throw std::runtime_error(std::string(kind) + " \"" + file.string() +
                           "\": " + std::string(reason));
}

}  // namespace

std::string errno_text(int err) { return std::system_category().message(err); }

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

SecretBytes read_secret_file(const std::filesystem::path& file, std::size_t max_bytes,
                             std::string_view kind) {
  const UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) fail(file, kind, errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(file, kind, errno_text(errno));
  if (!S_ISREG(st.st_mode)) fail(file, kind, "not a regular file");
  const auto too_large = [&] {
    fail(file, kind, "larger than " + std::to_string(max_bytes) + " bytes");
  };
  if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) > max_bytes) too_large();

  // One byte more than the size fstat reported, so a file that grew is noticed.
  SecretBytes buffer(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t used = 0;
  for (;;) {
    if (used == buffer.size()) {
      if (used > max_bytes) too_large();
      buffer.resize(std::min(buffer.size() * 2, max_bytes + 1));  // the allocator wipes
    }
    auto room = buffer.reveal_mutable().subspan(used);
    const ssize_t n = ::read(fd.get(), room.data(), room.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(file, kind, errno_text(errno));
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  buffer.resize(used);
  return buffer;
}

}  // namespace hookvault
