#include "store/envelope.hpp"

#include <algorithm>
#include <tuple>
#include <utility>

#include "hookvault/aead.hpp"

namespace hookvault::store {
namespace {

constexpr std::string_view kEvents = "events";
constexpr std::string_view kMaterials = "materials";

}  // namespace

Result<WrappedKey> wrap_dek(const Kek& kek, const SecretBytes& dek, ByteView ad) {
  auto wrapped = kek.wrap(dek, ad);
  if (!wrapped) return wrapped.error();
  return WrappedKey{kek.id(), wrapped->version, std::move(wrapped->bytes)};
}

Result<SecretBytes> unwrap_dek(const Kek& kek, const WrappedKey& key, ByteView ad) {
  if (key.kek_id != kek.id()) return make_error_code(Errc::kek_unavailable);
  auto dek = kek.unwrap(key.wrapped_dek, key.kek_version, ad);
  if (!dek) return dek.error();
  if (dek->size() != kDekBytes) return make_error_code(Errc::store_corrupt);
  return dek;
}

Result<WrappedKey> rewrap_key(const Kek& kek, const WrappedKey& key, ByteView ad) {
  auto dek = unwrap_dek(kek, key, ad);
  if (!dek) return dek.error();
  return wrap_dek(kek, *dek, ad);
}

Bytes event_key_ad(std::string_view source, std::string_view idempotency_key) {
  return associated_data({kEvents, source, idempotency_key, "dek"});
}

Bytes materials_key_ad(std::string_view source, std::string_view wallet_id,
                       std::string_view event_id) {
  return associated_data({kMaterials, source, wallet_id, event_id, "dek"});
}

Result<SealedPayload> seal_payload(const Kek& kek, std::string_view source,
                                   std::string_view idempotency_key, ByteView payload) {
  const SecretBytes dek = SecretBytes::random(kDekBytes);
  auto key = wrap_dek(kek, dek, event_key_ad(source, idempotency_key));
  if (!key) return key.error();
  Bytes sealed =
      aead_seal(dek, payload, associated_data({kEvents, source, idempotency_key, "payload"}));
  return SealedPayload{std::move(*key), std::move(sealed)};
}

Result<SecretBytes> open_payload(const Kek& kek, std::string_view source,
                                 std::string_view idempotency_key, const WrappedKey& key,
                                 ByteView payload) {
  auto dek = unwrap_dek(kek, key, event_key_ad(source, idempotency_key));
  if (!dek) return dek.error();
  return aead_open(*dek, payload, associated_data({kEvents, source, idempotency_key, "payload"}));
}

Result<SealedMaterials> seal_materials(const Kek& kek, std::string_view source,
                                       std::string_view wallet_id, std::string_view event_id,
                                       const DelegationMaterials& materials) {
  const SecretBytes dek = SecretBytes::random(kDekBytes);
  auto key = wrap_dek(kek, dek, materials_key_ad(source, wallet_id, event_id));
  if (!key) return key.error();
  SealedMaterials out;
  out.user_id = materials.user_id;
  out.chain = materials.chain;
  out.share_set_id = materials.share_set_id;
  out.key = std::move(*key);
  out.share = aead_seal(dek, materials.share.reveal(),
                        associated_data({kMaterials, source, wallet_id, event_id, "share"}));
  out.api_key = aead_seal(dek, materials.api_key.reveal(),
                          associated_data({kMaterials, source, wallet_id, event_id, "api_key"}));
  return out;
}

Result<OpenedMaterials> open_materials(const Kek& kek, std::string_view source,
                                       std::string_view wallet_id, std::string_view event_id,
                                       const WrappedKey& key, ByteView share, ByteView api_key) {
  auto dek = unwrap_dek(kek, key, materials_key_ad(source, wallet_id, event_id));
  if (!dek) return dek.error();
  auto share_plain =
      aead_open(*dek, share, associated_data({kMaterials, source, wallet_id, event_id, "share"}));
  if (!share_plain) return share_plain.error();
  auto api_key_plain = aead_open(
      *dek, api_key, associated_data({kMaterials, source, wallet_id, event_id, "api_key"}));
  if (!api_key_plain) return api_key_plain.error();
  return OpenedMaterials{std::move(*share_plain), std::move(*api_key_plain)};
}

Result<StoredMaterials> open_materials_row(const Kek& kek, StoredMaterialsRow row) {
  auto opened = open_materials(kek, row.meta.source, row.meta.wallet_id, row.meta.event_id, row.key,
                               row.share, row.api_key);
  if (!opened) return opened.error();
  row.meta.share = std::move(opened->share);
  row.meta.api_key = std::move(opened->api_key);
  return std::move(row.meta);
}

void mark_audit_key_usage(std::vector<KekUsage>& usage, const WrappedKey& audit_key) {
  const auto key = [](const KekUsage& u) { return std::tie(u.kek_id, u.version); };
  auto it = std::find_if(usage.begin(), usage.end(), [&](const KekUsage& u) {
    return u.kek_id == audit_key.kek_id && u.version == audit_key.kek_version;
  });
  if (it == usage.end()) {
    KekUsage u;
    u.kek_id = audit_key.kek_id;
    u.version = audit_key.kek_version;
    it = usage.insert(
        std::upper_bound(usage.begin(), usage.end(), u,
                         [&](const KekUsage& a, const KekUsage& b) { return key(a) < key(b); }),
        std::move(u));
  }
  it->audit_key = true;
}

}  // namespace hookvault::store
