// Envelope encryption of the store's records (see schema.hpp for where each
// piece is kept).
//
// Every record gets a fresh 32-byte data key (DEK). The record's secret fields
// are sealed with aead_seal(DEK, field, AD(field)) and the DEK is wrapped by the
// KEK with AD(dek); the KEK's id and version are kept beside the wrapped DEK.
// The associated data names the table, the row's identity and the field, so a
// ciphertext or a wrapped DEK copied into another row, or into another column,
// does not open (Errc::store_corrupt):
//
//   events.payload      AD = associated_data({"events", source, idempotency_key, "payload"})
//   events.wrapped_dek  AD = associated_data({"events", source, idempotency_key, "dek"})
//   materials.share     AD = associated_data({"materials", source, wallet_id, event_id, "share"})
//   materials.api_key   AD = associated_data({"materials", source, wallet_id, event_id, "api_key"})
//   materials.wrapped_dek
//                       AD = associated_data({"materials", source, wallet_id, event_id, "dek"})
//
// A record whose kek_id is not the loaded KEK's id opens with
// Errc::kek_unavailable.
//
// wrap_dek, unwrap_dek and rewrap_key are the one place a key is wrapped by
// the KEK: the DEKs above, and the audit log's key (audit_chain.hpp, whose
// associated data is the bare label "hookvault-audit-key").
//
// Thread-safety: stateless functions; the Kek is used through its const
// (thread-safe) interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"
#include "hookvault/store.hpp"

namespace hookvault::store {

struct WrappedKey {
  std::string kek_id;
  std::uint32_t kek_version = 0;
  Bytes wrapped_dek;
};

struct SealedPayload {
  WrappedKey key;
  Bytes payload;
};

struct SealedMaterials {
  std::string user_id;
  std::string chain;
  std::optional<std::string> share_set_id;
  WrappedKey key;
  Bytes share;
  Bytes api_key;
};

struct OpenedMaterials {
  SecretBytes share;
  SecretBytes api_key;
};

Result<SealedPayload> seal_payload(const Kek& kek, std::string_view source,
                                   std::string_view idempotency_key, ByteView payload);

Result<SecretBytes> open_payload(const Kek& kek, std::string_view source,
                                 std::string_view idempotency_key, const WrappedKey& key,
                                 ByteView payload);

// `wallet_id` and `event_id` are the row's identity (the materials' own
// wallet_id field is not used here).
Result<SealedMaterials> seal_materials(const Kek& kek, std::string_view source,
                                       std::string_view wallet_id, std::string_view event_id,
                                       const DelegationMaterials& materials);

Result<OpenedMaterials> open_materials(const Kek& kek, std::string_view source,
                                       std::string_view wallet_id, std::string_view event_id,
                                       const WrappedKey& key, ByteView share, ByteView api_key);

// A materials row as a backend reads it: what is shown, and the sealed fields.
struct StoredMaterialsRow {
  StoredMaterials meta;  // share and api_key empty until opened
  WrappedKey key;
  Bytes share;
  Bytes api_key;
};
// open_materials with the row's identity (meta's source, wallet_id, event_id);
// the opened fields go into meta.
Result<StoredMaterials> open_materials_row(const Kek& kek, StoredMaterialsRow row);

// The KEK's wrap of `dek` (kDekBytes) with `ad`, under the version wrap()
// reports (a refresh may move the current one at any time).
Result<WrappedKey> wrap_dek(const Kek& kek, const SecretBytes& dek, ByteView ad);
// Errc::kek_unavailable when `key` names another KEK id; the KEK's errors
// (Errc::kek_unavailable for a version it does not have, Errc::store_corrupt
// when it does not open with `ad`); Errc::store_corrupt when what opens is not
// kDekBytes long.
Result<SecretBytes> unwrap_dek(const Kek& kek, const WrappedKey& key, ByteView ad);
// `keys rewrap`: the same key, unwrapped with `ad` and wrapped again under the
// KEK's current version; the data it sealed does not change. Errors as above.
Result<WrappedKey> rewrap_key(const Kek& kek, const WrappedKey& key, ByteView ad);

// The associated data of events.wrapped_dek and materials.wrapped_dek (above).
Bytes event_key_ad(std::string_view source, std::string_view idempotency_key);
Bytes materials_key_ad(std::string_view source, std::string_view wallet_id,
                       std::string_view event_id);

// kek_usage(): marks the KEK version that wraps the audit log's key in
// `usage` (sorted by kek_id, then version), adding that version's row when no
// record uses it.
void mark_audit_key_usage(std::vector<KekUsage>& usage, const WrappedKey& audit_key);

}  // namespace hookvault::store
