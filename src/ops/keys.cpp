// `hookvault keys status | rotate | rewrap | retire` (contract in ops.hpp; the
// keyring formats and versions in kek.hpp, the rewrap in store.hpp).
#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "hookvault/log.hpp"
#include "hookvault/ops.hpp"
#include "ops/cli_audit.hpp"

namespace hookvault {
namespace {

// Waiting for the daemon's write lock is left to SQLite's busy handler (the
// CLI's store has a long busy timeout: open_store); a batch that still fails
// ends the run, and a rerun continues where it stopped.
//
// Audit records: audit_cli_access (cli_audit.hpp), which prints the error line.
//
// Batches in a row that move nothing while keys remain (rows that keep
// changing under us, or a writer still wrapping under an old version).
constexpr int kMaxIdleBatches = 50;
constexpr auto kIdlePause = std::chrono::milliseconds(100);

std::string subject_of(const std::string& kek_id, std::uint32_t version) {
  return kek_id + ":v" + std::to_string(version);
}

std::string message_of(const boost::system::error_code& ec) {
  return std::string(error_name(to_errc(ec)));
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "serve (pid 1234 on host-a), seen 3 s ago"
std::string seen(const KekLease& lease) {
  const std::int64_t ago = std::max<std::int64_t>(0, (now_ms() - lease.heartbeat_ms) / 1000);
  return lease.description + ", seen " + std::to_string(ago) + " s ago";
}

std::string list_of(const std::vector<KekLease>& leases) {
  std::string out;
  for (const auto& l : leases) {
    if (!out.empty()) out += "; ";
    out += seen(l);
  }
  return out;
}

// Why keys_retire() may not retire: who still wraps under the version, and
// which keys are still under it.
std::string refusal_of(const KekRetirement& r, std::uint32_t version) {
  std::string why;
  if (!r.holders.empty()) {
    why =
        std::to_string(r.holders.size()) +
        (r.holders.size() == 1 ? " running process still wraps" : " running processes still wrap") +
        " new records under version " + std::to_string(version) + " (" + list_of(r.holders) +
        "): a daemon takes the newest version within its [kek] refresh_interval, or at once "
        "on SIGHUP (`systemctl reload hookvault`), and a process that ended without closing "
        "is forgotten a minute after it was last seen; then run `hookvault keys rewrap` "
        "again, since what it wrote meanwhile is under version " +
        std::to_string(version);
  }
  const KekUsage& u = r.usage;
  if (u.events > 0 || u.materials > 0 || u.audit_key) {
    if (!why.empty()) why += "; and it is ";
    why += "still in use by " + std::to_string(u.events) + " event keys, " +
           std::to_string(u.materials) + " materials keys" +
           (u.audit_key ? " and the audit key" : "") + "; run `hookvault keys rewrap` first";
  }
  return why;
}

}  // namespace

int keys_status(const Config& config, std::ostream& out, std::ostream& err) {
  const auto kek = open_kek(config);
  auto store = open_store(config, kek);
  auto usage = store->kek_usage();
  if (!usage) {
    err << "error: cannot read KEK usage: " << message_of(usage.error()) << "\n";
    return kExitError;
  }
  auto leases = store->kek_leases();
  if (!leases) {
    err << "error: cannot read the KEK leases: " << message_of(leases.error()) << "\n";
    return kExitError;
  }
  // Every version the store uses, every version the KEK has, and every
  // version a running process wraps under.
  std::map<std::pair<std::string, std::uint32_t>, KekUsage> rows;
  std::map<std::pair<std::string, std::uint32_t>, std::size_t> processes;
  for (auto& u : *usage) rows[{u.kek_id, u.version}] = std::move(u);
  for (const auto& l : *leases) {
    ++processes[{l.kek_id, l.version}];
    auto& row = rows[{l.kek_id, l.version}];
    row.kek_id = l.kek_id;
    row.version = l.version;
  }
  const auto versions = kek->versions();
  for (std::uint32_t v : versions) {
    auto& row = rows[{kek->id(), v}];
    row.kek_id = kek->id();
    row.version = v;
  }
  for (const auto& [key, u] : rows) {
    const bool ours = u.kek_id == kek->id();
    const bool available =
        ours && std::find(versions.begin(), versions.end(), u.version) != versions.end();
    out << "{\"kekId\":" << json_quoted(u.kek_id) << ",\"version\":" << u.version
        << ",\"current\":" << (ours && u.version == kek->version() ? "true" : "false")
        << ",\"available\":" << (available ? "true" : "false") << ",\"events\":" << u.events
        << ",\"materials\":" << u.materials << ",\"auditKey\":" << (u.audit_key ? 1 : 0)
        << ",\"processes\":" << processes[key] << "}\n";
  }
  return kExitOk;
}

int keys_rotate(const Config& config, std::ostream& out, std::ostream& err) {
  const auto kek = open_kek(config);
  auto store = open_store(config, kek);  // first: a rotation is always audited
  std::uint32_t version = 0;
  try {
    version = rotate_configured_kek(config.kek);
  } catch (const std::exception& e) {
    err << "error: cannot rotate the KEK: " << e.what() << "\n";
    audit_cli_access(*store, "kek.rotate", subject_of(kek->id(), kek->version() + 1),
                     std::string("error: ") + e.what(), err);
    return kExitError;
  }
  const std::string subject = subject_of(kek->id(), version);
  if (!audit_cli_access(*store, "kek.rotate", subject, "ok", err)) return kExitError;
  out << "{\"kekId\":" << json_quoted(kek->id()) << ",\"version\":" << version << "}\n";
  log(LogLevel::info, "KEK rotated", {{"actor", "cli"}, {"kek", subject}});
  store->close();
  return kExitOk;
}

int keys_rewrap(const Config& config, std::size_t batch, std::ostream& out, std::ostream& err) {
  const auto kek = open_kek(config);
  auto store = open_store(config, kek);
  // One rewrap at a time on a database (store.hpp: try_lease).
  auto lease = store->try_lease("rewrap");
  if (!lease || !*lease) {
    err << "error: "
        << (lease ? "another `hookvault keys rewrap` is running on this store"
                  : "cannot take the rewrap lease: " + message_of(lease.error()))
        << "\n";
    return kExitError;
  }
  const std::string subject = subject_of(kek->id(), kek->version());
  if (!audit_cli_access(*store, "kek.rewrap", subject, "started", err)) return kExitError;

  std::uint64_t total = 0;
  int idle = 0;
  for (;;) {
    auto progress = store->rewrap_batch(batch);
    if (!progress) {
      const std::string why = message_of(progress.error());
      err << "error: rewrap stopped after " << total << " keys: " << why
          << " (rerun `hookvault keys rewrap` to continue)\n";
      audit_cli_access(*store, "kek.rewrap", subject,
                       "error: " + why + " after " + std::to_string(total), err);
      return kExitError;
    }
    total += progress->rewrapped;
    out << "{\"rewrapped\":" << total << ",\"remaining\":" << progress->remaining
        << ",\"version\":" << progress->version << "}\n";
    out.flush();
    if (progress->remaining == 0) break;
    if (progress->rewrapped > 0) {
      idle = 0;
      continue;
    }
    if (++idle >= kMaxIdleBatches) {
      err << "error: rewrap makes no progress: " << progress->remaining
          << " keys remain under older versions; is a process still wrapping under an old"
             " version (send the daemon SIGHUP)?\n";
      audit_cli_access(*store, "kek.rewrap", subject,
                       "error: no progress after " + std::to_string(total) + ", " +
                           std::to_string(progress->remaining) + " remain",
                       err);
      return kExitError;
    }
    std::this_thread::sleep_for(kIdlePause);
  }
  if (!audit_cli_access(*store, "kek.rewrap", subject,
                        "ok: " + std::to_string(total) + " rewrapped", err)) {
    return kExitError;
  }
  log(LogLevel::info, "KEK rewrap done",
      {{"actor", "cli"}, {"kek", subject}, {"rewrapped", total}});
  // Done for now; a process still on an older version keeps adding keys there.
  if (auto leases = store->kek_leases()) {
    std::vector<KekLease> behind;
    for (auto& l : *leases) {
      if (l.kek_id == kek->id() && l.version < kek->version()) behind.push_back(std::move(l));
    }
    if (!behind.empty()) {
      err << "note: " << behind.size()
          << (behind.size() == 1 ? " running process still wraps" : " running processes still wrap")
          << " new records under an older version (" << list_of(behind)
          << "); once it uses version " << kek->version()
          << " (within its [kek] refresh_interval, or after SIGHUP) run `hookvault keys rewrap` "
             "again\n";
    }
  }
  store->close();  // folds the WAL (old wrapped keys included) into the file
  return kExitOk;
}

int keys_retire(const Config& config, std::uint32_t version, std::ostream& out, std::ostream& err) {
  const auto kek = open_kek(config);
  auto store = open_store(config, kek);
  const std::string subject = subject_of(kek->id(), version);
  const auto refuse = [&](const std::string& why) {
    err << "error: cannot retire version " << version << " of KEK " << kek->id() << ": " << why
        << "\n";
    audit_cli_access(*store, "kek.retire", subject, "refused: " + why, err);
    return kExitError;
  };
  const auto versions = kek->versions();
  if (std::find(versions.begin(), versions.end(), version) == versions.end()) {
    return refuse("the KEK has no such version");
  }
  if (version == kek->version()) return refuse("it is the current version; rotate first");
  // Checked and marked in one write transaction (store.hpp, "KEK
  // registrations"): from here on no process can store a key under it.
  auto decision = store->retire_kek_version(version);
  if (!decision) {
    const std::string why = message_of(decision.error());
    err << "error: cannot retire version " << version << ": " << why << "\n";
    audit_cli_access(*store, "kek.retire", subject, "error: " + why, err);
    return kExitError;
  }
  if (!decision->retired) return refuse(refusal_of(*decision, version));
  try {
    retire_configured_kek_version(config.kek, version);
  } catch (const std::exception& e) {
    err << "error: cannot retire version " << version << ": " << e.what() << "\n";
    audit_cli_access(*store, "kek.retire", subject, std::string("error: ") + e.what(), err);
    return kExitError;
  }
  if (!audit_cli_access(*store, "kek.retire", subject, "ok", err)) return kExitError;
  out << "{\"kekId\":" << json_quoted(kek->id()) << ",\"version\":" << version
      << ",\"retired\":true}\n";
  log(LogLevel::info, "KEK version retired", {{"actor", "cli"}, {"kek", subject}});
  store->close();
  return kExitOk;
}

}  // namespace hookvault
