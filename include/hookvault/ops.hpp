// Operator subcommands that read or repair the store: `materials get`,
// `events list`, `events show`, `reprocess`, `audit verify`, `audit list`,
// plus the helpers `serve` shares with them (opening the KEK and the store
// named by a config).
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
// `reprocess` appends one "reprocess" record per event with its result.
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
#include "hookvault/store.hpp"

namespace hookvault {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitNotFound = 3;

// Throws std::runtime_error naming the file or provider on failure.
std::shared_ptr<const Kek> open_kek(const Config& config);
std::unique_ptr<Store> open_store(const Config& config);

int materials_get(const Config& config, const std::string& wallet_id,
                  const std::optional<std::string>& source, std::ostream& out, std::ostream& err);
int events_list(const Config& config, const std::optional<std::string>& source, std::int64_t after,
                std::size_t limit, std::ostream& out, std::ostream& err);
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

}  // namespace hookvault
