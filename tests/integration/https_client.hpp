// A small synchronous HTTPS client for tests (Beast over real TLS), and a
// child-process runner for the hookvault binary.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hookvault::testing {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names
};

// A client certificate and its key (PEM files) for mutual TLS.
struct ClientCertificate {
  std::filesystem::path cert;
  std::filesystem::path key;
};

// One keep-alive TLS connection to 127.0.0.1:port. The handshake happens in
// the constructor, which throws when it fails.
class HttpsClient {
 public:
  // `ca_file`: verify the server certificate against it (for "localhost"/127.0.0.1);
  // empty: no verification. `client_cert`: presented when the server asks.
  // `preamble`: bytes sent on the TCP connection before the TLS handshake (a
  // PROXY protocol header).
  HttpsClient(std::uint16_t port, const std::filesystem::path& ca_file = {},
              const ClientCertificate& client_cert = {}, const std::string& preamble = {});
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  HttpResponse request(const std::string& method, const std::string& target,
                       const std::map<std::string, std::string>& headers = {},
                       const std::string& body = {});
  // Writes raw bytes on the TLS stream (for slow or malformed clients).
  void write_raw(const std::string& bytes);
  // Reads until the server closes or `timeout`; returns what arrived and
  // whether the connection was closed by the peer.
  std::pair<std::string, bool> read_until_close(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `hookvault ARGS` as a child process: stdin from /dev/null, stdout and stderr
// to files, the test's environment plus `env`. Killed with SIGKILL on
// destruction when still running, and when the test process dies (its
// parent-death signal).
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& args, const std::filesystem::path& out,
               const std::filesystem::path& err,
               const std::map<std::string, std::string>& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  std::string out() const;  // what it wrote to stdout so far
  std::string err() const;
  // False once it has exited (reaped here; exit_status() then tells how).
  bool running();
  // Waits for it; its exit code, or -signal.
  int wait();
  void kill9();
  // The exit code, -signal, or -1 while running.
  int exit_status() const { return exit_status_; }
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  int exit_status_ = -1;
  std::filesystem::path out_;
  std::filesystem::path err_;
};

// Runs the hookvault binary with `args` and waits for it.
ProcessResult run_hookvault(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env = {});

// `hookvault serve --config FILE` as a child process. Waits for its "listening"
// log line and exposes the bound port. Stops it with SIGTERM on destruction.
class Daemon {
 public:
  explicit Daemon(const std::filesystem::path& config,
                  const std::map<std::string, std::string>& env = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  std::uint16_t port() const { return port_; }
  std::uint16_t admin_port() const { return admin_port_; }  // 0 without [admin]
  // SIGTERM and wait; returns the exit status (or -signal).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  void terminate();  // one SIGTERM, no waiting
  // Waits for the exit (SIGKILL after `timeout`); its status as stop() gives it.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  void kill9();
  void hangup();  // SIGHUP: reload
  // Waits until the log holds `needle` at least `count` times.
  bool wait_for_log(const std::string& needle, std::size_t count,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // How often `needle` occurs in the log so far.
  std::size_t log_count(const std::string& needle) const;
  std::string log() const;  // everything the daemon wrote to stderr so far
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::filesystem::path log_file_;
  bool running_ = false;
};

}  // namespace hookvault::testing
