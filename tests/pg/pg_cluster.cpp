#include "pg_cluster.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>

#include <gtest/gtest.h>

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

}  // namespace

PgCluster::PgCluster() {
  std::string tmpl = (fs::temp_directory_path() / "hv-pg-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
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
  int status = 0;
  shell(std::string(HOOKVAULT_SOURCE_DIR) + "/scripts/pg-cluster stop " + quote(dir_.string()),
        &status);
  std::error_code ec;
  fs::remove_all(dir_, ec);
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
  std::string out = shell(std::string(HOOKVAULT_SOURCE_DIR) + "/scripts/pg-cluster " + cmd + " " +
                              quote(dir_.string()) + (args.empty() ? "" : " " + args),
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
