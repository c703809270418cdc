// TLS helpers shared by the tests: a loopback TCP connection, and a blocking
// TLS client on a plain socket with OpenSSL used directly (for what the Beast
// test client cannot do: stalls inside a record, resets, KeyUpdate, raw bytes
// before TLS). A server certificate: write_self_signed_cert (test_support.hpp).
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace hookvault::testing {

// A blocking TCP connection to 127.0.0.1:port with 10 s send and receive
// timeouts (no test hangs on a silent peer). `from`: the local address to
// connect from (any of 127.0.0.0/8 works on Linux), default 127.0.0.1.
// Throws std::runtime_error.
int connect_loopback(std::uint16_t port, const std::string& from = {});

// A TLS client on a blocking loopback socket; the server certificate is not
// verified. Every call reports failure instead of throwing, except the
// constructor (connect failed).
class RawTlsClient {
 public:
  explicit RawTlsClient(std::uint16_t port, const std::string& from = {});
  ~RawTlsClient();
  RawTlsClient(const RawTlsClient&) = delete;
  RawTlsClient& operator=(const RawTlsClient&) = delete;

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }

  bool handshake();
  bool write(const std::string& bytes);  // all of it, in TLS
  // Bytes on the TCP connection, outside TLS.
  bool write_raw(const std::string& bytes);
  // One SSL_read: what one record (or less) holds; empty on failure.
  std::string read_once(std::size_t max = 65536);
  // Reads until `want` bytes arrived or a read fails.
  std::string read_exactly(std::size_t want);
  // GET `target` on the keep-alive connection; the status, 0 on failure.
  unsigned get(const std::string& target);
  bool key_update(bool ask_peer);
  const char* version() const { return SSL_get_version(ssl_); }
  // KeyUpdate messages received from the server.
  int key_updates_received() const { return key_updates_received_; }
  // Closes the socket with a TCP reset instead of a FIN.
  void reset();

 private:
  static void on_message(int write_p, int version, int content_type, const void* buf,
                         std::size_t len, SSL* ssl, void* arg);

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int key_updates_received_ = 0;
};

}  // namespace hookvault::testing
