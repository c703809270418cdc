// The composition root (daemon.hpp) in this process, without signals: start
// on port 0, serve, reload (applied, and refused three ways), stop, and start
// again on the same store. The daemon is the real one (real TLS on loopback,
// a real store file, both listeners); only the signals are left out
// (DaemonOptions::handle_signals), since the test drives it directly. The
// signals themselves, and `serve` as a child process, are the integration
// tests' (tests/integration/reload_test.cpp, startup_test.cpp).
#include "hookvault/daemon.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "hookvault/config.hpp"
#include "hookvault/secret.hpp"
#include "test_support.hpp"
#include "tls_support.hpp"

namespace hookvault {
namespace {

namespace fs = std::filesystem;
using testing::eventually;
using testing::hmac_hex;
using testing::metric_sample;
using testing::RawTlsClient;
using testing::TempDir;
using testing::write_file;

constexpr std::string_view kSecretA = "nodit-signing-key-a-5d1f0c";
constexpr std::string_view kSecretB = "nodit-signing-key-b-93e7aa";

std::string nodit_message(std::uint64_t seq) {
  return R"({"subscriptionId":"900","sequenceNumber":")" + std::to_string(seq) +
         R"(","protocol":"ETHEREUM","network":"MAINNET","eventType":"ADDRESS_ACTIVITY",)"
         R"("event":{"messages":[{"hash":"0x)" +
         std::to_string(seq) + R"("}]},"createdAt":"2025-10-01T15:13:26.348Z"})";
}

struct Answer {
  unsigned status = 0;  // 0: no answer
  std::string body;
};

// One request on a connection of its own ("Connection: close"), read to EOF.
Answer round_trip(std::uint16_t port, const std::string& request) {
  RawTlsClient client(port);
  if (!client.handshake() || !client.write(request)) return {};
  std::string got;
  for (std::string part = client.read_once(); !part.empty(); part = client.read_once()) {
    got += part;
  }
  Answer a;
  const auto head_end = got.find("\r\n\r\n");
  if (got.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return a;
  a.status = static_cast<unsigned>(std::stoul(got.substr(9, 3)));
  a.body = got.substr(head_end + 4);
  return a;
}

Answer post_nodit(std::uint16_t port, const std::string& body, std::string_view key) {
  return round_trip(port,
                    "POST /webhooks/nodit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\nx-signature: " +
                        hmac_hex(key, body) + "\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\nConnection: close\r\n\r\n" + body);
}

Answer get(std::uint16_t port, const std::string& target) {
  return round_trip(port,
                    "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

// The DER encoding of `cert` ("" for none), which it frees.
std::string der_of(X509* cert) {
  if (cert == nullptr) return {};
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  std::string out = n > 0 ? std::string(reinterpret_cast<char*>(der), static_cast<std::size_t>(n))
                          : std::string();
  OPENSSL_free(der);
  X509_free(cert);
  return out;
}

// The DER of the certificate a new connection to `port` is served.
std::string served_certificate(std::uint16_t port) {
  RawTlsClient client(port);
  if (!client.handshake()) return {};
  return der_of(SSL_get1_peer_certificate(client.ssl()));
}

std::string certificate_file_der(const fs::path& pem) {
  std::FILE* f = std::fopen(pem.c_str(), "r");
  if (f == nullptr) return {};
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  return der_of(cert);
}

// True when nothing accepts connections on 127.0.0.1:port any more.
bool refused(std::uint16_t port) {
  try {
    const int fd = testing::connect_loopback(port);
    ::close(fd);
    return false;
  } catch (const std::runtime_error&) {
    return true;
  }
}

// A folder with everything a daemon needs: a self-signed certificate (also
// the admin listener's, and its client CA), a file KEK, a Nodit source, both
// listeners on port 0.
class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto tls = testing::write_self_signed_cert(dir_ / "tls");
    cert_ = tls.cert;
    key_ = tls.key;
    write_file(dir_ / "keys/kek.key", SecretBytes::random(32).reveal_string());
    write_file(dir_ / "secrets/nodit_a", std::string(kSecretA));
    write_file(dir_ / "secrets/nodit_b", std::string(kSecretB));
    fs::create_directories(dir_ / "data");
    fs::permissions(dir_ / "data", fs::perms::owner_all);
  }

  // hookvault.toml with `secret_files` for the Nodit source and `server_extra`
  // in [server]; loaded as `serve` loads it.
  Config write_config(const std::string& secret_files = R"(["secrets/nodit_a"])",
                      const std::string& server_extra = "") {
    const std::string toml = R"([server]
listen = "127.0.0.1:0"
tls_cert = ")" + cert_.string() +
                             R"("
tls_key = ")" + key_.string() +
                             R"("
max_connections = 64
drain_delay = "0s"
shutdown_grace = "2s"
)" + server_extra + R"(
[storage]
path = "data/hookvault.db"

[kek]
file = "keys/kek.key"

[admin]
listen = "127.0.0.1:0"
tls_cert = ")" + cert_.string() +
                             R"("
tls_key = ")" + key_.string() +
                             R"("
client_ca = ")" + cert_.string() +
                             R"("
max_connections = 16
[[admin.clients]]
subject_cn = "signer"
roles = ["metrics:read"]

[log]
format = "text"
level = "warn"

[[sources]]
name = "nodit"
provider = "nodit"
path = "/webhooks/nodit"
secret_files = )" + secret_files +
                             "\n";
    write_file(dir_ / "hookvault.toml", toml, 0600);
    return load_config(dir_ / "hookvault.toml");
  }

  TempDir dir_;
  fs::path cert_;
  fs::path key_;
};

// run() on a thread of its own, stopped and joined at the end of the scope.
class Running {
 public:
  explicit Running(Daemon& daemon) : daemon_(daemon), thread_([this] { daemon_.run(); }) {}
  ~Running() { stop(); }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  void stop() {
    if (!thread_.joinable()) return;
    daemon_.stop();
    thread_.join();
  }

 private:
  Daemon& daemon_;
  std::thread thread_;
};

TEST_F(DaemonTest, StartsServesReloadsAndStopsInProcessThenStartsAgainOnTheSameStore) {
  const Config config = write_config();
  Daemon daemon(config, DaemonOptions{.handle_signals = false});
  const std::uint16_t port = daemon.public_endpoint().port;
  ASSERT_NE(port, 0);
  ASSERT_TRUE(daemon.admin_endpoint().has_value());
  const std::uint16_t admin_port = daemon.admin_endpoint()->port;
  ASSERT_NE(admin_port, 0);
  ASSERT_NE(admin_port, port);
  Running running(daemon);
  ASSERT_TRUE(eventually([&] { return get(port, "/readyz").status == 200; }));

  // Serving: the pipeline stores a signed delivery and refuses an unsigned
  // one; the admin listener asks for a client certificate.
  const Answer first = post_nodit(port, nodit_message(1), kSecretA);
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_NE(first.body.find(R"("status":"accepted")"), std::string::npos) << first.body;
  EXPECT_EQ(post_nodit(port, nodit_message(2), kSecretB).status, 401u);
  EXPECT_EQ(get(admin_port, "/metrics").status, 401u);

  // Applied: a second webhook secret and a renewed certificate.
  const std::string old_cert = certificate_file_der(cert_);
  ASSERT_EQ(served_certificate(port), old_cert);
  testing::write_self_signed_cert(dir_ / "tls");
  const std::string new_cert = certificate_file_der(cert_);
  ASSERT_NE(new_cert, old_cert);
  write_config(R"(["secrets/nodit_a", "secrets/nodit_b"])");
  const ReloadOutcome applied = daemon.reload();
  EXPECT_TRUE(applied.applied) << applied.error;
  EXPECT_EQ(post_nodit(port, nodit_message(2), kSecretB).status, 200u);
  EXPECT_EQ(served_certificate(port), new_cert);
  EXPECT_EQ(served_certificate(admin_port), new_cert);
  const std::string after_success = daemon.metrics().render();
  EXPECT_EQ(metric_sample(after_success, "hookvault_config_last_reload_successful"), 1);
  EXPECT_EQ(metric_sample(after_success, R"(hookvault_config_reloads_total{result="success"})"), 1);

  // Refused, nothing applied: a setting that takes a restart (besides a
  // change that alone would apply: the secret list back to A only) ...
  write_config(R"(["secrets/nodit_a"])", "max_body_bytes = 4096\n");
  const ReloadOutcome restart = daemon.reload();
  EXPECT_FALSE(restart.applied);
  EXPECT_NE(restart.error.find("server.max_body_bytes"), std::string::npos) << restart.error;
  // ... a problem check-config reports (a secret file others may read) ...
  write_config(R"(["secrets/nodit_a", "secrets/nodit_open"])");
  write_file(dir_ / "secrets/nodit_open", "nodit-signing-key-c-0b2d41", 0644);
  const ReloadOutcome unsafe = daemon.reload();
  EXPECT_FALSE(unsafe.applied);
  EXPECT_NE(unsafe.error.find("nodit_open is readable by group or others"), std::string::npos)
      << unsafe.error;
  // ... and a file that is not TOML.
  write_file(dir_ / "hookvault.toml", "[server\n", 0600);
  const ReloadOutcome broken = daemon.reload();
  EXPECT_FALSE(broken.applied);
  EXPECT_NE(broken.error.find("hookvault.toml:1:"), std::string::npos) << broken.error;
  // The running configuration still serves: both secrets verify.
  EXPECT_EQ(post_nodit(port, nodit_message(3), kSecretB).status, 200u);
  EXPECT_EQ(post_nodit(port, nodit_message(4), kSecretA).status, 200u);
  const std::string after_failures = daemon.metrics().render();
  EXPECT_EQ(metric_sample(after_failures, "hookvault_config_last_reload_successful"), 0);
  EXPECT_EQ(metric_sample(after_failures, R"(hookvault_config_reloads_total{result="failure"})"),
            3);

  // Stopped: run() returns, and both listeners are closed.
  running.stop();
  EXPECT_TRUE(refused(port));
  EXPECT_TRUE(refused(admin_port));

  // The store was closed and kept everything: a second daemon on it knows
  // the first delivery.
  Daemon again(config, DaemonOptions{.handle_signals = false});
  Running running_again(again);
  const std::uint16_t port2 = again.public_endpoint().port;
  ASSERT_TRUE(eventually([&] { return get(port2, "/readyz").status == 200; }));
  const Answer replay = post_nodit(port2, nodit_message(1), kSecretA);
  EXPECT_EQ(replay.status, 200u);
  EXPECT_NE(replay.body.find(R"("status":"duplicate")"), std::string::npos) << replay.body;
}

TEST_F(DaemonTest, StartIsRefusedWhenCheckConfigFindsAProblemAndNothingIsOpened) {
  const Config config = write_config();
  fs::permissions(dir_ / "secrets/nodit_a", fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::add);
  try {
    Daemon daemon(config, DaemonOptions{.handle_signals = false});
    FAIL() << "the daemon started with a secret file others may read";
  } catch (const StartRefused& refused) {
    ASSERT_EQ(refused.problems().size(), 1u) << refused.what();
    EXPECT_NE(refused.problems().front().find("nodit_a is readable by group or others"),
              std::string::npos)
        << refused.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "data/hookvault.db"));
}

TEST_F(DaemonTest, AStartThatFailsHalfWayClosesWhatItOpened) {
  // The admin listener's port is taken: the start fails after the store,
  // the pipeline and the public listener are up.
  const int taken = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::uint16_t taken_port = ntohs(addr.sin_port);

  Config config = write_config();
  config.admin.listen.port = taken_port;
  EXPECT_THROW(Daemon(config, DaemonOptions{.handle_signals = false}), std::runtime_error);
  ::close(taken);

  // Everything it opened was closed again: the same store opens, and the
  // admin port is free for the next start.
  Daemon daemon(config, DaemonOptions{.handle_signals = false});
  EXPECT_EQ(daemon.admin_endpoint()->port, taken_port);
  Running running(daemon);
  const std::uint16_t port = daemon.public_endpoint().port;
  ASSERT_TRUE(eventually([&] { return get(port, "/readyz").status == 200; }));
  EXPECT_EQ(post_nodit(port, nodit_message(1), kSecretA).status, 200u);
}

TEST_F(DaemonTest, StopBeforeRunMakesRunReturnOnceStarted) {
  Daemon daemon(write_config(), DaemonOptions{.handle_signals = false});
  const std::uint16_t port = daemon.public_endpoint().port;
  daemon.stop();
  daemon.run();  // returns: the shutdown was already asked for
  EXPECT_TRUE(refused(port));
}

}  // namespace
}  // namespace hookvault
