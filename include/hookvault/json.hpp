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
// Thread-safety: stateless.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hookvault/error.hpp"

namespace hookvault {

using Json = nlohmann::ordered_json;

Result<Json> parse_strict(std::string_view body);

void js_stringify(const Json& value, std::string& out);
std::string js_stringify(const Json& value);

// ECMAScript Number::toString(x) for a finite double.
void js_number(double x, std::string& out);

}  // namespace hookvault
