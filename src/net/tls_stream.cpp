#include "net/tls_stream.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>

namespace hookvault::net::detail {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace {

// The BIO between OpenSSL and the socket: its data is the Asio socket, whose
// descriptor is read at each call (-1 once closed).
int descriptor(BIO* bio) {
  return static_cast<asio::ip::tcp::socket*>(BIO_get_data(bio))->native_handle();
}

int bio_write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n = ::send(descriptor(bio), data, size, MSG_NOSIGNAL);
    if (n >= 0) {
      *written = static_cast<std::size_t>(n);
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
    return 0;
  }
}

int bio_read(BIO* bio, char* data, std::size_t size, std::size_t* read) {
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n = ::recv(descriptor(bio), data, size, 0);
    if (n > 0) {
      *read = static_cast<std::size_t>(n);
      return 1;
    }
    if (n == 0) {
      // As OpenSSL's socket BIO: BIO_eof() then tells OpenSSL 3 that the
      // peer closed (SSL_R_UNEXPECTED_EOF_WHILE_READING without close_notify).
      BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
    return 0;
  }
}

long bio_ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
    default:
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* bio_method() {
  static const BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hookvault socket");
    if (m == nullptr || BIO_meth_set_write_ex(m, bio_write) != 1 ||
        BIO_meth_set_read_ex(m, bio_read) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
        BIO_meth_set_create(m, bio_create) != 1) {
      throw boost::system::system_error(
          error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category()),
          "BIO_meth_new");
    }
    return m;
  }();
  return method;
}

[[noreturn]] void throw_ssl(const char* what) {
  throw boost::system::system_error(
      error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category()), what);
}

}  // namespace

TlsStreamImpl::TlsStreamImpl(asio::ip::tcp::socket s, SSL_CTX* ctx)
    : executor(s.get_executor()), socket(std::move(s)), timer(executor) {
  socket.non_blocking(true);
  ssl = SSL_new(ctx);
  if (ssl == nullptr) throw_ssl("SSL_new");
  // As asio::ssl::stream sets them; with RELEASE_BUFFERS an idle connection
  // holds no record buffers.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  // Read whatever has arrived with one recv() instead of one for each record
  // header and one for its body.
  SSL_set_read_ahead(ssl, 1);
  BIO* bio = BIO_new(bio_method());
  if (bio == nullptr) throw_ssl("BIO_new");
  BIO_set_data(bio, &socket);
  SSL_set_bio(ssl, bio, bio);  // the SSL owns it from here
  SSL_set_accept_state(ssl);
}

TlsStreamImpl::~TlsStreamImpl() { SSL_free(ssl); }

error_code TlsStreamImpl::timeout_error() { return boost::beast::error::timeout; }

TlsStreamImpl::Next TlsStreamImpl::attempt(TlsOp op, void* data, std::size_t size, std::size_t& n,
                                           error_code& ec) {
  ec = {};
  if (!socket.is_open()) {
    ec = timed_out ? timeout_error() : error_code(asio::error::bad_descriptor);
    return Next::done;
  }
  if (op == TlsOp::raw_read) {
    while (n < size) {
      n += socket.read_some(asio::buffer(static_cast<char*>(data) + n, size - n), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        return Next::want_read;
      }
      if (ec) return Next::done;
    }
    return Next::done;
  }
  if ((op == TlsOp::read || op == TlsOp::write) && size == 0) return Next::done;

  ERR_clear_error();
  errno = 0;
  int result = 0;
  std::size_t done = 0;
  switch (op) {
    case TlsOp::handshake:
      result = SSL_do_handshake(ssl);
      break;
    case TlsOp::peek: {
      char byte = 0;
      result = SSL_peek_ex(ssl, &byte, 1, &done);
      done = 0;  // nothing was consumed
      break;
    }
    case TlsOp::read:
      result = SSL_read_ex(ssl, data, size, &done);
      break;
    case TlsOp::write:
      result = SSL_write_ex(ssl, data, size, &done);
      break;
    case TlsOp::shutdown:
      // As asio::ssl::stream: 0 means close_notify went out; the second
      // call waits for the peer's.
      result = SSL_shutdown(ssl);
      if (result == 0) {
        ERR_clear_error();
        result = SSL_shutdown(ssl);
      }
      break;
    case TlsOp::raw_read:
      break;
  }
  if (result == 1) {
    n = done;
    return Next::done;
  }
  const int sys_errno = errno;
  const int ssl_error = SSL_get_error(ssl, result);
  const auto queued = ERR_get_error();
  ERR_clear_error();  // leave nothing queued for other OpenSSL users on this thread
  switch (ssl_error) {
    case SSL_ERROR_WANT_READ:
      return Next::want_read;
    case SSL_ERROR_WANT_WRITE:
      return Next::want_write;
    case SSL_ERROR_ZERO_RETURN:
      ec = asio::error::eof;  // close_notify: Beast's end_of_stream
      return Next::done;
    case SSL_ERROR_SYSCALL:
      if (queued != 0) {
        ec = error_code(static_cast<int>(queued), asio::error::get_ssl_category());
      } else if (sys_errno != 0) {
        ec = error_code(sys_errno, boost::system::system_category());
      } else {
        ec = asio::ssl::error::stream_truncated;  // EOF without close_notify
      }
      return Next::done;
    case SSL_ERROR_SSL:
      if (ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ec = asio::ssl::error::stream_truncated;
      } else {
        ec = error_code(static_cast<int>(queued), asio::error::get_ssl_category());
      }
      return Next::done;
    default:
      ec = asio::ssl::error::unexpected_result;
      return Next::done;
  }
}

bool TlsStreamImpl::begin(error_code& ec) {
  if (timed_out) {
    ec = timeout_error();
    return false;
  }
  if (!socket.is_open()) {
    ec = asio::error::bad_descriptor;
    return false;
  }
  if (deadline != clock::time_point::max() && deadline <= clock::now()) {
    expire();
    ec = timeout_error();
    return false;
  }
  ++pending;
  return true;
}

// The timer is set only when an operation has to wait: most finish at once
// (the data is there, the socket takes the record), and arming and
// cancelling a timer for each would cost a timer queue update and a posted
// handler each time.
void TlsStreamImpl::waiting() {
  if (deadline != clock::time_point::max() && !timer_armed) arm_timer();
}

void TlsStreamImpl::end() {
  if (--pending == 0) disarm_timer();
}

void TlsStreamImpl::expires_after(clock::duration d) {
  deadline = clock::now() + d;
  timed_out = false;
  if (pending > 0) arm_timer();
}

void TlsStreamImpl::expires_never() {
  deadline = clock::time_point::max();
  timed_out = false;
  disarm_timer();
}

void TlsStreamImpl::cancel() {
  error_code ignored;
  socket.cancel(ignored);
}

void TlsStreamImpl::close() {
  error_code ignored;
  socket.close(ignored);
  disarm_timer();
}

void TlsStreamImpl::arm_timer() {
  timer.expires_at(deadline);  // cancels an earlier wait
  timer_armed = true;
  const auto generation = ++timer_generation;
  timer.async_wait([self = shared_from_this(), generation](error_code ec) {
    if (ec || generation != self->timer_generation) return;
    self->expire();
  });
}

void TlsStreamImpl::disarm_timer() {
  if (!timer_armed) return;
  timer_armed = false;
  ++timer_generation;
  timer.cancel();
}

// The deadline passed: pending waits end with operation_aborted, which
// wait_failed() turns into timeout, and so do later operations.
void TlsStreamImpl::expire() {
  timed_out = true;
  timer_armed = false;
  ++timer_generation;
  error_code ignored;
  socket.close(ignored);
}

}  // namespace hookvault::net::detail
