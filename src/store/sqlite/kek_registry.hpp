// Which processes may wrap new records under which KEK version, and which
// versions are retired: how `keys retire` never strands a record (store.hpp,
// "KEK registrations"). Run by the store's writer inside its transactions.
//
// TABLE kek_leases                     one row per open Store (a daemon, a CLI
//                                      command), whatever its process or host
//   holder        TEXT PRIMARY KEY     random, drawn when the Store opens
//   description   TEXT     "serve (pid 1234 on host-a)": for messages only
//   kek_id        TEXT     } the KEK version the holder wraps new keys under
//   kek_version   INTEGER  }   (its Kek's current version when last renewed)
//   heartbeat_ms  INTEGER  Unix ms of the last renewal
//   expires_ms    INTEGER  heartbeat_ms + the holder's lease time; a row past
//                          it is not live (the holder died or stalled)
//
// TABLE kek_retired                    versions `keys retire` took out of use
//   kek_id, kek_version  PRIMARY KEY
//   retired_ms    INTEGER  Unix ms when it was marked
//
// RULES
//   - A Store renews its row when it opens, whenever its Kek's current version
//     changed (at the latest one writer wake-up later, and in the first write
//     transaction that follows), and every heartbeat; it deletes its row when
//     it closes. A renewal that fails is retried; meanwhile the row may expire.
//   - Marking (kek_id, v) retired happens in one write transaction that first
//     finds no live row naming (kek_id, v) and no wrapped key under it (events,
//     materials, the audit key); otherwise nothing is written and the caller
//     learns which rows and keys stand in the way.
//   - Every write transaction refuses (Errc::kek_unavailable) a request that
//     stores a key wrapped under a retired version. Write transactions are
//     serialised by the database's write lock, so a key wrapped under v either
//     commits before v is marked (and the marking sees it and refuses) or is
//     refused after: no acknowledged record is ever under a retired version,
//     whatever a lease said (a stalled holder, a clock that jumped). A
//     backend without one write lock (several instances on PostgreSQL) must
//     keep that order itself: both in SERIALIZABLE transactions, or the
//     marking taking exclusively a lock every writer's check takes shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hookvault/clock.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/log_throttle.hpp"
#include "hookvault/store.hpp"
#include "store/envelope.hpp"
#include "store/sqlite/connection.hpp"

namespace hookvault::store::sqlite {

// Applied on every open (idempotent), in the schema's transaction.
inline constexpr char kCreateKekRegistry[] = R"sql(
CREATE TABLE IF NOT EXISTS kek_leases (
  holder       TEXT    PRIMARY KEY NOT NULL,
  description  TEXT    NOT NULL,
  kek_id       TEXT    NOT NULL,
  kek_version  INTEGER NOT NULL CHECK (kek_version >= 1),
  heartbeat_ms INTEGER NOT NULL,
  expires_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS kek_retired (
  kek_id      TEXT    NOT NULL,
  kek_version INTEGER NOT NULL CHECK (kek_version >= 1),
  retired_ms  INTEGER NOT NULL,
  PRIMARY KEY (kek_id, kek_version)
) STRICT;
)sql";

// Inserts or renews `lease` (by holder), and drops rows that expired.
Result<void> put_lease(Connection& db, const KekLease& lease);
Result<void> drop_lease(Connection& db, std::string_view holder);
// Rows live at `now_ms`, ordered by KEK id, version and holder.
Result<std::vector<KekLease>> live_leases(Connection& db, std::int64_t now_ms);
Result<bool> is_retired(Connection& db, std::string_view kek_id, std::uint32_t version);
// The rule above: marks (kek_id, version) retired unless a live lease or a
// wrapped key stands in the way.
Result<KekRetirement> retire_version(Connection& db, std::string_view kek_id, std::uint32_t version,
                                     std::int64_t now_ms);

// "serve (pid 1234 on host-a)".
std::string lease_description(std::string_view process_name);

// The writer's side of one Store's registration: its lease, and the
// retired-version check of its write transactions. The writer opens and ends
// the transactions; renew() and the checks run inside them, and committed()
// or ended() follow each (a rolled-back renewal is published again).
//
// Thread-safety: the writer thread only (and open/close around it).
class KekRegistration {
 public:
  // `holder`: random, unique to this Store; `process_name` as in
  // lease_description(); `clock`: the store's (times of renewals and
  // expiries, and when the heartbeat falls due), outlives this.
  KekRegistration(std::string holder, std::string_view process_name,
                  std::chrono::milliseconds heartbeat, std::chrono::milliseconds lease_time,
                  const Clock& clock);

  // The Kek's current version is not the one last published, or the
  // heartbeat fell due.
  bool due(const Kek& kek) const noexcept;
  // Writes the lease (`kek`'s id and current version) in the caller's
  // transaction. A failure is logged (throttled) and returned.
  Result<void> renew(Connection& db, const Kek& kek);
  // The transaction committed: what renew() wrote is published.
  void committed() noexcept;
  // The transaction is over, committed or not: forgets the renewal it did not
  // commit and the retired-version lookups it made.
  void ended() noexcept;

  // Errc::kek_unavailable when one of `keys` is wrapped under a retired
  // version (logged, throttled); each version is looked up once per
  // transaction.
  Result<void> refuse_retired(Connection& db, const std::vector<const WrappedKey*>& keys);
  // retire_version() for `kek`, now; later checks in the same transaction
  // see the marking.
  Result<KekRetirement> retire(Connection& db, const Kek& kek, std::uint32_t version);

  // Any thread (it never changes).
  const std::string& holder() const noexcept { return holder_; }

  // Deletes this Store's lease, in the caller's transaction.
  Result<void> drop(Connection& db) { return drop_lease(db, holder_); }

 private:
  const std::string holder_;
  const std::string description_;
  const Clock& clock_;
  const std::chrono::milliseconds heartbeat_;
  const std::chrono::milliseconds lease_time_;
  std::uint32_t published_ = 0;                                    // version last committed
  std::chrono::steady_clock::time_point renew_at_{};               // heartbeat due
  std::optional<std::uint32_t> pending_;                           // written, not committed
  std::map<std::pair<std::string, std::uint32_t>, bool> retired_;  // this transaction's lookups
  LogThrottle renew_warning_;
  LogThrottle refused_warning_;
};

}  // namespace hookvault::store::sqlite
