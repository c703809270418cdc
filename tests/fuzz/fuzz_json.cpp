// Fuzzes parse_strict() and the JS-compatible serializer js_stringify().
// Agreement with Node's JSON.stringify itself is checked on a committed
// corpus (tests/fuzz/json-node, JsStringifyNodeTest); here the properties are
// ones that hold for every input:
//   - parse_strict() fails only with malformed_json or duplicate_key;
//   - what it accepts serializes to text that parse_strict() accepts again
//     and that serializes to itself (a fixed point, as JSON.stringify's
//     output is for JSON.parse);
//   - the compact form has no whitespace outside strings;
//   - every number in it is ECMAScript's: it reads back to the same double
//     (strtod) and no shorter digit string does;
//   - parse_strict_checked() agrees with parse_strict(), and finds the
//     compact form faithful to itself (its numbers are what JS prints).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz_support.hpp"
#include "hookvault/json.hpp"

using namespace hookvault;
using fuzz::check;

namespace {

std::size_t significant_digits(const std::string& text) {
  std::size_t n = 0;
  bool leading = true;
  for (const char c : text) {
    if (c == 'e') break;
    if (c < '0' || c > '9') continue;
    if (leading && c == '0') continue;
    leading = false;
    ++n;
  }
  // Trailing zeros of an integer are not significant ("1e+21" vs "100").
  return n;
}

void check_number(double x) {
  if (!std::isfinite(x)) return;
  std::string text;
  js_number(x, text);
  check(std::strtod(text.c_str(), nullptr) == x || (x == 0 && text == "0"),
        "js_number reads back to the same double");
  if (x == 0) return;
  // No representation with fewer significant digits reads back to x.
  std::string trimmed = text;
  if (trimmed.find('e') == std::string::npos && trimmed.find('.') == std::string::npos) {
    while (trimmed.size() > 1 && trimmed.back() == '0') trimmed.pop_back();
  }
  const std::size_t digits = significant_digits(trimmed);
  if (digits <= 1) return;
  char shorter[64];
  std::snprintf(shorter, sizeof shorter, "%.*e", static_cast<int>(digits) - 2, x);
  check(std::strtod(shorter, nullptr) != x, "js_number prints the shortest round-trip digits");
}

void check_numbers(const Json& v) {
  switch (v.type()) {
    case Json::value_t::number_float:
      check_number(v.get<double>());
      break;
    case Json::value_t::number_integer:
      check_number(static_cast<double>(v.get<std::int64_t>()));
      break;
    case Json::value_t::number_unsigned:
      check_number(static_cast<double>(v.get<std::uint64_t>()));
      break;
    case Json::value_t::array:
    case Json::value_t::object:
      for (const auto& e : v) check_numbers(e);
      break;
    default:
      break;
  }
}

bool whitespace_outside_strings(const std::string& text) {
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      return true;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parsed = parse_strict(fuzz::as_text(data, size));
  const auto checked = parse_strict_checked(fuzz::as_text(data, size));
  check(parsed.has_value() == checked.has_value(), "the checked parse accepts the same texts");
  if (parsed && checked)
    check(checked->value == *parsed, "the checked parse yields the same value");
  if (!parsed) {
    check(parsed.error() == Errc::malformed_json || parsed.error() == Errc::duplicate_key,
          "parse_strict fails only with malformed_json or duplicate_key");
    return 0;
  }
  const std::string compact = js_stringify(*parsed);
  check(!whitespace_outside_strings(compact), "the compact form has no whitespace");
  const auto again = parse_strict(compact);
  check(again.has_value(), "the compact form parses");
  check(js_stringify(*again) == compact, "the compact form is a fixed point");
  const auto compact_checked = parse_strict_checked(compact);
  check(compact_checked && compact_checked->compact_faithful,
        "the compact form means exactly what it prints");
  check_numbers(*parsed);
  return 0;
}
