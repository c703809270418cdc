// Strict JSON parsing and JSON.stringify-compatible serialization (json.hpp).
//
// parse_strict() drives nlohmann's SAX parser with its own DOM builder so that
// it can (a) reject duplicate keys at any depth, (b) bound the nesting depth,
// and (c) stop at the first error without exceptions. Objects are appended to
// the ordered_map's underlying vector directly (nlohmann's own insert scans for
// an existing key on every member, which is quadratic); duplicates are found
// when the object closes: pairwise for small objects, by sorting views of the
// keys for large ones.
//
// parse_strict_checked() runs the same builder with a check of every number:
// the decimal value of its text against the decimal value of what
// js_stringify() prints for it, both reduced to (sign, significant digits,
// exponent) by exact_decimal(), so "1.50" and "1.5" agree and
// "9007199254740993" and "9007199254740992" do not. Integers nlohmann holds
// exactly (up to 2^64) are printed back exactly for the comparison; other
// numbers keep the token text nlohmann hands to the SAX handler.
//
// js_stringify() follows ECMAScript JSON.stringify(JSON.parse(text)), including
// one ordering rule of ordinary JS objects that "received order" alone misses:
// keys that are array indices ("0", "1", ..., "4294967294", canonical form)
// come first, in ascending numeric order, then the other keys as received.

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hookvault/json.hpp"

namespace hookvault {
namespace {

// Deeper nesting is rejected as malformed_json: it bounds the recursion of
// js_stringify() and of nlohmann's copy/compare. Webhook bodies nest < 20 deep.
constexpr std::size_t kMaxDepth = 512;

// Objects up to this size are checked for duplicates pairwise.
constexpr std::size_t kPairwiseLimit = 16;

// Integers whose magnitude is at most 2^53 are exact doubles: JavaScript prints
// them as plain decimal digits.
constexpr std::uint64_t kMaxExactInteger = std::uint64_t{1} << 53;

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

void append_uint(std::uint64_t v, std::string& out);

// The exact value of a JSON number's text (or of js_number()'s output) as
// 0.d1d2...dn * 10^exponent with d1 and dn not '0'; zero, of either sign, has
// no digits. nullopt for text that is not such a number.
struct ExactDecimal {
  bool negative = false;
  std::string digits;
  std::int64_t exponent = 0;
  bool operator==(const ExactDecimal&) const = default;
};

std::optional<ExactDecimal> exact_decimal(std::string_view text) {
  // An exponent beyond this is clamped: such a number (non-zero) is far
  // outside what any double prints, so it never compares equal either way.
  constexpr std::int64_t kExponentClamp = std::int64_t{1} << 40;
  ExactDecimal d;
  std::size_t i = 0;
  const auto is_digit = [&text](std::size_t at) {
    return at < text.size() && text[at] >= '0' && text[at] <= '9';
  };
  if (i < text.size() && text[i] == '-') {
    d.negative = true;
    ++i;
  }
  if (!is_digit(i)) return std::nullopt;
  std::int64_t point = 0;  // digits kept before the decimal point
  bool leading = true;
  for (; is_digit(i); ++i) {
    if (leading && text[i] == '0') continue;
    leading = false;
    d.digits += text[i];
    ++point;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!is_digit(i)) return std::nullopt;
    for (; is_digit(i); ++i) {
      if (leading && text[i] == '0') {
        --point;  // 0.00d: the first significant digit comes later
        continue;
      }
      leading = false;
      d.digits += text[i];
    }
  }
  std::int64_t exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool negative_exponent = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative_exponent = text[i++] == '-';
    if (!is_digit(i)) return std::nullopt;
    for (; is_digit(i); ++i) {
      exponent = std::min(exponent * 10 + (text[i] - '0'), kExponentClamp);
    }
    if (negative_exponent) exponent = -exponent;
  }
  if (i != text.size()) return std::nullopt;
  while (!d.digits.empty() && d.digits.back() == '0') d.digits.pop_back();
  if (d.digits.empty()) return ExactDecimal{};  // zero: no sign, no exponent
  d.exponent = point + exponent;
  return d;
}

// True when `text` (a number token) has exactly the value of `compact`, what
// js_stringify() printed for it.
bool same_decimal(std::string_view text, std::string_view compact) {
  const auto a = exact_decimal(text);
  const auto b = exact_decimal(compact);
  return a && b && *a == *b;
}

// SAX handler building an ordered_json, see the file comment.
class StrictDomBuilder {
 public:
  // `check_numbers`: compare every number with its compact form (faithful()).
  StrictDomBuilder(Json& root, bool check_numbers) : root_(root), check_numbers_(check_numbers) {}

  Errc error() const noexcept { return error_; }
  // No number checked so far changes its value in the compact form.
  bool faithful() const noexcept { return faithful_; }

  bool null() { return add(nullptr); }
  bool boolean(bool v) { return add(v); }
  bool number_integer(Json::number_integer_t v) {
    if (check_numbers_ && faithful_) {
      const std::uint64_t magnitude =
          v < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
      check_integer(v < 0, magnitude);
    }
    return add(v);
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (check_numbers_ && faithful_) check_integer(false, v);
    return add(v);
  }
  bool number_float(Json::number_float_t v, const Json::string_t& text) {
    if (check_numbers_ && faithful_) {
      scratch_number_.clear();
      js_number(v, scratch_number_);
      faithful_ = same_decimal(text, scratch_number_);
    }
    return add(v);
  }
  // The lexer clears its token buffer before every token: moving out is safe.
  bool string(Json::string_t& v) { return add(std::move(v)); }
  bool binary(Json::binary_t& /*v*/) { return fail_with(Errc::malformed_json); }

  bool start_object(std::size_t /*size*/) { return open(Json::value_t::object); }
  bool key(Json::string_t& k) {
    auto& members = static_cast<ObjectBase&>(stack_.back()->get_ref<Json::object_t&>());
    members.emplace_back(std::move(k), nullptr);
    member_slot_ = &members.back().second;
    return true;
  }
  bool end_object() {
    if (has_duplicate_key(stack_.back()->get_ref<const Json::object_t&>())) {
      return fail_with(Errc::duplicate_key);
    }
    stack_.pop_back();
    return true;
  }

  bool start_array(std::size_t /*size*/) { return open(Json::value_t::array); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*ex*/) {
    return fail_with(Errc::malformed_json);
  }

 private:
  using ObjectBase = std::vector<Json::object_t::value_type>;

  bool fail_with(Errc e) {
    error_ = e;
    return false;
  }

  // Integers up to 2^53 print as themselves; beyond, as the nearest double.
  void check_integer(bool negative, std::uint64_t magnitude) {
    if (magnitude <= kMaxExactInteger) return;
    std::string exact = negative ? "-" : "";
    append_uint(magnitude, exact);
    scratch_number_.clear();
    const double nearest = static_cast<double>(magnitude);
    js_number(negative ? -nearest : nearest, scratch_number_);
    faithful_ = same_decimal(exact, scratch_number_);
  }

  // Places a value in the current container (or at the root); returns it.
  template <class Value>
  Json* place(Value&& v) {
    if (stack_.empty()) {
      root_ = Json(std::forward<Value>(v));
      return &root_;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      auto& elements = parent.get_ref<Json::array_t&>();
      elements.emplace_back(std::forward<Value>(v));
      return &elements.back();
    }
    *member_slot_ = Json(std::forward<Value>(v));
    return member_slot_;
  }

  template <class Value>
  bool add(Value&& v) {
    place(std::forward<Value>(v));
    return true;
  }

  bool open(Json::value_t type) {
    if (stack_.size() >= kMaxDepth) return fail_with(Errc::malformed_json);
    // A container's parent receives no other element until it closes, so the
    // pointer stays valid while it is on the stack.
    stack_.push_back(place(type));
    return true;
  }

  // The map's own operator[] takes a key: index its underlying vector.
  bool has_duplicate_key(const ObjectBase& members) {
    const std::size_t n = members.size();
    if (n <= kPairwiseLimit) {
      for (std::size_t i = 1; i < n; ++i) {
        for (std::size_t j = 0; j < i; ++j) {
          if (members[i].first == members[j].first) return true;
        }
      }
      return false;
    }
    scratch_keys_.clear();
    scratch_keys_.reserve(n);
    for (const auto& member : members) scratch_keys_.emplace_back(member.first);
    std::sort(scratch_keys_.begin(), scratch_keys_.end());
    return std::adjacent_find(scratch_keys_.begin(), scratch_keys_.end()) != scratch_keys_.end();
  }

  Json& root_;
  std::vector<Json*> stack_;
  Json* member_slot_ = nullptr;
  std::vector<std::string_view> scratch_keys_;
  Errc error_ = Errc::malformed_json;
  const bool check_numbers_;
  bool faithful_ = true;
  std::string scratch_number_;
};

// How JSON.stringify writes each byte: 0 verbatim, 'u' as \u00xx, else '\\' + code.
constexpr std::array<char, 256> kEscapes = [] {
  std::array<char, 256> table{};
  for (int c = 0; c < 0x20; ++c) table[static_cast<std::size_t>(c)] = 'u';
  table['\b'] = 'b';
  table['\f'] = 'f';
  table['\n'] = 'n';
  table['\r'] = 'r';
  table['\t'] = 't';
  table['"'] = '"';
  table['\\'] = '\\';
  return table;
}();

void append_string(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto byte = static_cast<unsigned char>(s[i]);
    const char code = kEscapes[byte];
    if (code == 0) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    if (code == 'u') {
      const char escape[6] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xF]};
      out.append(escape, sizeof escape);
    } else {
      const char escape[2] = {'\\', code};
      out.append(escape, sizeof escape);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void append_uint(std::uint64_t v, std::string& out) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

// The numeric value of `key` when it is an ECMAScript array index (canonical
// decimal of an integer in [0, 2^32 - 2]), or -1.
std::int64_t array_index(std::string_view key) {
  if (key.empty() || key.size() > 10) return -1;
  if (key[0] == '0') return key.size() == 1 ? 0 : -1;
  std::int64_t v = 0;
  for (const char c : key) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v <= 0xFFFFFFFE ? v : -1;
}

void append_value(const Json& value, std::string& out);

void append_member(const Json::object_t::value_type& member, bool first, std::string& out) {
  if (!first) out += ',';
  append_string(member.first, out);
  out += ':';
  append_value(member.second, out);
}

void append_object(const Json::object_t& members, std::string& out) {
  out += '{';
  const bool any_index = std::any_of(members.begin(), members.end(), [](const auto& member) {
    return array_index(member.first) >= 0;
  });
  if (!any_index) {
    bool first = true;
    for (const auto& member : members) {
      append_member(member, first, out);
      first = false;
    }
  } else {
    // Array-index keys first, ascending; then the others in received order.
    std::vector<std::pair<std::int64_t, const Json::object_t::value_type*>> indexed;
    for (const auto& member : members) {
      const std::int64_t index = array_index(member.first);
      if (index >= 0) indexed.emplace_back(index, &member);
    }
    std::stable_sort(indexed.begin(), indexed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    bool first = true;
    for (const auto& entry : indexed) {
      append_member(*entry.second, first, out);
      first = false;
    }
    for (const auto& member : members) {
      if (array_index(member.first) >= 0) continue;
      append_member(member, first, out);
      first = false;
    }
  }
  out += '}';
}

void append_value(const Json& value, std::string& out) {
  switch (value.type()) {
    case Json::value_t::null:
      out += "null";
      return;
    case Json::value_t::boolean:
      out += value.get_ref<const Json::boolean_t&>() ? "true" : "false";
      return;
    case Json::value_t::number_integer: {
      const auto v = value.get_ref<const Json::number_integer_t&>();
      const std::uint64_t magnitude =
          v < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
      if (magnitude <= kMaxExactInteger) {
        if (v < 0) out += '-';
        append_uint(magnitude, out);
      } else {
        js_number(static_cast<double>(v), out);
      }
      return;
    }
    case Json::value_t::number_unsigned: {
      const auto v = value.get_ref<const Json::number_unsigned_t&>();
      if (v <= kMaxExactInteger) {
        append_uint(v, out);
      } else {
        js_number(static_cast<double>(v), out);
      }
      return;
    }
    case Json::value_t::number_float: {
      const double v = value.get_ref<const Json::number_float_t&>();
      if (std::isfinite(v)) {
        js_number(v, out);
      } else {
        out += "null";  // JSON.stringify(Infinity); parse_strict never yields it
      }
      return;
    }
    case Json::value_t::string:
      append_string(value.get_ref<const Json::string_t&>(), out);
      return;
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& element : value.get_ref<const Json::array_t&>()) {
        if (!first) out += ',';
        append_value(element, out);
        first = false;
      }
      out += ']';
      return;
    }
    case Json::value_t::object:
      append_object(value.get_ref<const Json::object_t&>(), out);
      return;
    case Json::value_t::binary:     // never produced by parse_strict
    case Json::value_t::discarded:  // idem
      out += "null";
      return;
  }
}

}  // namespace

namespace {

Result<CheckedJson> parse(std::string_view body, bool check_numbers) {
  const auto failed = [](Errc e) -> Result<CheckedJson> {
    return {boost::system::in_place_error, make_error_code(e)};
  };
  // RFC 8259 lets a parser ignore a byte order mark and nlohmann does; JSON.parse
  // does not, so neither do we.
  if (body.starts_with(kUtf8Bom)) return failed(Errc::malformed_json);
  // nlohmann's lexer takes a NUL byte for the end of input and would accept
  // "{}\0<anything>". A raw NUL is never valid JSON (strings escape it).
  if (body.find('\0') != std::string_view::npos) return failed(Errc::malformed_json);
  try {
    CheckedJson out;
    StrictDomBuilder builder(out.value, check_numbers);
    const bool ok = Json::sax_parse(body.begin(), body.end(), &builder,
                                    nlohmann::detail::input_format_t::json, /*strict=*/true,
                                    /*ignore_comments=*/false);
    if (!ok) return failed(builder.error());
    out.compact_faithful = builder.faithful();
    return out;
  } catch (...) {  // std::bad_alloc; nlohmann itself does not throw from sax_parse
    return failed(Errc::internal);
  }
}

}  // namespace

Result<Json> parse_strict(std::string_view body) {
  auto parsed = parse(body, /*check_numbers=*/false);
  if (!parsed) return parsed.error();
  return std::move(parsed->value);
}

Result<CheckedJson> parse_strict_checked(std::string_view body) {
  return parse(body, /*check_numbers=*/true);
}

void js_stringify(const Json& value, std::string& out) { append_value(value, out); }

std::string js_stringify(const Json& value) {
  std::string out;
  js_stringify(value, out);
  return out;
}

// ECMAScript Number::toString(x), radix 10 (ECMA-262 sec. 6.1.6.1.20). With
// x = s * 10^(n-k), s having k digits (the shortest that round-trips, which
// std::to_chars yields), the layout depends on n.
void js_number(double x, std::string& out) {
  if (std::isnan(x)) {
    out += "NaN";
    return;
  }
  if (x == 0) {  // +0 and -0
    out += '0';
    return;
  }
  if (x < 0) {
    out += '-';
    x = -x;
  }
  if (std::isinf(x)) {
    out += "Infinity";
    return;
  }

  // Shortest round-trip digits in scientific form: "d[.ddd]e[+-]xx".
  char sci[32];
  const auto res = std::to_chars(sci, sci + sizeof sci, x, std::chars_format::scientific);
  const std::string_view text(sci, static_cast<std::size_t>(res.ptr - sci));
  const std::size_t e_pos = text.find('e');

  char digits[20] = {};  // at most 17 significant digits
  int k = 0;
  for (std::size_t i = 0; i < e_pos; ++i) {
    if (text[i] != '.') digits[k++] = text[i];
  }
  int exponent = 0;
  const char* exp_begin = text.data() + e_pos + 1;
  if (*exp_begin == '+') ++exp_begin;  // from_chars accepts '-' only
  std::from_chars(exp_begin, text.data() + text.size(), exponent);
  const int n = exponent + 1;

  if (k <= n && n <= 21) {
    out.append(digits, static_cast<std::size_t>(k));
    out.append(static_cast<std::size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out.append(digits, static_cast<std::size_t>(n));
    out += '.';
    out.append(digits + n, static_cast<std::size_t>(k - n));
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-n), '0');
    out.append(digits, static_cast<std::size_t>(k));
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits + 1, static_cast<std::size_t>(k - 1));
    }
    out += 'e';
    out += n - 1 < 0 ? '-' : '+';
    append_uint(static_cast<std::uint64_t>(std::abs(n - 1)), out);
  }
}

}  // namespace hookvault
