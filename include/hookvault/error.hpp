// hookvault error codes.
//
// Every fallible operation on the request path returns `Result<T>` (a
// `boost::system::result<T>`) whose error is an `Errc` wrapped in a
// `boost::system::error_code` of hookvault's own category; a step whose
// failure names a field of the request (admission, a delegation's envelopes)
// returns `Result<T, Refusal>`: the same Errc, plus the field. Exceptions are
// used only while loading configuration and starting up (see config.hpp).
//
// `http_status()` is the one place that maps an error to the HTTP status the
// public listener answers with; `error_name()` gives the stable snake_case name
// used in JSON error bodies (`{"error":"<name>"}`). Messages never contain
// secret material or the expected value of a MAC.
//
// Thread-safety: everything here is stateless and safe from any thread.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <string>
#include <string_view>
#include <type_traits>

namespace hookvault {

enum class Errc {
  // Request handling.
  invalid_signature = 1,        // no configured secret produced the presented MAC
  malformed_json,               // body is not valid JSON
  duplicate_key,                // an object repeats a key
  missing_field,                // a required field is absent or null
  invalid_field,                // a field has the wrong type or format
  body_too_large,               // body exceeds max_body_bytes
  unsupported_media_type,       // content type is not JSON
  not_found,                    // no route / no record
  method_not_allowed,           // route exists, method does not
  stale_event,                  // event timestamp older than the source's max_event_age
  overloaded,                   // a bounded queue is full; retry later
  client_certificate_required,  // mutual TLS listener: the client sent no certificate
  forbidden,                    // the client certificate's CN lacks the role
  rate_limited,                 // the client made too many requests; retry later
  signed_form_mismatch,         // only the compact form is signed, and the body means otherwise

  // Hybrid (Dynamic) envelope decryption.
  unknown_alg,      // envelope alg not in the allow-list
  bad_envelope,     // envelope is not an object or lacks a field
  bad_encoding,     // a field is not base64/base64url
  bad_length,       // iv/tag/ek/key length wrong
  no_matching_key,  // no configured RSA key decrypts ek
  auth_failed,      // AES-GCM tag verification failed

  // Store and key management.
  store_unavailable,  // the store cannot commit (disk full, read-only, locked)
  store_corrupt,      // stored data does not open (wrong KEK, tampered row)
  kek_unavailable,    // the KEK (or the requested version) is not loaded

  // Control plane.
  config_invalid,
  io_error,
  internal,
};

const boost::system::error_category& hookvault_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), hookvault_category()};
}

template <class T, class E = boost::system::error_code>
using Result = boost::system::result<T, E>;

// A request refused, or a part of it that failed: the error, the request
// field it is about (a name, never a value; may be empty) and, for the request
// log, the event's name when the body gave one. error_reply(const Refusal&)
// (handler.hpp) is the answer to it.
struct Refusal {
  Errc code = Errc::internal;
  std::string field;
  std::string event_name;

  // "<field>: <message>", or the message alone: what a stored decrypt failure
  // records.
  std::string describe() const;
};

// Result<T, Refusal>::value() on a refusal throws boost::system::system_error
// of its code (never reached on the request path, which checks first).
[[noreturn]] void throw_exception_from_error(const Refusal& refusal,
                                             const boost::source_location& loc);

// Stable snake_case name of the error (e.g. "invalid_signature").
std::string_view error_name(Errc e) noexcept;

// The HTTP status the public listener answers for this error.
unsigned http_status(Errc e) noexcept;

// The Errc held by `ec`, or Errc::internal when `ec` is of another category.
Errc to_errc(const boost::system::error_code& ec) noexcept;

}  // namespace hookvault

namespace boost::system {
template <>
struct is_error_code_enum<hookvault::Errc> : std::true_type {};
}  // namespace boost::system
