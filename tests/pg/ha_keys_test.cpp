// KEK rotation with two real `hookvault serve` instances on one PostgreSQL
// database behind a real HAProxy (ha_cluster.hpp's Haproxy), each instance
// with a keyring file of its own: an operator rotates on instance a's keyring
// only. Once a stores a record under the new version, b (whose keyring lacks
// it) is not ready (/readyz 503, HAProxy takes it out) until its keyring has
// the version; then it is ready again and reads what a stored
// (kek_coverage.hpp). And, at the store, `keys rewrap` and `keys retire`
// with two instances on PostgreSQL.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "e2e.hpp"
#include "ha_cluster.hpp"
#include "hookvault/kek.hpp"
#include "pg_cluster.hpp"
#include "pg_store_support.hpp"
#include "store_requests.hpp"

namespace hookvault::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Two instances on one new database of the shared cluster, instance i with
// its own config <dir>/<i>.toml and keyring <dir>/<i>.kek (copies of the
// init setup's KEK file), and HAProxy in front of them.
class HaKeys : public ::testing::Test {
 protected:
  // `refresh_interval`: [kek] refresh_interval of each instance.
  void start(const std::vector<std::string>& refresh_interval) {
    static int counter = 0;
    const std::string database =
        "ha_keys_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    const auto& cluster = shared_pg_cluster();
    const std::string conninfo = cluster.create_database(database);
    const auto& s = setup();
    write_file(dir_.path() / "pg_password", cluster.password(), 0600);
    for (std::size_t i = 0; i < refresh_interval.size(); ++i) {
      write_file(kek_file(i), read_file(s.root / "keys/kek.key"), 0600);
      std::ostringstream t;
      t << "[server]\nlisten = \"127.0.0.1:0\"\n"
        << "tls_cert = \"" << (s.root / "tls/cert.pem").string() << "\"\n"
        << "tls_key = \"" << (s.root / "tls/key.pem").string() << "\"\n"
        << "threads = 2\nidle_timeout = \"5s\"\n"
        << "[storage]\nbackend = \"postgresql\"\nconninfo = \"" << conninfo
        << " connect_timeout=2\"\n"
        << "password_file = \"" << (dir_.path() / "pg_password").string() << "\"\n"
        << "[kek]\nprovider = \"file\"\nfile = \"" << kek_file(i).string() << "\"\n"
        << "refresh_interval = \"" << refresh_interval[i] << "\"\n"
        << "[log]\nformat = \"json\"\nlevel = \"info\"\n"
        << "[[sources]]\nname = \"dynamic\"\nprovider = \"dynamic\"\npath = \"/webhooks/dynamic\"\n"
        << "secret_files = [\"" << (s.root / "secrets/dynamic_webhook_secret").string() << "\"]\n"
        << "rsa_private_keys = [{ file = \"" << (s.root / "keys/dynamic_rsa.pem").string()
        << "\", kid = \"dynamic_rsa_lSuvWlCy\" }]\n"
        << admin_toml("[[admin.clients]]\nsubject_cn = \"signer\"\nroles = [\"materials:read\"]\n");
      write_file(config(i), t.str(), 0600);
      instances_.push_back(std::make_unique<Daemon>(config(i)));
    }
    haproxy_ = std::make_unique<Haproxy>(
        dir_.path(), std::map<std::string, std::uint16_t>{{"a", instances_[0]->port()},
                                                          {"b", instances_[1]->port()}});
    ASSERT_TRUE(haproxy_->wait_all("UP", 20s)) << haproxy_->log();
  }

  void TearDown() override {
    haproxy_.reset();
    for (std::size_t i = 0; i < instances_.size(); ++i) {
      const int status = instances_[i]->stop();
      const std::string log = instances_[i]->log();
      EXPECT_TRUE(status == 0 && log.find("AddressSanitizer") == std::string::npos &&
                  log.find("runtime error:") == std::string::npos)
          << "instance " << i << " exited " << status << ":\n"
          << log;
    }
    instances_.clear();
  }

  fs::path kek_file(std::size_t i) const { return dir_.path() / (std::to_string(i) + ".kek"); }
  fs::path config(std::size_t i) const { return dir_.path() / (std::to_string(i) + ".toml"); }
  Daemon& instance(std::size_t i) { return *instances_.at(i); }

  // `hookvault ARGS --config <instance i's config>`, exit 0 expected.
  Json cli(std::size_t i, std::vector<std::string> args) {
    args.push_back("--config");
    args.push_back(config(i).string());
    auto r = run_hookvault(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto lines = json_lines(r.out);
    return lines.empty() ? Json() : lines.back();
  }

  static int get_status(std::uint16_t port, const std::string& target) {
    try {
      HttpsClient c(port, setup().root / "tls/cert.pem");
      return static_cast<int>(c.request("GET", target).status);
    } catch (const std::exception&) {
      return 0;
    }
  }
  int readyz(std::size_t i) { return get_status(instance(i).port(), "/readyz"); }

  static HttpResponse deliver(std::uint16_t port, const Delegation& d) {
    const std::string body = compact(created_event(d, setup().rsa_public_pem));
    HttpsClient c(port, setup().root / "tls/cert.pem");
    return c.request(
        "POST", "/webhooks/dynamic",
        {{"Content-Type", "application/json"},
         {"x-dynamic-signature-256", "sha256=" + hmac_hex(setup().dynamic_secret, body)}},
        body);
  }

  // The signer's GET of the wallet's materials through instance i's admin listener.
  HttpResponse materials(std::size_t i, const Delegation& d) {
    const auto& s = setup();
    HttpsClient c(instance(i).admin_port(), s.root / "tls/admin-ca.pem",
                  ClientCertificate{s.offline / "signer-cert.pem", s.offline / "signer-key.pem"});
    return c.request("GET", "/v1/materials/" + d.wallet_id + "?source=dynamic");
  }

  static void expect_materials_of(const HttpResponse& r, const Delegation& d) {
    ASSERT_EQ(r.status, 200U) << r.body;
    const auto m = Json::parse(r.body);
    EXPECT_EQ(m["eventId"], d.event_id);
    EXPECT_EQ(m["delegatedShare"], d.share);
    EXPECT_EQ(m["walletApiKey"], d.api_key);
  }

  // Rotation on instance a's keyring only; a takes the new version on SIGHUP
  // and stores a delegation under it. Returns that delegation.
  Delegation rotate_on_a_and_store_under_v2() {
    EXPECT_EQ(cli(0, {"keys", "rotate"})["version"], 2);
    const std::size_t reloads = instance(0).log_count("\"msg\":\"reloaded\"");
    instance(0).hangup();
    EXPECT_TRUE(instance(0).wait_for_log("\"msg\":\"reloaded\"", reloads + 1));
    const Delegation d = random_delegation();
    const auto r = deliver(instance(0).port(), d);
    EXPECT_EQ(r.status, 200U) << r.body;
    return d;
  }

  TempDir dir_;
  std::vector<std::unique_ptr<Daemon>> instances_;
  std::unique_ptr<Haproxy> haproxy_;
};

// b follows on its own ([kek] refresh_interval 1s): not ready within its
// interval of a's first record under version 2, HAProxy takes it out and
// sends every delivery to a; once b's keyring has version 2 (the operator
// copies a's keyring), b is ready again within its interval, back in
// HAProxy, and reads the materials a stored under version 2.
TEST_F(HaKeys, AnInstanceWhoseKeyringLacksAVersionInUseIsNotReadyUntilItHasIt) {
  start({"1s", "1s"});
  const Delegation before = random_delegation();
  ASSERT_EQ(deliver(haproxy_->port(), before).status, 200U);
  const Delegation d = rotate_on_a_and_store_under_v2();

  EXPECT_TRUE(eventually([&] { return readyz(1) == 503; }, 10s)) << instance(1).log();
  EXPECT_EQ(readyz(0), 200);
  EXPECT_TRUE(eventually(
      [&] {
        const auto s = haproxy_->servers();
        return s.count("b") == 1 && s.at("b").status == "DOWN" && s.at("a").status == "UP";
      },
      10s))
      << haproxy_->log();
  EXPECT_TRUE(instance(1).wait_for_log("KEK versions this keyring does not have", 1));
  // What b cannot open while it is out: a's record under version 2.
  EXPECT_NE(materials(1, d).status, 200U);
  // Deliveries through HAProxy all reach a.
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(deliver(haproxy_->port(), random_delegation()).status, 200U);
  }

  write_file(kek_file(1), read_file(kek_file(0)), 0600);
  EXPECT_TRUE(eventually([&] { return readyz(1) == 200; }, 10s)) << instance(1).log();
  EXPECT_TRUE(haproxy_->wait_all("UP", 10s)) << haproxy_->log();
  EXPECT_TRUE(
      instance(1).wait_for_log("every KEK version the database references is available", 1));
  expect_materials_of(materials(1, d), d);
  expect_materials_of(materials(1, before), before);
  expect_materials_of(materials(0, d), d);
}

// The same with b's own refresh an hour away: SIGHUP makes it check at once,
// both ways (b lacks the version: 503; b's keyring has it: 200).
TEST_F(HaKeys, SighupChecksAtOnceWhetherTheKeyringHasEveryVersionInUse) {
  start({"1s", "1h"});
  const Delegation d = rotate_on_a_and_store_under_v2();
  EXPECT_EQ(readyz(1), 200);  // b has not looked yet: its refresh is an hour away
  instance(1).hangup();
  EXPECT_TRUE(eventually([&] { return readyz(1) == 503; }, 10s)) << instance(1).log();
  EXPECT_NE(materials(1, d).status, 200U);

  write_file(kek_file(1), read_file(kek_file(0)), 0600);
  instance(1).hangup();
  EXPECT_TRUE(eventually([&] { return readyz(1) == 200; }, 10s)) << instance(1).log();
  expect_materials_of(materials(1, d), d);
  EXPECT_TRUE(haproxy_->wait_all("UP", 10s)) << haproxy_->log();
}

WriteRequest delegation_request(const std::string& key, const std::string& wallet) {
  return requests::created(key, wallet, 1000, "share of " + key, "api key of " + key);
}

std::unique_ptr<Store> open_on(const PgTestDatabase& db, std::shared_ptr<const Kek> kek,
                               const std::string& name,
                               std::chrono::milliseconds lease_time = 60s) {
  auto o = db.options();
  o.process_name = name;
  o.lease_heartbeat = 200ms;
  o.lease_time = lease_time;
  auto store = db.open(std::move(kek), o);
  EXPECT_TRUE(store) << (store ? "" : store.error().message());
  return store ? std::move(*store) : nullptr;
}

void rewrap_all(Store& store) {
  for (int i = 0; i < 1000; ++i) {
    auto p = store.rewrap_batch(100);
    ASSERT_TRUE(p) << p.error().message();
    if (p->remaining == 0) return;
  }
  FAIL() << "keys remain under older versions";
}

// `keys rewrap` and `keys retire` with two instances on PostgreSQL, at the
// store: instance "serve" still wraps under version 1 (its keyring was not
// refreshed) while the operator's "cli" store has version 2. The retirement
// of version 1 is refused while serve's registration names it, and again
// while a record serve stored meanwhile uses it; once serve moved on and a
// rewrap moved that record, it is retired; and a store that still wraps
// under version 1 afterwards (its registration lapsed) has its write
// refused, not stored, so nothing acknowledged is left under a retired
// version. kek_refs() follows each step.
TEST(HaKeysStore, RetireIsRefusedWhileAnotherInstanceWrapsUnderTheVersionOrARecordUsesIt) {
  TempDir dir;
  const auto file = dir.path() / "kek.key";
  write_file(file, SecretBytes::random(32).reveal_string(), 0600);
  const auto v1_only = read_file(file);
  PgTestDatabase db;
  const std::shared_ptr<Kek> serve_kek = open_file_kek(file);
  auto serve = open_on(db, serve_kek, "serve");
  ASSERT_TRUE(serve);
  ASSERT_TRUE(serve->write(delegation_request("before-rotate", "w1")));

  rotate_file_kek(file);
  const std::shared_ptr<Kek> cli_kek = open_file_kek(file);
  auto cli = open_on(db, cli_kek, "cli");
  ASSERT_TRUE(cli);
  rewrap_all(*cli);
  auto refs = cli->kek_refs();
  ASSERT_TRUE(refs);
  EXPECT_EQ(*refs, (std::vector<KekRef>{{cli_kek->id(), 2}}));

  auto refused = cli->retire_kek_version(1);
  ASSERT_TRUE(refused) << refused.error().message();
  EXPECT_FALSE(refused->retired);
  ASSERT_EQ(refused->holders.size(), 1U);
  EXPECT_EQ(refused->holders[0].description.rfind("serve (pid ", 0), 0U);
  EXPECT_EQ(refused->holders[0].version, 1U);

  ASSERT_TRUE(serve->write(delegation_request("after-rotate", "w2")));  // under version 1
  refs = cli->kek_refs();
  ASSERT_TRUE(refs);
  EXPECT_EQ(*refs, (std::vector<KekRef>{{cli_kek->id(), 1}, {cli_kek->id(), 2}}));

  serve_kek->refresh();  // serve takes version 2
  ASSERT_TRUE(eventually(
      [&] {
        auto leases = cli->kek_leases();
        return leases && std::none_of(leases->begin(), leases->end(),
                                      [](const KekLease& l) { return l.version == 1; });
      },
      10s));
  refused = cli->retire_kek_version(1);
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->retired);
  EXPECT_TRUE(refused->holders.empty());
  EXPECT_EQ(refused->usage.materials, 1U);  // "after-rotate"

  // A third instance still on the old keyring, whose registration lapses at once.
  write_file(dir.path() / "old.key", v1_only, 0600);
  auto late = open_on(db, open_file_kek(dir.path() / "old.key"), "late", 1ms);
  ASSERT_TRUE(late);
  rewrap_all(*cli);
  auto retired = cli->retire_kek_version(1);
  ASSERT_TRUE(retired) << retired.error().message();
  EXPECT_TRUE(retired->retired);

  auto written = late->write(delegation_request("late", "w3"));
  ASSERT_FALSE(written);
  EXPECT_EQ(to_errc(written.error()), Errc::kek_unavailable);
  auto found = cli->find_event("dynamic", "late");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  refs = cli->kek_refs();
  ASSERT_TRUE(refs);
  EXPECT_EQ(*refs, (std::vector<KekRef>{{cli_kek->id(), 2}}));
  for (const char* wallet : {"w1", "w2"}) {
    auto m = serve->materials("dynamic", wallet);
    ASSERT_TRUE(m && *m) << wallet;
  }
  late->close();
  serve->close();
  cli->close();
}

}  // namespace
}  // namespace hookvault::testing
