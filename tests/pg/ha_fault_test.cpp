// Faults of the several-instances setup (ha_cluster.hpp): the Nodit
// backfiller behind the balancer, the PostgreSQL primary killed under load
// and its standby promoted, and a test process that dies without its
// destructors (its clusters, HAProxy and hookvault children must not
// outlive it).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e.hpp"
#include "fake_nodit.hpp"
#include "ha_cluster.hpp"
#include "pg_cluster.hpp"

extern char** environ;

namespace hookvault::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string status_of(const HttpResponse& r) {
  if (r.status != 200) return {};
  return Json::parse(r.body).value("status", "");
}

constexpr char kApiKey[] = "nodit-api-key-for-ha-tests";

// A [sources.history] table for the nodit source, calling `fake`; the API
// key file is written to `dir`. A history request times out after 1.5 s.
std::string history_toml(const FakeNodit& fake, const fs::path& dir) {
  write_file(dir / "nodit_api_key", kApiKey, 0600);
  return "[sources.history]\napi_base_url = \"" + fake.base_url() + "\"\napi_key_file = \"" +
         (dir / "nodit_api_key").string() + "\"\nca_file = \"" + fake.ca_file().string() +
         "\"\nchain = \"ethereum\"\nnetwork = \"mainnet\"\ngap_delay = \"200ms\"\n"
         "poll_interval = \"100ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\n"
         "request_timeout = \"1500ms\"\npage_size = 10\n";
}

std::size_t requests_for(const FakeNodit& fake, const std::string& sub) {
  std::size_t n = 0;
  for (const auto& r : fake.requests()) {
    if (r.query.count("subscriptionId") != 0 && r.query.at("subscriptionId") == sub) ++n;
  }
  return n;
}

// Nodit deliveries 1, 2, 4 and 5 of one subscription through HAProxy (two to
// each instance); 3 never comes, the history API has it. Both instances run
// a backfiller polling every 100 ms; a pass runs only under the store's lease
// "backfill:nodit". The history API first hangs: while the first request for
// the gap hangs (1.5 s until it times out), no second request comes (the
// other instance's passes find the lease taken), and exactly one instance
// counts a fetch. Once the API answers, the gap is filled by one request,
// 3 is stored once (origin history), no instance asks again, and neither
// instance sees a gap.
TEST(HaBalancer, NoditBackfillRunsOnOneInstanceAtATimeAndFillsTheGapOnce) {
  FakeNodit fake(kApiKey);
  fake.set_mode(FakeNodit::Mode::hang);
  TempDir keys;
  HaOptions options;
  options.nodit_toml = history_toml(fake, keys.path());
  HaFixture ha(options);
  const std::string sub = "4242";  // Nodit's ids are digits (the database is the test's own)
  fake.add(sub, 3, "SUCCESS", "2025-10-01T15:13:27.000Z", nodit_message(sub, 3));

  const auto before = ha.haproxy().servers();
  for (const std::uint64_t seq : {1, 2, 4, 5}) {
    auto r = ha.post_nodit(ha.haproxy().port(), nodit_message(sub, seq));
    ASSERT_EQ(status_of(r), "accepted") << seq << ": " << r.status << " " << r.body;
  }
  const auto after = ha.haproxy().servers();
  EXPECT_EQ(after.at("a").sessions - before.at("a").sessions, 2U);
  EXPECT_EQ(after.at("b").sessions - before.at("b").sessions, 2U);

  const std::string fetches = "hookvault_nodit_history_fetches_total{source=\"nodit\"}";
  const std::string stored_total = "hookvault_nodit_history_stored_total{source=\"nodit\"}";
  ASSERT_TRUE(eventually([&] { return requests_for(fake, sub) >= 1; }, 15s))
      << "no instance asked the history API for the gap";
  // Well inside the first request's 1.5 s: the other instance polled about
  // seven times meanwhile.
  std::this_thread::sleep_for(700ms);
  ASSERT_EQ(requests_for(fake, sub), 1U) << "two instances asked for the gap at once";
  const double fetches_a = ha.metric(0, fetches);
  const double fetches_b = ha.metric(1, fetches);
  EXPECT_EQ(fetches_a + fetches_b, 1) << "a " << fetches_a << ", b " << fetches_b;
  const auto first = fake.requests();
  for (const auto& r : first) {
    if (r.query.count("subscriptionId") == 0 || r.query.at("subscriptionId") != sub) continue;
    EXPECT_TRUE(r.api_key_ok);
    EXPECT_EQ(r.query.count("startSequenceNumber") ? r.query.at("startSequenceNumber") : "", "3");
  }

  fake.set_mode(FakeNodit::Mode::normal);
  ASSERT_TRUE(eventually(
      [&] {
        const auto g = ha.cli_json_lines({"nodit", "gaps"});
        return g.size() == 1 && g[0]["missingCount"] == 0;
      },
      20s))
      << ha.cli_json_lines({"nodit", "gaps"}).front().dump()
      << "\nrequests: " << requests_for(fake, sub) << " last: " << fake.requests().back().target
      << "\na:\n"
      << ha.instance(0).log() << "\nb:\n"
      << ha.instance(1).log();
  // Ten more polls of each instance: nobody asks again.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(requests_for(fake, sub), 2U) << "the hanging request and the one that filled the gap";
  const auto gaps = ha.cli_json_lines({"nodit", "gaps"});
  ASSERT_EQ(gaps.size(), 1U);
  EXPECT_EQ(gaps[0]["subscriptionId"], sub);
  EXPECT_EQ(gaps[0]["highestContiguous"], 5);
  EXPECT_EQ(gaps[0]["missing"], Json::array());
  const std::string missing =
      "hookvault_nodit_missing_messages{source=\"nodit\",subscription=\"" + sub + "\"}";
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(ha.metric(i, missing), 0) << "instance " << i;
  }
  // One instance stored the missing message, once.
  const double stored_a = ha.metric(0, stored_total);
  const double stored_b = ha.metric(1, stored_total);
  EXPECT_EQ(stored_a + stored_b, 1) << "a " << stored_a << ", b " << stored_b;
  EXPECT_EQ(ha.metric(0, fetches) + ha.metric(1, fetches), 2);

  std::map<std::string, int> want;
  for (int seq = 1; seq <= 5; ++seq) want[sub + ":" + std::to_string(seq)] = 1;
  EXPECT_EQ(ha.stored("nodit"), want);
  for (const auto& e : ha.cli_json_lines({"events", "list", "--source", "nodit"})) {
    const bool backfilled = e["eventId"] == sub + ":3";
    EXPECT_EQ(e["origin"], backfilled ? "history" : "signature") << e.dump();
  }
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(ha.instance(i).log().find(kApiKey), std::string::npos);
  }
}

// kill -9 of the PostgreSQL primary while four senders deliver through
// HAProxy, then promotion of the synchronous standby (a cluster of the
// test's own). A delivery without a 200 is sent again until it gets one.
// Both instances (given both hosts, target_session_attrs=read-write) answer
// /readyz 503 while there is no writable primary and HAProxy marks both
// down; nothing is acknowledged then; after the promotion both are ready
// again without a restart. Every acknowledged delivery, before or after, is
// on the new primary exactly once, those refused with 503 included.
// The fixture's config leaves require_synchronous_standby at its default
// (false): the promoted primary has no standby and the instances accept
// writes there (PgFailover.* shows a store that requires one refusing).
TEST(HaBalancer, KillNineOfThePrimaryUnderLoadThenPromotionBothInstancesFollowWithoutARestart) {
  PgCluster cluster;
  HaOptions options;
  options.cluster = &cluster;
  HaFixture ha(options);
  const int pid_a = ha.instance(0).pid();
  const int pid_b = ha.instance(1).pid();

  constexpr int kSenders = 4;
  constexpr int kEach = 40;
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::set<std::string> refused_then_stored;  // answered 503 at least once, then 200
  std::vector<std::string> gave_up;
  std::atomic<int> answers_503{0};
  std::atomic<int> no_answer{0};
  std::atomic<int> answered{0};
  std::vector<std::thread> senders;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string id =
            "pgkill-" + std::to_string(t) + "-" + std::to_string(i) + "-" + uuid();
        const std::string body = ping_event(id);
        bool ok = false;
        bool saw_503 = false;
        while (!ok && std::chrono::steady_clock::now() < deadline) {
          auto r = ha.post_dynamic(ha.haproxy().port(), body);
          ok = r.status == 200;
          if (!ok) {
            if (r.status == 503) {
              saw_503 = true;
              ++answers_503;
            } else {
              ++no_answer;
            }
            std::this_thread::sleep_for(50ms);
          }
        }
        std::lock_guard lock(mu);
        if (ok) {
          acknowledged.insert(id);
          if (saw_503) refused_then_stored.insert(id);
          ++answered;
        } else {
          gave_up.push_back(id);
        }
      }
    });
  }
  struct Join {
    std::vector<std::thread>& threads;
    ~Join() {
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join{senders};

  ASSERT_TRUE(eventually([&] { return answered.load() >= kSenders * kEach / 4; }, 60s));
  cluster.run("kill-primary");
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(
        eventually([&] { return ha.get(ha.instance(i).port(), "/readyz").status == 503; }, 15s))
        << "instance " << i << " still ready without a writable primary";
  }
  EXPECT_TRUE(ha.haproxy().wait_all("DOWN", 10s)) << ha.haproxy().log();
  // Sent to instance a directly while there is no primary: 503, to be retried.
  const std::string refused = "pgkill-direct-" + uuid();
  auto r503 = ha.post_dynamic(ha.instance(0).port(), ping_event(refused));
  EXPECT_EQ(r503.status, 503U) << r503.body;
  EXPECT_EQ(r503.headers.count("retry-after"), 1U);
  const int answered_without_primary = answered.load();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(answered.load(), answered_without_primary) << "acknowledged without a primary";
  EXPECT_LT(answered_without_primary, kSenders * kEach) << "the kill came after the load";

  cluster.run("promote");
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(
        eventually([&] { return ha.get(ha.instance(i).port(), "/readyz").status == 200; }, 30s))
        << "instance " << i << " did not follow the promoted standby";
  }
  EXPECT_TRUE(ha.haproxy().wait_all("UP", 15s)) << ha.haproxy().log();
  auto again = ha.post_dynamic(ha.haproxy().port(), ping_event(refused));
  ASSERT_EQ(again.status, 200U) << again.body;
  EXPECT_EQ(status_of(again), "accepted");
  for (auto& s : senders) s.join();

  EXPECT_TRUE(gave_up.empty()) << gave_up.size() << " never answered 200";
  EXPECT_EQ(acknowledged.size(), static_cast<std::size_t>(kSenders * kEach));
  EXPECT_GT(answers_503.load() + no_answer.load(), 0) << "the outage was not seen";
  RecordProperty("answers_503", answers_503.load());
  RecordProperty("no_answer", no_answer.load());
  RecordProperty("refused_then_stored", static_cast<int>(refused_then_stored.size()));

  // The former standby is the primary now, alone, and holds every
  // acknowledged delivery exactly once.
  EXPECT_EQ(cluster.psql("standby", "SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(cluster.psql("standby", "SHOW synchronous_standby_names"), "");
  EXPECT_EQ(cluster.running_servers().size(), 1U);
  std::map<std::string, int> rows;
  std::istringstream lines(
      cluster.psql("standby", "SELECT idempotency_key FROM events", ha.database()));
  for (std::string line; std::getline(lines, line);) ++rows[line];
  std::set<std::string> want = acknowledged;
  want.insert(refused);
  EXPECT_EQ(rows.size(), want.size());
  for (const auto& id : want) {
    const auto it = rows.find(id);
    EXPECT_TRUE(it != rows.end() && it->second == 1) << id;
  }
  // What the instances read agrees.
  const auto stored = ha.stored("dynamic");
  EXPECT_EQ(stored.size(), want.size());
  // The same processes throughout.
  EXPECT_EQ(ha.instance(0).pid(), pid_a);
  EXPECT_EQ(ha.instance(1).pid(), pid_b);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(::kill(ha.instance(i).pid(), 0), 0);
}

// A process is gone (a zombie counts as gone: only its parent can reap it).
bool gone(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (stat.empty()) return true;
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z';
}

constexpr char kLeakReport[] = "HOOKVAULT_PG_LEAK_REPORT";

// Run only by PgLeak.AKilledTestProcessLeavesNoServerBalancerOrInstanceBehind,
// as a child test_pg: a cluster, two instances and HAProxy; writes what it
// runs to the file $HOOKVAULT_PG_LEAK_REPORT, then waits to be killed.
TEST(PgLeak, DISABLED_HoldsAClusterAndInstancesUntilKilled) {
  const char* report = std::getenv(kLeakReport);
  ASSERT_NE(report, nullptr)
      << "run by PgLeak.AKilledTestProcessLeavesNoServerBalancerOrInstanceBehind";
  PgCluster cluster;
  HaOptions options;
  options.cluster = &cluster;
  HaFixture ha(options);
  std::ostringstream out;
  out << "dir " << cluster.dir().string() << "\n";
  for (const int pid : cluster.running_servers()) out << "postgres " << pid << "\n";
  out << "reaper " << cluster.reaper_pid() << "\n";
  out << "haproxy " << ha.haproxy().pid() << "\n";
  out << "hookvault " << ha.instance(0).pid() << "\nhookvault " << ha.instance(1).pid() << "\n";
  write_file(std::string(report) + ".tmp", out.str(), 0600);
  fs::rename(std::string(report) + ".tmp", report);
  std::this_thread::sleep_for(120s);
  FAIL() << "not killed";
}

// test_pg itself, running only the test above, is killed with SIGKILL (no
// destructor, no atexit, as a crash or ctest's timeout ends it) once it runs
// a PostgreSQL cluster, HAProxy and two hookvault instances. Within seconds
// none of them is left, and the cluster's folder is gone: the cluster's
// reaper stopped it, HAProxy and the instances died with their parent.
TEST(PgLeak, AKilledTestProcessLeavesNoServerBalancerOrInstanceBehind) {
  TempDir dir;
  const fs::path report = dir.path() / "report";
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args = {
      self, "--gtest_filter=PgLeak.DISABLED_HoldsAClusterAndInstancesUntilKilled",
      "--gtest_also_run_disabled_tests"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = {std::string(kLeakReport) + "=" + report.string()};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, (dir.path() / "victim.log").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t victim = -1;
  const int rc = ::posix_spawn(&victim, self.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ASSERT_EQ(rc, 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{victim};

  ASSERT_TRUE(eventually(
      [&] {
        int status = 0;
        return fs::exists(report) || ::waitpid(victim, &status, WNOHANG) == victim;
      },
      120s))
      << read_file(dir.path() / "victim.log");
  ASSERT_TRUE(fs::exists(report)) << read_file(dir.path() / "victim.log");
  fs::path cluster_dir;
  std::map<std::string, std::vector<int>> pids;
  std::istringstream in(read_file(report));
  for (std::string what, value; in >> what >> value;) {
    if (what == "dir") {
      cluster_dir = value;
    } else {
      pids[what].push_back(std::stoi(value));
    }
  }
  ASSERT_EQ(pids["postgres"].size(), 2U) << read_file(report);
  ASSERT_EQ(pids["hookvault"].size(), 2U);
  ASSERT_EQ(pids["haproxy"].size(), 1U);
  ASSERT_EQ(pids["reaper"].size(), 1U);
  for (const auto& [what, list] : pids) {
    for (const int pid : list) ASSERT_FALSE(gone(pid)) << what << " " << pid << " not running";
  }
  ASSERT_TRUE(fs::exists(cluster_dir / "primary"));

  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(victim, &status, 0), victim);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  const auto all_gone = [&] {
    for (const auto& [what, list] : pids) {
      for (const int pid : list) {
        if (!gone(pid)) return false;
      }
    }
    return !fs::exists(cluster_dir);
  };
  EXPECT_TRUE(eventually(all_gone, 30s));
  for (const auto& [what, list] : pids) {
    for (const int pid : list) EXPECT_TRUE(gone(pid)) << what << " " << pid << " left running";
  }
  EXPECT_FALSE(fs::exists(cluster_dir)) << cluster_dir << " left behind";
  // Whatever the reaper missed is not left for the next run.
  for (const auto& [what, list] : pids) {
    for (const int pid : list) {
      if (!gone(pid) && what != "postgres") ::kill(pid, SIGKILL);
    }
  }
  if (fs::exists(cluster_dir)) {
    run_quiet(std::string(HOOKVAULT_SOURCE_DIR) + "/scripts/pg-cluster stop " +
              cluster_dir.string());
    fs::remove_all(cluster_dir);
  }
}

}  // namespace
}  // namespace hookvault::testing
