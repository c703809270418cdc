// The data of a FakeDatabase (fake_store.hpp) and the store's rules kept on
// it: idempotency, delegation ordering (newer wins, superseded, revoked,
// tombstones), the audit log, Nodit sequences (the rules of
// src/store/sqlite/sequences.hpp). Internal to fake_store.cpp; callers hold
// FakeState::mu.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fake_store.hpp"

namespace hookvault::testing {
namespace fake {

// As src/store/sqlite/sequences.hpp: a first number within this reach of 1
// records the numbers before it missing.
constexpr std::uint64_t kMaxInitialGap = 1000;
constexpr std::uint64_t kMaxSequenceNumber =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

struct Row {
  EventMeta meta;
  std::int64_t event_time_ms = 0;
  std::string payload;
  bool delegation = false;  // wallet.delegation.created (materials or a decrypt failure)
};

struct CurrentMaterials {
  StoredMaterials m;
  std::int64_t time_ms = 0;
};

struct Sequence {
  std::uint64_t contiguous = 0;
  std::uint64_t highest = 0;
  std::map<std::uint64_t, SequenceGap> gaps;  // by first
};

using Key = std::pair<std::string, std::string>;

inline StoredMaterials copy_of(const StoredMaterials& m) {
  StoredMaterials c;
  c.source = m.source;
  c.wallet_id = m.wallet_id;
  c.user_id = m.user_id;
  c.chain = m.chain;
  c.share_set_id = m.share_set_id;
  c.event_id = m.event_id;
  c.created_at = m.created_at;
  c.share = m.share.clone();
  c.api_key = m.api_key.clone();
  return c;
}

}  // namespace fake

using fake::CurrentMaterials;
using fake::Key;
using fake::kMaxInitialGap;
using fake::Row;
using fake::Sequence;

struct FakeState {
  explicit FakeState(const Clock* c) : clock(c != nullptr ? c : &system_clock()) {}

  const Clock* clock;
  std::mutex mu;
  std::int64_t last_row_id = 0;
  std::map<std::int64_t, Row> rows;
  std::map<Key, std::int64_t> index;  // (source, idempotency key) -> row id
  std::map<Key, CurrentMaterials> materials;
  std::map<Key, std::int64_t> tombstones;  // (source, wallet) -> newest revocation time
  std::vector<AuditRecord> audit;
  std::map<Key, Sequence> sequences;  // (source, subscription)
  // Leases by name: the holder's flag (false once released or its store closed).
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> leases;
  std::map<std::string, const FakeStore*> lease_owner;

  std::int64_t append_audit(AuditEntry entry) {
    AuditRecord r;
    r.seq = static_cast<std::int64_t>(audit.size()) + 1;
    r.time_ms = clock->now_ms();
    r.entry = std::move(entry);
    audit.push_back(std::move(r));
    return audit.back().seq;
  }

  // The rules of src/store/sqlite/sequences.hpp for a newly stored `n`.
  void advance(const std::string& source, const SequencePosition& pos) {
    const std::uint64_t n = pos.number;
    const auto now = clock->now_ms();
    auto [it, fresh] = sequences.try_emplace(Key{source, pos.subscription_id});
    Sequence& s = it->second;
    if (fresh) {
      if (n > 1 && n <= 1 + kMaxInitialGap) s.gaps[1] = SequenceGap{1, n - 1, now};
      s.highest = n;
    } else if (n > s.highest) {
      if (n > s.highest + 1) s.gaps[s.highest + 1] = SequenceGap{s.highest + 1, n - 1, now};
      s.highest = n;
    } else {
      auto g = s.gaps.upper_bound(n);
      if (g != s.gaps.begin()) {
        --g;
        const SequenceGap gap = g->second;
        if (gap.first <= n && n <= gap.last) {
          s.gaps.erase(g);
          if (gap.first < n) s.gaps[gap.first] = SequenceGap{gap.first, n - 1, gap.detected_at_ms};
          if (n < gap.last) s.gaps[n + 1] = SequenceGap{n + 1, gap.last, gap.detected_at_ms};
        }
      }
    }
    s.contiguous = s.gaps.empty() ? s.highest : s.gaps.begin()->first - 1;
  }

  // Redacts the payloads of (source, wallet)'s delegation events that `older`
  // says are older.
  template <class Older>
  void redact_delegations(const std::string& source, const std::string& wallet, Older older) {
    for (auto& [id, row] : rows) {
      if (row.delegation && row.meta.source == source && row.meta.wallet_id == wallet &&
          older(row)) {
        row.meta.payload_redacted = true;
        row.payload.clear();
      }
    }
  }

  // What a delegation at (time_ms, key) of (source, wallet) becomes, before
  // materials are applied: revoked, superseded, or nullopt (it is the newest).
  std::optional<MaterialsState> older_than_stored(const std::string& source,
                                                  const std::string& wallet, std::int64_t time_ms,
                                                  const std::string& key) const {
    if (auto t = tombstones.find(Key{source, wallet});
        t != tombstones.end() && time_ms <= t->second) {
      return MaterialsState::revoked;
    }
    if (auto c = materials.find(Key{source, wallet}); c != materials.end()) {
      if (std::tie(time_ms, key) <= std::tie(c->second.time_ms, c->second.m.event_id)) {
        return MaterialsState::superseded;
      }
    }
    return std::nullopt;
  }

  // Stores `m` as the wallet's materials (from the event `row`), redacting the
  // wallet's older delegations.
  void apply_materials(Row& row, DelegationMaterials m) {
    const std::string& source = row.meta.source;
    const std::string& wallet = row.meta.wallet_id;
    CurrentMaterials c;
    c.time_ms = row.event_time_ms;
    c.m.source = source;
    c.m.wallet_id = wallet;
    c.m.user_id = std::move(m.user_id);
    c.m.chain = std::move(m.chain);
    c.m.share_set_id = std::move(m.share_set_id);
    c.m.event_id = row.meta.idempotency_key;
    c.m.created_at = row.meta.event_time;
    c.m.share = std::move(m.share);
    c.m.api_key = std::move(m.api_key);
    materials[Key{source, wallet}] = std::move(c);
    const auto t = row.event_time_ms;
    const auto& k = row.meta.idempotency_key;
    redact_delegations(source, wallet, [&](const Row& other) {
      return std::tie(other.event_time_ms, other.meta.idempotency_key) < std::tie(t, k);
    });
    for (auto& [id, other] : rows) {
      if (other.delegation && other.meta.source == source && other.meta.wallet_id == wallet &&
          other.meta.materials == MaterialsState::decrypt_failed && other.meta.payload_redacted) {
        other.meta.materials = MaterialsState::superseded;
        other.meta.failure_reason.clear();
      }
    }
  }

  Result<WriteResult> apply(WriteRequest& request) {
    NewEvent& ev = request.event;
    const Key key{ev.source, ev.idempotency_key};
    WriteResult result;
    std::optional<std::int64_t> replaced;
    if (auto found = index.find(key); found != index.end()) {
      Row& existing = rows.at(found->second);
      if (!(existing.meta.origin == Origin::history && ev.origin == Origin::signature)) {
        result.row_id = existing.meta.row_id;
        result.duplicate = true;
        result.materials = existing.meta.materials;
        return result;
      }
      replaced = found->second;
    }
    const bool delegation = request.materials.has_value() || request.decrypt_failure.has_value();
    Row row;
    row.meta.source = ev.source;
    row.meta.idempotency_key = ev.idempotency_key;
    row.meta.event_name = ev.event_name;
    row.meta.message_id = ev.message_id;
    row.meta.event_time = ev.event_time;
    row.meta.wallet_id = ev.wallet_id;
    row.meta.received_at_ms = clock->now_ms();
    row.meta.origin = ev.origin;
    row.event_time_ms = ev.event_time_ms;
    row.payload = ev.payload;
    row.delegation = delegation;
    if (request.revoke) {
      // The revocation's own audit record commits with it.
      append_audit(AuditEntry{"source:" + ev.source, "revoke", ev.wallet_id, "ok"});
      auto& tomb = tombstones[Key{ev.source, ev.wallet_id}];
      tomb = std::max(tomb, ev.event_time_ms);
      const std::int64_t t = ev.event_time_ms;
      if (auto c = materials.find(Key{ev.source, ev.wallet_id});
          c != materials.end() && c->second.time_ms <= t) {
        materials.erase(c);
      }
      redact_delegations(ev.source, ev.wallet_id,
                         [t](const Row& other) { return other.event_time_ms <= t; });
      for (auto& [id, other] : rows) {
        if (other.delegation && other.meta.source == ev.source &&
            other.meta.wallet_id == ev.wallet_id && other.event_time_ms <= t &&
            other.meta.materials == MaterialsState::decrypt_failed) {
          other.meta.materials = MaterialsState::revoked;
          other.meta.failure_reason.clear();
        }
      }
    } else if (delegation) {
      if (auto older =
              older_than_stored(ev.source, ev.wallet_id, ev.event_time_ms, ev.idempotency_key)) {
        row.meta.materials = *older;
        row.meta.payload_redacted = true;
        row.payload.clear();
      } else if (request.materials) {
        row.meta.materials = MaterialsState::stored;
      } else {
        row.meta.materials = MaterialsState::decrypt_failed;
        row.meta.failure_reason = *request.decrypt_failure;
      }
    }
    if (replaced) {
      rows.erase(*replaced);
    } else if (ev.sequence) {
      advance(ev.source, *ev.sequence);
    }
    row.meta.row_id = ++last_row_id;
    result.row_id = row.meta.row_id;
    result.materials = row.meta.materials;
    result.replaced_history = replaced.has_value();
    index[key] = row.meta.row_id;
    Row& stored = rows.emplace(row.meta.row_id, std::move(row)).first->second;
    if (stored.meta.materials == MaterialsState::stored) {
      apply_materials(stored, std::move(*request.materials));
    }
    return result;
  }
};

}  // namespace hookvault::testing
