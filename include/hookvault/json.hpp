// Strict JSON parsing and the JavaScript-compatible compact serialization used
// to verify provider signatures.
//
// parse_strict(): RFC 8259 JSON into an ordered_json (member order as received).
//   Errc::malformed_json on any syntax error (including trailing bytes, invalid
//   UTF-8), Errc::duplicate_key when any object repeats a key. Never throws.
//
// js_stringify(): exactly what `JSON.stringify(JSON.parse(body))` yields in
//   ECMAScript, for a body parse_strict() accepted:
//   - members in received order, no whitespace;
//   - numbers as ECMAScript Number::toString of the nearest double (integers
//     beyond 2^53 therefore round as they do in JavaScript; -0 prints "0";
//     1e21 prints "1e+21"; 1.5e-7 prints "1.5e-7");
//   - strings escaped as JSON.stringify does: \" \\ \b \f \n \r \t, other
//     control characters as lowercase \u00xx, everything else (non-ASCII, '/')
//     verbatim.
//   (Lone surrogate escapes such as "\ud800" are rejected by the parser, so
//   they never reach the serializer.)
//
// parse_strict_checked(): parse_strict(), and whether js_stringify() of the
//   result means exactly what the text means (see CheckedJson). A signature
//   over the compact form authenticates the text only when it does.
//
// Thread-safety: stateless.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hookvault/error.hpp"

namespace hookvault {

using Json = nlohmann::ordered_json;

Result<Json> parse_strict(std::string_view body);

struct CheckedJson {
  Json value;
  // True when every number of the text has exactly the decimal value that
  // its compact form prints: "1.50", "1e2", "-0" and "9007199254740992" do
  // (1.5, 100, 0, itself), while "9007199254740993", "0.1000000000000000055511151231257827"
  // and "1e-400" do not (ECMAScript prints the nearest double: ...992, 0.1, 0).
  // Everything else always means the same in both forms: strings decode to
  // the same bytes (only their escapes differ), literals and nesting are
  // kept, and the only reordering (array-index keys first) is of object
  // members, whose order JSON does not give a meaning.
  bool compact_faithful = true;
};
Result<CheckedJson> parse_strict_checked(std::string_view body);

void js_stringify(const Json& value, std::string& out);
std::string js_stringify(const Json& value);

// ECMAScript Number::toString(x) for a finite double.
void js_number(double x, std::string& out);

}  // namespace hookvault
