// Operator subcommands: `check-config`, and those that read or repair the
// store: `materials get`, `events list`, `events show`, `reprocess`,
// `audit verify`, `audit list`, plus the helpers `serve` shares with them
// (opening the KEK and the store named by a config).
//
// Each command writes its result to `out` and one clear error line to `err`,
// and returns the process exit code: 0 success, 1 error, 3 not found (materials
// absent or revoked; event unknown). Only `materials get` and `events show`
// print secret-bearing data, because that is their job.
//
// Audited (audit.hpp, actor "cli:<user name>"): `materials get` and
// `events show` append a record ("materials.read" of "<source>/<wallet>",
// "event.read" of the event id; outcome "ok" or "not_found") before they print
// anything, and print no secret, exiting 1, when it cannot be written;
// `reprocess` appends one "reprocess" record per event with its result (in
// the transaction that settles the event: reprocess.hpp), and exits 1 when
// one cannot be written.
//
// Thread-safety: called once per process from main().
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "hookvault/config.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitNotFound = 3;

// Who opens a store (open_store): the serving process, or a CLI command.
enum class StoreRole { daemon, command };

// Both throw std::runtime_error naming the file or provider on failure.
std::shared_ptr<Kek> open_kek(const Config& config);
// Opens the store [storage] configures (the SQLite backend:
// sqlite_store.hpp). `kek`: the store's KEK when the caller already opened
// it (serve keeps it to refresh it on SIGHUP), else open_kek(config).
// StoreRole::daemon: the serving process's store, which also runs the
// retention purge of [storage] retention (CLI commands never purge) and
// waits at most 5 s for another process's write lock; a command's store
// waits up to 30 s (a `keys rewrap` batch behind a busy daemon), in SQLite's
// busy handler. `metrics`: the registry for the store's own metrics
// (SqliteStoreOptions::metrics), or none.
std::unique_ptr<Store> open_store(const Config& config, std::shared_ptr<const Kek> kek = nullptr,
                                  StoreRole role = StoreRole::command, Metrics* metrics = nullptr);

// `check-config`: each of check_config()'s problems on a line of `err`, or
// "ok: <file>" on `out` when there is none (exit 0: serve would start).
int check_config_command(const Config& config, std::ostream& out, std::ostream& err);

int materials_get(const Config& config, const std::string& wallet_id,
                  const std::optional<std::string>& source, std::ostream& out, std::ostream& err);
// `after`: the events feed's token (store.hpp: EventQuery; the SQLite
// store's is a row id), "" from the start.
int events_list(const Config& config, const std::optional<std::string>& source,
                const std::string& after, std::size_t limit, std::ostream& out, std::ostream& err);
int events_show(const Config& config, const std::string& id, std::ostream& out, std::ostream& err);
int reprocess(const Config& config, std::ostream& out, std::ostream& err);
// `{"ok":true,"records":N}`, or `{"ok":false,"records":N[,"firstBadSeq":K],
// "problem":"..."}` and exit 1 when the chain is broken (also 1, with an error
// line, when it cannot be checked, e.g. under another KEK).
int audit_verify(const Config& config, std::ostream& out, std::ostream& err);
// One JSON line per record with seq > after (at most `limit`):
// {"seq","timeMs","actor","action","subject","outcome","hash"}.
int audit_list(const Config& config, std::int64_t after, std::size_t limit, std::ostream& out,
               std::ostream& err);
// One JSON line per Nodit subscription: highest contiguous sequence number,
// missing numbers (listed up to kMaxListedMissing, always as ranges and a count)
// and the source's messages keyed by content for lack of a sequence number.
int nodit_gaps(const Config& config, const std::optional<std::string>& source, std::ostream& out,
               std::ostream& err);
inline constexpr std::uint64_t kMaxListedMissing = 1000;

// KEK rotation (src/ops/keys.cpp; kek.hpp, Store::rewrap_batch). Each appends
// an audit record (actor "cli:<user>", subject "<kekId>:v<N>") and prints one
// clear error line and exits 1 when it cannot.
//
// `keys status`: one JSON line per (KEK id, version) that the KEK has, the
// store uses or a running process wraps under, ordered by id and version:
//   {"kekId","version","current":bool,"available":bool,"events":N,
//    "materials":M,"auditKey":0|1,"processes":P}
// `available`: the loaded KEK can unwrap it; `processes`: how many other
// running processes (daemons, commands; store.hpp "KEK registrations") wrap
// new records under it now. Not audited (no secret).
int keys_status(const Config& config, std::ostream& out, std::ostream& err);
// `keys rotate`: adds version current + 1 (file: the keyring file; pkcs11: a
// key generated in the token) and prints {"kekId","version"}. Running daemons
// use it for new records within their [kek] refresh_interval, or at once on
// SIGHUP. Audited "kek.rotate".
int keys_rotate(const Config& config, std::ostream& out, std::ostream& err);
// `keys rewrap [--batch N]`: moves every wrapped key to the current version,
// N rows per committed batch, while the daemon serves; prints one JSON line
// per batch {"rewrapped":total so far,"remaining":R,"version":V} and exits 0
// when nothing older remains. Safe to interrupt and rerun. When another
// running process still wraps under an older version, a "note:" line on
// `err` names it (its new records will need another rewrap). Audited
// "kek.rewrap" when it starts ("started") and ends ("ok: N rewrapped" or
// "error: ...").
int keys_rewrap(const Config& config, std::size_t batch, std::ostream& out, std::ostream& err);
inline constexpr std::size_t kDefaultRewrapBatch = 200;
// `keys retire VERSION`: removes an old version from the keyring file or
// destroys its token object, only when it is not current, no running process
// still wraps new records under it and no wrapped key uses it (else exit 1
// naming each process, with its pid and host, and the keys in the way). The
// store marks the version retired first (Store::retire_kek_version), so no
// process can store a key under it afterwards; when the removal itself then
// fails, a rerun finishes it. Audited "kek.retire" (outcome "ok",
// "refused: ..." or "error: ...").
int keys_retire(const Config& config, std::uint32_t version, std::ostream& out, std::ostream& err);

}  // namespace hookvault
