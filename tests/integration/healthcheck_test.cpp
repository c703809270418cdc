// `hookvault healthcheck` against the real daemon over real TLS: healthy,
// nothing listening, not ready (the store cannot commit), another certificate,
// and a listener that accepts and never answers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

using std::chrono::steady_clock;

// A TCP socket on 127.0.0.1 with a kernel-chosen port. listen(): the kernel
// completes TCP handshakes into the backlog, and nothing ever answers.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        (listening && ::listen(fd_, 8) != 0)) {
      throw std::runtime_error("cannot set up a loopback socket");
    }
    port_ = ntohs(addr.sin_port);
  }
  ~LoopbackSocket() { close(); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;
  std::uint16_t port() const { return port_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class HealthcheckTest : public E2E {
 protected:
  // The test's config with [server] listen on `port` (the daemon's own config
  // says port 0) and, when given, another tls_cert: what an operator's config
  // for a serving daemon looks like.
  std::filesystem::path probe_config(std::uint16_t port,
                                     const std::filesystem::path& tls_cert = {}) {
    std::string text = read_file(config_);
    replace(text, "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:" + std::to_string(port) + "\"");
    if (!tls_cert.empty()) {
      replace(text, "tls_cert = \"" + (setup().root / "tls/cert.pem").string() + "\"",
              "tls_cert = \"" + tls_cert.string() + "\"");
    }
    const auto file = dir_.path() / "probe.toml";
    write_file(file, text, 0600);
    return file;
  }

  static void replace(std::string& text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  }

  static ProcessResult healthcheck(const std::filesystem::path& config,
                                   std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"healthcheck", "--config", config.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_hookvault(args);
  }

  // A self-signed certificate with the same subject and names as init's.
  std::filesystem::path other_certificate() {
    const auto cert = dir_.path() / "other-cert.pem";
    const auto key = dir_.path() / "other-key.pem";
    const auto log = dir_.path() / "openssl.log";
    const std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
        "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 -keyout " +
        key.string() + " -out " + cert.string() + " > " + log.string() + " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << read_file(log);
    return cert;
  }

  // Another process holding the store's write lock (sqlite3 in BEGIN
  // IMMEDIATE) for as long as this lives: the daemon's commits time out (its
  // busy timeout is 5 s), its write probes fail, and it reports not ready.
  class WriteLockHolder {
   public:
    explicit WriteLockHolder(const std::filesystem::path& db) : db_(db) {
      const std::string command = "sqlite3 " + db.string() + " > /dev/null 2>&1";
      pipe_ = ::popen(command.c_str(), "w");
      if (pipe_ == nullptr) throw std::runtime_error("cannot run sqlite3");
      std::fputs(".timeout 10000\nBEGIN IMMEDIATE;\n", pipe_);  // waits out the daemon's own writes
      std::fflush(pipe_);
    }
    ~WriteLockHolder() { release(); }
    WriteLockHolder(const WriteLockHolder&) = delete;
    WriteLockHolder& operator=(const WriteLockHolder&) = delete;
    // True once another writer is refused three times in a row (sqlite3's
    // default busy timeout is 0), so a brief write of the daemon's own is not
    // taken for the lock.
    bool wait_until_held() const {
      const std::string probe =
          "sqlite3 " + db_.string() + " 'BEGIN IMMEDIATE; ROLLBACK;' > /dev/null 2>&1";
      int refused = 0;
      for (int i = 0; i < 200 && refused < 3; ++i) {
        refused = std::system(probe.c_str()) != 0 ? refused + 1 : 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      return refused == 3;
    }
    void release() {  // sqlite3 sees end of input, rolls back and exits
      if (pipe_ != nullptr) ::pclose(pipe_);
      pipe_ = nullptr;
    }

   private:
    std::filesystem::path db_;
    FILE* pipe_ = nullptr;
  };
};

TEST_F(HealthcheckTest, ServingDaemonIsHealthy) {
  start();
  const auto config = probe_config(daemon_->port());
  auto ready = healthcheck(config);
  EXPECT_EQ(ready.exit_code, 0) << ready.err;
  EXPECT_EQ(ready.out,
            "ok: https://127.0.0.1:" + std::to_string(daemon_->port()) + "/readyz 200\n");
  EXPECT_EQ(ready.err, "");
  auto live = healthcheck(config, {"--live", "--timeout", "2s"});
  EXPECT_EQ(live.exit_code, 0) << live.err;
  EXPECT_NE(live.out.find("/healthz 200"), std::string::npos) << live.out;
}

TEST_F(HealthcheckTest, WildcardListenIsProbedOnLoopback) {
  // The daemon on 0.0.0.0 (as in the container), the probe's config saying the same.
  std::string text = read_file(write_config());
  replace(text, "listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
  write_file(config_, text, 0600);
  start(config_);
  replace(text, "listen = \"0.0.0.0:0\"",
          "listen = \"0.0.0.0:" + std::to_string(daemon_->port()) + "\"");
  const auto config = dir_.path() / "probe.toml";
  write_file(config, text, 0600);
  auto r = healthcheck(config);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok: https://127.0.0.1:" + std::to_string(daemon_->port()) + "/readyz 200\n");
}

TEST_F(HealthcheckTest, NothingListeningIsUnhealthy) {
  write_config();
  std::uint16_t port = 0;
  {
    LoopbackSocket bound(false);  // a free port, released again: nothing listens on it
    port = bound.port();
  }
  auto r = healthcheck(probe_config(port));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "unhealthy: https://127.0.0.1:" + std::to_string(port) +
                       "/readyz: connect: Connection refused\n");
}

TEST_F(HealthcheckTest, StoreThatCannotCommitIsNotReadyButLive) {
  start();
  const auto config = probe_config(daemon_->port());
  ASSERT_EQ(healthcheck(config).exit_code, 0);

  // Another process takes the write lock and keeps it: the next delivery
  // cannot commit (503 after the daemon's 5 s busy timeout), and /readyz follows.
  WriteLockHolder lock(dir_.path() / "data/hookvault.db");
  ASSERT_TRUE(lock.wait_until_held());
  auto refused = post_signed(ping_event(uuid()));
  ASSERT_EQ(refused.status, 503U) << refused.body;

  auto not_ready = healthcheck(config);
  EXPECT_EQ(not_ready.exit_code, 1);
  EXPECT_EQ(not_ready.err, "unhealthy: https://127.0.0.1:" + std::to_string(daemon_->port()) +
                               "/readyz: HTTP 503\n");
  EXPECT_EQ(healthcheck(config, {"--live"}).exit_code, 0);  // running, just not ready

  // The lock goes: the daemon's write probe (every second) makes it ready again.
  lock.release();
  const auto until = steady_clock::now() + std::chrono::seconds(15);
  int code = 1;
  while (code != 0 && steady_clock::now() < until) {
    code = healthcheck(config).exit_code;
    if (code != 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(code, 0);
}

TEST_F(HealthcheckTest, AnotherCertificateIsUnhealthy) {
  start();
  const auto other = other_certificate();
  // Same subject and names, another key: the chain does not verify.
  auto r = healthcheck(probe_config(daemon_->port(), other));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("unhealthy: https://127.0.0.1:", 0), 0U) << r.err;
  EXPECT_NE(r.err.find("/readyz: tls_handshake: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.err;

  // A file that trusts the served certificate too but names another one
  // first: the chain verifies, the pin does not match.
  const auto both = dir_.path() / "both.pem";
  write_file(both, read_file(other) + read_file(setup().root / "tls/cert.pem"), 0644);
  auto pinned = healthcheck(probe_config(daemon_->port(), both));
  EXPECT_EQ(pinned.exit_code, 1);
  EXPECT_NE(pinned.err.find("the certificate is not the configured tls_cert"), std::string::npos)
      << pinned.err;
  // Nothing from the key or the secrets ever reaches the output.
  EXPECT_EQ(pinned.err.find("PRIVATE"), std::string::npos);
  EXPECT_EQ(pinned.err.find(setup().dynamic_secret), std::string::npos);
}

TEST_F(HealthcheckTest, ListenerThatNeverAnswersTimesOut) {
  write_config();
  LoopbackSocket silent(true);
  const auto started = steady_clock::now();
  auto r = healthcheck(probe_config(silent.port()), {"--timeout", "1s"});
  const auto took = steady_clock::now() - started;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "unhealthy: https://127.0.0.1:" + std::to_string(silent.port()) +
                       "/readyz: timed out after 1000ms (tls_handshake)\n");
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_F(HealthcheckTest, UnusableOptionsAndConfigsSayWhy) {
  write_config();
  auto zero = healthcheck(config_);  // the test config listens on port 0
  EXPECT_EQ(zero.exit_code, 1);
  EXPECT_NE(zero.err.find("port 0"), std::string::npos) << zero.err;
  auto bad = healthcheck(probe_config(8443), {"--timeout", "soon"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("error: "), std::string::npos) << bad.err;
  auto missing =
      run_hookvault({"healthcheck", "--config", (dir_.path() / "does-not-exist.toml").string()});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("does-not-exist.toml"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace hookvault::testing
