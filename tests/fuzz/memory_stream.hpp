// An Asio stream over a string, for the fuzz targets that run the listener's
// own reading code (fuzz_request, fuzz_chunked): reads hand out at most
// `chunk` bytes, writes are kept. Every completion is posted (never inline),
// as a socket's. Besides Asio's stream operations it has what
// src/net/http_session.hpp asks of a Stream: expires_after (a no-op),
// async_wait_data and read_some.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace hookvault::fuzz {

class MemoryStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using error_code = boost::system::error_code;

  MemoryStream(executor_type ex, std::string_view input, std::size_t chunk)
      : ex_(std::move(ex)), input_(input), chunk_(chunk) {}

  executor_type get_executor() const noexcept { return ex_; }
  void expires_after(std::chrono::steady_clock::duration) {}
  const std::string& written() const { return written_; }
  // How many input bytes the reads have handed out.
  std::size_t consumed() const { return consumed_; }

  template <class Token>
  auto async_wait_data(Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) {
          const error_code ec = input_.empty() ? error_code(boost::asio::error::eof) : error_code();
          boost::asio::post(ex_, [h = std::move(handler), ec]() mutable { h(ec); });
        },
        token);
  }

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, error_code& ec) {
    if (input_.empty()) {
      ec = boost::asio::error::eof;
      return 0;
    }
    const std::size_t n = boost::asio::buffer_copy(
        buffers, boost::asio::buffer(input_.data(), std::min(chunk_, input_.size())));
    input_.remove_prefix(n);
    consumed_ += n;
    ec = {};
    return n;
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this, &buffers](auto handler) {
          error_code ec;
          const std::size_t n = read_some(buffers, ec);
          boost::asio::post(ex_, [h = std::move(handler), ec, n]() mutable { h(ec, n); });
        },
        token);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this, &buffers](auto handler) {
          const std::size_t n = boost::asio::buffer_size(buffers);
          const std::size_t at = written_.size();
          written_.resize(at + n);
          boost::asio::buffer_copy(boost::asio::buffer(written_.data() + at, n), buffers);
          boost::asio::post(ex_, [h = std::move(handler), n]() mutable { h(error_code(), n); });
        },
        token);
  }

 private:
  executor_type ex_;
  std::string_view input_;
  std::size_t chunk_;
  std::size_t consumed_ = 0;
  std::string written_;
};

}  // namespace hookvault::fuzz
