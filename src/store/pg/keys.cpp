// KEK rotation in the PostgreSQL store (store.hpp: KEK rotation, KEK
// registrations; the rules of src/store/sqlite/kek_registry.hpp, RULES):
// kek_usage, kek_refs, rewrap_batch (old keys read and rewrapped on the caller's
// thread, guarded UPDATEs applied by the writer), the KEK leases of other
// Stores, retire_kek_version, and the writers' check against retired
// versions. The order SQLite's single write lock gives is kept by the
// advisory lock kKekLockClass (schema.hpp, KEK REGISTRATIONS AND RETIREMENT):
// every transaction that stores wrapped keys takes it shared before it reads
// kek_retired; a retirement takes it exclusively before it looks at the
// leases and the keys.
#include <algorithm>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

#include "hookvault/log.hpp"
#include "store/audit_mac.hpp"
#include "store/pg/pg_store_impl.hpp"
#include "store/pg/schema.hpp"
#include "store/pg/statements.hpp"

namespace hookvault::store::pg {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

std::optional<Clock::time_point> deadline() { return Clock::now() + kStatementTimeout; }

Result<std::optional<WrappedKey>> stored_audit_key(Connection& c) {
  auto rows = c.exec(sql::kReadAuditKey, {}, deadline());
  if (!rows) return rows.error();
  if (rows->empty() || rows->is_null(0, 0) || rows->is_null(0, 1) || rows->is_null(0, 2)) {
    return std::optional<WrappedKey>();
  }
  auto wrapped = from_hex(rows->text(0, 0));
  const auto version = parse_int(rows->text(0, 2));
  if (!wrapped || !version) return err(Errc::store_corrupt);
  auto v = kek_version_from(*version);
  if (!v) return v.error();
  return std::optional<WrappedKey>(WrappedKey{rows->text(0, 1), *v, std::move(*wrapped)});
}

Result<KekLease> lease_at(const Rows& rows, int i) {
  auto version = rows.int64(i, 3);
  auto heartbeat = rows.int64(i, 4);
  auto expires = rows.int64(i, 5);
  if (!version || !heartbeat || !expires) return err(Errc::store_corrupt);
  auto v = kek_version_from(*version);
  if (!v) return v.error();
  return KekLease{rows.text(i, 0), rows.text(i, 1), rows.text(i, 2), *v, *heartbeat, *expires};
}

}  // namespace

Result<void> PgStore::check_not_retired(const std::vector<const WrappedKey*>& keys) {
  if (!batch_retired_) {
    if (auto r = q(sql::kLockKekShared, Params().int64(schema::kKekLockClass)); !r) {
      return r.error();
    }
    auto rows = q(sql::kRetiredVersions, Params().text(kek_->id()));
    if (!rows) return rows.error();
    std::set<std::uint32_t> retired;
    for (int i = 0; i < rows->size(); ++i) {
      auto v = rows->int64(i, 0);
      if (!v) return v.error();
      auto version = kek_version_from(*v);
      if (!version) return version.error();
      retired.insert(*version);
    }
    batch_retired_ = std::move(retired);
  }
  for (const WrappedKey* k : keys) {
    if (k->kek_id == kek_->id() && batch_retired_->count(k->kek_version) != 0) {
      return err(Errc::kek_unavailable);
    }
  }
  return {};
}

Result<std::vector<KekUsage>> PgStore::kek_usage() const {
  return with_reader([&](Connection& c) -> Result<std::vector<KekUsage>> {
    std::vector<KekUsage> out;
    auto rows = c.exec(sql::kReadKekUsage, {}, deadline());
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) {
      auto v = rows->int64(i, 1);
      auto events = rows->int64(i, 2);
      auto materials = rows->int64(i, 3);
      if (!v || !events || !materials) return err(Errc::store_corrupt);
      auto version = kek_version_from(*v);
      if (!version) return version.error();
      out.push_back(KekUsage{rows->text(i, 0), *version, static_cast<std::uint64_t>(*events),
                             static_cast<std::uint64_t>(*materials), false});
    }
    auto audit_key = stored_audit_key(c);
    if (!audit_key) return audit_key.error();
    if (*audit_key) mark_audit_key_usage(out, **audit_key);
    return out;
  });
}

Result<std::vector<KekRef>> PgStore::kek_refs() const {
  return with_reader([&](Connection& c) -> Result<std::vector<KekRef>> {
    std::vector<KekRef> out;
    for (const char* next : {sql::kNextEventKekRef, sql::kNextMaterialsKekRef}) {
      // A loose index scan: one probe per distinct pair, from before the first.
      std::string id;
      std::int64_t version = -1;
      for (;;) {
        auto rows = c.exec(next, Params().text(id).int64(version), deadline());
        if (!rows) return rows.error();
        if (rows->empty()) break;
        auto v = rows->int64(0, 1);
        if (!v) return err(Errc::store_corrupt);
        auto checked = kek_version_from(*v);
        if (!checked) return checked.error();
        id = rows->text(0, 0);
        version = *v;
        out.push_back(KekRef{id, *checked});
      }
    }
    auto audit_key = stored_audit_key(c);
    if (!audit_key) return audit_key.error();
    if (*audit_key) out.push_back(KekRef{(*audit_key)->kek_id, (*audit_key)->kek_version});
    sort_unique(out);
    return out;
  });
}

Result<RewrapWork> PgStore::prepare_rewrap(std::size_t limit, std::uint32_t current) {
  const Kek& kek = *kek_;
  RewrapWork work;
  struct OldEvent {
    std::int64_t id;
    std::string source;
    std::string key;
  };
  std::vector<OldEvent> old_events;
  auto read = with_reader([&](Connection& c) -> Result<void> {
    auto events = c.exec(
        sql::kReadOldEvents,
        Params().text(kek.id()).int64(current).int64(static_cast<std::int64_t>(limit)), deadline());
    if (!events) return events.error();
    for (int i = 0; i < events->size(); ++i) {
      auto id = events->int64(i, 0);
      auto v = events->int64(i, 3);
      if (!id || !v) return err(Errc::store_corrupt);
      auto version = kek_version_from(*v);
      if (!version) return version.error();
      old_events.push_back(OldEvent{*id, events->text(i, 1), events->text(i, 2)});
      work.events.push_back(
          EventRewrap{*id, WrappedKey{kek.id(), *version, events->bytes(i, 4)}, WrappedKey{}});
    }
    if (work.events.size() < limit) {
      auto materials = c.exec(sql::kReadOldMaterials,
                              Params().text(kek.id()).int64(current).int64(
                                  static_cast<std::int64_t>(limit - work.events.size())),
                              deadline());
      if (!materials) return materials.error();
      for (int i = 0; i < materials->size(); ++i) {
        auto v = materials->int64(i, 3);
        if (!v) return err(Errc::store_corrupt);
        auto version = kek_version_from(*v);
        if (!version) return version.error();
        work.materials.push_back(
            MaterialsRewrap{materials->text(i, 0), materials->text(i, 1), materials->text(i, 2),
                            WrappedKey{kek.id(), *version, materials->bytes(i, 4)}, WrappedKey{}});
      }
    }
    if (work.events.size() + work.materials.size() < limit) {
      auto key = stored_audit_key(c);
      if (!key) return key.error();
      if (*key && (*key)->kek_id == kek.id() && (*key)->kek_version < current) {
        work.audit_key.emplace(std::move(**key), WrappedKey{});
      }
    }
    return {};
  });
  if (!read) return read.error();
  const auto refuse = [](std::string_view table, const std::string& row,
                         const boost::system::error_code& ec) {
    log(LogLevel::error, "rewrap: a wrapped key does not open; nothing of this batch is written",
        {{"table", std::string(table)},
         {"row", row},
         {"error", std::string(error_name(to_errc(ec)))}});
    return ec;
  };
  for (std::size_t i = 0; i < work.events.size(); ++i) {
    auto& e = work.events[i];
    auto to = rewrap_key(kek, e.from, event_key_ad(old_events[i].source, old_events[i].key));
    if (!to) return refuse("events", "id " + std::to_string(e.row_id), to.error());
    e.to = std::move(*to);
  }
  for (auto& m : work.materials) {
    auto to = rewrap_key(kek, m.from, materials_key_ad(m.source, m.wallet_id, m.event_id));
    if (!to) return refuse("materials", m.source + "/" + m.wallet_id, to.error());
    m.to = std::move(*to);
  }
  if (work.audit_key) {
    auto to = rewrap_key(kek, work.audit_key->first, audit_key_ad());
    if (!to) return refuse("meta", "audit_key", to.error());
    work.audit_key->second = std::move(*to);
  }
  std::erase_if(work.events, [](const auto& k) { return k.to.kek_version <= k.from.kek_version; });
  std::erase_if(work.materials,
                [](const auto& k) { return k.to.kek_version <= k.from.kek_version; });
  if (work.audit_key && work.audit_key->second.kek_version <= work.audit_key->first.kek_version) {
    work.audit_key.reset();
  }
  return work;
}

Result<std::uint64_t> PgStore::apply(RewrapWork& w) {
  std::vector<const WrappedKey*> keys;
  for (const auto& e : w.events) keys.push_back(&e.to);
  for (const auto& m : w.materials) keys.push_back(&m.to);
  if (w.audit_key) keys.push_back(&w.audit_key->second);
  if (auto r = check_not_retired(keys); !r) return r.error();
  std::uint64_t applied = 0;
  const auto guarded = [](const WrappedKey& from, const WrappedKey& to) {
    Params p;
    p.int64(to.kek_version)
        .bytes(to.wrapped_dek)
        .text(from.kek_id)
        .int64(from.kek_version)
        .bytes(from.wrapped_dek);
    return p;
  };
  for (const auto& e : w.events) {
    Params p = guarded(e.from, e.to);
    p.int64(e.row_id);
    auto r = q(sql::kRewrapEvent, p);
    if (!r) return r.error();
    applied += r->affected();
  }
  for (const auto& m : w.materials) {
    Params p = guarded(m.from, m.to);
    p.text(m.source).text(m.wallet_id).text(m.event_id);
    auto r = q(sql::kRewrapMaterials, p);
    if (!r) return r.error();
    applied += r->affected();
  }
  if (w.audit_key) {
    const auto& [from, to] = *w.audit_key;
    auto r = q(sql::kRewrapAuditKey, Params()
                                         .text(to_hex(to.wrapped_dek))
                                         .text(std::to_string(to.kek_version))
                                         .text(to_hex(from.wrapped_dek))
                                         .text(std::to_string(from.kek_version)));
    if (!r) return r.error();
    if (r->affected() > 0) ++applied;
  }
  return applied;
}

// Each batch commits on its own; `remaining` is always counted after it.
Result<RewrapProgress> PgStore::rewrap_batch(std::size_t limit) {
  if (limit == 0) return err(Errc::invalid_field);
  const std::uint32_t current = kek_->version();
  auto moved = run_sync<std::uint64_t>([&](std::function<void(Result<std::uint64_t>)> done) {
    auto work = prepare_rewrap(limit, current);
    if (!work) return done(work.error());
    work->done = std::move(done);
    enqueue_or_refuse(std::move(*work));
  });
  if (!moved) return moved.error();
  auto remaining = with_reader([&](Connection& c) -> Result<std::uint64_t> {
    auto rows = c.exec(sql::kReadOldCount, Params().text(kek_->id()).int64(current), deadline());
    if (!rows || rows->empty()) return err(Errc::store_unavailable);
    auto n = rows->int64(0, 0);
    if (!n) return n.error();
    auto key = stored_audit_key(c);
    if (!key) return key.error();
    const bool old_key = *key && (*key)->kek_id == kek_->id() && (*key)->kek_version < current;
    return static_cast<std::uint64_t>(*n) + (old_key ? 1 : 0);
  });
  if (!remaining) return remaining.error();
  return RewrapProgress{*moved, *remaining, current};
}

Result<std::vector<KekLease>> PgStore::kek_leases() const {
  return with_reader([&](Connection& c) -> Result<std::vector<KekLease>> {
    auto rows =
        c.exec(sql::kReadKekLeases, Params().text(holder_).int64(clock_.now_ms()), deadline());
    if (!rows) return rows.error();
    std::vector<KekLease> out;
    for (int i = 0; i < rows->size(); ++i) {
      auto l = lease_at(*rows, i);
      if (!l) return l.error();
      out.push_back(std::move(*l));
    }
    return out;
  });
}

Result<KekRetirement> PgStore::retire_kek_version(std::uint32_t version) {
  if (version == 0) return err(Errc::invalid_field);
  return run_sync<KekRetirement>([&](std::function<void(Result<KekRetirement>)> done) {
    RetireWork work;
    work.version = version;
    work.done = std::move(done);
    enqueue_or_refuse(std::move(work));
  });
}

Result<KekRetirement> PgStore::apply(RetireWork& w) {
  if (auto r = q(sql::kLockKekExclusive, Params().int64(schema::kKekLockClass)); !r) {
    return r.error();
  }
  KekRetirement out;
  out.usage.kek_id = kek_->id();
  out.usage.version = w.version;
  auto holders =
      q(sql::kLiveLeasesOf, Params().int64(clock_.now_ms()).text(kek_->id()).int64(w.version));
  if (!holders) return holders.error();
  for (int i = 0; i < holders->size(); ++i) {
    auto l = lease_at(*holders, i);
    if (!l) return l.error();
    out.holders.push_back(std::move(*l));
  }
  auto usage = q(sql::kUsageOf, Params().text(kek_->id()).int64(w.version));
  if (!usage || usage->empty()) return usage ? err(Errc::internal) : usage.error();
  auto events = usage->int64(0, 0);
  auto materials = usage->int64(0, 1);
  if (!events || !materials) return err(Errc::store_corrupt);
  out.usage.events = static_cast<std::uint64_t>(*events);
  out.usage.materials = static_cast<std::uint64_t>(*materials);
  auto key = stored_audit_key(*writer_db_);
  if (!key) return key.error();
  out.usage.audit_key = *key && (*key)->kek_id == kek_->id() && (*key)->kek_version == w.version;
  if (!out.holders.empty() || out.usage.events != 0 || out.usage.materials != 0 ||
      out.usage.audit_key) {
    return out;
  }
  auto mark =
      q(sql::kMarkRetired, Params().text(kek_->id()).int64(w.version).int64(clock_.now_ms()));
  if (!mark) return mark.error();
  out.retired = true;
  return out;
}

}  // namespace hookvault::store::pg
