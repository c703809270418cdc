// FakeNodit: an in-process HTTPS fake of Nodit's Get Webhook History API
// (docs/protocols.md, "Nodit: delivery and sequence numbers" and "Nodit: history API"), for tests
// of the history client and of the daemon's backfill (the daemon, a child process, calls it like
// Nodit).
//
//   GET /v1/{chain}/{network}/webhooks/history
//       ?subscriptionId=..&page=..&rpp=..&withEventMessage=true
//        [&status=SUCCESS|FAIL][&startAt=..][&endAt=..][&startSequenceNumber=..]
//   header X-API-KEY: <the key given to the constructor>
//
// Serving rules (Mode::normal):
// - 401 when X-API-KEY is absent or differs from the expected key; 404 for any
//   other path or method; 400 when subscriptionId is missing or page (>= 1),
//   rpp (1..100), startSequenceNumber (digits) or status (SUCCESS|FAIL) is
//   malformed. page defaults to 1, rpp to 10.
// - The messages of `subscriptionId` with sequenceNumber >= startSequenceNumber,
//   status equal to `status`, and startAt <= createdAt <= endAt (plain string
//   comparison of the ISO-8601 texts), sorted by sequence number, paged by
//   page/rpp; `total` counts all that match.
// - Body: {"total":N,"page":P,"rpp":R,"items":[{"id":..,"subscriptionId":"..",
//   "sequenceNumber":"..","status":..,"createdAt":..,"updatedAt":..,
//   "eventMessage":{..}}]}: ids and sequence numbers as digit strings, the event
//   message inserted as the exact text given to add(); eventMessage is left
//   out unless withEventMessage=true.
// Fault modes, switchable at any time (they apply to requests read afterwards):
// - error500: 500 with a JSON error body;
// - hang: the request is read and recorded but never answered (the connection
//   stays open until the client gives up and closes it);
// - garbage: 200 with an HTML body that is not JSON;
// - alternate_schema: the same content as normal, but the list under "data",
//   subscriptionId/sequenceNumber as JSON integers, total/page/rpp as digit
//   strings and eventMessage as a string holding the JSON text.
// Hostile modes (an API that answers more than it was asked):
// - ignore_filters: every message of the subscription, all on every page,
//   whatever startSequenceNumber, status, startAt, endAt, page and rpp say;
// - oversized: like normal, with a "padding" member of spaces that makes the
//   body oversized_bytes() long (3 MiB unless set);
// - announce_huge: a 200 whose head announces a 1 GiB body, of which one
//   byte is sent; then nothing until the client closes.
//
// TLS: a self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost,
// generated at construction into a private temporary folder; point clients at
// ca_file(). Listens on 127.0.0.1, port chosen by the system.
//
// Thread-safety: one thread of its own serves; every public member may be
// called from any thread while it serves. The destructor stops the server and
// drops open connections.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace hookvault::testing {

class FakeNodit {
 public:
  enum class Mode {
    normal,
    error500,
    hang,
    garbage,
    alternate_schema,
    ignore_filters,
    oversized,
    announce_huge
  };

  // One request as received. The X-API-KEY value is not kept; `api_key_ok`
  // says whether it matched.
  struct Request {
    std::string method;
    std::string target;                          // path and raw query
    std::string path;                            // without the query
    std::map<std::string, std::string> query;    // percent-decoded; last one wins
    std::map<std::string, std::string> headers;  // lowercase names, without x-api-key
    bool api_key_present = false;
    bool api_key_ok = false;
  };

  // Starts serving. Throws std::runtime_error when it cannot.
  explicit FakeNodit(std::string api_key);
  ~FakeNodit();
  FakeNodit(const FakeNodit&) = delete;
  FakeNodit& operator=(const FakeNodit&) = delete;

  std::uint16_t port() const;
  std::filesystem::path ca_file() const;  // the server certificate, to trust
  std::string base_url() const;           // "https://127.0.0.1:PORT/v1"

  // Adds (or replaces) the message (subscription_id, seq). `event_message_json`
  // must be a JSON object (std::invalid_argument otherwise) and is served
  // byte for byte.
  void add(const std::string& subscription_id, std::uint64_t seq, const std::string& status,
           const std::string& created_at, const std::string& event_message_json);
  void clear();  // forgets all messages

  void set_mode(Mode mode);
  void set_oversized_bytes(std::size_t bytes);  // Mode::oversized's body size

  std::vector<Request> requests() const;
  std::size_t request_count() const;
  void clear_requests();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hookvault::testing
