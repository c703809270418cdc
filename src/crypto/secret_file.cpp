// Secret-file reader (contract in secret_file.hpp).
#include "crypto/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace hookvault {
namespace {

[[noreturn]] void fail(const std::filesystem::path& file, std::string_view kind,
                       std::string_view reason) {
  throw std::runtime_error(std::string(kind) + " \"" + file.string() +
                           "\": " + std::string(reason));
}

}  // namespace

SecretBytes read_secret_file(const std::filesystem::path& file, std::size_t max_bytes,
                             std::string_view kind, std::string_view too_large_reason) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(file, kind, std::generic_category().message(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(file, kind, std::generic_category().message(errno));
  if (!S_ISREG(st.st_mode)) fail(file, kind, "not a regular file");
  if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) > max_bytes) {
    fail(file, kind, too_large_reason);
  }
  SecretBytes buf(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(fd, buf.reveal_mutable().data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(file, kind, std::generic_category().message(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  buf.resize(got);
  return buf;
}

}  // namespace hookvault
