// KEK rotation without downtime, end to end: with the
// daemon serving, `keys rotate` + SIGHUP, then `keys rewrap --batch 200` as a
// separate process while webhooks keep arriving, killed with SIGKILL halfway
// and run again to completion. Afterwards version 1 is unused, `keys retire 1`
// (refused before the rewrap) succeeds, every record opens in-process with the
// keyring that no longer has version 1, no acknowledged webhook is missing,
// and the audit chain verifies. A keyring that lacks a version rows still
// use keeps the daemon not ready (/readyz 503) until it has it again.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "e2e.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "softhsm.hpp"

namespace hookvault::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kNoditKey[] = "nodit-signing-key-for-kek-rotation";
constexpr int kRecords = 10000;
constexpr int kDelegations = 12;

class KekRotationTest : public E2E {
 protected:
  // The config of E2E with its own KEK (a copy of the setup's file, or a
  // SoftHSM2 token of its own) and a Nodit source; `kek_extra`: more [kek] keys.
  void configure(bool pkcs11, const std::string& kek_extra = "") {
    ConfigOptions o;
    add_nodit_source(o, kNoditKey);
    write_config(o);
    std::string text = read_file(config_);
    const auto from = text.find("[kek]");
    const auto to = text.find("[log]");
    ASSERT_NE(from, std::string::npos);
    ASSERT_NE(to, std::string::npos);
    std::string kek;
    if (pkcs11) {
      token_ = std::make_unique<SoftHsmToken>();
      write_file(dir_.path() / "hsm_pin", token_->pin() + "\n", 0600);
      kek = "[kek]\nprovider = \"pkcs11\"\nmodule = \"" + token_->module().string() +
            "\"\ntoken_label = \"" + token_->label() + "\"\nkey_label = \"" + token_->key_label() +
            "\"\npin_file = \"" + (dir_.path() / "hsm_pin").string() + "\"\n";
    } else {
      std::filesystem::create_directories(dir_.path() / "keys");
      write_file(kek_file(), read_file(setup().root / "keys/kek.key"), 0600);
      kek = "[kek]\nprovider = \"file\"\nfile = \"" + kek_file().string() + "\"\n";
    }
    text.replace(from, to - from, kek + kek_extra);
    write_file(config_, text, 0600);
  }

  std::filesystem::path kek_file() const { return dir_.path() / "keys/kek.key"; }

  std::shared_ptr<const Kek> open_kek_in_process() const {
    if (token_) return open_pkcs11_kek(token_->options());
    return open_file_kek(kek_file());
  }

  // Records what the daemon acknowledged, for the checks at the end.
  void note_ack(const HttpResponse& r, const std::string& body) {
    std::lock_guard lock(mu_);
    if (r.status != 200) {
      ++rejected_;
      return;
    }
    acked_[Json::parse(r.body)["eventId"].get<std::string>()] = body;
  }

  void deliver_delegation(HttpsClient& c) {
    const Delegation d = random_delegation();
    const std::string body = compact(created_event(d, setup().rsa_public_pem));
    auto r = c.request(
        "POST", "/webhooks/dynamic",
        {{"Content-Type", "application/json"}, {"x-dynamic-signature-256", sign(body)}}, body);
    note_ack(r, body);
    std::lock_guard lock(mu_);
    if (r.status == 200 && Json::parse(r.body)["materials"] == "stored") delegations_.push_back(d);
  }

  std::map<std::uint32_t, Json> status() {
    std::map<std::uint32_t, Json> out;
    for (auto& line : cli_json_lines({"keys", "status"})) {
      out[line["version"].get<std::uint32_t>()] = line;
    }
    return out;
  }

  // What the daemon has acknowledged so far: all events, and delegations whose
  // materials were stored.
  std::pair<std::size_t, std::size_t> acked_counts() {
    std::lock_guard lock(mu_);
    return {acked_.size(), delegations_.size()};
  }

  static std::uint64_t keys_of(const Json& line) {
    return line["events"].get<std::uint64_t>() + line["materials"].get<std::uint64_t>() +
           line["auditKey"].get<std::uint64_t>();
  }

  void run_rotation(bool pkcs11);
  void run_retire_while_behind(bool pkcs11);
  void run_new_version_taken_by_itself(bool pkcs11);
  void run_failed_reload(bool pkcs11);

  // A delegation, answered 200 with its materials stored.
  Delegation deliver_stored() {
    const Delegation d = random_delegation();
    const auto r = post_signed(compact(created_event(d, setup().rsa_public_pem)));
    EXPECT_EQ(r.status, 200U) << r.body;
    EXPECT_EQ(Json::parse(r.body)["materials"], "stored") << r.body;
    return d;
  }

  // Every delivery acknowledged so far reads back through the CLI, as the
  // operator would read it: `materials get` and `events show`.
  void expect_readable(const std::vector<Delegation>& delivered) {
    for (const auto& d : delivered) {
      const auto m = cli({"materials", "get", d.wallet_id});
      ASSERT_EQ(m.exit_code, 0) << d.wallet_id << ": " << m.err;
      EXPECT_EQ(Json::parse(m.out)["walletApiKey"], d.api_key);
      const auto e = cli({"events", "show", d.event_id});
      ASSERT_EQ(e.exit_code, 0) << d.event_id << ": " << e.err;
      EXPECT_NE(e.out.find(d.event_id), std::string::npos) << e.out;
    }
  }

  std::uint64_t keys_under(std::uint32_t version) {
    auto s = status();
    return s.count(version) == 1 ? keys_of(s[version]) : 0;
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::mutex mu_;
  std::map<std::string, std::string> acked_;  // eventId -> body
  std::vector<Delegation> delegations_;
  int rejected_ = 0;
};

void KekRotationTest::run_rotation(bool pkcs11) {
  configure(pkcs11);
  start(config_);

  // 10,000 records (Nodit messages over two keep-alive connections) and a few
  // delegations, so materials exist, all under version 1.
  {
    std::vector<std::thread> loaders;
    for (int c = 0; c < 2; ++c) {
      loaders.emplace_back([this, c] {
        HttpsClient conn(daemon_->port(), setup().root / "tls/cert.pem");
        for (int i = c; i < kRecords; i += 2) {
          const std::string body = nodit_message("501", static_cast<std::uint64_t>(i + 1));
          note_ack(post_nodit(conn, kNoditKey, body), body);
        }
      });
    }
    for (auto& t : loaders) t.join();
    for (int i = 0; i < kDelegations; ++i) deliver_delegation(client());
  }
  ASSERT_EQ(rejected_, 0);
  ASSERT_EQ(acked_.size(), static_cast<std::size_t>(kRecords + kDelegations));
  ASSERT_EQ(delegations_.size(), static_cast<std::size_t>(kDelegations));
  auto before = status();
  ASSERT_EQ(before.size(), 1U);
  EXPECT_EQ(before[1]["events"], kRecords + kDelegations);
  EXPECT_EQ(before[1]["materials"], kDelegations);
  const std::string kek_id = before[1]["kekId"];

  // Rotate; the daemon takes version 2 on SIGHUP.
  auto rotated = cli({"keys", "rotate"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  EXPECT_EQ(Json::parse(rotated.out)["version"], 2);
  daemon_->hangup();
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"reloaded\"", 1)) << daemon_->log();
  EXPECT_NE(daemon_->log().find("\"kek_version\":2"), std::string::npos) << daemon_->log();
  {
    const std::string body = nodit_message("502", 1);
    auto r = post_nodit(client(), kNoditKey, body);
    ASSERT_EQ(r.status, 200U);
    note_ack(r, body);
    EXPECT_EQ(status()[2]["events"], 1);  // new records use version 2
  }
  // Version 1 still wraps everything else: it cannot be retired yet.
  auto early_retire = cli({"keys", "retire", "1"});
  EXPECT_EQ(early_retire.exit_code, 1);
  EXPECT_NE(early_retire.err.find("still in use"), std::string::npos) << early_retire.err;

  // Webhooks keep coming while the rewrap runs; delegations among them from
  // the 50th message on, so none is sent before the rewrap has started.
  std::atomic<bool> stop{false};
  std::atomic<int> produced{0};
  std::thread producer([&] {
    HttpsClient conn(daemon_->port(), setup().root / "tls/cert.pem");
    for (std::uint64_t seq = 1; !stop.load(); ++seq) {
      const std::string body = nodit_message("503", seq);
      note_ack(post_nodit(conn, kNoditKey, body), body);
      if (seq % 100 == 50) deliver_delegation(conn);
      ++produced;
    }
  });

  // What had been acknowledged when the first rewrap reported its first batch.
  std::optional<std::pair<std::size_t, std::size_t>> at_first_progress;
  // First run: killed with SIGKILL once it has committed some batches.
  {
    ChildProcess rewrap({"keys", "rewrap", "--batch", "200", "--config", config_.string()},
                        dir_.path() / "rewrap1.out", dir_.path() / "rewrap1.err");
    bool killed = false;
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string out = rewrap.out();
      out.resize(out.rfind('\n') + 1);  // whole lines only (npos + 1 == 0)
      const auto lines = json_lines(out);
      if (!lines.empty() && !at_first_progress) at_first_progress = acked_counts();
      if (!lines.empty() && lines.back()["rewrapped"].get<std::uint64_t>() >= 600) {
        rewrap.kill9();
        killed = true;
        break;
      }
      if (!rewrap.running()) break;
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_TRUE(killed) << "the first rewrap ended before it could be killed (exit "
                        << rewrap.exit_status() << "): " << rewrap.out() << rewrap.err();
  }
  auto halfway = status();
  ASSERT_TRUE(halfway.count(1) == 1 && halfway.count(2) == 1);
  EXPECT_GT(keys_of(halfway[1]), 0U);                                      // some left under v1
  EXPECT_LT(keys_of(halfway[1]), std::uint64_t{kRecords} + kDelegations);  // some moved

  // Second run, to completion, still under traffic.
  auto finished = cli({"keys", "rewrap", "--batch", "200"});
  const auto at_second_exit = acked_counts();
  ASSERT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_EQ(json_lines(finished.out).back()["remaining"], 0);
  // Webhooks, delegations among them, were acknowledged while the rewraps ran.
  ASSERT_TRUE(at_first_progress.has_value());
  EXPECT_GE(at_second_exit.first, at_first_progress->first + 10)
      << "acknowledged events at the first rewrap's first progress line: "
      << at_first_progress->first << ", when the second rewrap exited: " << at_second_exit.first;
  EXPECT_GE(at_second_exit.second, at_first_progress->second + 1)
      << "stored delegations at the first rewrap's first progress line: "
      << at_first_progress->second << ", when the second rewrap exited: " << at_second_exit.second;
  std::this_thread::sleep_for(200ms);
  stop = true;
  producer.join();
  EXPECT_GT(produced.load(), 0);
  EXPECT_EQ(rejected_, 0) << "webhooks refused during the rewrap";

  auto after = status();
  ASSERT_EQ(after.count(1), 1U);
  EXPECT_EQ(after[1], Json::parse(R"({"kekId":")" + kek_id +
                                  R"(","version":1,"current":false,"available":true,)"
                                  R"("events":0,"materials":0,"auditKey":0,"processes":0})"));
  EXPECT_EQ(after[2]["current"], true);
  EXPECT_EQ(after[2]["auditKey"], 1);

  auto retired = cli({"keys", "retire", "1"});
  ASSERT_EQ(retired.exit_code, 0) << retired.err;
  EXPECT_EQ(status().count(1), 0U);
  auto verify = cli({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  std::map<std::string, int> kek_actions;
  int rewraps_ok = 0;
  for (auto& r : audit()) {
    const std::string action = r["action"];
    const std::string outcome = r["outcome"];
    if (action.rfind("kek.", 0) == 0) ++kek_actions[action + " " + outcome];
    if (action == "kek.rewrap" && outcome.rfind("ok", 0) == 0) ++rewraps_ok;
  }
  EXPECT_EQ(kek_actions["kek.rotate ok"], 1);
  EXPECT_EQ(kek_actions["kek.rewrap started"], 2);  // the killed run left its start
  EXPECT_EQ(rewraps_ok, 1) << "only the second rewrap finished";
  EXPECT_EQ(kek_actions["kek.retire ok"], 1);
  EXPECT_EQ(kek_actions.count("kek.retire refused: still in use by " +
                              std::to_string(kRecords + kDelegations) + " event keys, " +
                              std::to_string(kDelegations) +
                              " materials keys and the audit key; run `hookvault keys rewrap` "
                              "first"),
            1U);

  // Stop the daemon; every record opens in-process without version 1.
  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  const auto kek = open_kek_in_process();
  EXPECT_EQ(kek->versions(), std::vector<std::uint32_t>{2});
  SqliteStoreOptions options;
  options.path = dir_.path() / "data/hookvault.db";
  auto store = open_sqlite_store(options, kek);
  ASSERT_TRUE(store) << store.error().message();
  std::string error;
  const auto stored = open_all_events(**store, error);
  ASSERT_TRUE(error.empty()) << error;
  std::size_t mismatched = 0;
  std::map<std::string, std::string> expected = acked_;
  for (const auto& [key, event] : stored) {
    auto it = expected.find(key);
    if (it == expected.end()) continue;
    if (event.payload != it->second) ++mismatched;
    expected.erase(it);
  }
  EXPECT_TRUE(expected.empty()) << expected.size() << " acknowledged but not stored, first: "
                                << expected.begin()->first;
  EXPECT_EQ(mismatched, 0U);
  EXPECT_EQ(stored.size(), acked_.size());
  for (const auto& d : delegations_) {
    auto m = (*store)->materials("dynamic", d.wallet_id);
    ASSERT_TRUE(m) << m.error().message();
    ASSERT_TRUE(m->has_value()) << d.wallet_id;
    EXPECT_EQ((**m).share.reveal_string(), d.share);
    EXPECT_EQ((**m).api_key.reveal_string(), d.api_key);
  }
  EXPECT_GT(delegations_.size(), static_cast<std::size_t>(kDelegations));  // some during rewrap
  auto chain = (*store)->verify_audit();
  ASSERT_TRUE(chain) << chain.error().message();
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_TRUE((*store)->audit_sync(AuditEntry{"cli:test", "event.read", "1", "ok"}));
}

TEST_F(KekRotationTest, RotateAndRewrapWhileServingWithAKilledRewrapInBetween) {
  run_rotation(/*pkcs11=*/false);
}

TEST_F(KekRotationTest, TheSameWithTheKekInAnHsmToken) { run_rotation(/*pkcs11=*/true); }

// The audit finding, end to end: `keys rotate`, `keys rewrap` (remaining 0),
// `keys retire 1` while the daemon has not taken version 2 yet (its own
// refresh is an hour away and nobody sent SIGHUP). Before, the retirement
// went through, the daemon answered the next delegation 200 under version 1,
// and `materials get` then failed with "key-encryption key is not available".
// Now the retirement is refused and names the daemon (pid) and the way out;
// every acknowledged delivery stays readable, after the daemon moved on and
// version 1 was retired too.
void KekRotationTest::run_retire_while_behind(bool pkcs11) {
  configure(pkcs11, "refresh_interval = \"1h\"\n");
  start(config_);
  const std::string pid = "serve (pid " + std::to_string(daemon_->pid()) + " on ";
  std::vector<Delegation> delivered{deliver_stored()};

  ASSERT_EQ(cli({"keys", "rotate"}).exit_code, 0);
  const auto rewrapped = cli({"keys", "rewrap"});
  ASSERT_EQ(rewrapped.exit_code, 0) << rewrapped.err;
  EXPECT_EQ(json_lines(rewrapped.out).back()["remaining"], 0);
  EXPECT_NE(rewrapped.err.find("still wraps new records under an older version (" + pid),
            std::string::npos)
      << rewrapped.err;

  auto refused = cli({"keys", "retire", "1"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.err.find("1 running process still wraps new records under version 1 (" + pid),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("SIGHUP"), std::string::npos) << refused.err;
  EXPECT_EQ(status()[1]["available"], true);
  EXPECT_EQ(status()[1]["processes"], 1);

  // The daemon acknowledges under version 1 meanwhile, and it stays readable.
  delivered.push_back(deliver_stored());
  EXPECT_EQ(status()[1]["materials"], 1);
  expect_readable(delivered);

  // SIGHUP: the daemon takes version 2; version 1 still holds what it wrote.
  daemon_->hangup();
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"reloaded\"", 1)) << daemon_->log();
  ASSERT_TRUE(eventually([&] { return status()[1]["processes"] == 0; }, 10s));
  refused = cli({"keys", "retire", "1"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("still in use by 1 event keys, 1 materials keys"), std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.err.find("running process"), std::string::npos) << refused.err;
  delivered.push_back(deliver_stored());  // under version 2

  ASSERT_EQ(cli({"keys", "rewrap"}).exit_code, 0);
  const auto retired = cli({"keys", "retire", "1"});
  ASSERT_EQ(retired.exit_code, 0) << retired.err;
  EXPECT_EQ(status().count(1), 0U);
  delivered.push_back(deliver_stored());
  expect_readable(delivered);
  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  expect_readable(delivered);
  EXPECT_EQ(cli({"audit", "verify"}).exit_code, 0);
}

TEST_F(KekRotationTest, RetireIsRefusedWhileTheDaemonStillWrapsUnderTheVersion) {
  run_retire_while_behind(/*pkcs11=*/false);
}

TEST_F(KekRotationTest, RetireIsRefusedWhileTheDaemonStillWrapsUnderTheVersionInAnHsmToken) {
  run_retire_while_behind(/*pkcs11=*/true);
}

// Without a SIGHUP: the daemon reads its keyring every refresh_interval, so a
// version `keys rotate` added is used for its new records within it, its
// registration follows, and rewrap + retire then succeed.
void KekRotationTest::run_new_version_taken_by_itself(bool pkcs11) {
  configure(pkcs11, "refresh_interval = \"1s\"\n");
  start(config_);
  std::vector<Delegation> delivered{deliver_stored()};
  ASSERT_EQ(cli({"keys", "rotate"}).exit_code, 0);
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"KEK version in use\"", 1)) << daemon_->log();
  EXPECT_NE(daemon_->log().find("\"version\":2,\"previous\":1"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return status()[2]["processes"] == 1; }, 10s)) << daemon_->log();
  delivered.push_back(deliver_stored());
  EXPECT_EQ(status()[2]["materials"], 1);  // the new delegation, under version 2
  ASSERT_EQ(cli({"keys", "rewrap"}).exit_code, 0);
  const auto retired = cli({"keys", "retire", "1"});
  ASSERT_EQ(retired.exit_code, 0) << retired.err;
  delivered.push_back(deliver_stored());
  expect_readable(delivered);
  EXPECT_EQ(daemon_->log_count("reload"), 0U);  // no SIGHUP was needed
}

TEST_F(KekRotationTest, TheDaemonTakesANewVersionWithoutASighup) {
  run_new_version_taken_by_itself(/*pkcs11=*/false);
}

TEST_F(KekRotationTest, TheDaemonTakesANewTokenVersionWithoutASighup) {
  run_new_version_taken_by_itself(/*pkcs11=*/true);
}

// A SIGHUP whose config does not pass its checks keeps the running config,
// but still takes the KEK's newest version (before, it stayed on the old one
// with only a log line), and the failure is said loudly: an error line, the
// hookvault_config_last_reload_successful gauge at 0.
void KekRotationTest::run_failed_reload(bool pkcs11) {
  configure(pkcs11, "refresh_interval = \"1h\"\n");
  start(config_);
  std::vector<Delegation> delivered{deliver_stored()};
  ASSERT_EQ(cli({"keys", "rotate"}).exit_code, 0);
  // A config the daemon must refuse: the webhook secret's file is missing.
  const std::string secret = (setup().root / "secrets/dynamic_webhook_secret").string();
  std::string text = read_file(config_);
  const auto at = text.find(secret);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, secret.size(), (dir_.path() / "missing_secret").string());
  write_file(config_, text, 0600);

  daemon_->hangup();
  ASSERT_TRUE(daemon_->wait_for_log("reload failed; keeping the running configuration", 1))
      << daemon_->log();
  EXPECT_NE(daemon_->log().find("missing_secret"), std::string::npos);
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"KEK version in use\"", 1)) << daemon_->log();
  // The running config serves on (the old secret), with the new KEK version.
  delivered.push_back(deliver_stored());
  EXPECT_EQ(status()[2]["materials"], 1) << daemon_->log();
  EXPECT_EQ(status()[2]["events"], 1);
  ASSERT_EQ(cli({"keys", "rewrap"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return cli({"keys", "retire", "1"}).exit_code == 0; }, 10s));
  expect_readable(delivered);
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);
}

TEST_F(KekRotationTest, AFailedReloadStillTakesTheNewKekVersion) {
  run_failed_reload(/*pkcs11=*/false);
}

TEST_F(KekRotationTest, AFailedReloadStillTakesTheNewTokenVersion) {
  run_failed_reload(/*pkcs11=*/true);
}

// A single instance whose keyring lost a version that stored rows still use
// (edited by hand, or an old copy restored, instead of `keys rewrap` and
// `keys retire`, which refuses while rows use the version): after SIGHUP
// /readyz turns 503 with one warning naming the version; a restart with that
// keyring starts, but not ready; once the version is back (SIGHUP) it is
// ready again, logs that it recovered, and everything stored opens.
TEST_F(KekRotationTest, AKeyringThatLostAVersionInUseIsNotReadyUntilTheVersionIsBack) {
  configure(/*pkcs11=*/false, "refresh_interval = \"1h\"\n");
  start(config_);
  std::vector<Delegation> delivered{deliver_stored()};  // under version 1
  ASSERT_EQ(cli({"keys", "rotate"}).exit_code, 0);
  daemon_->hangup();
  ASSERT_TRUE(daemon_->wait_for_log("\"msg\":\"reloaded\"", 1)) << daemon_->log();
  delivered.push_back(deliver_stored());  // under version 2
  EXPECT_EQ(client().request("GET", "/readyz").status, 200U);
  const std::string whole = read_file(kek_file());

  retire_file_kek_version(kek_file(), 1);  // the store is not asked
  daemon_->hangup();
  EXPECT_TRUE(eventually([&] { return client().request("GET", "/readyz").status == 503; }, 10s))
      << daemon_->log();
  EXPECT_TRUE(daemon_->wait_for_log("KEK versions this keyring does not have", 1))
      << daemon_->log();
  EXPECT_NE(daemon_->log().find(":v1\",\"versions\":\"2\""), std::string::npos) << daemon_->log();
  EXPECT_EQ(client().request("GET", "/healthz").status, 200U);  // alive, only not ready

  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  start(config_);
  EXPECT_EQ(client().request("GET", "/readyz").status, 503U) << daemon_->log();
  EXPECT_EQ(daemon_->log_count("KEK versions this keyring does not have"), 1U);

  write_file(kek_file(), whole, 0600);
  daemon_->hangup();
  EXPECT_TRUE(eventually([&] { return client().request("GET", "/readyz").status == 200; }, 10s))
      << daemon_->log();
  EXPECT_TRUE(daemon_->wait_for_log("every KEK version the database references is available", 1));
  delivered.push_back(deliver_stored());
  expect_readable(delivered);
}

}  // namespace
}  // namespace hookvault::testing
