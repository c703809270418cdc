#include "pg_cluster.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

extern char** environ;

namespace hookvault::testing {
namespace {

namespace fs = std::filesystem;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

// Runs `command` through the shell; its stdout and stderr, and its status.
std::string shell(const std::string& command, int* status) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  std::array<char, 4096> buf{};
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;)
    out.append(buf.data(), n);
  const int st = ::pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return out;
}

std::string script() { return std::string(HOOKVAULT_SOURCE_DIR) + "/scripts/pg-cluster"; }

// The reaper (pg_cluster.hpp): `sh` in a session of its own starts a
// background subshell, which init adopts when `sh` exits at once, so neither
// a signal to the test's process group nor ctest's kill of the test's
// process tree reaches it. The subshell reads fd 3 (the pipe's read end)
// until end of file: the write end is close-on-exec and held by this
// process alone, so the end comes when this process is gone, however it
// ended. Returns the write end; `pid` gets the subshell's pid.
int start_reaper(const fs::path& dir, int* pid) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const std::string body =
      "( trap '' HUP INT TERM PIPE; cat <&3 >/dev/null; \"$2\" stop \"$1\"; rm -rf \"$1\" ) & "
      "echo $! > \"$1/reaper.pid\"";
  std::vector<std::string> args = {"/bin/sh", "-c", body, "sh", dir.string(), script()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t sh = -1;
  const int rc = ::posix_spawn(&sh, "/bin/sh", &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[0]);
  int status = 0;
  if (rc != 0 || ::waitpid(sh, &status, 0) != sh || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    ::close(fds[1]);
    throw std::runtime_error("cannot start the cluster's reaper");
  }
  std::ifstream in(dir / "reaper.pid");
  if (!(in >> *pid)) *pid = -1;
  return fds[1];
}

// The postmaster pid of `node`'s postmaster.pid when that process runs a
// postgres whose command line names `data` (not a reused pid); else -1.
int live_postmaster(const fs::path& data) {
  std::ifstream in(data / "postmaster.pid");
  int pid = -1;
  if (!(in >> pid) || pid <= 0) return -1;
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
  std::string line((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
  for (char& c : line) {
    if (c == '\0') c = ' ';
  }
  return line.find("postgres") != std::string::npos && line.find(data.string()) != std::string::npos
             ? pid
             : -1;
}

}  // namespace

PgCluster::PgCluster() {
  std::string tmpl = (fs::temp_directory_path() / "hv-pg-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  reaper_fd_ = start_reaper(dir_, &reaper_pid_);
  run("create");
  std::ifstream in(dir_ / "env");
  for (std::string line; std::getline(in, line);) {
    if (const auto eq = line.find('='); eq != std::string::npos) {
      env_[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  if (env_.count("PRIMARY_PORT") == 0) throw std::runtime_error("pg-cluster wrote no env");
}

PgCluster::~PgCluster() {
  const auto left = stop();
  if (!left.empty()) {
    ADD_FAILURE() << "pg-cluster stop left " << left.size() << " server(s) of " << dir_
                  << " running (killed)";
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (reaper_fd_ >= 0) ::close(reaper_fd_);  // the reaper finds nothing left, and ends
}

std::vector<int> PgCluster::running_servers() const {
  std::vector<int> out;
  for (const char* node : {"primary", "standby"}) {
    if (const int pid = live_postmaster(dir_ / node); pid > 0) out.push_back(pid);
  }
  return out;
}

std::vector<int> PgCluster::stop() const {
  int status = 0;
  shell(script() + " stop " + quote(dir_.string()), &status);
  const auto left = running_servers();
  for (const int pid : left) ::kill(pid, SIGKILL);
  return left;
}

const std::string& PgCluster::env(const std::string& key) const {
  const auto it = env_.find(key);
  if (it == env_.end()) throw std::runtime_error("pg-cluster env has no " + key);
  return it->second;
}

std::string PgCluster::primary_conninfo() const {
  return "host=127.0.0.1 port=" + env("PRIMARY_PORT") + " dbname=hookvault user=hookvault";
}

std::string PgCluster::standby_conninfo() const {
  return "host=127.0.0.1 port=" + env("STANDBY_PORT") + " dbname=hookvault user=hookvault";
}

std::string PgCluster::create_database(const std::string& name) const {
  psql("primary", "CREATE DATABASE " + name + " OWNER hookvault");
  return "host=127.0.0.1 port=" + env("PRIMARY_PORT") + " dbname=" + name + " user=hookvault";
}

std::string PgCluster::password() const {
  std::ifstream in(env("PASSWORD_FILE"));
  std::string p;
  std::getline(in, p);
  return p;
}

std::string PgCluster::run(const std::string& cmd, const std::string& args) const {
  int status = 0;
  std::string out =
      shell(script() + " " + cmd + " " + quote(dir_.string()) + (args.empty() ? "" : " " + args),
            &status);
  if (status != 0) throw std::runtime_error("pg-cluster " + cmd + " failed: " + out);
  return out;
}

std::string PgCluster::psql(const std::string& server, const std::string& sql,
                            const std::string& database) const {
  std::string out = run("psql", server + " " + quote(sql) + " " + quote(database));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

namespace {

std::unique_ptr<PgCluster>& shared_slot() {
  static std::unique_ptr<PgCluster> cluster;
  return cluster;
}

class StopSharedCluster : public ::testing::Environment {
 public:
  void TearDown() override { shared_slot().reset(); }
};
[[maybe_unused]] const auto* const kStopShared =
    ::testing::AddGlobalTestEnvironment(new StopSharedCluster);

}  // namespace

PgCluster& shared_pg_cluster() {
  if (!shared_slot()) shared_slot() = std::make_unique<PgCluster>();
  return *shared_slot();
}

}  // namespace hookvault::testing
