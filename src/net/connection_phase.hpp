// What a connection is doing, as its listener needs to know when it must
// close one: at max_connections, to make room (server.cpp), and when it
// drains. The connection's own loop moves it from phase to phase; the
// listener may evict it from another thread, which only succeeds while the
// connection holds nothing that would be lost (no request handed to the
// handler, no answer being written), and then the loop's next move fails
// and it stops.
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace hookvault::net {

class ConnectionPhase {
 public:
  // In the order in which a connection has more to lose.
  enum Value : std::uint8_t {
    opening,   // PROXY header, TLS handshake
    idle,      // waiting for a request
    reading,   // a request's head or body is arriving
    handling,  // the handler has the request, or its answer is being written
    evicted,   // closed by the listener; the loop stops at its next move
  };

  ConnectionPhase() noexcept : since_(now()) {}

  // Moves to `next`; false once the connection has been evicted.
  bool enter(Value next) noexcept {
    Value current = value_.load();
    do {
      if (current == evicted) return false;
    } while (!value_.compare_exchange_weak(current, next));
    since_.store(now());
    return true;
  }

  // Marks the connection evicted when its phase is at most `latest` (and not
  // evicted already); true when this call did, with the phase it was in in
  // `was`. The caller then closes it.
  bool evict(Value latest, Value* was = nullptr) noexcept {
    Value current = value_.load();
    do {
      if (current > latest) return false;
    } while (!value_.compare_exchange_weak(current, evicted));
    if (was != nullptr) *was = current;
    return true;
  }

  Value get() const noexcept { return value_.load(); }
  // When the current phase began (steady clock ticks).
  std::int64_t since() const noexcept { return since_.load(); }

 private:
  static std::int64_t now() noexcept {
    return std::chrono::steady_clock::now().time_since_epoch().count();
  }

  std::atomic<Value> value_{opening};
  std::atomic<std::int64_t> since_;
};

}  // namespace hookvault::net
