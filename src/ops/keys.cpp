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

}  // namespace

int keys_status(const Config& config, std::ostream& out, std::ostream& err) {
  const auto kek = open_kek(config);
  auto store = open_store(config, kek);
  auto usage = store->kek_usage();
  if (!usage) {
    err << "error: cannot read KEK usage: " << message_of(usage.error()) << "\n";
    return kExitError;
  }
  // Every version the store uses, and every version the KEK has.
  std::map<std::pair<std::string, std::uint32_t>, KekUsage> rows;
  for (auto& u : *usage) rows[{u.kek_id, u.version}] = std::move(u);
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
        << ",\"materials\":" << u.materials << ",\"auditKey\":" << (u.audit_key ? 1 : 0) << "}\n";
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
  auto usage = store->kek_usage();
  if (!usage) {
    err << "error: cannot read KEK usage: " << message_of(usage.error()) << "\n";
    return kExitError;
  }
  for (const auto& u : *usage) {
    if (u.kek_id != kek->id() || u.version != version) continue;
    if (u.events == 0 && u.materials == 0 && !u.audit_key) break;
    return refuse("still in use by " + std::to_string(u.events) + " event keys, " +
                  std::to_string(u.materials) + " materials keys" +
                  (u.audit_key ? " and the audit key" : "") +
                  "; run `hookvault keys rewrap` first");
  }
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
