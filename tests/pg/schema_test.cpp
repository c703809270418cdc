// The PostgreSQL schema (src/store/pg/schema.hpp, SCHEMA CHANGES) on a real
// server: created once, in one transaction, by instances that start together.
#include "store/pg/schema.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "pg_cluster.hpp"

namespace hookvault::store::pg {
namespace {

using testing::PgCluster;

class PgSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = &testing::shared_pg_cluster();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("schema_") + info->name();
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    db_ = name;
    conninfo_ = cluster_->create_database(db_);
  }

  Connection connect() const {
    static const SecretBytes password = SecretBytes::copy_of(cluster_->password());
    ConnectOptions o;
    o.conninfo = conninfo_;
    o.password = &password;
    PgError e;
    auto c = Connection::open(o, {}, &e);
    if (!c) ADD_FAILURE() << e.message;
    return std::move(c).value();
  }
  std::string sql(const std::string& query) const { return cluster_->psql("primary", query, db_); }
  int tables() const {
    return std::stoi(sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));
  }

  PgCluster* cluster_ = nullptr;
  std::string db_;
  std::string conninfo_;
};

TEST_F(PgSchemaTest, ANewDatabaseGetsEveryTableAndTheVersionOnce) {
  auto c = connect();
  std::vector<bool> fresh_seen;
  const schema::WithinSchema within = [&](Connection&, bool fresh) -> Result<void> {
    fresh_seen.push_back(fresh);
    return {};
  };
  std::string why;
  auto first = schema::ensure_schema(c, within, &why);
  ASSERT_TRUE(first) << why;
  EXPECT_TRUE(*first);
  EXPECT_EQ(tables(), 11);
  EXPECT_EQ(sql("SELECT value FROM meta WHERE key = 'schema_version'"), schema::kVersionText);
  auto again = schema::ensure_schema(c, within, &why);
  ASSERT_TRUE(again) << why;
  EXPECT_FALSE(*again);
  EXPECT_EQ(fresh_seen, (std::vector<bool>{true, false}));
  EXPECT_FALSE(c.in_transaction());
  EXPECT_TRUE(c.take_warnings().empty());
}

TEST_F(PgSchemaTest, InstancesThatStartTogetherCreateItOnce) {
  constexpr int kInstances = 6;
  std::atomic<int> created{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> instances;
  for (int i = 0; i < kInstances; ++i) {
    instances.emplace_back([&] {
      auto c = connect();
      std::string why;
      auto r = schema::ensure_schema(c, {}, &why);
      if (!r) {
        ++failed;
        ADD_FAILURE() << why;
      } else if (*r) {
        ++created;
      }
    });
  }
  for (auto& t : instances) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(tables(), 11);
  EXPECT_EQ(sql("SELECT count(*) FROM meta"), "1");
}

TEST_F(PgSchemaTest, AnotherVersionIsRefusedAndLeftAsItIs) {
  auto c = connect();
  std::string why;
  ASSERT_TRUE(schema::ensure_schema(c, {}, &why)) << why;
  sql("UPDATE meta SET value = '7' WHERE key = 'schema_version'");
  sql("DROP TABLE writers");
  auto r = schema::ensure_schema(c, {}, &why);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(Errc::store_unavailable));
  EXPECT_NE(why.find("schema version 7"), std::string::npos) << why;
  EXPECT_NE(why.find("knows version 1"), std::string::npos) << why;
  // Nothing of this version's schema was added to that database.
  EXPECT_EQ(tables(), 10);
  EXPECT_EQ(sql("SELECT value FROM meta WHERE key = 'schema_version'"), "7");
  EXPECT_FALSE(c.in_transaction());
  EXPECT_TRUE(c.usable());
}

TEST_F(PgSchemaTest, AFailureInsideLeavesNoHalfSchema) {
  auto c = connect();
  std::string why;
  const schema::WithinSchema refuse = [](Connection& conn, bool) -> Result<void> {
    // A statement that fails, as a refused audit key would.
    conn.send_once("SELECT 1/0");
    if (auto s = conn.sync(); !s) return s;
    auto r = conn.next();
    static_cast<void>(conn.finish_segment());
    if (!r) return r.error();
    return {};
  };
  auto r = schema::ensure_schema(c, refuse, &why);
  ASSERT_FALSE(r);
  EXPECT_EQ(tables(), 0);
  EXPECT_FALSE(c.in_transaction());
  // The lock went with the transaction: the next attempt goes through.
  auto again = schema::ensure_schema(c, {}, &why);
  ASSERT_TRUE(again) << why;
  EXPECT_TRUE(*again);
  EXPECT_EQ(tables(), 11);
}

TEST_F(PgSchemaTest, ARoleThatCannotCreateTablesIsToldWhy) {
  sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC; ALTER DATABASE " + db_ + " OWNER TO postgres");
  auto c = connect();
  std::string why;
  auto r = schema::ensure_schema(c, {}, &why);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(Errc::store_unavailable));
  EXPECT_NE(why.find("cannot create the schema"), std::string::npos) << why;
  EXPECT_NE(why.find("42501"), std::string::npos) << why;
  EXPECT_FALSE(c.in_transaction());
  EXPECT_TRUE(c.usable());
}

}  // namespace
}  // namespace hookvault::store::pg
