#include "store/pg/feed.hpp"

#include <charconv>

namespace hookvault::store::pg::feed {
namespace {

template <class T>
bool parse_decimal(std::string_view s, T* out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
  }
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc{} && end == s.data() + s.size();
}

}  // namespace

Result<Cursor> parse_token(std::string_view t) {
  if (t.empty()) return Cursor{};
  const auto dot = t.find('.');
  Cursor c;
  if (dot == std::string_view::npos || !parse_decimal(t.substr(0, dot), &c.txid) ||
      !parse_decimal(t.substr(dot + 1), &c.row_id)) {
    return make_error_code(Errc::invalid_field);
  }
  return c;
}

std::string token(const Cursor& c) {
  return std::to_string(c.txid) + "." + std::to_string(c.row_id);
}

}  // namespace hookvault::store::pg::feed
