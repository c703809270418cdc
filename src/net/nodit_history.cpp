// NoditHistoryClient: one blocking HTTPS GET per fetch(), run as a coroutine on
// a private io_context, under one deadline for the whole request.
//
// - The base URL is parsed here by hand (https://host[:port][/path]; nothing
//   else): Boost 1.81 has no URL parser in the headers we use, and the accepted
//   shape is small enough to check exactly.
// - Query values and the chain/network path segments are percent-encoded
//   (everything outside RFC 3986 "unreserved").
// - The API key goes only into the X-API-KEY header of a request whose fields
//   live in wiped memory; it never reaches a log line or an error.
// - The exchange itself (one deadline, enforced twice) is https_exchange()
//   (net/https_exchange.hpp), shared with the healthcheck probe.
#include "hookvault/nodit_history.hpp"
#include "hookvault/bytes.hpp"

#include <openssl/ssl.h>

#include <array>
#include <charconv>
#include <exception>
#include <limits>

#include "hookvault/json.hpp"
#include "hookvault/log.hpp"
#include "hookvault/subscription_id.hpp"
#include "net/https_exchange.hpp"

namespace hookvault {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using Clock = std::chrono::steady_clock;

namespace {

// Header storage is wiped on release: the API key sits in it.
using SecretFields = http::basic_fields<WipingAllocator<char>>;
using Request = http::request<http::empty_body, SecretFields>;

boost::system::error_code io_error() { return make_error_code(Errc::io_error); }

// ---------------------------------------------------------------------------
// URL handling.

struct BaseUrl {
  std::string host;  // without brackets for IPv6
  std::string port;  // digits
  std::string path;  // "" or "/..." without a trailing '/'
  bool host_is_address = false;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return true;
}

// https://host[:port][/path], host a DNS name, an IPv4 literal or a bracketed
// IPv6 literal. No user info, query, fragment, spaces or non-ASCII.
std::optional<BaseUrl> parse_base_url(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.size() < kScheme.size() || !iequals_ascii(url.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '?' || c == '#' || c == '@' || c == '\\') {
      return std::nullopt;
    }
  }
  std::string_view rest = url.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);

  BaseUrl out;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
      if (port.empty()) return std::nullopt;
    }
    boost::system::error_code ec;
    (void)asio::ip::make_address_v6(out.host, ec);
    if (ec) return std::nullopt;
    out.host_is_address = true;
  } else {
    const std::size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return std::nullopt;
    }
    if (out.host.empty()) return std::nullopt;
    for (char c : out.host) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '.';
      if (!ok) return std::nullopt;
    }
    boost::system::error_code ec;
    (void)asio::ip::make_address_v4(out.host, ec);
    out.host_is_address = !ec;
  }
  if (out.host.empty()) return std::nullopt;
  if (port.empty()) {
    out.port = "443";
  } else {
    if (!all_digits(port) || port.size() > 5) return std::nullopt;
    unsigned value = 0;
    std::from_chars(port.data(), port.data() + port.size(), value);
    if (value == 0 || value > 65535) return std::nullopt;
    out.port = std::to_string(value);
  }
  out.path = std::string(path);
  return out;
}

// Percent-encodes everything outside RFC 3986 "unreserved".
void append_encoded(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                            c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
}

void append_param(std::string& out, std::string_view name, std::string_view value) {
  out += out.back() == '?' ? "" : "&";
  out += name;
  out += '=';
  append_encoded(out, value);
}

// {path}/{chain}/{network}/webhooks/history?...; also returns the path alone
// (for log lines).
std::string make_target(const BaseUrl& url, std::string_view chain, std::string_view network,
                        const HistoryQuery& q, std::string& path_only) {
  std::string t = url.path;
  t += '/';
  append_encoded(t, chain);
  t += '/';
  append_encoded(t, network);
  t += "/webhooks/history";
  path_only = t;
  t += '?';
  append_param(t, "subscriptionId", q.subscription_id);
  append_param(t, "page", std::to_string(q.page));
  append_param(t, "rpp", std::to_string(q.rpp));
  append_param(t, "withEventMessage", "true");
  if (q.status) append_param(t, "status", *q.status);
  if (q.start_at) append_param(t, "startAt", *q.start_at);
  if (q.end_at) append_param(t, "endAt", *q.end_at);
  if (q.start_sequence_number) {
    append_param(t, "startSequenceNumber", std::to_string(*q.start_sequence_number));
  }
  return t;
}

std::string host_header(const BaseUrl& url) {
  std::string h = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  if (url.port != "443") h += ":" + url.port;
  return h;
}

bool header_safe(std::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Lenient parsing.

std::optional<std::uint64_t> to_u64(const Json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    if (i < 0) return std::nullopt;
    return static_cast<std::uint64_t>(i);
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (!all_digits(s)) return std::nullopt;
    std::uint64_t out = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

const Json* member(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string string_member(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

// The item list and the object that holds it (for total/page/rpp): `items`,
// `data` or `result` at the top level, or one of them nested under `data` or
// `result`; a top-level array is the list itself.
const Json* find_items(const Json& root, const Json*& holder) {
  static constexpr std::array<std::string_view, 3> kListKeys = {"items", "data", "result"};
  holder = &root;
  if (root.is_array()) return &root;
  for (auto key : kListKeys) {
    const Json* v = member(root, key);
    if (v != nullptr && v->is_array()) return v;
  }
  for (auto outer : {std::string_view("data"), std::string_view("result")}) {
    const Json* nested = member(root, outer);
    if (nested == nullptr || !nested->is_object()) continue;
    for (auto key : kListKeys) {
      const Json* v = member(*nested, key);
      if (v != nullptr && v->is_array()) {
        holder = nested;
        return v;
      }
    }
  }
  return nullptr;
}

// A count from the list's holder, else from the root; 0 when absent or unusable.
std::uint64_t count_member(const Json& holder, const Json& root, std::string_view key,
                           std::uint64_t max) {
  for (const Json* obj : {&holder, &root}) {
    const Json* v = member(*obj, key);
    if (v == nullptr) continue;
    auto n = to_u64(*v);
    return n && *n <= max ? *n : 0;
  }
  return 0;
}

// True when `message` carries `key` with a value that names something other
// than `expected` (a body filed under the wrong idempotency key).
bool contradicts(const Json& message, std::string_view key, const std::string& expected) {
  const Json* v = member(message, key);
  if (v == nullptr) return false;
  auto id = subscription_id_of(*v);
  return !id || *id != expected;
}

// The raw text of every value of a member named `key`, in document order, not
// looking inside those values. Used to keep each eventMessage byte for byte:
// a parsed-and-reserialized message would round integers beyond 2^53 (nlohmann
// offers no access to a value's source text, hence this small scanner). Only
// called on text parse_strict() accepted, so it need not validate.
std::vector<std::string_view> raw_member_values(std::string_view json, std::string_view key) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  const std::size_t n = json.size();
  auto skip_ws = [&] {
    while (i < n && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) ++i;
  };
  auto skip_string = [&] {  // at the opening quote; returns the contents' span
    const std::size_t begin = ++i;
    while (i < n && json[i] != '"') i += json[i] == '\\' ? 2 : 1;
    const std::string_view contents = json.substr(begin, i - begin);
    ++i;
    return contents;
  };
  auto skip_value = [&] {  // scalar, string, or a whole object/array
    if (i >= n) return;
    if (json[i] == '"') {
      skip_string();
      return;
    }
    if (json[i] != '{' && json[i] != '[') {
      while (i < n && json[i] != ',' && json[i] != '}' && json[i] != ']' && json[i] != ' ' &&
             json[i] != '\n' && json[i] != '\r' && json[i] != '\t') {
        ++i;
      }
      return;
    }
    int depth = 0;
    while (i < n) {
      const char c = json[i];
      if (c == '"') {
        skip_string();
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') --depth;
      ++i;
      if (depth == 0) return;
    }
  };
  while (i < n) {
    const char c = json[i];
    if (c != '"') {
      ++i;
      continue;
    }
    const std::string_view name = skip_string();
    skip_ws();
    if (i < n && json[i] == ':') {
      ++i;
      skip_ws();
      if (name == key) {
        const std::size_t begin = i;
        skip_value();
        out.push_back(json.substr(begin, i - begin));
      }
    }
  }
  return out;
}

// `raw_message`: the source text of this element's eventMessage when it is an
// object (taken by position, see parse_history_page).
std::optional<HistoryItem> parse_item(const Json& raw,
                                      std::optional<std::string_view> raw_message) {
  if (!raw.is_object()) return std::nullopt;
  HistoryItem item;
  const Json* sub = member(raw, "subscriptionId");
  const Json* seq = member(raw, "sequenceNumber");
  const Json* msg = member(raw, "eventMessage");
  if (sub == nullptr || seq == nullptr || msg == nullptr) return std::nullopt;
  auto sub_id = subscription_id_of(*sub);
  auto seq_no = to_u64(*seq);
  if (!sub_id || !seq_no || *seq_no == 0) return std::nullopt;
  item.subscription_id = std::move(*sub_id);
  item.sequence_number = *seq_no;

  // The delivered body: an object, or a string holding one.
  Json decoded;
  const Json* message = msg;
  std::string text;
  if (msg->is_string()) {
    text = msg->get<std::string>();
    auto parsed = parse_strict(text);
    if (!parsed) return std::nullopt;
    decoded = std::move(*parsed);
    message = &decoded;
  } else {
    // The text must be this very message; if the positions do not line up
    // (an eventMessage member outside the items), skip rather than guess.
    if (!raw_message) return std::nullopt;
    auto candidate = parse_strict(*raw_message);
    if (!candidate || *candidate != *msg) return std::nullopt;
    text = std::string(*raw_message);
  }
  if (!message->is_object()) return std::nullopt;
  if (contradicts(*message, "subscriptionId", item.subscription_id) ||
      contradicts(*message, "sequenceNumber", std::to_string(item.sequence_number))) {
    return std::nullopt;
  }
  item.event_message = std::move(text);
  item.status = string_member(raw, "status");
  item.created_at = string_member(raw, "createdAt");
  return item;
}

}  // namespace

Result<HistoryPage> parse_history_page(std::string_view body, std::size_t max_items) {
  try {
    auto root = parse_strict(body);
    if (!root) return io_error();  // not JSON, or a repeated key
    const Json* holder = nullptr;
    const Json* list = find_items(*root, holder);
    if (list == nullptr) return io_error();           // no item list: unusable, never "empty"
    if (list->size() > max_items) return io_error();  // more than was asked for
    HistoryPage page;
    page.total = count_member(*holder, *root, "total", std::numeric_limits<std::uint64_t>::max());
    page.page = static_cast<std::uint32_t>(
        count_member(*holder, *root, "page", std::numeric_limits<std::uint32_t>::max()));
    page.rpp = static_cast<std::uint32_t>(
        count_member(*holder, *root, "rpp", std::numeric_limits<std::uint32_t>::max()));
    page.items.reserve(list->size());
    const auto raw_messages = raw_member_values(body, "eventMessage");
    std::size_t cursor = 0;
    for (const Json& raw : *list) {
      // Every element with an eventMessage member (of any type: the scanner
      // records them all) consumes the next text, used or not, so that a
      // skipped element never shifts the others.
      std::optional<std::string_view> raw_message;
      if (raw.is_object() && raw.find("eventMessage") != raw.end()) {
        if (cursor < raw_messages.size()) raw_message = raw_messages[cursor];
        ++cursor;
      }
      auto item = parse_item(raw, raw_message);
      if (item) {
        page.items.push_back(std::move(*item));
      } else {
        ++page.skipped;
      }
    }
    return page;
  } catch (const std::exception&) {
    return io_error();
  }
}

struct NoditHistoryClient::Impl {
  explicit Impl(HistoryClientOptions o) : options(std::move(o)) {}

  HistoryClientOptions options;
  std::optional<ssl::context> tls;  // built on first use

  // The client TLS context: TLS 1.2+, peer verification against `ca_file` or
  // the system store.
  bool ensure_tls() {
    if (tls) return true;
    try {
      ssl::context ctx(ssl::context::tls_client);
      if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) return false;
      SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
      boost::system::error_code ec;
      ctx.set_verify_mode(ssl::verify_peer, ec);
      if (ec) return false;
      if (options.ca_file.empty()) {
        ctx.set_default_verify_paths(ec);
      } else {
        ctx.load_verify_file(options.ca_file.string(), ec);
      }
      if (ec) {
        log(LogLevel::warn, "nodit history: cannot load the trust store",
            {{"ca_file", options.ca_file.string()}, {"error", ec.message()}});
        return false;
      }
      tls.emplace(std::move(ctx));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
};

NoditHistoryClient::NoditHistoryClient(HistoryClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

NoditHistoryClient::~NoditHistoryClient() = default;

Result<HistoryPage> NoditHistoryClient::fetch(const HistoryQuery& query) {
  const HistoryClientOptions& o = impl_->options;
  if (!is_subscription_id(query.subscription_id) || query.page == 0 || query.rpp == 0 ||
      query.rpp > 100) {
    return make_error_code(Errc::invalid_field);
  }
  auto url = parse_base_url(o.api_base_url);
  const char* unusable = nullptr;
  if (!url) {
    unusable = "api_base_url is not https://host[:port][/path]";
  } else if (o.chain.empty() || o.network.empty()) {
    unusable = "chain or network is empty";
  } else if (o.api_key.empty() || !header_safe(o.api_key.reveal_string())) {
    unusable = "the API key is empty or holds control characters";
  }
  if (unusable != nullptr) {
    log(LogLevel::warn, "nodit history: unusable client options", {{"reason", unusable}});
    return io_error();
  }
  try {
    if (!impl_->ensure_tls()) return io_error();

    std::string path;
    Request req{http::verb::get, make_target(*url, o.chain, o.network, query, path), 11};
    req.set(http::field::host, host_header(*url));
    req.set(http::field::accept, "application/json");
    req.set(http::field::user_agent, "hookvault");
    req.set("X-API-KEY", o.api_key.reveal_string());
    req.keep_alive(false);

    const net::HttpsPeer peer{url->host, url->port, url->host_is_address, true, {}, {}};
    net::ExchangeLimits limits;
    limits.max_body_bytes = o.max_response_bytes;  // enforced while reading
    const net::Exchange out =
        net::https_exchange(*impl_->tls, peer, req, Clock::now() + o.timeout, limits);
    if (out.failed_stage == "read" && out.ec == http::error::body_limit) {
      log(LogLevel::warn, "nodit history response too large; lower page_size",
          {{"host", url->host}, {"path", path}, {"max_response_bytes", o.max_response_bytes}});
      return make_error_code(Errc::body_too_large);
    }
    if (!out.failed_stage.empty()) {
      log(LogLevel::warn, "nodit history request failed",
          {{"host", url->host},
           {"path", path},
           {"stage", out.failed_stage},
           {"error", out.ec ? out.ec.message() : std::string()}});
      return io_error();
    }
    if (out.status != 200) {
      log(LogLevel::warn, "nodit history request refused",
          {{"host", url->host}, {"path", path}, {"status", out.status}});
      return io_error();
    }
    auto page = parse_history_page(out.body, query.rpp);
    if (!page) {
      log(LogLevel::warn, "nodit history response unusable",
          {{"host", url->host}, {"path", path}, {"bytes", out.body.size()}});
      return page;
    }
    // Items of another subscription answer a different question: drop them.
    auto& items = page->items;
    const auto before = items.size();
    std::erase_if(items, [&query](const HistoryItem& i) {
      return i.subscription_id != query.subscription_id;
    });
    page->skipped += before - items.size();
    return page;
  } catch (const std::exception&) {
    return io_error();
  }
}

}  // namespace hookvault
