#include "net/connection_table.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

namespace hookvault::net {

namespace {

bool is_v4_mapped(const IpAddress& ip) noexcept {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(ip.data(), kPrefix, sizeof kPrefix) == 0;
}

}  // namespace

IpAddress client_group(const IpAddress& ip) noexcept {
  if (is_v4_mapped(ip)) return ip;
  IpAddress group = ip;
  std::fill(group.begin() + 8, group.end(), std::uint8_t{0});
  return group;
}

std::size_t ConnectionTable::GroupHash::operator()(const IpAddress& ip) const noexcept {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  std::memcpy(&high, ip.data(), 8);
  std::memcpy(&low, ip.data() + 8, 8);
  return std::hash<std::uint64_t>()(high * 0x9E3779B97F4A7C15ULL ^ low);
}

void ConnectionTable::add(const std::shared_ptr<TrackedConnection>& c, const IpAddress& client) {
  const IpAddress group = client_group(client);
  std::lock_guard lock(mu_);
  // All or nothing (the listener closes the connection when this throws).
  std::size_t& held = per_group_[group];
  try {
    entries_.emplace(c.get(), Entry{c, group});
  } catch (...) {
    if (held == 0) per_group_.erase(group);
    throw;
  }
  ++held;
}

void ConnectionTable::regroup(const TrackedConnection* c, const IpAddress& client) {
  const IpAddress group = client_group(client);
  std::lock_guard lock(mu_);
  auto it = entries_.find(c);
  if (it == entries_.end() || it->second.group == group) return;
  ++per_group_[group];  // first: when it throws, nothing has changed
  if (--per_group_[it->second.group] == 0) per_group_.erase(it->second.group);
  it->second.group = group;
}

bool ConnectionTable::remove(const TrackedConnection* c) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(c);
  if (it != entries_.end()) {
    if (--per_group_[it->second.group] == 0) per_group_.erase(it->second.group);
    entries_.erase(it);
  }
  return entries_.empty();
}

std::size_t ConnectionTable::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::vector<std::shared_ptr<TrackedConnection>> ConnectionTable::all() const {
  std::vector<std::shared_ptr<TrackedConnection>> out;
  std::lock_guard lock(mu_);
  out.reserve(entries_.size());
  for (const auto& [ptr, entry] : entries_) {
    if (auto c = entry.conn.lock()) out.push_back(std::move(c));
  }
  return out;
}

ConnectionTable::Eviction ConnectionTable::evict_for(const IpAddress& client) {
  std::lock_guard lock(mu_);
  if (auto e = evict_unauthenticated(); e.conn) return e;
  if (auto e = evict_idle(client_group(client)); e.conn) return e;
  return evict_oldest_in_progress();
}

// Entries are alive while listed (a connection leaves the table before its
// owner lets it go, under the same mutex), so their phases may be read.
// Each rule sorts its candidates and takes the first whose phase has not
// moved on meanwhile (ConnectionPhase::evict fails once it is handling).

ConnectionTable::Eviction ConnectionTable::evict_unauthenticated() {
  std::vector<std::pair<std::int64_t, const Entry*>> candidates;
  for (const auto& [ptr, entry] : entries_) {
    if (!ptr->unauthenticated.load()) continue;
    const auto phase = ptr->phase.get();
    if (phase == ConnectionPhase::idle || phase == ConnectionPhase::reading) {
      candidates.emplace_back(ptr->phase.since(), &entry);
    }
  }
  std::sort(candidates.begin(), candidates.end());
  for (const auto& [since, entry] : candidates) {
    auto c = entry->conn.lock();
    if (c && c->phase.evict(ConnectionPhase::reading)) return {std::move(c), "unauthenticated"};
  }
  return {};
}

ConnectionTable::Eviction ConnectionTable::evict_idle(const IpAddress& own_group) {
  // (connections of its group, its group is the newcomer's, idle since)
  using Key = std::tuple<std::size_t, bool, std::int64_t>;
  std::vector<std::pair<Key, const Entry*>> candidates;
  for (const auto& [ptr, entry] : entries_) {
    if (ptr->phase.get() != ConnectionPhase::idle) continue;
    const std::size_t held = per_group_.at(entry.group);
    candidates.emplace_back(Key{held, entry.group == own_group, -ptr->phase.since()}, &entry);
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [key, entry] : candidates) {
    auto c = entry->conn.lock();
    if (c && c->phase.evict(ConnectionPhase::idle)) return {std::move(c), "idle"};
  }
  return {};
}

ConnectionTable::Eviction ConnectionTable::evict_oldest_in_progress() {
  std::vector<std::pair<std::int64_t, const Entry*>> candidates;
  for (const auto& [ptr, entry] : entries_) {
    const auto phase = ptr->phase.get();
    if (phase == ConnectionPhase::opening || phase == ConnectionPhase::reading) {
      candidates.emplace_back(ptr->phase.since(), &entry);
    }
  }
  std::sort(candidates.begin(), candidates.end());
  for (const auto& [since, entry] : candidates) {
    auto c = entry->conn.lock();
    ConnectionPhase::Value was = ConnectionPhase::opening;
    if (c && c->phase.evict(ConnectionPhase::reading, &was)) {
      return {std::move(c), was == ConnectionPhase::opening ? "opening" : "reading"};
    }
  }
  return {};
}

}  // namespace hookvault::net
