// Several hookvault instances behind a real balancer, for the PostgreSQL
// tests: HAProxy (Debian's haproxy, a child process) in front of two real
// `hookvault serve` children that share one database of the shared test
// cluster (pg_cluster.hpp). HAProxy balances TCP connections round robin and
// health-checks each instance's /readyz over TLS, as docs/postgresql.md's
// sketch does.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "https_client.hpp"
#include "test_support.hpp"

namespace hookvault::testing {

// `haproxy -db -f <dir>/haproxy.cfg` on a free loopback port, with a stats
// socket to read each server's state.
class Haproxy {
 public:
  // `servers`: name -> the instance's public port.
  Haproxy(const std::filesystem::path& dir, const std::map<std::string, std::uint16_t>& servers);
  ~Haproxy();  // SIGTERM, then waits
  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  int pid() const noexcept { return pid_; }
  struct ServerStat {
    std::string status;          // "UP", "DOWN", "UP 1/2", ...
    std::uint64_t sessions = 0;  // connections it forwarded there (stot)
  };
  // Each server's line of `show stat`; empty when the socket does not answer.
  std::map<std::string, ServerStat> servers() const;
  // Waits until every server's status is exactly `status`.
  bool wait_all(const std::string& status, std::chrono::milliseconds limit) const;
  std::string log() const;

 private:
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  int pid_ = -1;
};

class PgCluster;

struct HaOptions {
  // The cluster whose primary and standby the instances are given (the
  // shared one when null): a test that promotes the standby brings its own.
  PgCluster* cluster = nullptr;
  // Appended to the nodit source's table (e.g. a [sources.history] table).
  std::string nodit_toml;
};

// One database of a cluster (the shared one unless options say), one config
// for every instance (postgresql backend with both hosts and
// target_session_attrs=read-write, as docs/postgresql.md says, the init
// folder's keys and secrets, a dynamic and a nodit source, an admin listener
// for "signer", and "auditor" who may also read /metrics), two instances and
// HAProxy in front of them.
class HaFixture {
 public:
  explicit HaFixture(const HaOptions& options = {});
  ~HaFixture();

  const std::filesystem::path& config() const noexcept { return config_; }
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  const std::string& database() const noexcept { return database_; }
  Daemon& instance(std::size_t i) { return *instances_.at(i); }
  Haproxy& haproxy() { return *haproxy_; }

  // A delivery on a new connection to `port` (HAProxy's or an instance's):
  // each request through HAProxy goes to the next instance. Status 0 when
  // the connection or the request failed (no answer).
  HttpResponse post_dynamic(std::uint16_t port, const std::string& body) const;
  HttpResponse post_nodit(std::uint16_t port, const std::string& body) const;
  HttpResponse get(std::uint16_t port, const std::string& target) const;
  // An admin client of instance `i` with the certificate of `cn` ("signer"
  // is init's, from its offline folder; others are made with its CA).
  std::unique_ptr<HttpsClient> admin(std::size_t i, const std::string& cn);

  // `hookvault ARGS --config <config>` (exit 0 expected), its JSON lines.
  std::vector<Json> cli_json_lines(std::vector<std::string> args) const;
  // eventId -> how often `events list` names it (for `source`).
  std::map<std::string, int> stored(const std::string& source) const;
  // The value of `series` (as rendered) in instance i's /metrics (read as
  // "auditor"); -1 when absent.
  double metric(std::size_t i, const std::string& series);

 private:
  TempDir dir_;
  std::string database_;
  std::filesystem::path config_;
  std::vector<std::unique_ptr<Daemon>> instances_;
  std::unique_ptr<Haproxy> haproxy_;
  std::map<std::string, ClientCertificate> certs_;
};

}  // namespace hookvault::testing
