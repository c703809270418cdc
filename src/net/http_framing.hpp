// HTTP/1.1 message framing as RFC 9112 (sections 6 and 7) has it, for every
// message hookvault reads: requests on both listeners (http_session.hpp) and
// responses in its HTTPS clients (https_exchange.hpp: the Nodit history
// client, the healthcheck probe).
//
// Beast 1.81's parser (http::parser over http::basic_parser) bounds the head
// (header_limit) and the body's data (body_limit), and nothing else:
// - a chunk-size line is parsed only once its CRLF has arrived, so a chunk
//   extension that never ends keeps every byte of it in the read buffer; so
//   does a trailer section, parsed only once its blank line has arrived;
//   neither counts against header_limit;
// - trailer fields are added to the message's fields, beside (and after) the
//   header fields, so a trailer can stand in for a header that was never
//   sent, or add an entry to a list such as X-Forwarded-For;
// - a request whose Transfer-Encoding does not end in "chunked" is read as
//   having no body (the body is then parsed as the next request), and
//   Transfer-Encoding with Content-Length is accepted in one order.
//
// What bounds memory here is structural: the read buffer is a flat_buffer
// whose max_size() is read_buffer_limit() (the header limit), so no
// unparsed line or section can grow past it (Beast's read then fails with
// error::buffer_overflow). MessageParser adds the rest:
// - chunk extensions and trailer fields are counted against the header
//   limits (max_header_bytes with the head, max_header_count with the header
//   fields) and are otherwise ignored; trailer fields never reach the
//   message;
// - Transfer-Encoding must be exactly "chunked": with another coding before
//   it the request is refused as not implemented (we decode none), with
//   anything else (chunked not last, twice, Content-Length too, HTTP/1.0) as
//   malformed. A response (whose codings we never ask for) must use chunked
//   alone too.
// A connection's read state is so bounded by the read buffer, the parsed head
// and the body limit, whatever the framing.
//
// refusal() says how the listener answers each error; the fuzz target
// tests/fuzz/fuzz_chunked.cpp checks the bounds on arbitrary framing.
//
// Only src/net includes this (it is Beast).
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace hookvault::net {

// Errors MessageParser adds to Beast's.
enum class FramingError {
  // Transfer-Encoding names a coding other than chunked before it (501).
  unsupported_transfer_coding = 1,
  // Transfer-Encoding not ending in chunked, chunked twice, with
  // Content-Length, or in HTTP/1.0 (400).
  bad_transfer_encoding,
  // The head, the chunk extensions and the trailer fields together exceed
  // the header byte limit (431).
  fields_too_large,
  // Header and trailer fields together exceed the header count limit (431).
  too_many_fields,
};

const boost::system::error_category& framing_category() noexcept;
boost::system::error_code make_error_code(FramingError e) noexcept;

struct FramingLimits {
  std::size_t header_bytes = 16384;  // head, chunk extensions and trailers together
  std::size_t header_count = 64;     // header and trailer fields together
  std::uint64_t body_bytes = 1048576;
};

// The max_size() of a connection's read buffer: what the parser may hold
// unparsed, never less than the head it must see whole.
inline std::size_t read_buffer_limit(const FramingLimits& limits) { return limits.header_bytes; }

// How a listener answers a request it could not read: the status and the
// error name of its JSON body, then it closes the connection. nullopt: there
// is no one to answer (a timeout, the peer closed or reset, a TLS failure).
struct Refusal {
  unsigned status = 400;
  std::string_view error;
};
std::optional<Refusal> refusal(const boost::system::error_code& ec);

namespace detail {

// The coding list of Transfer-Encoding fields, joined with ','. Each element
// (OWS trimmed, empty ones skipped) must be a coding name; the framing is
// good only as "chunked" alone.
boost::system::error_code check_transfer_codings(std::string_view joined, bool is_request);

}  // namespace detail

// A parser producing http::message<isRequest, Body> with the rules above.
// One per message, as Beast's (a used parser is not reset).
template <bool isRequest, class Body>
class MessageParser : public boost::beast::http::basic_parser<isRequest> {
 public:
  using message_type = boost::beast::http::message<isRequest, Body>;

  explicit MessageParser(const FramingLimits& limits) : limits_(limits) {
    this->header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(limits.header_bytes, UINT32_MAX)));
    this->body_limit(limits.body_bytes);
  }
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  message_type& get() noexcept { return m_; }
  const message_type& get() const noexcept { return m_; }
  message_type release() { return std::move(m_); }

  // The bytes counted against the header limit so far (for tests).
  std::size_t field_bytes() const noexcept { return bytes_; }

 private:
  using error_code = boost::system::error_code;
  using field = boost::beast::http::field;
  using string_view = boost::beast::string_view;

  // Counts `n` bytes against the header byte limit.
  bool spend(std::size_t n, error_code& ec) {
    bytes_ += n;
    if (bytes_ > limits_.header_bytes) {
      ec = make_error_code(FramingError::fields_too_large);
      return false;
    }
    return true;
  }

  void on_request_impl(boost::beast::http::verb method, string_view method_str, string_view target,
                       int version, error_code& ec) override {
    if constexpr (isRequest) {
      if (method != boost::beast::http::verb::unknown) {
        m_.method(method);
      } else {
        m_.method_string(method_str);
      }
      m_.target(target);
      m_.version(version);
    }
    // "METHOD SP target SP HTTP/1.1 CRLF"
    spend(method_str.size() + target.size() + 12, ec);
  }

  void on_response_impl(int code, string_view reason, int version, error_code& ec) override {
    if constexpr (!isRequest) {
      m_.result(static_cast<unsigned>(code));
      m_.reason(reason);
      m_.version(version);
    }
    // "HTTP/1.1 SP 200 SP reason CRLF"
    spend(reason.size() + 15, ec);
  }

  void on_field_impl(field f, string_view name, string_view value, error_code& ec) override {
    if (++fields_ > limits_.header_count) {
      ec = make_error_code(FramingError::too_many_fields);
      return;
    }
    // "name: value CRLF"
    if (!spend(name.size() + value.size() + 4, ec)) return;
    if (in_trailer_) return;  // counted, never kept
    if (f == field::transfer_encoding) {
      if (!codings_.empty()) codings_ += ',';
      codings_.append(value.data(), value.size());
      has_transfer_encoding_ = true;
    } else if (f == field::content_length) {
      has_content_length_ = true;
    }
    m_.insert(f, name, value);
  }

  void on_header_impl(error_code& ec) override {
    in_trailer_ = true;
    if (!has_transfer_encoding_) return;
    if (m_.version() < 11 || has_content_length_) {
      ec = make_error_code(FramingError::bad_transfer_encoding);
      return;
    }
    ec = detail::check_transfer_codings(codings_, isRequest);
    // What the base parser frames by must be what was checked: chunked.
    if (!ec && !this->chunked()) ec = make_error_code(FramingError::bad_transfer_encoding);
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         error_code& ec) override {
    reader_.init(content_length, ec);
  }

  std::size_t on_body_impl(string_view body, error_code& ec) override {
    return reader_.put(boost::asio::buffer(body.data(), body.size()), ec);
  }

  void on_chunk_header_impl(std::uint64_t /*size*/, string_view extensions,
                            error_code& ec) override {
    spend(extensions.size(), ec);
  }

  std::size_t on_chunk_body_impl(std::uint64_t /*remain*/, string_view body,
                                 error_code& ec) override {
    return reader_.put(boost::asio::buffer(body.data(), body.size()), ec);
  }

  void on_finish_impl(error_code& ec) override { reader_.finish(ec); }

  const FramingLimits limits_;
  message_type m_;
  typename Body::reader reader_{m_.base(), m_.body()};
  std::size_t bytes_ = 0;   // head, extensions, trailers
  std::size_t fields_ = 0;  // header and trailer fields
  bool in_trailer_ = false;
  bool has_transfer_encoding_ = false;
  bool has_content_length_ = false;
  std::string codings_;  // the Transfer-Encoding values, joined with ','
};

template <class Body>
using RequestParser = MessageParser<true, Body>;
template <class Body>
using ResponseParser = MessageParser<false, Body>;

}  // namespace hookvault::net

namespace boost::system {
template <>
struct is_error_code_enum<hookvault::net::FramingError> : std::true_type {};
}  // namespace boost::system
