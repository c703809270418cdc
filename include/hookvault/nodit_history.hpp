// Client for Nodit's Get Webhook History API (docs/protocols.md, "Nodit: history API"), used to
// backfill sequence-number gaps and deliveries that failed while hookvault was down.
//
//   GET {api_base_url}/{chain}/{network}/webhooks/history
//       ?subscriptionId=..&page=..&rpp=..&withEventMessage=true
//        [&status=SUCCESS|FAIL][&startAt=..][&endAt=..][&startSequenceNumber=..]
//   header X-API-KEY: <api key>
//   -> {total, page, rpp, items: [{id, subscriptionId, sequenceNumber, status,
//        createdAt, updatedAt, eventMessage: {...the delivered body...}}]}
//
// Parsing is lenient, because the published schema contradicts its example:
// the item list may be `items` or `data`/`result` (top level or nested under
// `data`), numbers may arrive as strings or integers, and an item without a
// usable subscriptionId (subscription_id.hpp, the rule admission applies),
// sequenceNumber or eventMessage is skipped (counted in `skipped`), never
// fatal. A response that is not JSON at all, a list of more items than the
// query's `rpp` asked for, an HTTP status other than 200, a TLS failure or a
// timeout is an error (Errc::io_error), and the caller retries later.
//
// What is parsed is bounded: a response body over `max_response_bytes` is
// refused while it is read (Beast's body limit: a Content-Length announcing
// more fails before the body is read, a chunked body as soon as it passes the
// limit) with Errc::body_too_large. Parsing a page takes up to about 22
// times its size in memory (nlohmann's DOM of it; measured with 100 items of
// empty strings, the worst case: 46 MB for 2 MiB, 184 MB for 8 MiB), so the
// default of 2 MiB (20 KiB per message at the largest page_size, 100) bounds
// it near 46 MB. A page of Nodit messages larger than that is refused every
// time: lower [sources.history] page_size.
//
// HTTPS with certificate and host-name verification (system trust store, or
// `ca_file` when set). The API key is sent only in the X-API-KEY header and is
// never logged or put in an error message.
//
// A query fetch() cannot send (a subscription_id that is not an id by
// subscription_id.hpp's rule, page 0, rpp outside 1..100) is
// Errc::invalid_field; unusable options (a base URL that is not
// https://host[:port][/path], an empty chain, network or key) are
// Errc::io_error like every other failure.
//
// Thread-safety: fetch() may be called from one thread at a time per client;
// it blocks (use it from a background thread, never an I/O thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

struct HistoryClientOptions {
  std::string
      api_base_url;     // "https://host[:port][/path]", e.g. "https://web3.nodit.io/v1"; https only
  std::string chain;    // e.g. "ethereum"
  std::string network;  // e.g. "mainnet"
  SecretBytes api_key;
  std::filesystem::path ca_file;                                  // empty: the system trust store
  std::chrono::milliseconds timeout{10000};                       // whole request
  std::size_t max_response_bytes = std::size_t{2} * 1024 * 1024;  // body; see above
};

struct HistoryQuery {
  std::string subscription_id;
  std::optional<std::uint64_t> start_sequence_number;
  std::optional<std::string> status;    // "SUCCESS" or "FAIL"
  std::optional<std::string> start_at;  // ISO-8601
  std::optional<std::string> end_at;
  std::uint32_t page = 1;
  std::uint32_t rpp = 100;  // 1..100
};

struct HistoryItem {
  std::string subscription_id;
  std::uint64_t sequence_number = 0;
  std::string status;         // as sent ("SUCCESS", "FAIL", ...), may be empty
  std::string created_at;     // as sent, may be empty
  std::string event_message;  // the delivered body, its text exactly as the API sent it
};

struct HistoryPage {
  std::vector<HistoryItem> items;
  std::uint64_t total = 0;  // 0 when absent
  std::uint32_t page = 0;
  std::uint32_t rpp = 0;
  std::size_t skipped = 0;  // items that could not be used
};

class NoditHistoryClient {
 public:
  explicit NoditHistoryClient(HistoryClientOptions options);
  ~NoditHistoryClient();
  NoditHistoryClient(const NoditHistoryClient&) = delete;
  NoditHistoryClient& operator=(const NoditHistoryClient&) = delete;

  Result<HistoryPage> fetch(const HistoryQuery& query);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Lenient parse of a response body (exposed for tests). A list of more than
// `max_items` elements (usable or not) is Errc::io_error.
Result<HistoryPage> parse_history_page(std::string_view body, std::size_t max_items = 100);

}  // namespace hookvault
