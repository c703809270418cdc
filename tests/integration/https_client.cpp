#include "https_client.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test_support.hpp"

extern char** environ;

namespace hookvault::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct HttpsClient::Impl {
  asio::io_context ioc;
  ssl::context ctx{ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
};

HttpsClient::HttpsClient(std::uint16_t port, const std::filesystem::path& ca_file,
                         const ClientCertificate& client_cert, const std::string& preamble)
    : impl_(std::make_unique<Impl>()) {
  if (!client_cert.cert.empty()) {
    impl_->ctx.use_certificate_chain_file(client_cert.cert.string());
    impl_->ctx.use_private_key_file(client_cert.key.string(), ssl::context::pem);
  }
  if (!ca_file.empty()) {
    impl_->ctx.load_verify_file(ca_file.string());
    impl_->ctx.set_verify_mode(ssl::verify_peer);
  } else {
    impl_->ctx.set_verify_mode(ssl::verify_none);
  }
  impl_->stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(impl_->ioc, impl_->ctx);
  if (!ca_file.empty()) {
    impl_->stream->set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  }
  beast::get_lowest_layer(*impl_->stream)
      .connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  if (!preamble.empty())
    asio::write(beast::get_lowest_layer(*impl_->stream), asio::buffer(preamble));
  impl_->stream->handshake(ssl::stream_base::client);
}

HttpsClient::~HttpsClient() = default;

HttpResponse HttpsClient::request(const std::string& method, const std::string& target,
                                  const std::map<std::string, std::string>& headers,
                                  const std::string& body) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (!body.empty() || method == "POST") req.prepare_payload();
  req.keep_alive(true);
  beast::get_lowest_layer(*impl_->stream).expires_after(std::chrono::seconds(60));
  http::write(*impl_->stream, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(*impl_->stream, impl_->buffer, parser);
  auto& res = parser.get();
  HttpResponse out;
  out.status = res.result_int();
  out.body = res.body();
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.headers[name] = std::string(f.value());
  }
  return out;
}

void HttpsClient::write_raw(const std::string& bytes) {
  beast::get_lowest_layer(*impl_->stream).expires_after(std::chrono::seconds(60));
  asio::write(*impl_->stream, asio::buffer(bytes));
}

std::pair<std::string, bool> HttpsClient::read_until_close(std::chrono::milliseconds timeout) {
  std::string got;
  beast::get_lowest_layer(*impl_->stream).expires_after(timeout);
  char buf[4096];
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = impl_->stream->read_some(asio::buffer(buf), ec);
    got.append(buf, n);
    if (ec == beast::error::timeout) return {got, false};
    if (ec) return {got, true};
  }
}

namespace {

// Children are started through util-linux's setpriv, which sets their
// parent-death signal to SIGKILL before it runs the binary: a test process
// that dies without its destructors (SIGKILL, a crash, a ctest timeout)
// takes its hookvault children with it. (The signal follows the thread that
// started the child: every caller starts them from the test's main thread,
// or waits for them on the thread that started them.)
constexpr char kSetpriv[] = "/usr/bin/setpriv";

std::vector<char*> make_argv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kSetpriv));
  argv.push_back(const_cast<char*>("--pdeathsig"));
  argv.push_back(const_cast<char*>("KILL"));
  argv.push_back(const_cast<char*>("--"));
  argv.push_back(const_cast<char*>(HOOKVAULT_BINARY));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

std::vector<std::string> make_env(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

int spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
          const std::filesystem::path& out_file, const std::filesystem::path& err_file) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  auto argv = make_argv(args);
  auto env_strings = make_env(env);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kSetpriv, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("posix_spawn failed");
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

int wait_status(int pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return decode_status(status);
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& args, const std::filesystem::path& out,
                           const std::filesystem::path& err,
                           const std::map<std::string, std::string>& env)
    : pid_(spawn(args, env, out, err)), out_(out), err_(err) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) kill9();
}

std::string ChildProcess::out() const { return read_file(out_); }
std::string ChildProcess::err() const { return read_file(err_); }

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
  pid_ = -1;
  exit_status_ = decode_status(status);
  return false;
}

int ChildProcess::wait() {
  if (pid_ > 0) {
    exit_status_ = wait_status(pid_);
    pid_ = -1;
  }
  return exit_status_;
}

void ChildProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  exit_status_ = wait_status(pid_);
  pid_ = -1;
}

ProcessResult run_hookvault(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env) {
  TempDir tmp;
  ChildProcess child(args, tmp / "out", tmp / "err", env);
  ProcessResult r;
  r.exit_code = child.wait();
  r.out = child.out();
  r.err = child.err();
  return r;
}

Daemon::Daemon(const std::filesystem::path& config, const std::map<std::string, std::string>& env) {
  log_file_ = config.parent_path() /
              ("daemon-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()) + ".log");
  pid_ = spawn({"serve", "--config", config.string()}, env, "/dev/null", log_file_);
  running_ = true;
  // Wait for {"msg":"listening","listener":"public",...,"port":N} (JSON) or
  // "listening listener=public ... port=N" (text), and for the admin
  // listener's line too when the config has an [admin] table.
  const bool want_admin = read_file(config).find("[admin]") != std::string::npos;
  static const std::regex kListener(R"(listener"?[:=]"?(public|admin))");
  static const std::regex kPort(R"("?port"?[:=]([0-9]+))");
  for (int i = 0; i < 600; ++i) {
    std::istringstream lines(read_file(log_file_));
    std::string line;
    while (std::getline(lines, line)) {
      std::smatch name;
      std::smatch port;
      if (line.find("listening") == std::string::npos ||
          !std::regex_search(line, name, kListener) || !std::regex_search(line, port, kPort)) {
        continue;
      }
      const auto n = static_cast<std::uint16_t>(std::stoi(port[1]));
      (name[1] == "admin" ? admin_port_ : port_) = n;
    }
    if (port_ != 0 && (!want_admin || admin_port_ != 0)) return;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      running_ = false;
      throw std::runtime_error("hookvault serve exited early:\n" + read_file(log_file_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill9();
  throw std::runtime_error("hookvault serve did not start listening:\n" + read_file(log_file_));
}

Daemon::~Daemon() {
  if (running_) stop();
}

int Daemon::stop(std::chrono::milliseconds timeout) {
  if (!running_) return -1;
  ::kill(pid_, SIGTERM);
  return wait(timeout);
}

void Daemon::terminate() {
  if (running_) ::kill(pid_, SIGTERM);
}

int Daemon::wait(std::chrono::milliseconds timeout) {
  if (!running_) return -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    int r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      running_ = false;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill9();
      return -SIGKILL;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::size_t Daemon::log_count(const std::string& needle) const {
  return count_of(read_file(log_file_), needle);
}

bool Daemon::wait_for_log(const std::string& needle, std::size_t count,
                          std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (log_count(needle) >= count) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Daemon::hangup() {
  if (running_) ::kill(pid_, SIGHUP);
}

void Daemon::kill9() {
  if (!running_) return;
  ::kill(pid_, SIGKILL);
  wait_status(pid_);
  running_ = false;
}

std::string Daemon::log() const { return read_file(log_file_); }

}  // namespace hookvault::testing
