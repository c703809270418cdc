// Crash consistency: signed deliveries keep arriving on
// several connections while the daemon is killed with SIGKILL at a random
// moment, 20 rounds on one store, each round restarting the daemon. Some
// deliveries repeat events acknowledged earlier, before or after a crash, and
// some resend events whose answer a kill cut off. Afterwards:
// - per event, every answer named the same id and at most one said
//   "accepted";
// - every acknowledged event is stored exactly once, under that id, and its
//   payload opens to the bytes that were sent;
// - every acknowledged delegation's materials open to what was encrypted;
// - nothing is stored that was never sent, and PRAGMA integrity_check is ok.
// A kill cannot test fsync (the page cache survives the process); it tests
// that nothing is answered before its commit and that recovery keeps commits.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "e2e.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "raw_db.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kRounds = 20;
constexpr char kNoditKey[] = "nodit-signing-key-for-the-crash-test";

class CrashTest : public E2E {
 protected:
  struct Sent {
    std::string path;  // /webhooks/nodit or /webhooks/dynamic
    std::string body;
    std::string key;  // the event id the answer must name
  };
  struct Acked {
    std::int64_t id = 0;
    std::string body;
    int round = 0;     // when it was first answered
    int accepted = 0;  // answers that said "accepted"
  };

  // One client connection until the daemon dies: new Nodit messages, pings
  // or delegations, and now and then a repeat of an acknowledged event.
  void client_loop(int thread, int round, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::unique_ptr<HttpsClient> c;
    try {
      c = std::make_unique<HttpsClient>(daemon_->port(), setup().root / "tls/cert.pem");
    } catch (const std::exception&) {
      return;  // killed before this connection was made
    }
    for (std::uint64_t seq = 1;; ++seq) {
      Sent s = next_delivery(thread, round, seq, rng);
      HttpResponse r;
      try {
        r = s.path == "/webhooks/nodit" ? post_nodit(*c, kNoditKey, s.body)
                                        : c->request("POST", s.path,
                                                     {{"Content-Type", "application/json"},
                                                      {"x-dynamic-signature-256", sign(s.body)}},
                                                     s.body);
      } catch (const std::exception&) {
        std::lock_guard lock(mu_);
        if (acked_.count(s.key) == 0) unanswered_.emplace(s.key, s);  // stored or not
        return;
      }
      record(s, r, round);
    }
  }

  Sent next_delivery(int thread, int round, std::uint64_t seq, std::mt19937_64& rng) {
    {
      std::lock_guard lock(mu_);
      if (!acked_.empty() && rng() % 8 == 0) {  // a repeat of an acknowledged event
        auto it = acked_.begin();
        std::advance(it, static_cast<long>(rng() % acked_.size()));
        const bool nodit = it->second.body.find("\"subscriptionId\"") != std::string::npos;
        return Sent{nodit ? "/webhooks/nodit" : "/webhooks/dynamic", it->second.body, it->first};
      }
      if (!unanswered_.empty() && rng() % 4 == 0) {  // again, after its answer was lost
        auto it = unanswered_.begin();
        std::advance(it, static_cast<long>(rng() % unanswered_.size()));
        return it->second;
      }
    }
    if (thread == 0 && seq % 4 == 1) {  // a delegation now and then (RSA work)
      Delegation d = random_delegation();
      {
        std::lock_guard lock(mu_);
        delegations_[d.event_id] = d;
      }
      return Sent{"/webhooks/dynamic", compact(created_event(d, setup().rsa_public_pem)),
                  d.event_id};
    }
    if (thread == 0) {
      const std::string id = uuid();
      return Sent{"/webhooks/dynamic", ping_event(id), id};
    }
    const std::string sub = std::to_string(400000 + 1000 * round + thread);
    return Sent{"/webhooks/nodit", nodit_message(sub, seq), sub + ":" + std::to_string(seq)};
  }

  // The invariant behind "stored once": per event, at most one answer says
  // "accepted" and every answer names the same id. Two sends of one event can
  // be in flight at once (both resending an event whose answer a kill cut
  // off), and their answers may be recorded in either order.
  void record(const Sent& s, const HttpResponse& r, int round) {
    std::lock_guard lock(mu_);
    if (r.status != 200) {
      failures_.push_back(std::to_string(r.status) + " " + r.body);
      return;
    }
    const Json answer = Json::parse(r.body);
    const std::string key = answer["eventId"].get<std::string>();
    const std::int64_t id = std::stoll(answer["id"].get<std::string>());
    const bool accepted = answer["status"].get<std::string>() == "accepted";
    if (key != s.key) failures_.push_back("answer names " + key + ", sent " + s.key);
    auto it = acked_.find(key);
    if (it == acked_.end()) {
      // The first answer. "duplicate" is right only when an earlier attempt
      // was stored but its answer was lost in a kill.
      if (!accepted && unanswered_.count(key) == 0) {
        failures_.push_back("duplicate without an earlier attempt: " + key);
      }
      if (!accepted) ++first_answer_duplicate_;
      unanswered_.erase(key);
      acked_[key] = Acked{id, s.body, round, accepted ? 1 : 0};
      return;
    }
    ++repeats_;
    if (accepted && ++it->second.accepted > 1) {
      failures_.push_back("accepted twice: " + key + " in round " + std::to_string(round) +
                          ", first answered in round " + std::to_string(it->second.round));
    }
    if (id != it->second.id) {
      failures_.push_back("answers for " + key + " name ids " + std::to_string(it->second.id) +
                          " and " + std::to_string(id));
    }
  }

  std::mutex mu_;
  std::map<std::string, Acked> acked_;      // event id -> first acknowledgement
  std::map<std::string, Sent> unanswered_;  // sent when the daemon died, not answered since
  std::map<std::string, Delegation> delegations_;
  std::vector<std::string> failures_;
  int repeats_ = 0;
  int first_answer_duplicate_ = 0;  // stored by an attempt whose answer was lost
};

TEST_F(CrashTest, SigkillAtRandomMomentsLosesNothingAcknowledged) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  ConfigOptions o;
  add_nodit_source(o, kNoditKey);
  const auto config = write_config(o);

  std::size_t acked_before_last_round = 0;
  for (int round = 0; round < kRounds; ++round) {
    start(config);  // recovers the store the previous kill left
    std::vector<std::thread> clients;
    for (int t = 0; t < 3; ++t) {
      clients.emplace_back([this, t, round, s = rng()] { client_loop(t, round, s); });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 600));
    daemon_->kill9();
    for (auto& c : clients) c.join();
    if (round == kRounds - 2) acked_before_last_round = acked_.size();
  }
  // A last, clean run: the store opens after the 20th kill and serves.
  start(config);
  ASSERT_EQ(post_signed(ping_event("after-the-crashes")).status, 200U);
  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();

  std::string listed;
  for (std::size_t i = 0; i < failures_.size() && i < 10; ++i) listed += "\n  " + failures_[i];
  EXPECT_TRUE(failures_.empty()) << failures_.size() << " wrong answers:" << listed;
  EXPECT_GT(acked_before_last_round, 0U);
  EXPECT_GT(acked_.size(), static_cast<std::size_t>(kRounds * 10)) << "too little was delivered";
  EXPECT_GT(repeats_, 0);

  std::cout << "[ crash    ] " << acked_.size() << " events acknowledged, " << repeats_
            << " repeated answers (the same id each time), " << unanswered_.size()
            << " cut off by a kill and never answered, " << first_answer_duplicate_
            << " first answered as duplicates (an attempt whose answer was lost had stored them)\n";

  // Every acknowledged event is stored once, under its id, and opens.
  SqliteStoreOptions options;
  options.path = dir_.path() / "data/hookvault.db";
  auto store = open_sqlite_store(options, open_file_kek(setup().root / "keys/kek.key"));
  ASSERT_TRUE(store) << store.error().message();
  std::string error;
  const auto stored = open_all_events(**store, error);
  ASSERT_TRUE(error.empty()) << error;
  std::map<std::string, Acked> expected = acked_;
  std::vector<std::string> unexplained;
  std::vector<std::string> wrong;
  for (const auto& [key, event] : stored) {
    auto it = expected.find(key);
    if (it == expected.end()) {
      if (unanswered_.count(key) == 0 && key != "after-the-crashes") unexplained.push_back(key);
      continue;
    }
    if (it->second.id != event.id || event.payload != it->second.body) wrong.push_back(key);
    expected.erase(it);
  }
  EXPECT_TRUE(expected.empty()) << expected.size() << " acknowledged but not stored, first: "
                                << expected.begin()->first;
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " stored under another id or with other bytes";
  EXPECT_TRUE(unexplained.empty())
      << unexplained.size() << " stored but never sent: " << unexplained.front();
  EXPECT_LE(stored.size(), acked_.size() + unanswered_.size() + 1);

  std::size_t delegations_checked = 0;
  for (const auto& [event_id, d] : delegations_) {
    if (acked_.count(event_id) == 0) continue;
    auto m = (*store)->materials("dynamic", d.wallet_id);
    ASSERT_TRUE(m) << m.error().message();
    ASSERT_TRUE(m->has_value()) << d.wallet_id;
    EXPECT_EQ((**m).share.reveal_string(), d.share);
    EXPECT_EQ((**m).api_key.reveal_string(), d.api_key);
    ++delegations_checked;
  }
  EXPECT_GT(delegations_checked, 0U);
  store->reset();

  RawDb db(options.path, RawDb::Mode::read_only);
  EXPECT_EQ(db.text("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace hookvault::testing
