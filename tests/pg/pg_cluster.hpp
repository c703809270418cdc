// A throwaway PostgreSQL 15 primary with a synchronous standby on loopback for
// the PostgreSQL tests, made and driven by scripts/pg-cluster (real servers,
// started by the test itself; as root they run as the `postgres` user).
#pragma once

#include <filesystem>
#include <map>
#include <string>

namespace hookvault::testing {

class PgCluster {
 public:
  // Creates the cluster in a fresh folder under the temporary directory.
  // Throws std::runtime_error with the script's output when it fails.
  PgCluster();
  ~PgCluster();  // stops both servers and removes the folder
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  const std::filesystem::path& dir() const noexcept { return dir_; }
  // PRIMARY_PORT, STANDBY_PORT, PASSWORD_FILE, CONNINFO, SOCKET_DIR.
  const std::string& env(const std::string& key) const;
  // "host=127.0.0.1 port=<primary> dbname=hookvault user=hookvault"
  std::string primary_conninfo() const;
  std::string standby_conninfo() const;
  // A new, empty database owned by the role `hookvault`; its conninfo on the
  // primary.
  std::string create_database(const std::string& name) const;
  // The role's password, as the password file holds it.
  std::string password() const;

  // scripts/pg-cluster CMD DIR [args]; throws when it exits non-zero.
  std::string run(const std::string& cmd, const std::string& args = {}) const;
  // SQL as the superuser on "primary" or "standby" (in `database`); the
  // output of psql -At.
  std::string psql(const std::string& server, const std::string& sql,
                   const std::string& database = "postgres") const;

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::string> env_;
};

// The cluster every test of the binary shares: made on first use, stopped
// when the tests end.
PgCluster& shared_pg_cluster();

}  // namespace hookvault::testing
