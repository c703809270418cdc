// A listener's open connections, and whom to close when it is full.
//
// At max_connections a new connection is still served when an open one can
// make room for it without losing anything acknowledged: server.cpp closes
// the one evict_for() chooses (as nginx reuses idle keep-alive connections
// when it runs short). A connection whose request is with the handler, or
// whose answer is being written, is never chosen. In order:
// 1. a connection without a client certificate on a mutual-TLS listener
//    (`unauthenticated`: its one answer is 401), the oldest;
// 2. an idle connection (between requests: it loses nothing) of the client
//    group that holds the most connections (a tie goes to the newcomer's own
//    group), the one idle the longest;
// 3. a connection still opening (PROXY header, TLS handshake) or reading its
//    request, the one that has been at it the longest (a stalled handshake
//    or a trickled head before a request that takes milliseconds).
// A client group is an IPv4 address or an IPv6 /64 (what one host, or one
// site, usually has). So one address that holds every slot, idle or
// trickling, gives one up to any newcomer, and a newcomer from the address
// that holds the most takes the place of its own longest-idle connection.
// The client address is the TCP peer's, or the one a trusted PROXY header
// names once it has been read (regroup()). Behind a balancer that sends no
// PROXY header every connection is the balancer's: a new one replaces its
// longest-idle one.
//
// Thread-safety: every member may be called from any thread (one mutex).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hookvault/cidr.hpp"
#include "net/connection_phase.hpp"

namespace hookvault::net {

// The part of a connection the table looks at (server.cpp's connection
// derives from it).
struct TrackedConnection {
  virtual ~TrackedConnection() = default;
  ConnectionPhase phase;
  // Mutual TLS: it completed the handshake without a client certificate.
  std::atomic<bool> unauthenticated{false};
};

// The client group of an address: IPv4 as is, IPv6 cut to its /64.
IpAddress client_group(const IpAddress& ip) noexcept;

class ConnectionTable {
 public:
  // Adds a connection from `client`; when it throws (memory), nothing was
  // added.
  void add(const std::shared_ptr<TrackedConnection>& c, const IpAddress& client);
  // The connection's client turned out to be `client` (a PROXY header).
  void regroup(const TrackedConnection* c, const IpAddress& client);
  // Removes it; true when the table is then empty.
  bool remove(const TrackedConnection* c);
  std::size_t size() const;
  // Every connection (to act on each outside the lock).
  std::vector<std::shared_ptr<TrackedConnection>> all() const;

  struct Eviction {
    std::shared_ptr<TrackedConnection> conn;  // null: none could make room
    // What it was: "unauthenticated", "idle", "opening" or "reading".
    std::string_view reason;
  };
  // Chooses, as the header says, a connection to close for a newcomer from
  // `client`, and marks it evicted (ConnectionPhase::evict): the caller
  // closes it.
  Eviction evict_for(const IpAddress& client);

 private:
  struct Entry {
    std::weak_ptr<TrackedConnection> conn;
    IpAddress group{};
  };
  struct GroupHash {
    std::size_t operator()(const IpAddress& ip) const noexcept;
  };

  Eviction evict_unauthenticated();
  Eviction evict_idle(const IpAddress& own_group);
  Eviction evict_oldest_in_progress();

  mutable std::mutex mu_;
  std::unordered_map<const TrackedConnection*, Entry> entries_;
  std::unordered_map<IpAddress, std::size_t, GroupHash> per_group_;
};

}  // namespace hookvault::net
