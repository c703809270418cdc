// KEK rotation in the SQLite store (store.hpp: KEK rotation, KEK
// registrations): kek_usage, kek_refs, rewrap_batch (old keys read and rewrapped on the
// caller's thread, guarded UPDATEs applied by the writer), the KEK leases of
// other Stores, retire_kek_version, and try_lease (leases.hpp).
#include <algorithm>
#include <string>
#include <tuple>
#include <utility>

#include "hookvault/log.hpp"
#include "store/sqlite/audit_chain.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/statements.hpp"

namespace hookvault::store::sqlite {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

// The audit key when `kek` wrapped it under a version older than `current`
// (one for `keys rewrap` to move), else nullopt.
// The audit key when `kek` wrapped it under a version older than `current`
// (one for `keys rewrap` to move), else nullopt.
Result<std::optional<WrappedKey>> old_audit_key(Connection& db, const Kek& kek,
                                                std::uint32_t current) {
  auto key = read_audit_key(db);
  if (key && *key && ((*key)->kek_id != kek.id() || (*key)->kek_version >= current)) key->reset();
  return key;
}

// ?1 .. ?5 of sql::kRewrapEvent and sql::kRewrapMaterials: the new key, and the key the
// row must still hold.

// ?1 .. ?5 of kRewrapEvent and kRewrapMaterials: the new key, and the key the
// row must still hold.
Statement& bind_rewrap(Statement& stmt, const WrappedKey& from, const WrappedKey& to) {
  return stmt.bind_int64(1, to.kek_version)
      .bind_blob(2, to.wrapped_dek)
      .bind_text(3, from.kek_id)
      .bind_int64(4, from.kek_version)
      .bind_blob(5, from.wrapped_dek);
}

}  // namespace

Result<std::uint64_t> SqliteStore::apply(RewrapWork& w) {
  std::uint64_t applied = 0;  // rows that still held the key that was read
  for (const auto& e : w.events) {
    auto stmt = writer_db_.prepare(sql::kRewrapEvent);
    if (!stmt) return stmt.error();
    if (auto r = bind_rewrap(*stmt, e.from, e.to).bind_int64(6, e.row_id).run(); !r)
      return r.error();
    applied += static_cast<std::uint64_t>(sqlite3_changes(writer_db_.handle()));
  }
  for (const auto& m : w.materials) {
    auto stmt = writer_db_.prepare(sql::kRewrapMaterials);
    if (!stmt) return stmt.error();
    auto r = bind_rewrap(*stmt, m.from, m.to)
                 .bind_text(6, m.source)
                 .bind_text(7, m.wallet_id)
                 .bind_text(8, m.event_id)
                 .run();
    if (!r) return r.error();
    applied += static_cast<std::uint64_t>(sqlite3_changes(writer_db_.handle()));
  }
  if (w.audit_key) {
    auto replaced = replace_audit_key(writer_db_, w.audit_key->from, w.audit_key->to);
    if (!replaced) return replaced.error();
    applied += *replaced;
  }
  return applied;
}

Result<std::vector<KekUsage>> SqliteStore::kek_usage() const {
  return with_reader([&](Connection& db) -> Result<std::vector<KekUsage>> {
    std::vector<KekUsage> out;
    {
      auto stmt = db.prepare(sql::kReadKekUsage);
      if (!stmt) return stmt.error();
      auto read = for_each_row(*stmt, [&](const Statement& row) -> Result<void> {
        auto version = kek_version_from(row.column_int64(1));
        if (!version) return version.error();
        out.push_back(KekUsage{row.column_text(0), *version,
                               static_cast<std::uint64_t>(row.column_int64(2)),
                               static_cast<std::uint64_t>(row.column_int64(3)), false});
        return {};
      });
      if (!read) return read.error();
    }
    auto audit_key = read_audit_key(db);
    if (!audit_key) return audit_key.error();
    if (*audit_key) mark_audit_key_usage(out, **audit_key);
    return out;
  });
}

Result<std::vector<KekRef>> SqliteStore::kek_refs() const {
  return with_reader([&](Connection& db) -> Result<std::vector<KekRef>> {
    std::vector<KekRef> out;
    for (const char* next : {sql::kNextEventKekRef, sql::kNextMaterialsKekRef}) {
      // A loose index scan: one probe per distinct pair, from before the first.
      std::string id;
      std::int64_t version = -1;
      for (;;) {
        auto stmt = db.prepare(next);
        if (!stmt) return stmt.error();
        auto step = stmt->bind_text(1, id).bind_int64(2, version).step();
        if (!step) return step.error();
        if (*step == Step::done) break;
        id = stmt->column_text(0);
        version = stmt->column_int64(1);
        auto v = kek_version_from(version);
        if (!v) return v.error();
        out.push_back(KekRef{id, *v});
      }
    }
    auto audit_key = read_audit_key(db);
    if (!audit_key) return audit_key.error();
    if (*audit_key) out.push_back(KekRef{(*audit_key)->kek_id, (*audit_key)->kek_version});
    sort_unique(out);
    return out;
  });
}

// Caller's thread: copies up to `limit` old-version keys out under the read
// lock, then rewraps them after it (KEK work, an HSM's under pkcs11).
Result<RewrapWork> SqliteStore::prepare_rewrap(std::size_t limit, std::uint32_t current) {
  if (!accepting_now()) return err(Errc::store_unavailable);
  const Kek& kek = *kek_;
  RewrapWork work;
  auto read = with_reader([&](Connection& db) -> Result<void> {
    const auto old_rows = [&](const char* sql, auto&& push) -> Result<void> {
      auto stmt = db.prepare(sql);
      if (!stmt) return stmt.error();
      stmt->bind_text(1, kek.id())
          .bind_int64(2, current)
          .bind_int64(3, sql_limit(limit - work.size()));
      return for_each_row(*stmt, [&](const Statement& row) -> Result<void> {
        auto key = wrapped_key_at(row, kek.id(), 3, 4);
        if (!key) return key.error();
        push(row, std::move(*key));
        return {};
      });
    };
    auto events = old_rows(sql::kReadOldEvents, [&](const Statement& row, WrappedKey key) {
      work.events.push_back(EventRewrap{row.column_int64(0), row.column_text(1), row.column_text(2),
                                        std::move(key), WrappedKey{}});
    });
    if (!events) return events;
    if (work.size() < limit) {
      auto materials = old_rows(sql::kReadOldMaterials, [&](const Statement& row, WrappedKey key) {
        work.materials.push_back(MaterialsRewrap{row.column_text(0), row.column_text(1),
                                                 row.column_text(2), std::move(key), WrappedKey{}});
      });
      if (!materials) return materials;
    }
    if (work.size() < limit) {
      auto audit_key = old_audit_key(db, kek, current);
      if (!audit_key) return audit_key.error();
      if (*audit_key) work.audit_key = AuditKeyRewrap{std::move(**audit_key), WrappedKey{}};
    }
    return {};
  });
  if (!read) return read.error();
  work.short_batch = work.size() < limit;

  const auto refuse = [](std::string_view table, const std::string& row,
                         const boost::system::error_code& ec) {
    log(LogLevel::error, "rewrap: a wrapped key does not open; nothing of this batch is written",
        {{"table", std::string(table)},
         {"row", row},
         {"error", std::string(error_name(to_errc(ec)))}});
    return ec;
  };
  for (auto& e : work.events) {
    auto to = rewrap_key(kek, e.from, event_key_ad(e.source, e.idempotency_key));
    if (!to) return refuse("events", "id " + std::to_string(e.row_id), to.error());
    e.to = std::move(*to);
  }
  for (auto& m : work.materials) {
    auto to = rewrap_key(kek, m.from, materials_key_ad(m.source, m.wallet_id, m.event_id));
    if (!to) return refuse("materials", m.source + "/" + m.wallet_id, to.error());
    m.to = std::move(*to);
  }
  if (work.audit_key) {
    auto to = rewrap_key(kek, work.audit_key->from, audit_key_ad());
    if (!to) return refuse("meta", "audit_key", to.error());
    work.audit_key->to = std::move(*to);
  }
  // Nothing to move when wrap() used no newer version than the row's.
  const auto stays = [](const auto& k) { return k.to.kek_version <= k.from.kek_version; };
  std::erase_if(work.events, stays);
  std::erase_if(work.materials, stays);
  if (work.audit_key && stays(*work.audit_key)) work.audit_key.reset();
  return work;
}

Result<std::uint64_t> SqliteStore::count_old_keys(std::uint32_t current) const {
  return with_reader([&](Connection& db) -> Result<std::uint64_t> {
    auto stmt = db.prepare(sql::kReadOldCount);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, kek_->id()).bind_int64(2, current).step();
    if (!step) return step.error();
    auto n = static_cast<std::uint64_t>(stmt->column_int64(0));
    auto audit_key = old_audit_key(db, *kek_, current);
    if (!audit_key) return audit_key.error();
    return *audit_key ? n + 1 : n;
  });
}

// Counts (a full COUNT over both tables) only when it must: after a short
// batch (so `remaining` is exact at the end of a run), on the first batch of
// a run, and whenever the tally would reach 0; after any other batch, the
// tally minus what it moved.
Result<std::uint64_t> SqliteStore::remaining_after(std::uint32_t current, std::uint64_t moved,
                                                   bool short_batch) {
  std::lock_guard lock(rewrap_mu_);
  if (!short_batch && rewrap_tally_ && rewrap_tally_->version == current &&
      rewrap_tally_->remaining > moved) {
    rewrap_tally_->remaining -= moved;
    return rewrap_tally_->remaining;
  }
  rewrap_tally_.reset();
  auto counted = count_old_keys(current);
  if (!counted) return counted.error();
  rewrap_tally_ = RewrapTally{current, *counted};
  return *counted;
}

Result<RewrapProgress> SqliteStore::rewrap_batch(std::size_t limit) {
  if (limit == 0) return err(Errc::internal);  // a caller bug
  const std::uint32_t current = kek_->version();
  bool short_batch = false;
  auto moved = run_sync<std::uint64_t>([&](std::function<void(Result<std::uint64_t>)> done) {
    auto work = prepare_rewrap(limit, current);
    if (!work) return done(work.error());
    short_batch = work->short_batch;
    if (work->size() == 0) return done(std::uint64_t{0});
    work->done = std::move(done);
    enqueue(Work(std::move(*work)));
  });
  if (!moved) return moved.error();
  auto remaining = remaining_after(current, *moved, short_batch);
  if (!remaining) return remaining.error();
  return RewrapProgress{*moved, *remaining, current};
}

Result<std::vector<KekLease>> SqliteStore::kek_leases() const {
  auto leases = with_reader([this](Connection& db) { return live_leases(db, clock_.now_ms()); });
  if (leases) {
    std::erase_if(*leases,
                  [this](const KekLease& l) { return l.holder == registration_.holder(); });
  }
  return leases;
}

Result<KekRetirement> SqliteStore::retire_kek_version(std::uint32_t version) {
  if (version == 0) return err(Errc::invalid_field);
  return run_sync<KekRetirement>([&](std::function<void(Result<KekRetirement>)> done) {
    if (!accepting_now()) return done(err(Errc::store_unavailable));
    RetireWork work;
    work.version = version;
    work.done = std::move(done);
    enqueue(Work(std::move(work)));
  });
}

// A leadership lease: one write transaction through the writer (leases.hpp).
Result<std::unique_ptr<Store::Lease>> SqliteStore::try_lease(std::string_view name) {
  if (name.empty() || name.size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  auto state = run_sync<std::shared_ptr<LeaseState>>(
      [&](std::function<void(Result<std::shared_ptr<LeaseState>>)> done) {
        if (!accepting_now()) return done(err(Errc::store_unavailable));
        LeaseWork work;
        work.name = std::string(name);
        work.done = std::move(done);
        enqueue(Work(std::move(work)));
      });
  if (!state) return state.error();
  if (!*state) return std::unique_ptr<Lease>();
  return std::unique_ptr<Lease>(std::make_unique<SqliteLease>(std::move(*state)));
}

}  // namespace hookvault::store::sqlite
