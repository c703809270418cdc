// [storage] backend = "postgresql": the config keys (a password is never
// taken inline), check-config's look at the database, and open_store()
// choosing the backend, against the shared test cluster.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "hookvault/config.hpp"
#include "hookvault/init.hpp"
#include "hookvault/ops.hpp"
#include "pg_store_support.hpp"
#include "store_requests.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

constexpr const char* kFile = "/etc/hookvault/hookvault.toml";

std::string with_storage(const std::string& storage) {
  return R"([server]
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
[storage]
)" + storage +
         R"(
[kek]
file = "keys/kek.key"
[[sources]]
name = "dynamic"
provider = "dynamic"
path = "/webhooks/dynamic"
secret_files = ["secrets/dynamic_webhook_secret"]
rsa_private_keys = ["keys/dynamic_rsa.pem"]
)";
}

// The message of the ConfigError parse_config throws ("" when none).
std::string parse_error(const std::string& storage) {
  try {
    parse_config(with_storage(storage), kFile);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(PgConfig, PostgresqlKeysParse) {
  const Config c = parse_config(with_storage(R"(backend = "postgresql"
conninfo = "host=db1,db2 port=5432,5432 dbname=hookvault user=hookvault target_session_attrs=read-write"
password_file = "secrets/pg_password"
require_synchronous_standby = true)"),
                                kFile);
  EXPECT_EQ(c.storage.backend, StorageBackend::postgresql);
  EXPECT_EQ(c.storage.conninfo,
            "host=db1,db2 port=5432,5432 dbname=hookvault user=hookvault "
            "target_session_attrs=read-write");
  ASSERT_TRUE(c.storage.password);
  EXPECT_EQ(c.storage.password->path, "/etc/hookvault/secrets/pg_password");
  EXPECT_TRUE(c.storage.require_synchronous_standby);
  const Config env =
      parse_config(with_storage("backend = \"postgresql\"\nconninfo = \"postgresql://hv@db/hv\"\n"
                                "password_env = \"PGPASS_HV\""),
                   kFile);
  ASSERT_TRUE(env.storage.password);
  EXPECT_EQ(env.storage.password->name, "PGPASS_HV");
  const Config sqlite = parse_config(with_storage("path = \"data/hookvault.db\""), kFile);
  EXPECT_EQ(sqlite.storage.backend, StorageBackend::sqlite);
}

// A password inline in conninfo (key=value or URI) is refused, and the
// error does not repeat it.
TEST(PgConfig, APasswordInsideConninfoIsRefusedWithoutRepeatingIt) {
  for (const std::string conninfo :
       {"host=db dbname=hv user=hv password=Sup3rSecret", "host=db password='Sup3rSecret x'",
        "postgresql://hv:Sup3rSecret@db/hv", "postgresql://db/hv?password=Sup3rSecret"}) {
    const auto e = parse_error("backend = \"postgresql\"\nconninfo = \"" + conninfo + "\"");
    EXPECT_NE(e.find("storage.conninfo"), std::string::npos) << e;
    EXPECT_NE(e.find("password_file"), std::string::npos) << e;
    EXPECT_EQ(e.find("Sup3rSecret"), std::string::npos) << e;
  }
  const auto bad = parse_error("backend = \"postgresql\"\nconninfo = \"host='Sup3rSecret\"");
  EXPECT_NE(bad.find("not a valid libpq connection string"), std::string::npos) << bad;
  EXPECT_EQ(bad.find("Sup3rSecret"), std::string::npos) << bad;
}

TEST(PgConfig, MistakesAreNamed) {
  EXPECT_NE(parse_error("backend = \"mysql\"\npath = \"x.db\"").find("storage.backend"),
            std::string::npos);
  EXPECT_NE(parse_error("backend = \"postgresql\"").find("storage.conninfo"), std::string::npos);
  EXPECT_NE(parse_error("path = \"x.db\"\nconninfo = \"host=db\"").find("storage.conninfo"),
            std::string::npos);
  EXPECT_NE(parse_error("backend = \"postgresql\"\nconninfo = \"host=db\"\n"
                        "password_file = \"a\"\npassword_env = \"B\"")
                .find("give only one"),
            std::string::npos);
}

// A working setup (hookvault init) moved onto the cluster: check-config
// connects and passes, open_store() opens the PostgreSQL store, and a
// database of another schema version is named by check-config.
class PgConfigSetup : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ostringstream out;
    auto init = run_init(dir_.path() / "setup", out);
    config_file_ = init.config_file;
    std::ofstream(dir_.path() / "setup" / "pg_password") << shared_pg_cluster().password() << "\n";
    std::filesystem::permissions(
        dir_.path() / "setup" / "pg_password",
        std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
        std::filesystem::perm_options::replace);
  }
  Config config_for(const std::string& conninfo) {
    std::ifstream in(config_file_);
    std::stringstream text;
    text << in.rdbuf();
    std::string toml = text.str();
    const auto at = toml.find("[storage]");
    const auto end = toml.find("\n[", at + 1);
    toml.replace(at, end - at,
                 "[storage]\nbackend = \"postgresql\"\nconninfo = \"" + conninfo +
                     "\"\npassword_file = \"pg_password\"\n");
    return parse_config(toml, config_file_);
  }

  TempDir dir_;
  std::filesystem::path config_file_;
  PgTestDatabase db_;
};

TEST_F(PgConfigSetup, CheckConfigConnectsAndOpenStoreUsesPostgresql) {
  const Config config = config_for(db_.conninfo());
  auto problems = check_config(config);
  EXPECT_TRUE(problems.empty()) << problems.front();
  auto store = open_store(config);
  ASSERT_TRUE(store);
  auto w = store->write(requests::plain_event("via-config"));
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_EQ(shared_pg_cluster().psql("primary", "SELECT count(*) FROM events", db_.name()), "1");
  store->close();
  // Another schema version: check-config says so, and serve would not start.
  shared_pg_cluster().psql("primary", "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                           db_.name());
  problems = check_config(config);
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_NE(problems[0].find("schema version 99"), std::string::npos) << problems[0];
  EXPECT_THROW(open_store(config), std::runtime_error);
}

TEST_F(PgConfigSetup, CheckConfigNamesAServerItCannotReach) {
  const Config config = config_for("host=127.0.0.1 port=1 dbname=x user=hookvault");
  auto problems = check_config(config);
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_NE(problems[0].find("storage.conninfo: cannot connect"), std::string::npos) << problems[0];
}

}  // namespace
}  // namespace hookvault::testing
