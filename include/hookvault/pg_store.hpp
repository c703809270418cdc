// The PostgreSQL backend of Store (store.hpp): several hookvault instances,
// and their CLI commands, share one PostgreSQL 15 database, on a primary with
// synchronous standbys when the server is set up so. How each promise of the
// Store contract holds across instances: src/store/pg/schema.hpp; how the
// store is built: src/store/pg/pg_store_impl.hpp.
//
// What differs from the SQLite backend (sqlite_store.hpp):
// - The events feed's token is "<txid>.<id>" (src/store/pg/feed.hpp), not a
//   row id; a bare row id (what `events list` prints) is accepted as `after`
//   too, and reads on after that row.
// - Durability is the server's: a request completes once its COMMIT returned
//   with no WARNING (a WARNING on COMMIT is a cancelled wait for the
//   synchronous standby: the commit is local only) on a connection that
//   stayed up. Anything else completes the batch with
//   Errc::store_unavailable, and the writer reconnects (every host of a
//   multi-host conninfo, read-write only), so a failover needs no restart.
// - Leadership leases (try_lease) are session advisory locks held on a
//   connection of their own (src/store/pg/lease.hpp): a lease lapses when its
//   connection is lost, not by the store's clock.
// - The queue is bounded: submit() beyond PgStoreOptions::max_queue completes
//   at once with Errc::overloaded.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "hookvault/clock.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/secret.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

struct PgStoreOptions {
  // A libpq connection string or URI without a password (several hosts and
  // target_session_attrs=read-write for failover; sslmode, sslrootcert, ...).
  std::string conninfo;
  // The password, when the server asks for one (never inside conninfo).
  std::shared_ptr<const SecretBytes> password;
  std::chrono::milliseconds connect_timeout{5000};
  // true: no COMMIT is made while the primary names no synchronous standby
  // (synchronous_standby_names empty): its requests get store_unavailable.
  bool require_synchronous_standby = false;
  std::size_t max_batch = 256;    // requests per group commit
  std::size_t max_queue = 10000;  // queued requests; beyond: Errc::overloaded
  const Clock* clock = nullptr;   // null: the system clock
  // KEK registration (store.hpp, KEK registrations): renewal and validity.
  std::chrono::milliseconds lease_heartbeat{10000};
  std::chrono::milliseconds lease_time{60000};
  std::string process_name = "hookvault";  // in KEK lease descriptions
  // Retention (the daemon only; the SQLite backend's RETENTION rules,
  // src/store/sqlite/schema.hpp): the idle writer redacts, in transactions
  // of at most 500 rows, the payloads of events received longer ago than
  // `retention` (0: keep them), every `retention_interval`; delegations still
  // decrypt_failed keep theirs.
  std::chrono::milliseconds retention{0};
  std::chrono::milliseconds retention_interval{3600000};
  // How often a leadership lease's connection is pinged.
  std::chrono::milliseconds lease_ping{1000};
  Metrics* metrics = nullptr;
};

// Connects, creates or checks the schema (under an advisory lock: instances
// that start together create it once), draws the audit key of a new
// database, proves a commit, and starts the writer. Errc::kek_unavailable
// without a KEK; Errc::store_unavailable when the server cannot be reached,
// refuses, or holds another schema version (`why`, when given, says which in
// a sentence without secrets).
Result<std::unique_ptr<Store>> open_pg_store(const PgStoreOptions& options,
                                             std::shared_ptr<const Kek> kek,
                                             std::string* why = nullptr);

// check-config: connects and reports whether the database's schema is one
// this hookvault can use ("" when compatible or absent, else the reason),
// without creating or changing anything. Errc::store_unavailable with the
// reason in `why` when it cannot connect.
Result<std::string> check_pg_schema(const PgStoreOptions& options, std::string* why);

}  // namespace hookvault
