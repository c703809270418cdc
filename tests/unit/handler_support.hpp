// What the unit tests of the request handlers (Pipeline, AdminApi) share:
// sources with real secrets and RSA keys, signed deliveries as a listener hands
// them over, Dynamic delegations with real vendor-style envelopes
// (test_support.hpp: hybrid_encrypt), and Answers, which collects each
// request's replies so a test can check that every request was answered
// exactly once.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hookvault/handler.hpp"
#include "hookvault/hybrid.hpp"
#include "hookvault/json.hpp"
#include "hookvault/pipeline.hpp"
#include "test_support.hpp"

namespace hookvault::testing {

inline constexpr std::string_view kDynamicSecret = "dyn_secret_for_handler_tests";
inline constexpr std::string_view kNoditSecret = "nodit_secret_for_handler_tests";

// A source as the daemon loads it: one webhook secret; a Dynamic one also the
// RSA key `rsa_private_pem`.
inline std::shared_ptr<const Source> make_source(Provider provider,
                                                 const std::string& rsa_private_pem = {}) {
  SourceConfig config;
  config.provider = provider;
  config.name = provider == Provider::dynamic ? "dynamic" : "nodit";
  config.path = "/webhooks/" + config.name;
  std::vector<SecretBytes> secrets;
  secrets.push_back(
      SecretBytes::copy_of(provider == Provider::dynamic ? kDynamicSecret : kNoditSecret));
  std::optional<HybridDecryptor> decryptor;
  if (!rsa_private_pem.empty()) {
    std::vector<std::pair<std::string, SecretBytes>> kid_pem;
    kid_pem.emplace_back("", SecretBytes::copy_of(rsa_private_pem));
    decryptor = HybridDecryptor::from_pem(kid_pem);
  }
  return std::make_shared<const Source>(
      Source{config, SignatureVerifier(std::move(secrets)), std::move(decryptor)});
}

// A request as the listener hands it over; the Delivery views into it, so it
// must outlive handle()'s synchronous part.
struct Request {
  std::string method = "POST";
  std::string target;
  std::string content_type = "application/json";
  std::map<std::string, std::string> headers;
  std::string body;
  std::string client_cn;

  Delivery delivery() const {
    Delivery d;
    d.method = method;
    d.target = target;
    d.content_type = content_type;
    d.header = [this](std::string_view name) -> std::string_view {
      auto it = headers.find(std::string(name));
      return it == headers.end() ? std::string_view() : std::string_view(it->second);
    };
    d.body = body;
    d.request_id = "req-test";
    d.peer = "127.0.0.1:40000";
    d.client = "127.0.0.1";
    d.client_ip = *parse_ip("127.0.0.1");
    d.client_cn = client_cn;
    return d;
  }
};

// A delivery to `provider`'s source, signed with its secret.
inline Request signed_request(Provider provider, std::string body) {
  Request r;
  if (provider == Provider::dynamic) {
    r.target = "/webhooks/dynamic";
    r.headers["x-dynamic-signature-256"] = "sha256=" + hmac_hex(kDynamicSecret, body);
  } else {
    r.target = "/webhooks/nodit";
    r.headers["x-signature"] = hmac_hex(kNoditSecret, body);
  }
  r.body = std::move(body);
  return r;
}

inline std::string dynamic_event(const std::string& event_id, const std::string& event_name) {
  Json body;
  body["eventId"] = event_id;
  body["messageId"] = "m-" + event_id;
  body["eventName"] = event_name;
  body["timestamp"] = "2025-10-01T15:13:26.348Z";
  body["data"] = Json::object();
  return body.dump();
}

// A wallet.delegation.created whose share and API key are encrypted, as the
// vendor does, to `public_pem`.
inline std::string delegation(const std::string& event_id, const std::string& wallet,
                              const std::string& public_pem, const std::string& share,
                              const std::string& api_key) {
  Json data;
  data["walletId"] = wallet;
  data["userId"] = "user-" + wallet;
  data["chain"] = "EVM";
  data["encryptedDelegatedShare"] = hybrid_encrypt(public_pem, share);
  data["encryptedWalletApiKey"] = hybrid_encrypt(public_pem, api_key);
  Json body;
  body["eventId"] = event_id;
  body["messageId"] = "m-" + event_id;
  body["eventName"] = "wallet.delegation.created";
  body["timestamp"] = "2025-10-01T15:13:26.348Z";
  body["data"] = std::move(data);
  return body.dump();
}

// Every reply of every request, by request.
class Answers {
 public:
  // The `done` of a new request; returns its index through `index`.
  std::function<void(Reply)> next(std::size_t& index) {
    std::lock_guard lock(mu_);
    index = replies_.size();
    replies_.emplace_back();
    return [this, i = index](Reply r) {
      std::lock_guard inner(mu_);
      replies_[i].push_back(std::move(r));
      cv_.notify_all();
    };
  }
  // The first reply of request `index`, once there is one (nullopt after
  // `limit`: the test fails).
  std::optional<Reply> wait(std::size_t index,
                            std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, limit, [&] { return !replies_[index].empty(); })) {
      ADD_FAILURE() << "request " << index << " was not answered";
      return std::nullopt;
    }
    return replies_[index].front();
  }
  // How many replies request `index` got so far.
  std::size_t count(std::size_t index) {
    std::lock_guard lock(mu_);
    return replies_[index].size();
  }
  // Every request got exactly one reply (call once nothing can answer any
  // more: the pool stopped and the store closed).
  void expect_each_answered_once() {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < replies_.size(); ++i) {
      EXPECT_EQ(replies_[i].size(), 1U) << "request " << i;
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<Reply>> replies_;
};

// A JSON reply's body member `name` as a string ("" when absent).
inline std::string member(const Reply& r, const std::string& name) {
  const Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains(name) || !j[name].is_string()) return {};
  return j[name].get<std::string>();
}

}  // namespace hookvault::testing
