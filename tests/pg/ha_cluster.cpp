#include "ha_cluster.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "e2e.hpp"
#include "pg_cluster.hpp"

extern char** environ;

namespace hookvault::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kHaproxy[] = "/usr/sbin/haproxy";
constexpr char kSetpriv[] = "/usr/bin/setpriv";

// A port nothing listens on now (bound to 0, then released): HAProxy takes no
// port 0 whose number it would tell.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// The stats socket's answer to `command`.
std::string stats_command(const fs::path& socket_path, const std::string& command) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return {};
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string p = socket_path.string();
  if (p.size() >= sizeof a.sun_path) {
    ::close(fd);
    throw std::runtime_error("stats socket path too long: " + p);
  }
  std::copy(p.begin(), p.end(), a.sun_path);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::write(fd, command.data(), command.size()) == static_cast<ssize_t>(command.size())) {
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
      out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) fields.push_back(field);
  return fields;
}

int wait_pid(int pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const int r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (r < 0) return -1;
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -SIGKILL;
}

std::string haproxy_config(const fs::path& dir, std::uint16_t port,
                           const std::map<std::string, std::uint16_t>& servers) {
  std::ostringstream c;
  c << "global\n"
    << "  stats socket " << (dir / "haproxy.sock").string() << " mode 600 level admin\n"
    << "  maxconn 2000\n"
    << "defaults\n"
    << "  mode tcp\n"
    << "  timeout connect 2s\n"
    << "  timeout client 30s\n"
    << "  timeout server 30s\n"
    // A check's whole time; without it a check must end within `inter`,
    // and a slow handshake (a sanitizer build) would mark an instance down.
    << "  timeout check 5s\n"
    << "  retries 2\n"
    << "  option redispatch\n"
    << "frontend hookvault\n"
    << "  bind 127.0.0.1:" << port << "\n"
    << "  default_backend hookvault\n"
    << "backend hookvault\n"
    << "  balance roundrobin\n"
    << "  option httpchk GET /readyz\n"
    << "  http-check expect status 200\n";
  for (const auto& [name, server_port] : servers) {
    c << "  server " << name << " 127.0.0.1:" << server_port
      << " check check-ssl verify none inter 200ms fall 2 rise 2\n";
  }
  return c.str();
}

}  // namespace

Haproxy::Haproxy(const fs::path& dir, const std::map<std::string, std::uint16_t>& servers)
    : dir_(dir) {
  // A free port can be taken by another process before HAProxy binds it:
  // then HAProxy exits at once and another port is tried.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_port();
    write_file(dir_ / "haproxy.cfg", haproxy_config(dir_, port_, servers), 0600);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, (dir_ / "haproxy.log").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::string cfg = (dir_ / "haproxy.cfg").string();
    // Through setpriv: HAProxy dies with the test process (its parent-death
    // signal), however that ends.
    std::vector<std::string> args = {kSetpriv, "--pdeathsig", "KILL", "--",
                                     kHaproxy, "-db",         "-f",   cfg};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, kSetpriv, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + std::string(kHaproxy));
    pid_ = pid;
    const bool up = eventually(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
          }
          return !this->servers().empty();
        },
        10s);
    if (pid_ > 0 && up) return;
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait_pid(pid_, 5s);
      pid_ = -1;
    }
  }
  throw std::runtime_error("haproxy did not start:\n" + log());
}

Haproxy::~Haproxy() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    wait_pid(pid_, 10s);
  }
}

std::map<std::string, Haproxy::ServerStat> Haproxy::servers() const {
  std::map<std::string, ServerStat> out;
  std::istringstream lines(stats_command(dir_ / "haproxy.sock", "show stat\n"));
  std::vector<std::string> header;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# ", 0) == 0) {
      header = split_csv(line.substr(2));
      continue;
    }
    const auto f = split_csv(line);
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < f.size() && i < header.size(); ++i) row[header[i]] = f[i];
    if (row["pxname"] != "hookvault" || row["svname"] == "FRONTEND" || row["svname"] == "BACKEND") {
      continue;
    }
    ServerStat s;
    s.status = row["status"];
    s.sessions = row["stot"].empty() ? 0 : std::stoull(row["stot"]);
    out[row["svname"]] = s;
  }
  return out;
}

bool Haproxy::wait_all(const std::string& status, std::chrono::milliseconds limit) const {
  return eventually(
      [&] {
        const auto s = servers();
        if (s.empty()) return false;
        for (const auto& [name, stat] : s) {
          if (stat.status != status) return false;
        }
        return true;
      },
      limit);
}

std::string Haproxy::log() const { return read_file(dir_ / "haproxy.log"); }

HaFixture::HaFixture(const HaOptions& options) {
  static std::atomic<int> counter{0};
  database_ = "ha_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const auto& cluster = options.cluster != nullptr ? *options.cluster : shared_pg_cluster();
  cluster.create_database(database_);
  // Both hosts: after a promotion libpq finds the new primary by itself.
  const std::string conninfo = "host=127.0.0.1,127.0.0.1 port=" + cluster.env("PRIMARY_PORT") +
                               "," + cluster.env("STANDBY_PORT") + " dbname=" + database_ +
                               " user=hookvault target_session_attrs=read-write";
  const auto& s = setup();
  write_file(dir_.path() / "pg_password", cluster.password(), 0600);
  std::ostringstream t;
  t << "[server]\nlisten = \"127.0.0.1:0\"\n"
    << "tls_cert = \"" << (s.root / "tls/cert.pem").string() << "\"\n"
    << "tls_key = \"" << (s.root / "tls/key.pem").string() << "\"\n"
    << "threads = 2\nidle_timeout = \"5s\"\n"
    << "[storage]\nbackend = \"postgresql\"\nconninfo = \"" << conninfo << " connect_timeout=2\"\n"
    << "password_file = \"" << (dir_.path() / "pg_password").string() << "\"\n"
    << "[kek]\nprovider = \"file\"\nfile = \"" << (s.root / "keys/kek.key").string() << "\"\n"
    << "[log]\nformat = \"json\"\nlevel = \"info\"\n"
    << "[[sources]]\nname = \"dynamic\"\nprovider = \"dynamic\"\npath = \"/webhooks/dynamic\"\n"
    << "secret_files = [\"" << (s.root / "secrets/dynamic_webhook_secret").string() << "\"]\n"
    << "rsa_private_keys = [{ file = \"" << (s.root / "keys/dynamic_rsa.pem").string()
    << "\", kid = \"dynamic_rsa_lSuvWlCy\" }]\n"
    << "[[sources]]\nname = \"nodit\"\nprovider = \"nodit\"\npath = \"/webhooks/nodit\"\n"
    << "secret_files = [\"" << (s.root / "secrets/nodit_signing_key").string() << "\"]\n"
    << options.nodit_toml
    << admin_toml(
           "[[admin.clients]]\nsubject_cn = \"signer\"\nroles = [\"materials:read\"]\n"
           "[[admin.clients]]\nsubject_cn = \"auditor\"\nroles = [\"events:read\", "
           "\"metrics:read\"]\n");
  config_ = dir_.path() / "hookvault.toml";
  write_file(config_, t.str(), 0600);
  for (int i = 0; i < 2; ++i) instances_.push_back(std::make_unique<Daemon>(config_));
  haproxy_ = std::make_unique<Haproxy>(
      dir_.path(), std::map<std::string, std::uint16_t>{{"a", instances_[0]->port()},
                                                        {"b", instances_[1]->port()}});
  if (!haproxy_->wait_all("UP", 20s)) {
    throw std::runtime_error("haproxy never saw both instances ready:\n" + haproxy_->log());
  }
}

// Each instance still running stops cleanly on SIGTERM (-1: a test killed
// it), and no instance's log holds a sanitizer's report.
HaFixture::~HaFixture() {
  haproxy_.reset();
  for (std::size_t i = 0; i < instances_.size(); ++i) {
    const int status = instances_[i]->stop();
    const std::string log = instances_[i]->log();
    if ((status != 0 && status != -1) || log.find("AddressSanitizer") != std::string::npos ||
        log.find("runtime error:") != std::string::npos) {
      ADD_FAILURE() << "instance " << i << " exited " << status << ":\n" << log;
    }
  }
  instances_.clear();
}

namespace {

HttpResponse request_once(std::uint16_t port, const std::string& method, const std::string& target,
                          const std::map<std::string, std::string>& headers,
                          const std::string& body) {
  try {
    HttpsClient c(port, setup().root / "tls/cert.pem");
    return c.request(method, target, headers, body);
  } catch (const std::exception&) {
    return HttpResponse{};
  }
}

}  // namespace

HttpResponse HaFixture::post_dynamic(std::uint16_t port, const std::string& body) const {
  return request_once(
      port, "POST", "/webhooks/dynamic",
      {{"Content-Type", "application/json"},
       {"x-dynamic-signature-256", "sha256=" + hmac_hex(setup().dynamic_secret, body)}},
      body);
}

HttpResponse HaFixture::post_nodit(std::uint16_t port, const std::string& body) const {
  return request_once(
      port, "POST", "/webhooks/nodit",
      {{"Content-Type", "application/json"}, {"x-signature", hmac_hex(setup().nodit_key, body)}},
      body);
}

HttpResponse HaFixture::get(std::uint16_t port, const std::string& target) const {
  return request_once(port, "GET", target, {}, {});
}

std::unique_ptr<HttpsClient> HaFixture::admin(std::size_t i, const std::string& cn) {
  const auto& s = setup();
  auto it = certs_.find(cn);
  if (it == certs_.end()) {
    ClientCertificate c =
        cn == "signer"
            ? ClientCertificate{s.offline / "signer-cert.pem", s.offline / "signer-key.pem"}
            : make_client_cert(dir_.path(), cn, s.root / "tls/admin-ca.pem",
                               s.offline / "admin-ca.key");
    it = certs_.emplace(cn, c).first;
  }
  return std::make_unique<HttpsClient>(instances_.at(i)->admin_port(), s.root / "tls/admin-ca.pem",
                                       it->second);
}

std::vector<Json> HaFixture::cli_json_lines(std::vector<std::string> args) const {
  std::string command;
  for (const auto& a : args) command += " " + a;
  args.push_back("--config");
  args.push_back(config_.string());
  auto r = run_hookvault(args);
  EXPECT_EQ(r.exit_code, 0) << "hookvault" << command << ": " << r.err;
  return json_lines(r.out);
}

// The feed stops before the oldest transaction still running on the server
// (docs/postgresql.md, "The events feed"): an instance's heartbeat commit in
// flight holds back what committed after it began. So the list is read until
// two reads 300 ms apart agree (10 s at most); what was lost or stored twice
// stays so in every read.
std::map<std::string, int> HaFixture::stored(const std::string& source) const {
  const auto read = [&] {
    std::map<std::string, int> out;
    for (const auto& e :
         cli_json_lines({"events", "list", "--source", source, "--limit", "100000"})) {
      ++out[e["eventId"].get<std::string>()];
    }
    return out;
  };
  auto last = read();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto again = read();
    if (again == last) break;
    last = std::move(again);
  }
  return last;
}

double HaFixture::metric(std::size_t i, const std::string& series) {
  auto r = admin(i, "auditor")->request("GET", "/metrics");
  EXPECT_EQ(r.status, 200U) << r.body;
  return sample_value(r.body, series);
}

}  // namespace hookvault::testing
