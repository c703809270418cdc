#include "fake_nodit.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "hookvault/json.hpp"
#include "test_support.hpp"

namespace hookvault::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Stream = beast::ssl_stream<beast::tcp_stream>;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kShutdownTimeout = std::chrono::seconds(2);
constexpr std::uint64_t kDefaultRpp = 10;

// ---------------------------------------------------------------------------
// Requests.

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding ('+' is a space); a malformed
// escape stays as it is.
std::string decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const std::size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    std::string name = decode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? std::string() : decode(pair.substr(eq + 1));
    out[std::move(name)] = std::move(value);
  }
  return out;
}

std::optional<std::uint64_t> to_number(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string quoted(const std::string& s) { return Json(s).dump(); }

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct Message {
  std::string status;
  std::string created_at;
  std::string json;
};

struct Answer {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  bool hang = false;
  bool announce_huge = false;  // Mode::announce_huge
};

// A status line and head announcing 1 GiB, and the body's first byte.
constexpr std::string_view kHugeHead =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{";

Answer error_answer(unsigned status, const std::string& code, const std::string& message) {
  return {status, "application/json",
          "{\"code\":" + quoted(code) + ",\"message\":" + quoted(message) + "}", false};
}

}  // namespace

struct FakeNodit::Impl {
  explicit Impl(std::string key) : api_key(std::move(key)) {}

  TempDir dir;
  TlsFiles files;
  const std::string api_key;
  ssl::context tls{ssl::context::tls_server};
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;
  std::thread thread;

  mutable std::mutex mu;
  Mode mode = Mode::normal;
  std::size_t oversized_bytes = 3 * 1024 * 1024;
  std::map<std::string, std::map<std::uint64_t, Message>> messages;
  std::vector<Request> requests;

  void start() {
    files = write_self_signed_cert(dir.path());
    tls.use_certificate_chain_file(files.cert.string());
    tls.use_private_key_file(files.key.string(), ssl::context::pem);
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor.open(ep.protocol());
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    port = acceptor.local_endpoint().port();
    asio::co_spawn(ioc, accept_loop(), asio::detached);
    thread = std::thread([this] { ioc.run(); });
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) continue;
      asio::co_spawn(ioc, session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    Stream stream(std::move(socket), tls);
    beast::get_lowest_layer(stream).expires_after(kHandshakeTimeout);
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, kNoThrow);
    if (hec) co_return;
    beast::flat_buffer buffer;
    for (;;) {
      beast::get_lowest_layer(stream).expires_never();
      http::request<http::string_body> req;
      auto [rec, rn] = co_await http::async_read(stream, buffer, req, kNoThrow);
      if (rec) co_return;
      Answer answer = handle(req);
      if (answer.announce_huge) {
        auto [aec, an] = co_await asio::async_write(stream, asio::buffer(kHugeHead), kNoThrow);
        if (aec) co_return;
        answer.hang = true;  // and the rest never comes
      }
      if (answer.hang) {
        // Never answer; return once the client gives up and closes.
        char byte = 0;
        for (;;) {
          auto [hang_ec, hang_n] =
              co_await stream.async_read_some(asio::buffer(&byte, 1), kNoThrow);
          if (hang_ec) co_return;
        }
      }
      http::response<http::string_body> res{static_cast<http::status>(answer.status),
                                            req.version()};
      res.set(http::field::content_type, answer.content_type);
      res.set(http::field::server, "fake-nodit");
      res.keep_alive(req.keep_alive());
      res.body() = std::move(answer.body);
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(stream, res, kNoThrow);
      if (wec) co_return;
      if (!res.keep_alive()) break;
    }
    beast::get_lowest_layer(stream).expires_after(kShutdownTimeout);
    auto [sec] = co_await stream.async_shutdown(kNoThrow);
    (void)sec;
  }

  Answer handle(const http::request<http::string_body>& req) {
    Request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    const std::size_t qm = r.target.find('?');
    r.path = r.target.substr(0, qm);
    if (qm != std::string::npos) r.query = parse_query(std::string_view(r.target).substr(qm + 1));
    for (const auto& field : req) {
      std::string name = lowercase(field.name_string());
      if (name == "x-api-key") {
        r.api_key_present = true;
        r.api_key_ok = field.value() == api_key;
        continue;
      }
      r.headers[name] = std::string(field.value());
    }

    std::lock_guard lock(mu);
    requests.push_back(r);
    switch (mode) {
      case Mode::error500:
        return error_answer(500, "INTERNAL_SERVER_ERROR", "fake failure");
      case Mode::hang:
        return Answer{200, "", "", true};
      case Mode::garbage:
        return {200, "text/html", "<html><body>502 Bad Gateway</body></html>\n", false};
      case Mode::announce_huge: {
        Answer a;
        a.announce_huge = true;
        return a;
      }
      case Mode::normal:
      case Mode::alternate_schema:
      case Mode::ignore_filters:
      case Mode::oversized:
        break;
    }
    // /v1/{chain}/{network}/webhooks/history
    const bool history_path = r.path.starts_with("/v1/") && r.path.ends_with("/webhooks/history") &&
                              std::count(r.path.begin(), r.path.end(), '/') == 5;
    if (r.method != "GET" || !history_path) return error_answer(404, "NOT_FOUND", "no such route");
    if (!r.api_key_ok) return error_answer(401, "UNAUTHORIZED", "invalid API key");
    Answer answer = page(r.query, mode == Mode::alternate_schema, mode == Mode::ignore_filters);
    if (mode == Mode::oversized && answer.status == 200 &&
        answer.body.size() + 16 < oversized_bytes) {
      answer.body.pop_back();  // the closing '}'
      answer.body +=
          ",\"padding\":\"" + std::string(oversized_bytes - answer.body.size() - 14, ' ') + "\"}";
    }
    return answer;
  }

  // Called with `mu` held. `everything`: ignore the filters (Mode::ignore_filters).
  Answer page(const std::map<std::string, std::string>& q, bool alternate, bool everything) {
    auto get = [&q](const char* name) -> const std::string* {
      auto it = q.find(name);
      return it == q.end() ? nullptr : &it->second;
    };
    const std::string* sub = get("subscriptionId");
    if (sub == nullptr || sub->empty()) {
      return error_answer(400, "INVALID_PARAMETER", "subscriptionId is required");
    }
    std::uint64_t page_no = 1;
    std::uint64_t rpp = kDefaultRpp;
    std::uint64_t start_seq = 0;
    if (const auto* v = get("page")) {
      auto n = to_number(*v);
      if (!n || *n == 0) return error_answer(400, "INVALID_PARAMETER", "page");
      page_no = *n;
    }
    if (const auto* v = get("rpp")) {
      auto n = to_number(*v);
      if (!n || *n == 0 || *n > 100) return error_answer(400, "INVALID_PARAMETER", "rpp");
      rpp = *n;
    }
    if (const auto* v = get("startSequenceNumber")) {
      auto n = to_number(*v);
      if (!n) return error_answer(400, "INVALID_PARAMETER", "startSequenceNumber");
      start_seq = *n;
    }
    const std::string* status = get("status");
    if (status != nullptr && *status != "SUCCESS" && *status != "FAIL") {
      return error_answer(400, "INVALID_PARAMETER", "status");
    }
    const std::string* start_at = get("startAt");
    const std::string* end_at = get("endAt");
    const std::string* with_message = get("withEventMessage");
    const bool include_message = with_message != nullptr && *with_message == "true";

    std::vector<std::pair<std::uint64_t, const Message*>> matching;
    if (auto it = messages.find(*sub); it != messages.end()) {
      for (const auto& [seq, m] : it->second) {  // std::map: sorted by sequence number
        if (everything) {
          matching.emplace_back(seq, &m);
          continue;
        }
        if (seq < start_seq) continue;
        if (status != nullptr && m.status != *status) continue;
        if (start_at != nullptr && m.created_at < *start_at) continue;
        if (end_at != nullptr && m.created_at > *end_at) continue;
        matching.emplace_back(seq, &m);
      }
    }
    std::uint64_t first = std::min<std::uint64_t>((page_no - 1) * rpp, matching.size());
    std::uint64_t last = std::min<std::uint64_t>(first + rpp, matching.size());
    if (everything) {
      first = 0;
      last = matching.size();
    }

    auto count = [alternate](std::uint64_t n) {
      return alternate ? quoted(std::to_string(n)) : std::to_string(n);
    };
    std::string body = "{\"total\":" + count(matching.size()) + ",\"page\":" + count(page_no) +
                       ",\"rpp\":" + count(rpp) + (alternate ? ",\"data\":[" : ",\"items\":[");
    for (std::uint64_t i = first; i < last; ++i) {
      const auto& [seq, m] = matching[i];
      const std::string id_text = alternate ? *sub : quoted(*sub);
      const std::string seq_text = alternate ? std::to_string(seq) : quoted(std::to_string(seq));
      if (i != first) body += ',';
      body += "{\"id\":" + quoted("hist-" + *sub + "-" + std::to_string(seq)) +
              ",\"subscriptionId\":" + id_text + ",\"sequenceNumber\":" + seq_text +
              ",\"status\":" + quoted(m->status) + ",\"createdAt\":" + quoted(m->created_at) +
              ",\"updatedAt\":" + quoted(m->created_at);
      if (include_message) {
        body += ",\"eventMessage\":" + (alternate ? quoted(m->json) : m->json);
      }
      body += '}';
    }
    body += "]}";
    return {200, "application/json", std::move(body), false};
  }
};

FakeNodit::FakeNodit(std::string api_key) : impl_(std::make_unique<Impl>(std::move(api_key))) {
  try {
    impl_->start();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("fake nodit: cannot start: ") + e.what());
  }
}

FakeNodit::~FakeNodit() {
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t FakeNodit::port() const { return impl_->port; }

std::filesystem::path FakeNodit::ca_file() const { return impl_->files.cert; }

std::string FakeNodit::base_url() const {
  return "https://127.0.0.1:" + std::to_string(impl_->port) + "/v1";
}

void FakeNodit::add(const std::string& subscription_id, std::uint64_t seq,
                    const std::string& status, const std::string& created_at,
                    const std::string& event_message_json) {
  auto parsed = parse_strict(event_message_json);
  if (!parsed || !parsed->is_object()) {
    throw std::invalid_argument("fake nodit: the event message is not a JSON object");
  }
  std::lock_guard lock(impl_->mu);
  impl_->messages[subscription_id][seq] = Message{status, created_at, event_message_json};
}

void FakeNodit::clear() {
  std::lock_guard lock(impl_->mu);
  impl_->messages.clear();
}

void FakeNodit::set_mode(Mode mode) {
  std::lock_guard lock(impl_->mu);
  impl_->mode = mode;
}

void FakeNodit::set_oversized_bytes(std::size_t bytes) {
  std::lock_guard lock(impl_->mu);
  impl_->oversized_bytes = bytes;
}

std::vector<FakeNodit::Request> FakeNodit::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests;
}

std::size_t FakeNodit::request_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests.size();
}

void FakeNodit::clear_requests() {
  std::lock_guard lock(impl_->mu);
  impl_->requests.clear();
}

}  // namespace hookvault::testing
