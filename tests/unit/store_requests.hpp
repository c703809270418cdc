// Write requests the store tests build (plain events, delegations,
// revocations), shared by the contract tests and the SQLite-only ones.
#pragma once

#include <cstdint>
#include <string>

#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"
#include "hookvault/store.hpp"

namespace hookvault::testing::requests {

using hookvault::DelegationMaterials;
using hookvault::Errc;
using hookvault::SecretBytes;
using hookvault::WriteRequest;

inline constexpr char kSource[] = "dynamic";
inline constexpr char kCreated[] = "wallet.delegation.created";
inline constexpr char kRevoked[] = "wallet.delegation.revoked";

inline Errc errc_of(const boost::system::error_code& ec) { return hookvault::to_errc(ec); }

inline std::string iso(std::int64_t ms) { return "t+" + std::to_string(ms); }

inline WriteRequest plain_event(const std::string& key, const std::string& payload = "",
                                const std::string& source = kSource) {
  WriteRequest r;
  r.event.source = source;
  r.event.idempotency_key = key;
  r.event.event_name = "user.created";
  r.event.message_id = "msg-" + key;
  r.event.event_time = iso(1000);
  r.event.event_time_ms = 1000;
  r.event.payload = payload.empty() ? R"({"eventId":")" + key + R"("})" : payload;
  return r;
}

inline DelegationMaterials materials_for(const std::string& wallet, const std::string& share,
                                         const std::string& api_key) {
  DelegationMaterials m;
  m.wallet_id = wallet;
  m.user_id = "user-" + wallet;
  m.chain = "EVM";
  m.share_set_id = "set-" + wallet;
  m.share = SecretBytes::copy_of(share);
  m.api_key = SecretBytes::copy_of(api_key);
  return m;
}

inline WriteRequest created(const std::string& key, const std::string& wallet, std::int64_t t,
                            const std::string& share = "share",
                            const std::string& api_key = "api") {
  WriteRequest r;
  r.event.source = kSource;
  r.event.idempotency_key = key;
  r.event.event_name = kCreated;
  r.event.event_time = iso(t);
  r.event.event_time_ms = t;
  r.event.wallet_id = wallet;
  r.event.payload = R"({"eventName":"wallet.delegation.created","eventId":")" + key + R"("})";
  r.materials = materials_for(wallet, share, api_key);
  return r;
}

inline WriteRequest created_failed(const std::string& key, const std::string& wallet,
                                   std::int64_t t, const std::string& reason = "no_matching_key") {
  WriteRequest r = created(key, wallet, t);
  r.materials.reset();
  r.decrypt_failure = reason;
  return r;
}

inline WriteRequest revoked(const std::string& key, const std::string& wallet, std::int64_t t) {
  WriteRequest r;
  r.event.source = kSource;
  r.event.idempotency_key = key;
  r.event.event_name = kRevoked;
  r.event.event_time = iso(t);
  r.event.event_time_ms = t;
  r.event.wallet_id = wallet;
  r.event.payload = R"({"eventName":"wallet.delegation.revoked"})";
  r.revoke = true;
  return r;
}

}  // namespace hookvault::testing::requests
