// Two real `hookvault serve` instances on one PostgreSQL database, behind a
// real HAProxy (ha_cluster.hpp): what each answers, and what the database
// then holds. Deliveries go through HAProxy on a new connection each, so
// consecutive ones reach alternate instances (round robin per connection).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"
#include "ha_cluster.hpp"
#include "pg_cluster.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

std::string status_of(const HttpResponse& r) {
  if (r.status != 200) return {};
  return Json::parse(r.body).value("status", "");
}

// How many connections HAProxy forwarded to each instance since `before`.
std::map<std::string, std::uint64_t> sessions_since(
    const std::map<std::string, Haproxy::ServerStat>& before, Haproxy& haproxy) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& [name, stat] : haproxy.servers()) {
    out[name] = stat.sessions - before.at(name).sessions;
  }
  return out;
}

// A Dynamic delivery and three retries, spread over both instances by HAProxy,
// are stored once (one "accepted", three "duplicate"); the signer reads the
// materials through either instance's admin listener; a revocation through
// one instance is seen by the other (404 on both), and stored once.
TEST(HaBalancer, DynamicRetriesOnBothInstancesAreStoredOnceAndRevocationIsSeenByBoth) {
  HaFixture ha;
  const auto before = ha.haproxy().servers();
  const Delegation d = random_delegation();
  const std::string body = compact(created_event(d, setup().rsa_public_pem));
  std::vector<std::string> statuses;
  for (int i = 0; i < 4; ++i) {
    auto r = ha.post_dynamic(ha.haproxy().port(), body);
    ASSERT_EQ(r.status, 200U) << r.body;
    statuses.push_back(status_of(r));
  }
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), "accepted"), 1);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), "duplicate"), 3);
  const auto spread = sessions_since(before, ha.haproxy());
  EXPECT_EQ(spread.at("a"), 2U);
  EXPECT_EQ(spread.at("b"), 2U);
  EXPECT_EQ(ha.stored("dynamic"), (std::map<std::string, int>{{d.event_id, 1}}));

  for (std::size_t i = 0; i < 2; ++i) {
    auto signer = ha.admin(i, "signer");
    auto r = signer->request("GET", "/v1/materials/" + d.wallet_id + "?source=dynamic");
    ASSERT_EQ(r.status, 200U) << "instance " << i << ": " << r.body;
    const auto m = Json::parse(r.body);
    EXPECT_EQ(m["eventId"], d.event_id);
    EXPECT_EQ(m["delegatedShare"], d.share);
    EXPECT_EQ(m["walletApiKey"], d.api_key);
  }

  // Revoked through instance a only.
  const std::string revocation_id = uuid();
  auto revoked = ha.post_dynamic(
      ha.instance(0).port(),
      compact(revoked_event(revocation_id, d.wallet_id, "2025-10-01T16:00:00.000Z")));
  ASSERT_EQ(revoked.status, 200U) << revoked.body;
  EXPECT_EQ(status_of(revoked), "accepted");
  for (std::size_t i = 0; i < 2; ++i) {
    auto signer = ha.admin(i, "signer");
    auto r = signer->request("GET", "/v1/materials/" + d.wallet_id + "?source=dynamic");
    EXPECT_EQ(r.status, 404U) << "instance " << i << ": " << r.body;
  }
  // The created event stays once (its materials destroyed), the revocation once.
  EXPECT_EQ(ha.stored("dynamic"),
            (std::map<std::string, int>{{d.event_id, 1}, {revocation_id, 1}}));
  // A late retry of the revoked delivery, to instance b: a duplicate, and the
  // materials stay gone.
  auto late = ha.post_dynamic(ha.instance(1).port(), body);
  ASSERT_EQ(late.status, 200U) << late.body;
  EXPECT_EQ(status_of(late), "duplicate");
  EXPECT_EQ(ha.admin(1, "signer")
                ->request("GET", "/v1/materials/" + d.wallet_id + "?source=dynamic")
                .status,
            404U);
}

// Nodit deliveries of one subscription, numbered 1..N, sent concurrently
// through HAProxy and each sent twice: every one is answered 200, stored
// once, and `hookvault nodit gaps` (computed from what both instances
// stored) reports no gap.
TEST(HaBalancer, NoditDeliveriesSplitOverBothInstancesLeaveNoFalseGap) {
  HaFixture ha;
  constexpr int kSenders = 4;
  constexpr std::uint64_t kMessages = 80;
  const std::string sub = "4343";  // Nodit's ids are digits (the database is the test's own)
  const auto before = ha.haproxy().servers();
  std::atomic<int> accepted{0};
  std::atomic<int> duplicates{0};
  std::mutex mu;
  std::vector<std::string> odd;
  std::vector<std::thread> senders;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      for (std::uint64_t seq = 1 + static_cast<std::uint64_t>(t); seq <= kMessages;
           seq += kSenders) {
        for (int copy = 0; copy < 2; ++copy) {
          auto r = ha.post_nodit(ha.haproxy().port(), nodit_message(sub, seq));
          const auto s = status_of(r);
          if (s == "accepted") {
            ++accepted;
          } else if (s == "duplicate") {
            ++duplicates;
          } else {
            std::lock_guard lock(mu);
            odd.push_back(std::to_string(seq) + ": " + std::to_string(r.status) + " " + r.body);
          }
        }
      }
    });
  }
  for (auto& s : senders) s.join();
  EXPECT_TRUE(odd.empty()) << odd.size() << " not 200, first: " << odd.front();
  EXPECT_EQ(accepted.load(), static_cast<int>(kMessages));
  EXPECT_EQ(duplicates.load(), static_cast<int>(kMessages));
  const auto spread = sessions_since(before, ha.haproxy());
  EXPECT_GE(spread.at("a"), kMessages / 2);
  EXPECT_GE(spread.at("b"), kMessages / 2);

  const auto stored = ha.stored("nodit");
  EXPECT_EQ(stored.size(), kMessages);
  for (std::uint64_t seq = 1; seq <= kMessages; ++seq) {
    const auto it = stored.find(sub + ":" + std::to_string(seq));
    EXPECT_TRUE(it != stored.end() && it->second == 1) << "sequence " << seq;
  }
  const auto gaps = ha.cli_json_lines({"nodit", "gaps"});
  ASSERT_EQ(gaps.size(), 1U);
  EXPECT_EQ(gaps[0]["subscriptionId"], sub);
  EXPECT_EQ(gaps[0]["missingCount"], 0) << gaps[0].dump();
  EXPECT_EQ(gaps[0]["highestContiguous"], kMessages);
  EXPECT_EQ(gaps[0]["highest"], kMessages);
}

// A consumer pages /v1/events with the `next` tokens, alternating between the
// two instances' admin listeners, while four producers deliver through
// HAProxy to both: it sees every stored event exactly once, in no particular
// row order, and nothing after the last page.
TEST(HaBalancer, AFeedConsumerSeesEveryEventOnceWhileBothInstancesWrite) {
  HaFixture ha;
  constexpr int kProducers = 4;
  constexpr int kEach = 50;
  std::mutex mu;
  std::set<std::string> accepted;
  std::vector<std::string> odd;
  std::atomic<int> producing{kProducers};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach; ++i) {
        const std::string id = "feed-" + std::to_string(p) + "-" + std::to_string(i) + "-" + uuid();
        auto r = ha.post_dynamic(ha.haproxy().port(), ping_event(id));
        std::lock_guard lock(mu);
        if (status_of(r) == "accepted") {
          accepted.insert(id);
        } else {
          odd.push_back(id + ": " + std::to_string(r.status) + " " + r.body);
        }
      }
      --producing;
    });
  }
  std::vector<std::unique_ptr<HttpsClient>> consumers;
  consumers.push_back(ha.admin(0, "auditor"));
  consumers.push_back(ha.admin(1, "auditor"));
  std::string after = "0";
  std::map<std::string, int> seen;
  int pages = 0;
  bool drained = false;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!drained && std::chrono::steady_clock::now() < deadline) {
    const bool done_producing = producing.load() == 0;
    auto r = consumers[static_cast<std::size_t>(pages % 2)]->request(
        "GET", "/v1/events?source=dynamic&limit=9&after=" + after);
    ++pages;
    EXPECT_EQ(r.status, 200U) << "after=" << after << ": " << r.body;
    if (r.status != 200) break;  // (the producers are still joined below)
    const auto page = Json::parse(r.body);
    for (const auto& e : page["events"]) ++seen[e["eventId"].get<std::string>()];
    after = page["next"].get<std::string>();
    // Empty after every producer had its answers: nothing more will come.
    if (page["events"].empty()) {
      if (done_producing) drained = true;
      std::this_thread::sleep_for(5ms);
    }
  }
  for (auto& p : producers) p.join();
  ASSERT_TRUE(drained) << "the feed never reached its end";
  EXPECT_TRUE(odd.empty()) << odd.size() << " not accepted, first: " << odd.front();
  EXPECT_EQ(accepted.size(), static_cast<std::size_t>(kProducers * kEach));
  std::set<std::string> seen_ids;
  for (const auto& [id, n] : seen) {
    EXPECT_EQ(n, 1) << id << " seen " << n << " times";
    seen_ids.insert(id);
  }
  EXPECT_EQ(seen_ids, accepted);
  // What the consumer saw is what is stored.
  std::set<std::string> stored_ids;
  for (const auto& [id, n] : ha.stored("dynamic")) {
    EXPECT_EQ(n, 1) << id;
    stored_ids.insert(id);
  }
  EXPECT_EQ(stored_ids, accepted);
  EXPECT_GT(pages, kProducers * kEach / 9);
}

// kill -9 of instance b while four senders deliver through HAProxy: a delivery
// without an answer, or with a non-200 one, is sent again (as a provider
// would) until it gets 200. Every delivery ends up answered 200 and stored
// exactly once, and HAProxy marks b down.
TEST(HaBalancer, KillNineOfOneInstanceUnderLoadLosesAndDuplicatesNothing) {
  HaFixture ha;
  constexpr int kSenders = 4;
  constexpr int kEach = 60;
  std::atomic<int> answered{0};
  std::atomic<int> failed_attempts{0};
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::vector<std::string> gave_up;
  std::vector<std::thread> senders;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string id = "kill-" + std::to_string(t) + "-" + std::to_string(i) + "-" + uuid();
        const std::string body = ping_event(id);
        bool ok = false;
        for (int attempt = 0; attempt < 100 && !ok; ++attempt) {
          auto r = ha.post_dynamic(ha.haproxy().port(), body);
          ok = r.status == 200;
          if (!ok) {
            ++failed_attempts;
            std::this_thread::sleep_for(50ms);
          }
        }
        std::lock_guard lock(mu);
        if (ok) {
          acknowledged.insert(id);
          ++answered;
        } else {
          gave_up.push_back(id);
        }
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return answered.load() >= kSenders * kEach / 4; }, 60s));
  const auto at_kill = ha.haproxy().servers();
  const int answered_at_kill = answered.load();
  ha.instance(1).kill9();
  for (auto& s : senders) s.join();
  // The kill came under load, and instance a took the rest.
  EXPECT_LT(answered_at_kill, kSenders * kEach);
  EXPECT_GE(sessions_since(at_kill, ha.haproxy()).at("a"),
            static_cast<std::uint64_t>(kSenders * kEach - answered_at_kill) / 2);
  EXPECT_TRUE(gave_up.empty()) << gave_up.size() << " never answered 200";
  EXPECT_EQ(acknowledged.size(), static_cast<std::size_t>(kSenders * kEach));
  EXPECT_TRUE(eventually([&] { return ha.haproxy().servers()["b"].status == "DOWN"; }, 10s));
  EXPECT_EQ(ha.haproxy().servers()["a"].status, "UP");
  const auto stored = ha.stored("dynamic");
  EXPECT_EQ(stored.size(), acknowledged.size());
  for (const auto& id : acknowledged) {
    const auto it = stored.find(id);
    EXPECT_TRUE(it != stored.end() && it->second == 1) << id;
  }
  RecordProperty("failed_attempts", failed_attempts.load());
}

// The database unreachable (its primary killed, no promotion): each instance
// answers deliveries 503 and /readyz 503, HAProxy marks both down; once the
// primary is back, /readyz is 200 again and deliveries through HAProxy are
// answered 200 without restarting the instances; one refused while the
// database was down is stored once when sent again.
TEST(HaBalancer, TheDatabaseUnreachableIs503ThenBothInstancesRecoverWithoutARestart) {
  HaFixture ha;
  const auto& cluster = shared_pg_cluster();
  const std::string warm = uuid();
  ASSERT_EQ(status_of(ha.post_dynamic(ha.haproxy().port(), ping_event(warm))), "accepted");

  cluster.run("kill-primary");
  // The shared cluster serves the tests after this one: the primary is
  // started again even when this test fails half way.
  struct Restart {
    const PgCluster& c;
    bool done = false;
    ~Restart() {
      if (done) return;
      try {
        c.run("start-primary");
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    }
  } restart{cluster};

  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(
        eventually([&] { return ha.get(ha.instance(i).port(), "/readyz").status == 503; }, 15s))
        << "instance " << i << " still ready without a database";
  }
  const std::string refused = uuid();
  const std::string refused_body = ping_event(refused);
  for (std::size_t i = 0; i < 2; ++i) {
    auto r = ha.post_dynamic(ha.instance(i).port(), refused_body);
    EXPECT_EQ(r.status, 503U) << "instance " << i << ": " << r.body;
    EXPECT_EQ(r.headers.count("retry-after"), 1U);
  }
  EXPECT_TRUE(ha.haproxy().wait_all("DOWN", 10s)) << ha.haproxy().log();

  cluster.run("start-primary");
  restart.done = true;
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(
        eventually([&] { return ha.get(ha.instance(i).port(), "/readyz").status == 200; }, 30s))
        << "instance " << i << " not ready after the database came back";
  }
  ASSERT_TRUE(ha.haproxy().wait_all("UP", 15s)) << ha.haproxy().log();
  const auto before = ha.haproxy().servers();
  std::vector<std::string> after_ids;
  for (int i = 0; i < 4; ++i) {
    const std::string id = uuid();
    auto r = ha.post_dynamic(ha.haproxy().port(), ping_event(id));
    ASSERT_EQ(r.status, 200U) << r.body;
    EXPECT_EQ(status_of(r), "accepted");
    after_ids.push_back(id);
  }
  const auto spread = sessions_since(before, ha.haproxy());
  EXPECT_EQ(spread.at("a"), 2U);
  EXPECT_EQ(spread.at("b"), 2U);
  auto again = ha.post_dynamic(ha.haproxy().port(), refused_body);
  ASSERT_EQ(again.status, 200U) << again.body;
  EXPECT_EQ(status_of(again), "accepted");

  std::map<std::string, int> want{{warm, 1}, {refused, 1}};
  for (const auto& id : after_ids) want[id] = 1;
  EXPECT_EQ(ha.stored("dynamic"), want);
  // The same processes throughout.
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(::kill(ha.instance(i).pid(), 0), 0);
}

}  // namespace
}  // namespace hookvault::testing
