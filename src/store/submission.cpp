#include "store/submission.hpp"

#include <limits>
#include <utility>

#include "hookvault/bytes.hpp"
#include "hookvault/secret.hpp"

namespace hookvault::store {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

}  // namespace

Result<WriteWork> prepare_write(const Kek& kek, const Clock& clock, WriteRequest& request) {
  NewEvent& ev = request.event;
  if (ev.source.empty() || ev.idempotency_key.empty()) return err(Errc::missing_field);
  const int kinds =
      (request.materials ? 1 : 0) + (request.decrypt_failure ? 1 : 0) + (request.revoke ? 1 : 0);
  if (kinds > 1) return err(Errc::internal);  // a caller bug: at most one may be set
  if ((request.materials || request.revoke) && ev.wallet_id.empty()) {
    return err(Errc::missing_field);
  }
  if (request.materials && !request.materials->wallet_id.empty() &&
      request.materials->wallet_id != ev.wallet_id) {
    return err(Errc::invalid_field);
  }
  if (ev.sequence && (ev.sequence->subscription_id.empty() || ev.sequence->number == 0 ||
                      ev.sequence->number >
                          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))) {
    return err(Errc::invalid_field);
  }

  WriteWork work;
  auto sealed = seal_payload(kek, ev.source, ev.idempotency_key, as_bytes(ev.payload));
  secure_wipe(ev.payload.data(), ev.payload.size());
  if (!sealed) return sealed.error();
  if (request.materials) {
    auto m = seal_materials(kek, ev.source, ev.wallet_id, ev.idempotency_key, *request.materials);
    request.materials.reset();  // wipes the plaintext now
    if (!m) return m.error();
    work.materials = std::move(*m);
  }
  work.event = EventRow{std::move(ev.source),     std::move(ev.idempotency_key),
                        std::move(ev.event_name), std::move(ev.message_id),
                        std::move(ev.event_time), ev.event_time_ms,
                        std::move(ev.wallet_id),  ev.origin,
                        clock.now_ms(),           std::move(*sealed),
                        std::move(ev.sequence)};
  work.decrypt_failure = std::move(request.decrypt_failure);
  work.revoke = request.revoke;
  return work;
}

Result<void> check_actor(const std::string& actor) {
  if (actor.empty()) return err(Errc::missing_field);
  if (actor.size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  return {};
}

Result<void> seal_resolution(const Kek& kek, ResolveWork& work,
                             std::variant<DelegationMaterials, std::string>& outcome) {
  auto* materials = std::get_if<DelegationMaterials>(&outcome);
  if (materials == nullptr) {
    work.outcome = std::move(std::get<std::string>(outcome));
    return {};
  }
  auto sealed = [&]() -> Result<SealedMaterials> {
    if (work.wallet_id.empty()) return err(Errc::missing_field);
    if (!materials->wallet_id.empty() && materials->wallet_id != work.wallet_id) {
      return err(Errc::invalid_field);
    }
    return seal_materials(kek, work.source, work.wallet_id, work.idempotency_key, *materials);
  }();
  outcome = std::string();  // wipes the plaintext now
  if (!sealed) return sealed.error();
  work.outcome = std::move(*sealed);
  return {};
}

}  // namespace hookvault::store
