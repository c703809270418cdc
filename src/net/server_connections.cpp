// The connection registry (server_impl.hpp): a connection forgotten when it
// ends, and those accepted with a client trust that changed retired.
#include "net/server_impl.hpp"

namespace hookvault {
namespace {

// How often a connection to be closed (use_tls) is looked at until it is idle.
constexpr auto kRetirePoll = std::chrono::milliseconds(100);

}  // namespace

std::shared_ptr<Server::Tls> Server::Impl::current_tls() {
  std::lock_guard lock(tls_mu);
  return tls;
}

// use_tls(): closes each connection accepted with `old` once it is idle
// (or still opening), or at `deadline` whatever it does, polling every
// kRetirePoll on its shard until it is closed or has ended by itself (a poll
// that went on after its end would keep the shard's loop, and run(), alive).
void Server::Impl::retire_connections(const Server::Tls* old) {
  const auto deadline = std::chrono::steady_clock::now() + kRetireGrace;
  for (auto& tracked : conns.all()) {
    auto c = std::static_pointer_cast<Conn>(tracked);
    if (c->tls.get() == old) retire_when_idle(std::move(c), deadline);
  }
}

void Server::Impl::retire_when_idle(std::shared_ptr<Conn> conn,
                                    std::chrono::steady_clock::time_point deadline) {
  auto ex = conn->stream.get_executor();
  asio::post(ex, [this, conn = std::move(conn), deadline]() mutable {
    if (conn->ended) return;
    if (conn->phase.evict(net::ConnectionPhase::idle)) {
      conn->stream.close();
      return;
    }
    if (conn->phase.get() == net::ConnectionPhase::evicted) return;
    if (std::chrono::steady_clock::now() >= deadline) conn->stream.cancel();
    auto timer = std::make_shared<asio::steady_timer>(conn->stream.get_executor(), kRetirePoll);
    timer->async_wait([this, conn, deadline, timer](boost::system::error_code ec) {
      if (!ec) retire_when_idle(conn, deadline);
    });
  });
}

void Server::Impl::forget(Conn* c) {
  const bool last = conns.remove(c);
  --open_count;  // first: once the gauge shows a free slot, it is free
  open_connections.dec();
  if (last && listener_closed) {
    asio::post(ioc, [this] {
      idle_cut.cancel();
      grace.cancel();
    });
  }
}

}  // namespace hookvault
