// A Nodit subscription id: the one rule that webhook admission (plan_nodit,
// src/pipeline/nodit.cpp), the history client (nodit_history.hpp) and the
// configuration's [sources.history] subscriptions all apply, so that every id
// the store files a sequence ledger under is one the history API can be asked
// about and answers with (docs/protocols.md, "Nodit: message").
//
// Nodit sends `subscriptionId` as digits in a string. Accepted, in canonical
// form only:
//   - a string of 1..64 ASCII digits '0'-'9', without a leading zero unless the
//     id is "0" itself: "7" but not "007", " 7", "+7", "7.0", "-7" or any
//     non-ASCII digit (such as U+0667 ARABIC-INDIC DIGIT SEVEN);
//   - a non-negative JSON integer (lenient), rendered as its decimal digits
//     (7 -> "7").
// Anything else is not an id. A leading zero is refused rather than stripped:
// "007" and "7" would otherwise be two ledgers (and two idempotency keys) for
// what the API may take as one number, and stripping would instead merge two
// ids should the API ever treat them as distinct strings; Nodit itself never
// sends one.
//
// Header only (no stage to link): the pipeline and the net stage both use it
// and neither may depend on the other.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hookvault/json.hpp"

namespace hookvault {

inline constexpr std::size_t kMaxSubscriptionIdLength = 64;

// True when `s` is a subscription id in canonical form (see above).
constexpr bool is_subscription_id(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxSubscriptionIdLength) return false;
  if (s.size() > 1 && s.front() == '0') return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// The id a JSON value names, in canonical form; nullopt when it names none.
inline std::optional<std::string> subscription_id_of(const Json& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<std::uint64_t>());
  if (v.is_number_integer()) {
    const auto n = v.get<std::int64_t>();
    if (n < 0) return std::nullopt;
    return std::to_string(n);
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (is_subscription_id(s)) return s;
  }
  return std::nullopt;
}

}  // namespace hookvault
