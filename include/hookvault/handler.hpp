// The seam between a listener (src/net, Beast) and what answers its requests
// (the webhook Pipeline, the AdminApi): a request as plain data, a reply as
// plain data, and one interface. No HTTP library types cross it.
//
// handle() calls `done` exactly once, synchronously or later from another
// thread; the listener hops back to its own executor. `done` must not block.
//
// Thread-safety: a RequestHandler's handle() is called from many I/O threads
// at once.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "hookvault/cidr.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

struct Delivery {
  std::string_view method;
  std::string_view target;        // path and optional query
  std::string_view content_type;  // empty when absent
  // Looks up a request header by (case-insensitive) name; "" when absent.
  // Only called before handle() returns.
  std::function<std::string_view(std::string_view)> header;
  std::string body;
  std::string request_id;
  std::string peer;  // the TCP peer, "address:port" (a load balancer, when behind one)
  // The client: the TCP peer's address, or the one a PROXY v2 header or a
  // trusted proxy's X-Forwarded-For gave ([server] proxy_protocol,
  // trusted_proxies). Per-source allow_from lists are checked against it.
  IpAddress client_ip{};
  std::string client;  // client_ip as text
  // Mutual TLS listeners: the common name of the client certificate that the
  // handshake verified against the listener's client CA; empty when the client
  // sent none.
  std::string client_cn;
};

struct Reply {
  unsigned status = 500;
  std::string body;                                    // JSON unless content_type says otherwise
  SecretText secret_body;                              // used instead of `body` when not empty
  std::string_view content_type = "application/json";  // static strings only
  unsigned retry_after_s = 0;                          // > 0 adds Retry-After
  // For the request log line and the request metrics.
  std::string source;
  std::string event_name;
  std::string event_id;
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void handle(Delivery delivery, std::function<void(Reply)> done) = 0;
  // Shutdown has begun: readiness checks should fail from now on.
  virtual void set_draining() noexcept {}
};

// The one JSON error answer: status from http_status(e), body
// {"error":"<error_name>"[,"field":"..."]}, Retry-After for the errors a
// client should retry (overloaded, store_unavailable, rate_limited uses its own).
Reply error_reply(Errc e, std::string_view field = {});
// The same for a refusal: its code and field, and its event name for the log.
Reply error_reply(const Refusal& refusal);
// A reply with this status and JSON body.
Reply json_reply(unsigned status, std::string_view body);

}  // namespace hookvault
