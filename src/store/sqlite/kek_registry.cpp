// KEK leases and retired versions (contract and tables in kek_registry.hpp).
#include "store/sqlite/kek_registry.hpp"

#include <unistd.h>

#include <array>
#include <limits>

#include "hookvault/log.hpp"
#include "store/sqlite/audit_chain.hpp"

namespace hookvault::store::sqlite {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

constexpr char kPutLease[] =
    "INSERT INTO kek_leases (holder, description, kek_id, kek_version, heartbeat_ms, expires_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (holder) DO UPDATE SET "
    "description = excluded.description, kek_id = excluded.kek_id, "
    "kek_version = excluded.kek_version, heartbeat_ms = excluded.heartbeat_ms, "
    "expires_ms = excluded.expires_ms";
constexpr char kDropExpiredLeases[] = "DELETE FROM kek_leases WHERE expires_ms <= ?1";
constexpr char kDropLease[] = "DELETE FROM kek_leases WHERE holder = ?1";
constexpr char kLiveLeases[] =
    "SELECT holder, description, kek_id, kek_version, heartbeat_ms, expires_ms FROM kek_leases "
    "WHERE expires_ms > ?1 ORDER BY kek_id, kek_version, holder";
constexpr char kIsRetired[] = "SELECT 1 FROM kek_retired WHERE kek_id = ?1 AND kek_version = ?2";
constexpr char kMarkRetired[] =
    "INSERT INTO kek_retired (kek_id, kek_version, retired_ms) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (kek_id, kek_version) DO NOTHING";
// Indexes events_by_kek and materials_by_kek (schema.hpp).
constexpr char kEventsUnder[] =
    "SELECT count(*) FROM events WHERE kek_id = ?1 AND kek_version = ?2";
constexpr char kMaterialsUnder[] =
    "SELECT count(*) FROM materials WHERE kek_id = ?1 AND kek_version = ?2";

Result<std::uint64_t> count_under(Connection& db, const char* sql, std::string_view kek_id,
                                  std::uint32_t version) {
  auto stmt = db.prepare(sql);
  if (!stmt) return stmt.error();
  auto step = stmt->bind_text(1, kek_id).bind_int64(2, version).step();
  if (!step) return step.error();
  if (*step != Step::row) return err(Errc::store_corrupt);
  return static_cast<std::uint64_t>(stmt->column_int64(0));
}

}  // namespace

Result<void> put_lease(Connection& db, const KekLease& lease) {
  {
    auto stmt = db.prepare(kDropExpiredLeases);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_int64(1, lease.heartbeat_ms).run(); !r) return r;
  }
  auto stmt = db.prepare(kPutLease);
  if (!stmt) return stmt.error();
  return stmt->bind_text(1, lease.holder)
      .bind_text(2, lease.description)
      .bind_text(3, lease.kek_id)
      .bind_int64(4, lease.version)
      .bind_int64(5, lease.heartbeat_ms)
      .bind_int64(6, lease.expires_ms)
      .run();
}

Result<void> drop_lease(Connection& db, std::string_view holder) {
  auto stmt = db.prepare(kDropLease);
  if (!stmt) return stmt.error();
  return stmt->bind_text(1, holder).run();
}

Result<std::vector<KekLease>> live_leases(Connection& db, std::int64_t now_ms) {
  auto stmt = db.prepare(kLiveLeases);
  if (!stmt) return stmt.error();
  stmt->bind_int64(1, now_ms);
  std::vector<KekLease> out;
  auto read = for_each_row(*stmt, [&](const Statement& row) -> Result<void> {
    const std::int64_t version = row.column_int64(3);
    if (version < 1 || version > std::numeric_limits<std::uint32_t>::max()) {
      return err(Errc::store_corrupt);
    }
    out.push_back(KekLease{row.column_text(0), row.column_text(1), row.column_text(2),
                           static_cast<std::uint32_t>(version), row.column_int64(4),
                           row.column_int64(5)});
    return {};
  });
  if (!read) return read.error();
  return out;
}

Result<bool> is_retired(Connection& db, std::string_view kek_id, std::uint32_t version) {
  auto stmt = db.prepare(kIsRetired);
  if (!stmt) return {boost::system::in_place_error, stmt.error()};
  auto step = stmt->bind_text(1, kek_id).bind_int64(2, version).step();
  if (!step) return {boost::system::in_place_error, step.error()};
  return *step == Step::row;
}

Result<KekRetirement> retire_version(Connection& db, std::string_view kek_id, std::uint32_t version,
                                     std::int64_t now_ms) {
  KekRetirement out;
  out.usage.kek_id = std::string(kek_id);
  out.usage.version = version;
  auto leases = live_leases(db, now_ms);
  if (!leases) return leases.error();
  for (auto& lease : *leases) {
    if (lease.kek_id == kek_id && lease.version == version) {
      out.holders.push_back(std::move(lease));
    }
  }
  auto events = count_under(db, kEventsUnder, kek_id, version);
  if (!events) return events.error();
  auto materials = count_under(db, kMaterialsUnder, kek_id, version);
  if (!materials) return materials.error();
  auto audit_key = read_audit_key(db);
  if (!audit_key) return audit_key.error();
  out.usage.events = *events;
  out.usage.materials = *materials;
  out.usage.audit_key =
      *audit_key && (*audit_key)->kek_id == kek_id && (*audit_key)->kek_version == version;
  if (!out.holders.empty() || out.usage.events > 0 || out.usage.materials > 0 ||
      out.usage.audit_key) {
    return out;
  }
  auto stmt = db.prepare(kMarkRetired);
  if (!stmt) return stmt.error();
  if (auto r = stmt->bind_text(1, kek_id).bind_int64(2, version).bind_int64(3, now_ms).run(); !r) {
    return r.error();
  }
  out.retired = true;
  return out;
}

std::string lease_description(std::string_view process_name) {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return std::string(process_name) + " (pid " + std::to_string(::getpid()) + " on " +
         (host[0] != '\0' ? std::string(host.data()) : std::string("an unnamed host")) + ")";
}

KekRegistration::KekRegistration(std::string holder, std::string_view process_name,
                                 std::chrono::milliseconds heartbeat,
                                 std::chrono::milliseconds lease_time, const Clock& clock)
    : holder_(std::move(holder)),
      description_(lease_description(process_name)),
      clock_(clock),
      heartbeat_(heartbeat),
      lease_time_(lease_time) {}

bool KekRegistration::due(const Kek& kek) const noexcept {
  return kek.version() != published_ || clock_.now() >= renew_at_;
}

Result<void> KekRegistration::renew(Connection& db, const Kek& kek) {
  const std::uint32_t version = kek.version();
  const std::int64_t now = clock_.now_ms();
  auto r = put_lease(
      db, KekLease{holder_, description_, kek.id(), version, now, now + lease_time_.count()});
  if (!r) {
    if (std::uint64_t n = 0; renew_warning_.due(n)) {
      log(LogLevel::warn, "cannot renew this process's KEK lease; retrying",
          {{"error", r.error().message()}, {"failures", n}});
    }
    return r;
  }
  pending_ = version;
  return {};
}

void KekRegistration::committed() noexcept {
  if (pending_) {
    published_ = *pending_;
    renew_at_ = clock_.now() + heartbeat_;
  }
  ended();
}

void KekRegistration::ended() noexcept {
  pending_.reset();
  retired_.clear();
}

Result<void> KekRegistration::refuse_retired(Connection& db,
                                             const std::vector<const WrappedKey*>& keys) {
  for (const WrappedKey* key : keys) {
    auto [it, fresh] = retired_.try_emplace({key->kek_id, key->kek_version}, false);
    if (fresh) {
      auto retired = is_retired(db, key->kek_id, key->kek_version);
      if (!retired) {
        retired_.erase(it);
        return retired.error();
      }
      it->second = *retired;
    }
    if (it->second) {
      if (std::uint64_t n = 0; refused_warning_.due(n)) {
        log(LogLevel::error,
            "a key wrapped under a retired KEK version was refused; the request fails and its "
            "sender retries under the current version",
            {{"kek", key->kek_id}, {"version", key->kek_version}, {"refused", n}});
      }
      return err(Errc::kek_unavailable);
    }
  }
  return {};
}

Result<KekRetirement> KekRegistration::retire(Connection& db, const Kek& kek,
                                              std::uint32_t version) {
  auto r = retire_version(db, kek.id(), version, clock_.now_ms());
  if (r && r->retired) retired_[{kek.id(), version}] = true;
  return r;
}

}  // namespace hookvault::store::sqlite
