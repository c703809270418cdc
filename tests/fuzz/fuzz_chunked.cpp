// Fuzzes HTTP/1.1 message framing (src/net/http_framing.hpp) as the
// listeners and the HTTPS clients read: MessageParser and a read buffer
// bounded by read_buffer_limit(), fed by Beast's async reads from an
// in-memory stream in pieces of any size, with small limits so they are
// reached.
//
// Input: byte 0 sets the size of each read (1-64 bytes); byte 1 the mode:
//   0  a request head with "Transfer-Encoding: chunked" and the rest as its
//      body (chunk-size lines, extensions, data, trailers) and beyond;
//   1  the same after a response's status line (the history client);
//   2  the rest is a whole request, head included (transfer codings,
//      Content-Length, anything).
// Properties:
// - the read buffer never holds more than read_buffer_limit(); the message
//   body no more than the body limit; whatever the framing;
// - a refusal is one of 400, 413, 431, 501;
// - a chunked message that is read agrees with a reference decoder written
//   here from RFC 9112 section 7.1 (lenient about extension and trailer
//   syntax, exact about sizes and CRLFs): the same body, the same end (the
//   next message starts where the reference says), extensions within the
//   header limit, and no trailer field among the message's fields;
// - a request read with a Transfer-Encoding field has exactly "chunked" as
//   its coding list (OWS and empty elements aside); one read without it has
//   the body its Content-Length says.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "memory_stream.hpp"
#include "net/http_framing.hpp"

using hookvault::fuzz::check;
using hookvault::fuzz::MemoryStream;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = hookvault::net;

namespace {

const net::FramingLimits kLimits{1024, 8, 4096};
const std::string kRequestHead =
    "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
const std::string kResponseHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

// RFC 9112 section 7.1, the sizes and CRLFs exactly; an extension is
// whatever lies between the size and the CRLF, a trailer line whatever lies
// before its CRLF (a line that starts with SP or HTAB folded into the field
// before it).
struct Reference {
  bool complete = false;
  std::string body;
  std::size_t length = 0;  // the chunked body's bytes, through its last CRLF
  std::size_t extension_bytes = 0;
  std::size_t trailer_fields = 0;
};

Reference decode_chunked(std::string_view in, std::uint64_t body_limit) {
  Reference r;
  std::size_t at = 0;
  const auto line_end = [&](std::size_t from) { return in.find("\r\n", from); };
  for (;;) {
    std::uint64_t size = 0;
    std::size_t digits = 0;
    while (at < in.size() && std::isxdigit(static_cast<unsigned char>(in[at])) != 0) {
      const int v = std::isdigit(static_cast<unsigned char>(in[at])) != 0
                        ? in[at] - '0'
                        : std::tolower(static_cast<unsigned char>(in[at])) - 'a' + 10;
      if (size > (UINT64_MAX >> 4)) return r;  // overflow
      size = size * 16 + static_cast<std::uint64_t>(v);
      ++at;
      ++digits;
    }
    if (digits == 0) return r;
    const std::size_t eol = line_end(at);
    if (eol == std::string_view::npos) return r;
    r.extension_bytes += eol - at;
    at = eol + 2;
    if (size == 0) break;
    if (size > body_limit - r.body.size()) return r;
    if (in.size() - at < size + 2) return r;
    r.body.append(in.substr(at, size));
    at += size;
    if (in.substr(at, 2) != "\r\n") return r;
    at += 2;
  }
  for (;;) {
    const std::size_t eol = line_end(at);
    if (eol == std::string_view::npos) return r;
    if (eol == at) {
      r.length = at + 2;
      r.complete = true;
      return r;
    }
    // A line that starts with SP or HTAB continues the field before it
    // (obs-fold, RFC 9112 section 5.2): one field, as the parser counts.
    const bool folded = r.trailer_fields > 0 && (in[at] == ' ' || in[at] == '\t');
    if (!folded) ++r.trailer_fields;
    at = eol + 2;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Whether a joined Transfer-Encoding list is "chunked" alone.
bool chunked_alone(std::string_view list) {
  std::size_t elements = 0;
  bool chunked = false;
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view e = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
    while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
    if (e.empty()) continue;
    ++elements;
    chunked = lower(e) == "chunked";
  }
  return elements == 1 && chunked;
}

struct Outcome {
  boost::system::error_code ec;
  std::size_t message_bytes = 0;  // consumed from the input by this message
  std::size_t buffer_capacity = 0;
  std::size_t fields = 0;
  std::string transfer_encoding;  // the header fields' values, joined with ','
  std::optional<std::uint64_t> content_length;
  std::string body;
};

template <bool isRequest>
Outcome read_message(std::string_view input, std::size_t chunk) {
  asio::io_context ioc;
  MemoryStream stream(ioc.get_executor(), input, chunk);
  beast::flat_buffer buffer(net::read_buffer_limit(kLimits));
  net::MessageParser<isRequest, http::string_body> parser(kLimits);
  Outcome out;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
        auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
        out.ec = hec;
        if (hec) co_return;
        auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
        out.ec = bec;
      },
      asio::detached);
  ioc.run();
  out.buffer_capacity = buffer.capacity();
  out.message_bytes = stream.consumed() - buffer.size();
  const auto& m = parser.get();
  out.body = m.body();
  for (const auto& f : m) {
    ++out.fields;
    if (f.name() == http::field::transfer_encoding) {
      if (!out.transfer_encoding.empty()) out.transfer_encoding += ',';
      out.transfer_encoding += f.value();
    }
  }
  if (!out.ec && parser.content_length()) out.content_length = *parser.content_length();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const int mode = data[1] % 3;
  const std::string_view rest = hookvault::fuzz::as_text(data + 2, size - 2);
  const std::string& head = mode == 1 ? kResponseHead : kRequestHead;
  const std::string input = mode == 2 ? std::string(rest) : head + std::string(rest);
  const Outcome out =
      mode == 1 ? read_message<false>(input, chunk) : read_message<true>(input, chunk);

  check(out.buffer_capacity <= net::read_buffer_limit(kLimits),
        "the read buffer stays within its limit");
  check(out.body.size() <= kLimits.body_bytes, "the body stays within its limit");
  if (out.ec) {
    if (mode != 1) {
      const auto answer = net::refusal(out.ec);
      check(!answer || answer->status == 400 || answer->status == 413 || answer->status == 431 ||
                answer->status == 501,
            "a refusal is 400, 413, 431 or 501");
    }
    return 0;
  }
  if (mode != 2) {
    const Reference ref = decode_chunked(rest, kLimits.body_bytes);
    check(ref.complete, "a chunked body that was read is one by RFC 9112");
    check(out.body == ref.body, "the body is the chunks' data");
    check(out.message_bytes == head.size() + ref.length, "the message ends where RFC 9112 says");
    check(ref.extension_bytes <= kLimits.header_bytes, "extensions fit the header limit");
    const std::size_t head_fields = mode == 1 ? 1 : 2;
    check(out.fields == head_fields, "no trailer field reaches the message");
    check(ref.trailer_fields + head_fields <= kLimits.header_count,
          "trailers fit the header count");
    return 0;
  }
  if (!out.transfer_encoding.empty()) {
    check(!out.content_length, "never Content-Length with Transfer-Encoding");
    check(chunked_alone(out.transfer_encoding), "a transfer coding is chunked alone");
  } else {
    check(out.body.size() == out.content_length.value_or(0),
          "without Transfer-Encoding the body is Content-Length bytes");
  }
  return 0;
}
