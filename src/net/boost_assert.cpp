// Boost's assertion handler for the code that sees Beast (hookvault_net sets
// BOOST_ENABLE_ASSERT_DEBUG_HANDLER for itself and its users: only builds
// without NDEBUG call it; release builds compile BOOST_ASSERT out). It fails
// like assert() does, except for one assertion known to be wrong: Beast
// 1.81's `n >= 5` in basic_parser::parse_chunk_header, which a chunked body
// delivered in small pieces reaches with 3 or 4 bytes buffered; the code
// after it asks for more input correctly (boostorg/beast PR 2861, 2024,
// relaxed the assertion). The request fuzzer found it
// (tests/fuzz/regressions/request/chunk-header-in-small-reads); the release
// daemon never evaluates it.
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace boost {

void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file,
                          long line) {
  if (std::string_view(expr) == "n >= 5" &&
      std::string_view(function).find("parse_chunk_header") != std::string_view::npos) {
    return;
  }
  (void)std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed%s%s\n", file, line, function, expr,
                     msg != nullptr ? ": " : ".", msg != nullptr ? msg : "");
  std::abort();
}

void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  assertion_failed_msg(expr, nullptr, function, file, line);
}

}  // namespace boost
