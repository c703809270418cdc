#include "tls_fleet.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <stdexcept>

namespace hookvault::testing {
namespace {

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

SigpipeBlocked::SigpipeBlocked() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, &saved_);
}

SigpipeBlocked::~SigpipeBlocked() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  sigset_t pending;
  sigpending(&pending);
  if (sigismember(&pending, SIGPIPE) == 1) {
    const timespec zero{0, 0};
    sigtimedwait(&pipe, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
}

std::vector<RawResponse> take_responses(std::string& bytes) {
  std::vector<RawResponse> out;
  std::size_t at = 0;
  for (;;) {
    const std::size_t head_end = bytes.find("\r\n\r\n", at);
    if (head_end == std::string::npos) break;
    RawResponse r;
    const std::string head = bytes.substr(at, head_end - at);
    if (head.rfind("HTTP/1.1 ", 0) != 0 || head.size() < 12) {
      out.push_back(std::move(r));  // status 0: not an answer
      at = bytes.size();
      break;
    }
    r.status = static_cast<unsigned>(std::stoul(head.substr(9, 3)));
    std::size_t line = head.find("\r\n");
    while (line != std::string::npos) {
      const std::size_t next = head.find("\r\n", line + 2);
      const std::string field =
          head.substr(line + 2, next == std::string::npos ? std::string::npos : next - line - 2);
      const std::size_t colon = field.find(':');
      if (colon != std::string::npos) {
        std::size_t v = colon + 1;
        while (v < field.size() && field[v] == ' ') ++v;
        r.headers[lower(field.substr(0, colon))] = field.substr(v);
      }
      line = next;
    }
    const auto length = r.headers.find("content-length");
    const std::size_t body_size = length == r.headers.end() ? 0 : std::stoul(length->second);
    if (bytes.size() < head_end + 4 + body_size) break;
    r.body = bytes.substr(head_end + 4, body_size);
    at = head_end + 4 + body_size;
    out.push_back(std::move(r));
  }
  bytes.erase(0, at);
  return out;
}

TlsFleet::TlsFleet(std::uint16_t port) : port_(port) {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw std::runtime_error("epoll_create1 failed");
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) throw std::runtime_error("SSL_CTX_new failed");
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  // Thousands of mostly idle connections: no record buffers while idle.
  SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Every connection makes a full handshake, as distinct clients would.
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
}

TlsFleet::~TlsFleet() {
  for (auto& c : conns_) {
    SSL_free(c.ssl);
    if (c.fd >= 0) ::close(c.fd);
  }
  SSL_CTX_free(ctx_);
  ::close(epoll_);
}

std::size_t TlsFleet::open(std::size_t n, std::size_t parallel, std::chrono::milliseconds timeout) {
  SigpipeBlocked blocked;
  const std::size_t first = conns_.size();
  conns_.resize(first + n);
  const auto deadline = Clock::now() + timeout;
  std::size_t next = first;
  while (Clock::now() < deadline) {
    while (handshaking_ < parallel && next < first + n) {
      start_connect(conns_[next]);
      if (!conns_[next].failed) watch(next);
      ++next;
    }
    if (next == first + n && handshaking_ == 0) break;
    pump(std::chrono::milliseconds(10));
  }
  for (; next < first + n; ++next) conns_[next].failed = true;  // never started
  return first;
}

void TlsFleet::start_connect(Conn& c) {
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    c.failed = true;
    return;
  }
  const int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    ::close(c.fd);
    c.fd = -1;
    c.failed = true;
    return;
  }
  c.ssl = SSL_new(ctx_);
  SSL_set_fd(c.ssl, c.fd);
  SSL_set_connect_state(c.ssl);
  ++handshaking_;
}

// Level-triggered interest: always readable; writable while connecting or
// while something waits to be written.
void TlsFleet::watch(std::size_t i) {
  Conn& c = conns_[i];
  if (c.fd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  if (!c.connected || !c.out.empty() || (c.ssl != nullptr && SSL_want_write(c.ssl))) {
    ev.events |= EPOLLOUT;
  }
  ev.data.u64 = i;
  if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev) != 0 && errno == ENOENT) {
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
  }
}

void TlsFleet::mark_closed(Conn& c) {
  if (!c.handshaken) {
    c.failed = true;
    --handshaking_;
  } else {
    c.closed = true;
    c.closed_at = Clock::now();
  }
  ERR_clear_error();
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  SSL_free(c.ssl);
  c.ssl = nullptr;
  ::close(c.fd);
  c.fd = -1;
}

void TlsFleet::advance_handshake(Conn& c) {
  const int r = SSL_do_handshake(c.ssl);
  if (r == 1) {
    c.handshaken = true;
    --handshaking_;
    return;
  }
  const int err = SSL_get_error(c.ssl, r);
  if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) mark_closed(c);
}

void TlsFleet::read_all(Conn& c) {
  std::array<char, 16384> buf{};
  for (;;) {
    std::size_t n = 0;
    if (SSL_read_ex(c.ssl, buf.data(), buf.size(), &n) == 1) {
      c.received.append(buf.data(), n);
      c.received_total += n;
      continue;
    }
    const int err = SSL_get_error(c.ssl, 0);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    mark_closed(c);  // close_notify, EOF, reset or an alert
    return;
  }
}

void TlsFleet::write_queued(Conn& c) {
  while (!c.out.empty()) {
    std::size_t n = 0;
    if (SSL_write_ex(c.ssl, c.out.data(), c.out.size(), &n) == 1) {
      c.out.erase(0, n);
      continue;
    }
    const int err = SSL_get_error(c.ssl, 0);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    mark_closed(c);
    return;
  }
}

void TlsFleet::step(std::size_t i, std::uint32_t events) {
  Conn& c = conns_[i];
  if (c.fd < 0) return;
  if (!c.connected) {
    int error = 0;
    socklen_t len = sizeof error;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      mark_closed(c);
      return;
    }
    c.connected = true;
  }
  if (!c.handshaken) {
    advance_handshake(c);
    if (c.fd < 0 || !c.handshaken) {
      watch(i);
      return;
    }
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) read_all(c);
  if (c.fd >= 0) write_queued(c);
  if (c.fd >= 0) watch(i);
}

void TlsFleet::send(std::size_t i, const std::string& bytes) {
  SigpipeBlocked blocked;
  Conn& c = conns_[i];
  if (c.fd < 0) return;
  c.out += bytes;
  if (!c.handshaken) return;
  write_queued(c);
  if (c.fd >= 0) watch(i);
}

std::size_t TlsFleet::pump(std::chrono::milliseconds wait) {
  SigpipeBlocked blocked;
  std::array<epoll_event, 256> events{};
  const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                             static_cast<int>(wait.count()));
  for (int k = 0; k < n; ++k) {
    step(static_cast<std::size_t>(events[static_cast<std::size_t>(k)].data.u64),
         events[static_cast<std::size_t>(k)].events);
  }
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

bool TlsFleet::pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    pump(std::chrono::milliseconds(10));
  }
  return true;
}

std::size_t TlsFleet::open_count() const {
  std::size_t n = 0;
  for (const auto& c : conns_) n += c.handshaken && c.fd >= 0 ? 1 : 0;
  return n;
}

void TlsFleet::close(std::size_t i) {
  Conn& c = conns_[i];
  if (c.fd < 0) return;
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  SSL_free(c.ssl);
  c.ssl = nullptr;
  ::close(c.fd);
  c.fd = -1;
  if (!c.handshaken) {
    c.failed = true;
    --handshaking_;
  }
}

}  // namespace hookvault::testing
