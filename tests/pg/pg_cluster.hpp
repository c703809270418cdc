// A throwaway PostgreSQL 15 primary with a synchronous standby on loopback for
// the PostgreSQL tests, made and driven by scripts/pg-cluster (real servers,
// started by the test itself; as root they run as the `postgres` user).
//
// The servers are not the test's children (pg_ctl starts them in a session
// of their own), so they would outlive a test process that dies without its
// destructors (SIGKILL, a ctest timeout, a crash). Each cluster therefore has
// a reaper: a shell outside the test's process tree and session that waits
// for the end of a pipe only the test process holds, and then stops the
// cluster and removes its folder (after a clean end there is nothing left to
// do). PgLeak.* shows it.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace hookvault::testing {

class PgCluster {
 public:
  // Creates the cluster in a fresh folder under the temporary directory.
  // Throws std::runtime_error with the script's output when it fails.
  PgCluster();
  ~PgCluster();  // stop(), removes the folder, ends the reaper
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

  // The postmasters of this cluster that are running (the pid in each node's
  // postmaster.pid, when that process is a postgres of this folder).
  std::vector<int> running_servers() const;
  // Stops both servers (scripts/pg-cluster stop); a postmaster still running
  // afterwards is killed (SIGKILL). Returns what was still running after
  // the script, before the kill (empty when it stopped everything).
  std::vector<int> stop() const;
  // The reaper's pid (a shell outside this process's tree).
  int reaper_pid() const noexcept { return reaper_pid_; }

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::string> env_;
  int reaper_fd_ = -1;  // the pipe's write end; its closing starts the reaper
  int reaper_pid_ = -1;
};

// The cluster every test of the binary shares: made on first use, stopped
// when the tests end.
PgCluster& shared_pg_cluster();

}  // namespace hookvault::testing
