#include "tls_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <stdexcept>

namespace hookvault::testing {

int connect_loopback(std::uint16_t port, const std::string& from) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  if (!from.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (::inet_pton(AF_INET, from.c_str(), &local.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot bind to " + from);
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + " failed");
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

RawTlsClient::RawTlsClient(std::uint16_t port, const std::string& from)
    : fd_(connect_loopback(port, from)) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  SSL_set_app_data(ssl_, this);
  SSL_set_msg_callback(ssl_, &RawTlsClient::on_message);
}

RawTlsClient::~RawTlsClient() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

bool RawTlsClient::handshake() { return SSL_connect(ssl_) == 1; }

bool RawTlsClient::write(const std::string& bytes) {
  std::size_t n = 0;
  return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n) == 1 && n == bytes.size();
}

bool RawTlsClient::write_raw(const std::string& bytes) {
  return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(bytes.size());
}

std::string RawTlsClient::read_once(std::size_t max) {
  std::string buf(max, '\0');
  std::size_t n = 0;
  if (SSL_read_ex(ssl_, buf.data(), buf.size(), &n) != 1) return {};
  buf.resize(n);
  return buf;
}

std::string RawTlsClient::read_exactly(std::size_t want) {
  std::string out;
  while (out.size() < want) {
    std::string part = read_once(want - out.size());
    if (part.empty()) break;
    out += part;
  }
  return out;
}

unsigned RawTlsClient::get(const std::string& target) {
  if (!write("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) return 0;
  std::string got;
  std::size_t head_end = std::string::npos;
  std::size_t length = 0;
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = got.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = got.substr(0, head_end);
        for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        const auto at = head.find("content-length: ");
        if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
      }
    }
    if (head_end != std::string::npos && got.size() >= head_end + 4 + length) break;
    std::string part = read_once(4096);
    if (part.empty()) return 0;
    got += part;
  }
  if (got.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return static_cast<unsigned>(std::stoul(got.substr(9, 3)));
}

bool RawTlsClient::key_update(bool ask_peer) {
  return SSL_key_update(ssl_, ask_peer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) ==
         1;
}

void RawTlsClient::reset() {
  linger l{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd_);
  fd_ = -1;  // closed once: the descriptor number may be reused at once
}

void RawTlsClient::on_message(int write_p, int /*version*/, int content_type, const void* buf,
                              std::size_t len, SSL* ssl, void* /*arg*/) {
  auto* self = static_cast<RawTlsClient*>(SSL_get_app_data(ssl));
  constexpr int kHandshake = 22;
  constexpr unsigned char kKeyUpdate = 24;
  if (write_p == 0 && content_type == kHandshake && len > 0 &&
      static_cast<const unsigned char*>(buf)[0] == kKeyUpdate) {
    ++self->key_updates_received_;
  }
}

}  // namespace hookvault::testing
