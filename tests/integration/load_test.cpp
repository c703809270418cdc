// Correctness under load: a few thousand concurrent deliveries over
// many keep-alive TLS connections to the real daemon. Nothing is timed here:
// every delivery gets an answer, every 200 is stored exactly once, a repeated
// delivery answers "duplicate" with the id of the first, nothing is stored
// twice.
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"

namespace hookvault::testing {
namespace {

constexpr int kConnections = 32;
constexpr int kNoditEvents = 1500;
constexpr int kDynamicEvents = 1500;
constexpr std::size_t kSentTwiceEvery = 7;  // every 7th event is delivered a second time

struct Delivery {
  std::string event_id;  // the provider's eventId as hookvault reports it
  std::string path;
  std::map<std::string, std::string> headers;
  std::string body;
};

struct Answer {
  std::string event_id;
  unsigned status = 0;
  std::string status_text;  // "accepted" / "duplicate"
  std::string id;           // the store id
  std::string raw;
};

class LoadTest : public E2E {};

TEST_F(LoadTest, ConcurrentDeliveriesAreStoredExactlyOnce) {
  const std::string nodit_key = "load-nodit-key";
  ConfigOptions o;
  add_nodit_source(o, nodit_key);
  start(write_config(o));
  const std::uint16_t port = daemon_->port();

  std::vector<Delivery> unique;
  for (int i = 0; i < kNoditEvents; ++i) {
    const std::string sub = std::to_string(300 + i % 8);
    const std::uint64_t seq = static_cast<std::uint64_t>(i / 8) + 1;
    std::string body = nodit_message(sub, seq);
    unique.push_back(
        {sub + ":" + std::to_string(seq),
         "/webhooks/nodit",
         {{"Content-Type", "application/json"}, {"x-signature", hmac_hex(nodit_key, body)}},
         std::move(body)});
  }
  for (int i = 0; i < kDynamicEvents; ++i) {
    const std::string id = uuid();
    std::string body = ping_event(id);
    unique.push_back(
        {id,
         "/webhooks/dynamic",
         {{"Content-Type", "application/json"}, {"x-dynamic-signature-256", sign(body)}},
         std::move(body)});
  }
  // Interleave the two sources; every kSentTwiceEvery-th delivery is repeated
  // 40 deliveries later (by another connection, often while the first is in
  // flight).
  std::vector<const Delivery*> first;
  for (int i = 0; i < kNoditEvents || i < kDynamicEvents; ++i) {
    if (i < kNoditEvents) first.push_back(&unique[static_cast<std::size_t>(i)]);
    if (i < kDynamicEvents) first.push_back(&unique[static_cast<std::size_t>(kNoditEvents + i)]);
  }
  constexpr std::size_t kLater = 40;
  std::vector<const Delivery*> order;
  for (std::size_t i = 0; i < first.size() + kLater; ++i) {
    if (i < first.size()) order.push_back(first[i]);
    if (i >= kLater && (i - kLater) % kSentTwiceEvery == 0) order.push_back(first[i - kLater]);
  }
  ASSERT_GT(order.size(), first.size() + 400);

  std::mutex mu;
  std::vector<Answer> answers;
  std::vector<std::string> lost;
  std::atomic<std::size_t> next{0};
  auto sender = [&] {
    std::unique_ptr<HttpsClient> c;
    std::vector<Answer> mine;
    for (std::size_t i = next++; i < order.size(); i = next++) {
      const Delivery& d = *order[i];
      try {
        if (!c) c = std::make_unique<HttpsClient>(port);
        HttpResponse r = c->request("POST", d.path, d.headers, d.body);
        Answer a{d.event_id, r.status, {}, {}, r.body};
        if (r.status == 200) {
          const Json j = Json::parse(r.body);
          a.status_text = j.value("status", "");
          a.id = j.value("id", "");
          EXPECT_EQ(j.value("eventId", ""), d.event_id) << r.body;
        }
        mine.push_back(std::move(a));
        if (r.headers["connection"] == "close") c.reset();
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        lost.push_back(d.event_id + ": " + e.what());
        c.reset();
      }
    }
    std::lock_guard lock(mu);
    for (auto& a : mine) answers.push_back(std::move(a));
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kConnections; ++i) threads.emplace_back(sender);
  for (auto& t : threads) t.join();

  EXPECT_TRUE(lost.empty()) << lost.size() << " deliveries got no answer, first: "
                            << (lost.empty() ? "" : lost.front());
  ASSERT_EQ(answers.size() + lost.size(), order.size());

  // Per event: exactly one "accepted", every other answer "duplicate", all
  // naming the same store id.
  std::map<std::string, std::vector<const Answer*>> by_event;
  for (const auto& a : answers) {
    EXPECT_EQ(a.status, 200U) << a.event_id << ": " << a.raw;
    by_event[a.event_id].push_back(&a);
  }
  ASSERT_EQ(by_event.size(), unique.size());
  std::map<std::string, std::string> store_id_of;  // eventId -> store id
  std::set<std::string> store_ids;
  for (const auto& [event_id, list] : by_event) {
    int accepted = 0;
    for (const Answer* a : list) {
      if (a->status_text == "accepted") {
        ++accepted;
      } else {
        EXPECT_EQ(a->status_text, "duplicate") << event_id << ": " << a->raw;
      }
      EXPECT_EQ(a->id, list.front()->id) << event_id;
    }
    EXPECT_EQ(accepted, 1) << event_id << " was accepted " << accepted << " times";
    store_id_of[event_id] = list.front()->id;
    EXPECT_TRUE(store_ids.insert(list.front()->id).second)
        << "store id " << list.front()->id << " answered for two events";
  }

  // The store holds each event exactly once, under the id its answers named.
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  std::map<std::string, int> stored;
  for (const auto& e : events()) {
    const std::string event_id = e["eventId"].get<std::string>();
    ++stored[event_id];
    const auto it = store_id_of.find(event_id);
    ASSERT_NE(it, store_id_of.end()) << "stored but never answered: " << event_id;
    EXPECT_EQ(e["id"].get<std::string>(), it->second) << event_id;
  }
  EXPECT_EQ(stored.size(), unique.size());
  for (const auto& [event_id, count] : stored) {
    EXPECT_EQ(count, 1) << event_id << " stored " << count << " times";
  }
}

}  // namespace
}  // namespace hookvault::testing
