// net::TlsStream against a blocking OpenSSL client in a thread: the
// operations, their errors, beast::tcp_stream's timeout semantics, and that
// no completion runs inside its initiating function.
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <openssl/crypto.h>

#include <boost/beast/http.hpp>

#include "hookvault/secret.hpp"
#include "net/http_session.hpp"
#include "net/tls.hpp"
#include "net/tls_stream.hpp"
#include "test_support.hpp"
#include "tls_support.hpp"

namespace hookvault::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using Client = hookvault::testing::RawTlsClient;

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto files = hookvault::testing::write_self_signed_cert(dir_.path());
    configure_server_tls(tls_, files.cert, files.key, "1.2");
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    acceptor_.listen();
    client_ = std::make_unique<Client>(acceptor_.local_endpoint().port());
    stream_ = std::make_unique<TlsStream>(acceptor_.accept(), tls_.native_handle());
  }
  void TearDown() override {
    if (peer_.joinable()) peer_.join();
  }

  // Runs the client side in a thread while the test drives the server.
  void peer(std::function<void(Client&)> fn) {
    peer_ = std::thread([this, fn = std::move(fn)] { fn(*client_); });
  }
  void join() { peer_.join(); }
  void run() {
    ioc_.restart();
    ioc_.run_for(10s);
  }

  // Both handshakes; the client then does `then`.
  void handshake(std::function<void(Client&)> then = {}) {
    peer([then = std::move(then)](Client& c) {
      ASSERT_TRUE(c.handshake());
      if (then) then(c);
    });
    const error_code ec = complete([&](auto handler) { stream_->async_handshake(handler); });
    ASSERT_FALSE(ec) << ec.message();
  }

  // Starts an operation with `start(handler)` and runs it to completion:
  // what its handler received. A handler never called fails the test.
  using Transfer = std::pair<error_code, std::size_t>;
  template <class Start>
  Transfer transfer(Start start) {  // handler: void(error_code, std::size_t)
    std::optional<Transfer> result;
    start([&](error_code ec, std::size_t n) { result.emplace(ec, n); });
    run();
    EXPECT_TRUE(result.has_value()) << "the operation did not complete";
    return result.value_or(Transfer{});
  }
  template <class Start>
  error_code complete(Start start) {  // handler: void(error_code)
    std::optional<error_code> result;
    start([&](error_code ec) { result = ec; });
    run();
    EXPECT_TRUE(result.has_value()) << "the operation did not complete";
    return result.value_or(error_code{});
  }

  // async_read_some into `buf`; (ec, n) after run().
  Transfer read_some(std::string& buf) {
    return transfer([&](auto handler) { stream_->async_read_some(asio::buffer(buf), handler); });
  }

  hookvault::testing::TempDir dir_;
  asio::io_context ioc_;
  asio::ssl::context tls_{asio::ssl::context::tls_server};
  tcp::acceptor acceptor_{ioc_};
  std::unique_ptr<Client> client_;
  std::unique_ptr<TlsStream> stream_;
  std::thread peer_;
};

TEST_F(TlsStreamTest, HandshakeReadWriteAndBothCloseNotifies) {
  handshake([](Client& c) {
    EXPECT_TRUE(c.write("ping"));
    EXPECT_EQ(c.read_exactly(4), "pong");
    EXPECT_EQ(SSL_shutdown(c.ssl()), 0);  // close_notify out; the server's comes next
    EXPECT_EQ(SSL_shutdown(c.ssl()), 1);
  });
  std::string buf(16, '\0');
  auto [ec, n] = read_some(buf);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(buf.substr(0, n), "ping");

  const auto [wec, wn] = transfer([&](auto handler) {
    stream_->async_write_some(asio::buffer(std::string_view("pong")), handler);
  });
  EXPECT_FALSE(wec) << wec.message();
  EXPECT_EQ(wn, 4U);

  // The client's close_notify: eof, as asio::ssl::stream reports it.
  auto [eof, zero] = read_some(buf);
  EXPECT_EQ(eof, asio::error::eof);
  const error_code shut = complete([&](auto handler) { stream_->async_shutdown(handler); });
  EXPECT_FALSE(shut) << shut.message();
  join();
}

TEST_F(TlsStreamTest, NoCompletionRunsInsideItsInitiatingFunction) {
  handshake([](Client& c) { EXPECT_TRUE(c.write("data")); });
  join();
  // Data is there: the read can finish without waiting.
  const error_code waited = complete([&](auto handler) { stream_->async_wait_data(handler); });
  ASSERT_FALSE(waited) << waited.message();

  bool initiating = true;
  bool called_inside = false;
  std::string buf(16, '\0');
  std::size_t got = 0;
  stream_->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) {
    called_inside = called_inside || initiating;
    EXPECT_FALSE(ec);
    got = n;
  });
  stream_->async_write_some(asio::buffer(std::string_view("x")), [&](error_code ec, std::size_t) {
    called_inside = called_inside || initiating;
    EXPECT_FALSE(ec);
  });
  stream_->async_read_some(asio::mutable_buffer(), [&](error_code ec, std::size_t n) {
    called_inside = called_inside || initiating;
    EXPECT_FALSE(ec);
    EXPECT_EQ(n, 0U);
  });
  initiating = false;
  run();
  EXPECT_FALSE(called_inside);
  EXPECT_EQ(got, 4U);

  // An operation refused at once (closed stream) completes from the executor too.
  stream_->close();
  initiating = true;
  std::optional<error_code> refused;
  stream_->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t) {
    called_inside = called_inside || initiating;
    refused = ec;
  });
  initiating = false;
  run();
  EXPECT_FALSE(called_inside);
  ASSERT_TRUE(refused);
  EXPECT_EQ(*refused, asio::error::bad_descriptor);
}

TEST_F(TlsStreamTest, TheDeadlineClosesTheSocketAndTimesOutPendingAndLaterOperations) {
  handshake();
  join();
  stream_->expires_after(200ms);
  std::string buf(16, '\0');
  const auto t0 = Clock::now();
  auto [ec, n] = read_some(buf);  // the client sends nothing
  EXPECT_EQ(ec, boost::beast::error::timeout);
  EXPECT_GE(Clock::now() - t0, 190ms);
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_FALSE(stream_->socket().is_open());
  auto [later, zero] = read_some(buf);
  EXPECT_EQ(later, boost::beast::error::timeout);
  // The client sees the connection closed.
  EXPECT_EQ(client_->read_once(), "");
}

// As beast::tcp_stream: the deadline only runs while an operation is pending,
// so a deadline passed while nothing was pending does not close the socket,
// and a new expires_after() before the next operation applies.
TEST_F(TlsStreamTest, TheDeadlineRunsOnlyWhileAnOperationIsPending) {
  handshake([](Client& c) { EXPECT_EQ(c.read_exactly(5), "hello"); });
  stream_->expires_after(50ms);
  std::this_thread::sleep_for(150ms);
  run();
  EXPECT_TRUE(stream_->socket().is_open());
  stream_->expires_after(5s);
  const auto [wrote, wn] = transfer([&](auto handler) {
    stream_->async_write_some(asio::buffer(std::string_view("hello")), handler);
  });
  EXPECT_FALSE(wrote) << wrote.message();
  join();

  // A deadline that passed before the operation starts: timeout at once.
  stream_->expires_after(10ms);
  std::this_thread::sleep_for(20ms);
  std::string buf(16, '\0');
  auto [ec, n] = read_some(buf);
  EXPECT_EQ(ec, boost::beast::error::timeout);
  EXPECT_FALSE(stream_->socket().is_open());
}

TEST_F(TlsStreamTest, ExpiresNeverLiftsTheDeadline) {
  handshake([](Client& c) {
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(c.write("late"));
  });
  stream_->expires_after(100ms);
  stream_->expires_never();
  std::string buf(16, '\0');
  auto [ec, n] = read_some(buf);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(buf.substr(0, n), "late");
  join();
}

TEST_F(TlsStreamTest, CancelAbortsAPendingReadAndTheStreamGoesOn) {
  handshake();
  std::string buf(16, '\0');
  std::optional<error_code> result;
  stream_->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t) { result = ec; });
  ioc_.restart();
  ioc_.run_for(50ms);
  EXPECT_FALSE(result);
  stream_->cancel();
  run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, asio::error::operation_aborted);

  join();
  peer([](Client& c) { EXPECT_TRUE(c.write("after")); });
  auto [ec, n] = read_some(buf);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(buf.substr(0, n), "after");
}

TEST_F(TlsStreamTest, DestroyingTheStreamWithAPendingReadAbortsIt) {
  handshake();
  join();
  stream_->expires_after(10s);
  auto buf = std::make_shared<std::string>(16, '\0');
  std::optional<error_code> result;
  stream_->async_read_some(asio::buffer(*buf),
                           [&result, buf](error_code ec, std::size_t) { result = ec; });
  ioc_.restart();
  ioc_.run_for(20ms);
  stream_.reset();
  run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, asio::error::operation_aborted);
  EXPECT_TRUE(ioc_.stopped());  // nothing left behind: the timer was cancelled too
}

TEST_F(TlsStreamTest, RawReadTakesTheBytesAskedForAndLeavesTheRestToTls) {
  // The preamble and the ClientHello arrive together before the server reads.
  peer([](Client& c) {
    ASSERT_EQ(::send(c.fd(), "PROXYHDR", 8, MSG_NOSIGNAL), 8);
    ASSERT_TRUE(c.handshake());
    EXPECT_TRUE(c.write("tls"));
  });
  std::this_thread::sleep_for(100ms);
  std::string raw(8, '\0');
  stream_->expires_after(5s);
  const auto [raw_ec, raw_n] =
      transfer([&](auto handler) { stream_->async_read_raw(asio::buffer(raw), handler); });
  EXPECT_FALSE(raw_ec) << raw_ec.message();
  EXPECT_EQ(raw_n, 8U);
  EXPECT_EQ(raw, "PROXYHDR");
  const error_code hs = complete([&](auto handler) { stream_->async_handshake(handler); });
  ASSERT_FALSE(hs) << hs.message();
  std::string buf(16, '\0');
  auto [ec, n] = read_some(buf);
  EXPECT_EQ(buf.substr(0, n), "tls");
  join();
}

TEST_F(TlsStreamTest, EofWithoutCloseNotifyIsStreamTruncated) {
  handshake();
  join();
  ::shutdown(client_->fd(), SHUT_WR);
  std::string buf(16, '\0');
  auto [ec, n] = read_some(buf);
  EXPECT_EQ(ec, asio::ssl::error::stream_truncated) << ec.message();
}

TEST_F(TlsStreamTest, AResetIsASystemErrorAndWritingAfterItRaisesNoSigpipe) {
  handshake();
  join();
  client_->reset();
  std::string buf(16, '\0');
  auto [ec, n] = read_some(buf);
  EXPECT_EQ(ec, asio::error::connection_reset) << ec.message();
  // close_notify into a reset connection: an error, not a SIGPIPE that would
  // end this test process.
  const error_code shut = complete([&](auto handler) { stream_->async_shutdown(handler); });
  EXPECT_TRUE(shut);
}

TEST_F(TlsStreamTest, ABrokenRecordIsAnSslCategoryError) {
  handshake();
  join();
  const std::string junk("\x17\x03\x03\x00\x20", 5);
  ASSERT_EQ(::send(client_->fd(), junk.data(), junk.size(), MSG_NOSIGNAL), 5);
  const std::string body(32, 'x');  // not a valid encrypted record
  ASSERT_EQ(::send(client_->fd(), body.data(), body.size(), MSG_NOSIGNAL), 32);
  std::string buf(16, '\0');
  auto [ec, n] = read_some(buf);
  EXPECT_EQ(&ec.category(), &asio::error::get_ssl_category()) << ec.message();
}

TEST_F(TlsStreamTest, SmallBuffersGoOutAsOneRecord) {
  handshake([](Client& c) { EXPECT_EQ(c.read_once(), "HTTP/1.1 200 OK\r\n\r\nbody"); });
  const std::string a = "HTTP/1.1 200 OK\r\n";
  const std::string b = "\r\n";
  const std::string d = "body";
  const std::array<asio::const_buffer, 4> buffers{asio::buffer(a), asio::const_buffer(),
                                                  asio::buffer(b), asio::buffer(d)};
  const auto [ec, n] = transfer([&](auto handler) { stream_->async_write_some(buffers, handler); });
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(n, a.size() + b.size() + d.size());
  join();
}

// A write larger than the socket buffers waits for writability, a read
// larger than what arrived waits for readability: the data comes out whole.
TEST_F(TlsStreamTest, LargeWritesAndReadsWaitForTheSocket) {
  const int small = 65536;
  ::setsockopt(stream_->socket().native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::setsockopt(client_->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  std::string payload(1 << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + i / 251);
  handshake([&payload](Client& c) {
    std::this_thread::sleep_for(200ms);  // let the server fill the socket
    EXPECT_TRUE(c.read_exactly(payload.size()) == payload);
    EXPECT_TRUE(c.write(payload));
  });
  stream_->expires_after(10s);
  const auto [wec, wn] =
      transfer([&](auto handler) { asio::async_write(*stream_, asio::buffer(payload), handler); });
  EXPECT_FALSE(wec) << wec.message();
  EXPECT_EQ(wn, payload.size());
  std::string back(payload.size(), '\0');
  const auto [rec, rn] =
      transfer([&](auto handler) { asio::async_read(*stream_, asio::buffer(back), handler); });
  EXPECT_FALSE(rec) << rec.message();
  EXPECT_EQ(rn, payload.size());
  EXPECT_TRUE(back == payload);
  join();
}

// Forwards to a TlsStream, noting how much of the locked arena is in use
// right after each write is started: while the write is pending, whatever
// copy of the data it made is alive (completions never run inside the
// initiating function).
class ArenaProbe {
 public:
  using executor_type = TlsStream::executor_type;
  explicit ArenaProbe(TlsStream& s) : s_(s) {}
  executor_type get_executor() const noexcept { return s_.get_executor(); }
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    s_.async_write_some(buffers, std::forward<Handler>(handler));
    peak_ = std::max(peak_, CRYPTO_secure_used());
  }
  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    s_.async_read_some(buffers, std::forward<Handler>(handler));
  }
  std::size_t peak() const { return peak_; }

 private:
  TlsStream& s_;
  std::size_t peak_ = 0;
};

// An answer with secrets (an admin reply's share and API key) is written as
// the listener writes it: Beast's serializer over TlsStream, whose small
// buffers are gathered into one TLS record. That copy must be secret memory
// like the body (the locked arena, wiped on release), not the ordinary heap,
// which keeps what is freed.
TEST_F(TlsStreamTest, AnAnswerIsGatheredInSecretMemory) {
  (void)lock_secret_memory(std::size_t{1} << 20);  // the arena, locked or not
  ASSERT_EQ(CRYPTO_secure_malloc_initialized(), 1);
  const std::string secret = "{\"share\":\"s3cr3t-share-5f1c\",\"apiKey\":\"wallet-api-key\"}";
  namespace http = boost::beast::http;
  http::response<detail::SecretBody> res{http::status::ok, 11};
  res.body().assign(secret.begin(), secret.end());
  res.set(http::field::content_type, "application/json");
  res.prepare_payload();
  handshake([&secret](Client& c) {
    std::string got;
    while (got.find(secret) == std::string::npos) {
      const std::string part = c.read_once();
      if (part.empty()) break;
      got += part;
    }
    EXPECT_NE(got.find(secret), std::string::npos) << got;
  });
  ArenaProbe probe(*stream_);
  const std::size_t before = CRYPTO_secure_used();
  stream_->expires_after(10s);
  const auto [ec, n] = transfer([&](auto handler) { http::async_write(probe, res, handler); });
  EXPECT_FALSE(ec) << ec.message();
  // The head and the body went out as one record, gathered in the arena.
  EXPECT_GE(probe.peak(), before + n) << "the gathered copy is not in secret memory";
  EXPECT_EQ(CRYPTO_secure_used(), before) << "the copy outlived the write";
  join();
}

}  // namespace
}  // namespace hookvault::net
