// HTTP/1.1 framing (net/http_framing.hpp): MessageParser with a bounded read
// buffer, as the listeners and the HTTPS clients read, on in-memory input;
// and the Nodit history client against a hostile HTTPS server of the test's
// own (real TLS on loopback) that answers with endless chunk extensions or
// trailers, or framing other than chunked.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "hookvault/nodit_history.hpp"
#include "net/http_framing.hpp"
#include "test_support.hpp"

namespace hookvault::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A SyncReadStream over a string that hands out at most `chunk` bytes per
// read and counts what it handed out.
class Input {
 public:
  Input(std::string bytes, std::size_t chunk) : bytes_(std::move(bytes)), chunk_(chunk) {}
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, error_code& ec) {
    if (at_ == bytes_.size()) {
      ec = asio::error::eof;
      return 0;
    }
    const std::size_t n = asio::buffer_copy(
        buffers, asio::buffer(bytes_.data() + at_, std::min(chunk_, bytes_.size() - at_)));
    at_ += n;
    ec = {};
    return n;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  std::size_t consumed() const { return at_; }

 private:
  std::string bytes_;
  std::size_t chunk_;
  std::size_t at_ = 0;
};

struct Outcome {
  error_code ec;
  std::size_t consumed = 0;         // bytes taken from the input
  std::size_t buffer_capacity = 0;  // the read buffer's at the end
  http::request<http::string_body> message;
};

// Reads one request from `bytes` as the listener does: a bounded buffer and
// MessageParser, head then body.
Outcome read_request(const std::string& bytes, const FramingLimits& limits,
                     std::size_t chunk = 1500) {
  Input in(bytes, chunk);
  beast::flat_buffer buffer(read_buffer_limit(limits));
  RequestParser<http::string_body> parser(limits);
  Outcome out;
  http::read_header(in, buffer, parser, out.ec);
  if (!out.ec) http::read(in, buffer, parser, out.ec);
  out.consumed = in.consumed();
  out.buffer_capacity = buffer.capacity();
  if (!out.ec) out.message = parser.release();
  return out;
}

const FramingLimits kSmall{4096, 16, 65536};
const std::string kHead =
    "POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

TEST(Framing, AChunkExtensionLongerThanTheReadBufferFailsWithoutGrowingIt) {
  const auto out = read_request(kHead + "1;" + std::string(1 << 20, 'a'), kSmall);
  EXPECT_EQ(out.ec, http::error::buffer_overflow) << out.ec.message();
  EXPECT_LE(out.buffer_capacity, kSmall.header_bytes);
  EXPECT_LE(out.consumed, kHead.size() + kSmall.header_bytes + 1500);
  const auto answer = refusal(out.ec);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 431U);
}

TEST(Framing, AnEndlessTrailerFailsTheSameWay) {
  const auto out =
      read_request(kHead + "1\r\na\r\n0\r\nX-Trailer: " + std::string(1 << 20, 'a'), kSmall);
  EXPECT_EQ(out.ec, http::error::buffer_overflow) << out.ec.message();
  EXPECT_LE(out.buffer_capacity, kSmall.header_bytes);
  EXPECT_LE(out.consumed, kHead.size() + kSmall.header_bytes + 1500);
}

TEST(Framing, ChunkExtensionsCountAgainstTheHeaderBytes) {
  std::string chunks;
  for (int i = 0; i < 50; ++i) chunks += "1;name=" + std::string(93, 'e') + "\r\nx\r\n";
  chunks += "0\r\n\r\n";
  // 5,000 bytes of extensions, each line short: over 4096 with the head.
  auto out = read_request(kHead + chunks, kSmall);
  EXPECT_EQ(out.ec, make_error_code(FramingError::fields_too_large)) << out.ec.message();
  EXPECT_EQ(refusal(out.ec)->status, 431U);
  // Under a larger limit the same request reads, extensions ignored.
  out = read_request(kHead + chunks, FramingLimits{16384, 16, 65536});
  ASSERT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.message.body(), std::string(50, 'x'));
}

TEST(Framing, TrailerFieldsAreCountedAndNeverReachTheMessage) {
  const std::string request = kHead + "2\r\n{}\r\n0\r\nX-Forwarded-For: 203.0.113.5\r\n" +
                              "Content-Type: text/plain\r\nX-Signature: forged\r\n\r\n";
  auto out = read_request(request, kSmall);
  ASSERT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.message.body(), "{}");
  EXPECT_EQ(out.message.count("X-Forwarded-For"), 0U);
  EXPECT_EQ(out.message.count("X-Signature"), 0U);
  EXPECT_EQ(out.message[http::field::content_type], "application/json");
  EXPECT_EQ(out.message.count(http::field::content_type), 1U);
  // Header and trailer fields share max_header_count: 3 + 3 > 5.
  out = read_request(request, FramingLimits{4096, 5, 65536});
  EXPECT_EQ(out.ec, make_error_code(FramingError::too_many_fields));
  EXPECT_EQ(refusal(out.ec)->error, "too_many_headers");
  // And max_header_bytes: a 4,050-byte trailer after the head.
  out = read_request(kHead + "2\r\n{}\r\n0\r\nX-T: " + std::string(4050, 't') + "\r\n\r\n", kSmall);
  EXPECT_EQ(out.ec, make_error_code(FramingError::fields_too_large));
}

// RFC 9112 section 5.2: a field line folded onto the next (obs-fold) is
// read with the fold replaced by SP, before the value is interpreted: a
// folded Content-Length is that length, and a coding list folded across
// lines is judged whole (here "identity, chunked": not chunked alone, 501).
TEST(Framing, AFoldedFieldIsReadAsOneLineWithASpace) {
  auto out = read_request(
      "POST /x HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", kSmall);
  ASSERT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.message["X-A"], "a b");
  EXPECT_EQ(out.message.body(), "{}");
  out = read_request("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n 2\r\n\r\n{}", kSmall);
  ASSERT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.message.body(), "{}");
  out = read_request(
      "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity,\r\n chunked\r\n\r\n"
      "2\r\n{}\r\n0\r\n\r\n",
      kSmall);
  ASSERT_TRUE(out.ec);
  ASSERT_TRUE(refusal(out.ec));
  EXPECT_EQ(refusal(out.ec)->status, 501U);
}

// RFC 9112 section 6: framing by Content-Length, or by Transfer-Encoding
// ending in chunked (and, since we decode no other coding, chunked alone).
TEST(Framing, OnlyChunkedAloneIsATransferEncoding) {
  struct Case {
    std::string fields;
    std::string version;
    unsigned status;  // 0: read
  };
  const std::vector<Case> cases = {
      {"Transfer-Encoding: chunked\r\n", "1.1", 0},
      {"Transfer-Encoding: Chunked\r\n", "1.1", 0},
      {"Transfer-Encoding: , chunked\r\n", "1.1", 0},
      {"Transfer-Encoding: gzip\r\n", "1.1", 400},
      {"Transfer-Encoding: chunked, gzip\r\n", "1.1", 400},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "1.1", 400},
      {"Transfer-Encoding: chunked, chunked\r\n", "1.1", 400},
      {"Transfer-Encoding: chunked;q=1\r\n", "1.1", 400},
      {"Transfer-Encoding:\r\n", "1.1", 400},
      {"Transfer-Encoding: gzip\r\nContent-Length: 4\r\n", "1.1", 400},
      {"Content-Length: 4\r\nTransfer-Encoding: gzip\r\n", "1.1", 400},
      {"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "1.1", 400},
      {"Transfer-Encoding: chunked\r\n", "1.0", 400},
      {"Transfer-Encoding: gzip, chunked\r\n", "1.1", 501},
      {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "1.1", 501},
      {"Content-Length: 4\r\n", "1.1", 0},
      {"Content-Length: 4, 4\r\n", "1.1", 0},
      {"Content-Length: 4\r\nContent-Length: 5\r\n", "1.1", 400},
  };
  for (const auto& c : cases) {
    std::string lower = c.fields;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const bool chunked = lower.find("chunked") != std::string::npos &&
                         lower.find("content-length") == std::string::npos;
    const std::string request = "POST /x HTTP/" + c.version + "\r\nHost: h\r\n" + c.fields +
                                "\r\n" + (chunked ? "4\r\nbody\r\n0\r\n\r\n" : "body");
    const auto out = read_request(request, kSmall);
    if (c.status == 0) {
      EXPECT_FALSE(out.ec) << c.fields << ": " << out.ec.message();
      EXPECT_EQ(out.message.body(), "body") << c.fields;
    } else {
      const auto answer = refusal(out.ec);
      ASSERT_TRUE(answer) << c.fields << " was read";
      EXPECT_EQ(answer->status, c.status) << c.fields << ": " << out.ec.message();
    }
  }
}

TEST(Framing, ResponsesMayUseChunkedAloneToo) {
  const auto read_response = [](const std::string& bytes) {
    Input in(bytes, 1500);
    const FramingLimits limits{4096, 16, 65536};
    beast::flat_buffer buffer(read_buffer_limit(limits));
    ResponseParser<http::string_body> parser(limits);
    error_code ec;
    http::read(in, buffer, parser, ec);
    return std::make_pair(ec, ec ? std::string() : parser.get().body());
  };
  auto [ec, body] = read_response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: 1\r\n\r\n");
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(body, "{}");
  for (const std::string_view fields :
       {"Transfer-Encoding: gzip\r\n", "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: gzip\r\nContent-Length: 2\r\n"}) {
    std::tie(ec, body) = read_response("HTTP/1.1 200 OK\r\n" + std::string(fields) + "\r\n{}");
    EXPECT_EQ(ec, make_error_code(FramingError::bad_transfer_encoding)) << fields;
  }
}

TEST(Framing, ReadingErrorsWithNobodyToAnswerGetNoAnswer) {
  EXPECT_FALSE(refusal(http::error::end_of_stream));
  EXPECT_FALSE(refusal(http::error::partial_message));
  EXPECT_FALSE(refusal(beast::error::timeout));
  EXPECT_FALSE(refusal(asio::error::connection_reset));
  EXPECT_FALSE(refusal(asio::error::operation_aborted));
  EXPECT_EQ(refusal(http::error::body_limit)->status, 413U);
  EXPECT_EQ(refusal(http::error::header_limit)->status, 431U);
  EXPECT_EQ(refusal(http::error::bad_chunk)->status, 400U);
  EXPECT_EQ(refusal(http::error::bad_version)->status, 400U);
}

// ---------------------------------------------------------------------------
// The Nodit history client against a hostile API

// Serves one HTTPS connection at a time on 127.0.0.1 (a self-signed
// certificate for 127.0.0.1): reads a request head, then `answer` writes.
class HostileApi {
 public:
  explicit HostileApi(std::function<void(SSL*)> answer) : answer_(std::move(answer)) {
    const auto files = testing::write_self_signed_cert(dir_.path());
    ca_file_ = files.cert;
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx_, files.cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx_, files.key.c_str(), SSL_FILETYPE_PEM);
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listener_, 8);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~HostileApi() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    SSL_CTX_free(ctx_);
  }
  std::string base_url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  const std::filesystem::path& ca_file() const { return ca_file_; }

 private:
  void serve() {
    while (!stop_) {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        std::string head;
        char c = 0;
        std::size_t n = 0;
        while (head.find("\r\n\r\n") == std::string::npos && SSL_read_ex(ssl, &c, 1, &n) == 1) {
          head += c;
        }
        answer_(ssl);
      }
      SSL_free(ssl);
      ::close(fd);
    }
  }

  testing::TempDir dir_;
  std::function<void(SSL*)> answer_;
  std::filesystem::path ca_file_;
  SSL_CTX* ctx_ = nullptr;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class HostileHistoryApiTest : public ::testing::Test {
 protected:
  // The server's writes to a client that has gone: EPIPE, not a signal.
  void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }

  Result<HistoryPage> fetch(const HostileApi& api, std::chrono::milliseconds timeout = 8s) {
    HistoryClientOptions o;
    o.api_base_url = api.base_url();
    o.chain = "ethereum";
    o.network = "mainnet";
    o.api_key = SecretBytes::copy_of(std::string_view("hostile-test-key"));
    o.ca_file = api.ca_file();
    o.timeout = timeout;
    NoditHistoryClient client(std::move(o));
    HistoryQuery q;
    q.subscription_id = "7";
    return client.fetch(q);
  }
};

bool write_all(SSL* ssl, const std::string& bytes) {
  std::size_t n = 0;
  return SSL_write_ex(ssl, bytes.data(), bytes.size(), &n) == 1 && n == bytes.size();
}

// Writes `prefix`, then `filler` until the client goes away; counts the
// bytes written.
std::function<void(SSL*)> endless(std::string prefix, std::atomic<std::size_t>& written) {
  return [prefix = std::move(prefix), &written](SSL* ssl) {
    if (!write_all(ssl, prefix)) return;
    const std::string block(64 * 1024, 'a');
    while (written < (std::size_t{1} << 30) && write_all(ssl, block)) written += block.size();
  };
}

const std::string kPage =
    R"({"total":1,"page":1,"rpp":100,"items":[{"subscriptionId":"7","sequenceNumber":"1",)"
    R"("status":"SUCCESS","eventMessage":{"subscriptionId":"7","sequenceNumber":"1"}}]})";

// The client gives up at the header limit (64 KiB), long before the
// request's deadline, having read little: before, it read until the deadline.
TEST_F(HostileHistoryApiTest, AnEndlessChunkExtensionFailsTheFetchAtTheHeaderLimit) {
  std::atomic<std::size_t> written{0};
  HostileApi api(endless("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;", written));
  const auto t0 = Clock::now();
  const auto page = fetch(api);
  EXPECT_FALSE(page);
  EXPECT_LT(Clock::now() - t0, 4s) << "the client read until its deadline";
  EXPECT_LT(written.load(), std::size_t{64} << 20);
}

TEST_F(HostileHistoryApiTest, AnEndlessTrailerFailsTheFetchAtTheHeaderLimit) {
  std::atomic<std::size_t> written{0};
  HostileApi api(endless(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n0\r\nX-T: ", written));
  const auto t0 = Clock::now();
  EXPECT_FALSE(fetch(api));
  EXPECT_LT(Clock::now() - t0, 4s) << "the client read until its deadline";
  EXPECT_LT(written.load(), std::size_t{64} << 20);
}

// A response framed by anything but Content-Length or chunked alone is not
// read (before: `gzip` was read to the end of the connection, and with a
// Content-Length as that length).
TEST_F(HostileHistoryApiTest, TransferCodingsOtherThanChunkedAreRefused) {
  for (const std::string& fields :
       {std::string("Transfer-Encoding: gzip\r\n"),
        "Transfer-Encoding: gzip\r\nContent-Length: " + std::to_string(kPage.size()) + "\r\n"}) {
    HostileApi api([&fields](SSL* ssl) {
      write_all(ssl, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + fields +
                         "Connection: close\r\n\r\n" + kPage);
      SSL_shutdown(ssl);
    });
    EXPECT_FALSE(fetch(api)) << fields;
  }
}

TEST_F(HostileHistoryApiTest, AChunkedPageWithTrailersIsRead) {
  HostileApi api([](SSL* ssl) {
    std::string chunks;
    for (std::size_t at = 0; at < kPage.size(); at += 40) {
      const std::string part = kPage.substr(at, 40);
      char size[8];
      std::snprintf(size, sizeof size, "%zx", part.size());
      chunks += std::string(size) + ";ext=1\r\n" + part + "\r\n";
    }
    write_all(ssl,
              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
              "chunked\r\n\r\n" +
                  chunks + "0\r\nX-Checksum: 1\r\n\r\n");
    SSL_shutdown(ssl);
  });
  const auto page = fetch(api);
  ASSERT_TRUE(page) << page.error().message();
  ASSERT_EQ(page->items.size(), 1U);
  EXPECT_EQ(page->items[0].sequence_number, 1U);
}

}  // namespace
}  // namespace hookvault::net
