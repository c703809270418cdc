// The server side of a TLS connection, for hookvault's listeners (public and
// admin): OpenSSL reads and writes the connection's socket itself, and Asio
// only says when the socket is ready (socket.async_wait), as nginx does.
//
// Why: beast::ssl_stream (asio::ssl::stream) keeps, for each connection and
// for its whole life, two zero-filled 17 KiB vectors (stream_core) and a BIO
// pair with two 17 KiB ring buffers between OpenSSL and the socket. With
// 1,000 idle keep-alive connections the daemon measured 92 MiB RSS, about
// 78 KiB per connection, against a target of 64 MiB (docs/performance.md). Here an idle
// connection holds its socket, a timer and the SSL object, whose record
// buffers OpenSSL frees while nothing is buffered (SSL_MODE_RELEASE_BUFFERS).
//
// Why hand-written: Asio's stream has no other layout (those sizes are
// constants in asio/ssl/detail/stream_core.hpp), Beast only wraps it, and
// Debian 12 ships no maintained Asio TLS stream that works on the fd. The
// TLS libraries that do their own socket I/O (GnuTLS, wolfSSL) would replace
// OpenSSL and the settings of tls.cpp. What is needed is small: the loop
// below, the error mapping Asio uses, and beast::tcp_stream's timeouts.
// Client-side TLS (healthcheck, Nodit history) keeps beast::ssl_stream.
//
// The socket is made non-blocking and read and written by OpenSSL through a
// BIO of our own (bio_method() in tls_stream.cpp) rather than SSL_set_fd:
// OpenSSL's socket BIO writes with write(2), and a peer gone away would
// raise SIGPIPE, which hookvault does not ignore; ours uses
// send(MSG_NOSIGNAL). It also reads the descriptor from the Asio socket at
// each call, so OpenSSL never touches a descriptor number after close()
// (which the kernel may already have given to another connection).
//
// Each operation loops: call OpenSSL (SSL_do_handshake, SSL_read_ex,
// SSL_write_ex, SSL_shutdown); on SSL_ERROR_WANT_READ wait until the socket
// is readable, on SSL_ERROR_WANT_WRITE until writable, and call again (a
// read may want to write, e.g. to answer a TLS 1.3 KeyUpdate). Errors are
// those of asio::ssl::stream: close_notify -> asio::error::eof (Beast's
// end_of_stream), EOF without close_notify -> asio::ssl::error::
// stream_truncated, socket errors as system errors, the rest an
// ERR_get_error() code in asio::error::get_ssl_category().
//
// Timeouts are beast::tcp_stream's: expires_after() sets a deadline for the
// operations that are pending or start before the next expires_after() or
// expires_never(); the timer runs only while an operation is pending (and
// is set only once one has to wait). When it passes, the socket is closed
// and those operations, and any started later, complete with
// beast::error::timeout.
//
// Completion handlers are never called from inside the initiating function:
// an operation that finishes without waiting posts its completion to the
// stream's executor (Boost 1.81 has no immediate completion executor).
// Pending operations hold the shared Impl, so destroying the stream while
// one is pending is safe: the socket closes and it completes with
// operation_aborted.
//
// Thread-safety: like any Asio I/O object, used from its strand only
// (get_executor() is safe from any thread). At most one read and one write
// may be pending at once; the handshake and the shutdown count as both.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "hookvault/secret.hpp"

namespace hookvault::net {

namespace detail {

// A write's gathered copy of its buffers (async_write_some). An answer may
// carry secrets (the admin listener's materials), so the copy is secret
// memory (secret_alloc: the locked arena when it has room) and is wiped when
// released, like the SecretBody it was copied from.
struct WipeAndFree {
  std::size_t size = 0;
  void operator()(char* p) const noexcept { secret_free(p, size); }
};
using GatherBuffer = std::unique_ptr<char[], WipeAndFree>;

enum class TlsOp { raw_read, handshake, peek, read, write, shutdown };

// What a TlsStream shares with its pending operations. Defined here for the
// templates below; everything that calls OpenSSL is in tls_stream.cpp.
struct TlsStreamImpl : std::enable_shared_from_this<TlsStreamImpl> {
  using error_code = boost::system::error_code;
  using clock = std::chrono::steady_clock;

  TlsStreamImpl(boost::asio::ip::tcp::socket s, SSL_CTX* ctx);
  ~TlsStreamImpl();
  TlsStreamImpl(const TlsStreamImpl&) = delete;
  TlsStreamImpl& operator=(const TlsStreamImpl&) = delete;

  enum class Next { done, want_read, want_write };
  // One attempt at `op`: done (ec and n set) or the readiness to wait for.
  // `n` counts what raw_read has read so far.
  Next attempt(TlsOp op, void* data, std::size_t size, std::size_t& n, error_code& ec);
  // At the start of an operation: false, with ec set, when it must fail at
  // once (timed out, closed); true: it is pending until end().
  bool begin(error_code& ec);
  void waiting();  // before a pending operation waits for readiness
  void end();
  // The error of an operation whose wait for readiness failed.
  error_code wait_failed(error_code ec) const { return timed_out ? timeout_error() : ec; }
  static error_code timeout_error();

  void expires_after(clock::duration d);
  void expires_never();
  void cancel();
  void close();

  boost::asio::any_io_executor executor;
  boost::asio::ip::tcp::socket socket;
  boost::asio::steady_timer timer;
  SSL* ssl = nullptr;
  clock::time_point deadline = clock::time_point::max();
  bool timed_out = false;
  bool timer_armed = false;
  int pending = 0;
  std::uint64_t timer_generation = 0;  // a timer callback from an older arming is stale

 private:
  void arm_timer();
  void disarm_timer();
  void expire();
};

// One operation as an async_compose implementation. Signature:
// void(error_code) or void(error_code, std::size_t).
template <class Signature>
struct TlsStreamOp {
  TlsStreamOp(std::shared_ptr<TlsStreamImpl> i, TlsOp o, void* d, std::size_t s, GatherBuffer g)
      : impl(std::move(i)), op(o), data(d), size(s), gathered(std::move(g)) {}

  std::shared_ptr<TlsStreamImpl> impl;
  TlsOp op;
  void* data;
  std::size_t size;
  GatherBuffer gathered;  // write: several buffers copied into one record
  std::size_t n = 0;
  boost::system::error_code ec;
  enum class State { starting, waiting, posted } state = State::starting;
  bool counted = false;

  template <class Self>
  void operator()(Self& self, boost::system::error_code wait_ec = {}) {
    switch (state) {
      case State::posted:
        complete(self);
        return;
      case State::starting:
        counted = impl->begin(ec);
        if (!counted) {
          post_completion(self);
          return;
        }
        break;
      case State::waiting:
        if (wait_ec) {
          ec = impl->wait_failed(wait_ec);
          finish(self);
          return;
        }
        break;
    }
    switch (impl->attempt(op, data, size, n, ec)) {
      case TlsStreamImpl::Next::want_read:
        wait(self, boost::asio::socket_base::wait_read);
        return;
      case TlsStreamImpl::Next::want_write:
        wait(self, boost::asio::socket_base::wait_write);
        return;
      case TlsStreamImpl::Next::done:
        finish(self);
        return;
    }
  }

 private:
  template <class Self>
  void wait(Self& self, boost::asio::socket_base::wait_type what) {
    state = State::waiting;
    impl->waiting();
    auto& socket = impl->socket;
    socket.async_wait(what, std::move(self));
  }

  template <class Self>
  void finish(Self& self) {
    if (counted) impl->end();
    counted = false;
    if (state == State::starting) {
      post_completion(self);
    } else {
      complete(self);
    }
  }

  // Finished inside the initiating function: complete from the executor.
  template <class Self>
  void post_completion(Self& self) {
    state = State::posted;
    auto executor = impl->executor;
    boost::asio::post(executor, std::move(self));
  }

  template <class Self>
  void complete(Self& self) {
    impl.reset();
    if constexpr (std::is_same_v<Signature, void(boost::system::error_code)>) {
      self.complete(ec);
    } else {
      self.complete(ec, n);
    }
  }
};

}  // namespace detail

class TlsStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using socket_type = boost::asio::ip::tcp::socket;
  using error_code = boost::system::error_code;

  // Takes an accepted socket and makes a server-side SSL object from `ctx`.
  // Throws boost::system::system_error when OpenSSL or the socket fails.
  TlsStream(socket_type socket, SSL_CTX* ctx)
      : impl_(std::make_shared<detail::TlsStreamImpl>(std::move(socket), ctx)) {}
  // Closes the socket: pending operations complete with operation_aborted.
  ~TlsStream() {
    if (impl_) impl_->close();
  }
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  executor_type get_executor() const noexcept { return impl_->executor; }
  socket_type& socket() noexcept { return impl_->socket; }
  SSL* native_handle() noexcept { return impl_->ssl; }

  void expires_after(std::chrono::steady_clock::duration d) { impl_->expires_after(d); }
  void expires_never() { impl_->expires_never(); }
  // Pending operations complete with operation_aborted (as tcp_stream's).
  void cancel() { impl_->cancel(); }
  void close() { impl_->close(); }

  // Before the handshake: fills `buffer` from the TCP stream, not a byte
  // more (a PROXY protocol header; OpenSSL never sees these bytes).
  // void(error_code, std::size_t).
  template <class Token>
  auto async_read_raw(boost::asio::mutable_buffer buffer, Token&& token) {
    return start<void(error_code, std::size_t)>(detail::TlsOp::raw_read, buffer.data(),
                                                buffer.size(), nullptr, token);
  }

  // The server side of the handshake. void(error_code).
  template <class Token>
  auto async_handshake(Token&& token) {
    return start<void(error_code)>(detail::TlsOp::handshake, nullptr, 0, nullptr, token);
  }

  // Waits until application data can be read, reading none of it (a
  // read_some() then returns it at once). void(error_code).
  template <class Token>
  auto async_wait_data(Token&& token) {
    return start<void(error_code)>(detail::TlsOp::peek, nullptr, 0, nullptr, token);
  }

  // Reads what OpenSSL has without waiting; error::would_block when nothing.
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, error_code& ec) {
    const boost::asio::mutable_buffer b = first_buffer(buffers);
    std::size_t n = 0;
    if (impl_->attempt(detail::TlsOp::read, b.data(), b.size(), n, ec) !=
        detail::TlsStreamImpl::Next::done) {
      ec = boost::asio::error::would_block;
    }
    return n;
  }

  // AsyncReadStream: decrypted bytes into the first non-empty buffer.
  // void(error_code, std::size_t).
  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    const boost::asio::mutable_buffer b = first_buffer(buffers);
    return start<void(error_code, std::size_t)>(detail::TlsOp::read, b.data(), b.size(), nullptr,
                                                token);
  }

  // AsyncWriteStream. Like beast::ssl_stream (its flat_stream), the leading
  // buffers that fit in kGatherBytes are copied into one, so a response's
  // head and body go out as one TLS record; the copy is secret memory, wiped
  // when the write completes (detail::GatherBuffer). void(error_code,
  // std::size_t).
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    std::size_t total = 0;
    std::size_t pieces = 0;
    const void* single = nullptr;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      if (pieces > 0 && total + b.size() > kGatherBytes) break;
      if (pieces == 0) single = b.data();
      total += b.size();
      ++pieces;
      if (total >= kGatherBytes) break;
    }
    detail::GatherBuffer gathered;
    if (pieces > 1) {
      gathered =
          detail::GatherBuffer(static_cast<char*>(secret_alloc(total)), detail::WipeAndFree{total});
      boost::asio::buffer_copy(boost::asio::buffer(gathered.get(), total), buffers);
      single = gathered.get();
    }
    return start<void(error_code, std::size_t)>(detail::TlsOp::write, const_cast<void*>(single),
                                                total, std::move(gathered), token);
  }

  // Sends close_notify and waits for the peer's, under the deadline.
  // void(error_code).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return start<void(error_code)>(detail::TlsOp::shutdown, nullptr, 0, nullptr, token);
  }

  static constexpr std::size_t kGatherBytes = std::size_t{16} * 1024;

 private:
  template <class MutableBufferSequence>
  static boost::asio::mutable_buffer first_buffer(const MutableBufferSequence& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::mutable_buffer b(*it);
      if (b.size() != 0) return b;
    }
    return {};
  }

  template <class Signature, class Token>
  auto start(detail::TlsOp op, void* data, std::size_t size, detail::GatherBuffer gathered,
             Token& token) {
    return boost::asio::async_compose<Token, Signature>(
        detail::TlsStreamOp<Signature>(impl_, op, data, size, std::move(gathered)), token,
        impl_->socket);
  }

  std::shared_ptr<detail::TlsStreamImpl> impl_;
};

}  // namespace hookvault::net
