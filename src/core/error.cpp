#include "hookvault/error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>
#include <string>

namespace hookvault {
namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "hookvault"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::invalid_signature:
        return "signature verification failed";
      case Errc::malformed_json:
        return "body is not valid JSON";
      case Errc::duplicate_key:
        return "JSON object has a duplicate key";
      case Errc::missing_field:
        return "required field is missing";
      case Errc::invalid_field:
        return "field has the wrong type or format";
      case Errc::body_too_large:
        return "body exceeds the size limit";
      case Errc::unsupported_media_type:
        return "content type is not application/json";
      case Errc::not_found:
        return "not found";
      case Errc::method_not_allowed:
        return "method not allowed";
      case Errc::stale_event:
        return "event is older than max_event_age";
      case Errc::overloaded:
        return "server is overloaded";
      case Errc::client_certificate_required:
        return "a client certificate is required";
      case Errc::forbidden:
        return "the client is not allowed to do this";
      case Errc::rate_limited:
        return "too many requests from this client";
      case Errc::signed_form_mismatch:
        return "the signature covers the body's JSON.stringify form, which means something else";
      case Errc::unknown_alg:
        return "envelope alg is not an accepted algorithm";
      case Errc::bad_envelope:
        return "envelope is malformed";
      case Errc::bad_encoding:
        return "envelope field is not valid base64";
      case Errc::bad_length:
        return "envelope field has the wrong length";
      case Errc::no_matching_key:
        return "no configured RSA key decrypts the envelope";
      case Errc::auth_failed:
        return "AES-GCM authentication failed";
      case Errc::store_unavailable:
        return "store cannot commit";
      case Errc::store_corrupt:
        return "stored record does not open";
      case Errc::kek_unavailable:
        return "key-encryption key is not available";
      case Errc::config_invalid:
        return "configuration is invalid";
      case Errc::io_error:
        return "I/O error";
      case Errc::internal:
        return "internal error";
    }
    return "unknown hookvault error";
  }
};

}  // namespace

const boost::system::error_category& hookvault_category() noexcept {
  static const Category category;
  return category;
}

std::string_view error_name(Errc e) noexcept {
  switch (e) {
    case Errc::invalid_signature:
      return "invalid_signature";
    case Errc::malformed_json:
      return "malformed_json";
    case Errc::duplicate_key:
      return "duplicate_key";
    case Errc::missing_field:
      return "missing_field";
    case Errc::invalid_field:
      return "invalid_field";
    case Errc::body_too_large:
      return "body_too_large";
    case Errc::unsupported_media_type:
      return "unsupported_media_type";
    case Errc::not_found:
      return "not_found";
    case Errc::method_not_allowed:
      return "method_not_allowed";
    case Errc::stale_event:
      return "stale_event";
    case Errc::overloaded:
      return "overloaded";
    case Errc::client_certificate_required:
      return "client_certificate_required";
    case Errc::forbidden:
      return "forbidden";
    case Errc::rate_limited:
      return "rate_limited";
    case Errc::signed_form_mismatch:
      return "signed_form_mismatch";
    case Errc::unknown_alg:
      return "unknown_alg";
    case Errc::bad_envelope:
      return "bad_envelope";
    case Errc::bad_encoding:
      return "bad_encoding";
    case Errc::bad_length:
      return "bad_length";
    case Errc::no_matching_key:
      return "no_matching_key";
    case Errc::auth_failed:
      return "auth_failed";
    case Errc::store_unavailable:
      return "store_unavailable";
    case Errc::store_corrupt:
      return "store_corrupt";
    case Errc::kek_unavailable:
      return "kek_unavailable";
    case Errc::config_invalid:
      return "config_invalid";
    case Errc::io_error:
      return "io_error";
    case Errc::internal:
      return "internal";
  }
  return "internal";
}

unsigned http_status(Errc e) noexcept {
  switch (e) {
    case Errc::invalid_signature:
    case Errc::client_certificate_required:
      return 401;
    case Errc::forbidden:
      return 403;
    case Errc::rate_limited:
      return 429;
    case Errc::malformed_json:
    case Errc::duplicate_key:
    case Errc::missing_field:
    case Errc::invalid_field:
    case Errc::stale_event:
    case Errc::signed_form_mismatch:
      return 400;
    case Errc::body_too_large:
      return 413;
    case Errc::unsupported_media_type:
      return 415;
    case Errc::not_found:
      return 404;
    case Errc::method_not_allowed:
      return 405;
    case Errc::overloaded:
    case Errc::store_unavailable:
    case Errc::kek_unavailable:
      return 503;
    default:
      return 500;
  }
}

Errc to_errc(const boost::system::error_code& ec) noexcept {
  if (ec.category() == hookvault_category()) return static_cast<Errc>(ec.value());
  return Errc::internal;
}

std::string Refusal::describe() const {
  std::string out = field;
  if (!out.empty()) out += ": ";
  out += make_error_code(code).message();
  return out;
}

void throw_exception_from_error(const Refusal& refusal, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(make_error_code(refusal.code)), loc);
}

}  // namespace hookvault
