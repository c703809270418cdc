#include "net/http_framing.hpp"

#include <boost/beast/http/error.hpp>

#include <string>

#include "hookvault/bytes.hpp"

namespace hookvault::net {

namespace {

namespace http = boost::beast::http;

class FramingCategory : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "hookvault.framing"; }
  std::string message(int ev) const override {
    switch (static_cast<FramingError>(ev)) {
      case FramingError::unsupported_transfer_coding:
        return "unsupported transfer coding";
      case FramingError::bad_transfer_encoding:
        return "bad Transfer-Encoding";
      case FramingError::fields_too_large:
        return "header fields, chunk extensions and trailers exceed the header limit";
      case FramingError::too_many_fields:
        return "too many header and trailer fields";
    }
    return "framing error";
  }
};

}  // namespace

const boost::system::error_category& framing_category() noexcept {
  static const FramingCategory category;
  return category;
}

boost::system::error_code make_error_code(FramingError e) noexcept {
  return {static_cast<int>(e), framing_category()};
}

namespace detail {

boost::system::error_code check_transfer_codings(std::string_view joined, bool is_request) {
  std::size_t codings = 0;
  std::size_t chunked = 0;
  bool last_is_chunked = false;
  while (!joined.empty()) {
    const auto comma = joined.find(',');
    const std::string_view element = trim_ows(joined.substr(0, comma));
    joined = comma == std::string_view::npos ? std::string_view() : joined.substr(comma + 1);
    if (element.empty()) continue;  // RFC 9110 section 5.6.1: empty elements are ignored
    ++codings;
    last_is_chunked = boost::beast::iequals(element, "chunked");
    if (last_is_chunked) ++chunked;
  }
  if (codings == 0 || !last_is_chunked || chunked > 1) {
    return make_error_code(FramingError::bad_transfer_encoding);
  }
  if (codings > 1) {
    // Well framed, but with a coding under chunked that we do not decode. A
    // server we asked nothing of had no business sending one.
    return make_error_code(is_request ? FramingError::unsupported_transfer_coding
                                      : FramingError::bad_transfer_encoding);
  }
  return {};
}

}  // namespace detail

std::optional<Refusal> refusal(const boost::system::error_code& ec) {
  if (!ec) return std::nullopt;
  if (ec.category() == framing_category()) {
    switch (static_cast<FramingError>(ec.value())) {
      case FramingError::unsupported_transfer_coding:
        return Refusal{501, "unsupported_transfer_coding"};
      case FramingError::bad_transfer_encoding:
        return Refusal{400, "bad_request"};
      case FramingError::fields_too_large:
        return Refusal{431, "header_too_large"};
      case FramingError::too_many_fields:
        return Refusal{431, "too_many_headers"};
    }
    return Refusal{400, "bad_request"};
  }
  if (ec == http::error::header_limit) return Refusal{431, "header_too_large"};
  // The read buffer is full and the parser still waits for the end of a
  // line or section: a chunk-size line or a trailer section longer than the
  // header limit.
  if (ec == http::error::buffer_overflow) return Refusal{431, "header_too_large"};
  if (ec == http::error::body_limit) return Refusal{413, "body_too_large"};
  // The connection ended (or timed out) before the message did: nobody to
  // answer. end_of_stream: closed between messages; partial_message: inside.
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return std::nullopt;
  if (ec.category() == make_error_code(http::error::header_limit).category()) {
    return Refusal{400, "bad_request"};  // malformed: the parser's other errors
  }
  return std::nullopt;  // timeout, reset, TLS: the connection is gone
}

}  // namespace hookvault::net
