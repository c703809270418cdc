// The libpq adapter (src/store/pg/libpq.hpp) against real PostgreSQL 15
// servers on loopback: a primary with a synchronous standby (tests/pg/pg_cluster.hpp).
#include "store/pg/libpq.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

#include "pg_cluster.hpp"

namespace hookvault::store::pg {
namespace {

using namespace std::chrono_literals;
using testing::PgCluster;

class LibpqTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = &testing::shared_pg_cluster(); }

  static ConnectOptions options(const std::string& conninfo) {
    ConnectOptions o;
    o.conninfo = conninfo;
    o.password = &password();
    o.connect_timeout = 5s;
    return o;
  }
  static const SecretBytes& password() {
    static const SecretBytes p = SecretBytes::copy_of(cluster_->password());
    return p;
  }
  static Connection connect(std::vector<const char*> session = {}) {
    PgError e;
    auto c = Connection::open(options(cluster_->primary_conninfo()), session, &e);
    if (!c) ADD_FAILURE() << "connect: " << e.message;
    return std::move(c).value();
  }

  static PgCluster* cluster_;
};
PgCluster* LibpqTest::cluster_ = nullptr;

constexpr const char* kCreate =
    "CREATE TABLE IF NOT EXISTS t (k text PRIMARY KEY, n bigint NOT NULL, b bytea, f boolean)";

TEST_F(LibpqTest, ConnectsWithThePasswordAndDecodesBinaryColumns) {
  auto c = connect();
  ASSERT_TRUE(c.usable());
  EXPECT_GT(c.backend_pid(), 0);
  const Bytes blob = {0x00, 0xff, 0x27, 0x5c, 0x00, 0x80};
  auto rows =
      c.exec("SELECT $1::bigint, $2::int4, $3::int2, $4::boolean, $5::text, $6::bytea, NULL::text",
             Params()
                 .int64(-9007199254740993)
                 .int64(-7)
                 .int64(300)
                 .boolean(true)
                 .text("ünï'code")
                 .bytes(blob));
  ASSERT_TRUE(rows) << c.last_error().message;
  ASSERT_EQ(rows->size(), 1);
  EXPECT_EQ(rows->int64(0, 0).value(), -9007199254740993);
  EXPECT_EQ(rows->int64(0, 1).value(), -7);
  EXPECT_EQ(rows->int64(0, 2).value(), 300);
  EXPECT_TRUE(rows->boolean(0, 3).value());
  EXPECT_EQ(rows->text(0, 4), "ünï'code");
  EXPECT_EQ(rows->bytes(0, 5), blob);
  EXPECT_TRUE(rows->is_null(0, 6));
  EXPECT_EQ(rows->optional_text(0, 6), std::nullopt);
  // A column of another type is refused, not misread.
  EXPECT_EQ(rows->int64(0, 4).error(), make_error_code(Errc::store_corrupt));
  EXPECT_EQ(rows->boolean(0, 0).error(), make_error_code(Errc::store_corrupt));
}

// Array parameters go in binary form, each element as it is:
// quotes, backslashes, commas, braces, NULL-looking and empty text, spaces
// and other scripts come back as they went in, in order.
TEST_F(LibpqTest, ArrayParametersTakeAnyTextAsItIs) {
  auto c = connect();
  const std::vector<std::string_view> texts = {
      "plain", "", "NULL", "a\"b", "back\\slash\\", "{x,y}", "  spaced  ", "ünï'code", ",", "\\\""};
  const std::vector<std::int64_t> numbers = {
      0, -1, 9223372036854775807, -9223372036854775807 - 1, 42, 7, 8, 9, 10, 11};
  auto rows = c.exec(
      "SELECT t, n, t IS NULL FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(t, n, i) "
      "ORDER BY i",
      Params().text_array(texts).int64_array(numbers));
  ASSERT_TRUE(rows) << c.last_error().message;
  ASSERT_EQ(rows->size(), static_cast<int>(texts.size()));
  for (int i = 0; i < rows->size(); ++i) {
    const auto k = static_cast<std::size_t>(i);
    EXPECT_EQ(rows->text(i, 0), texts[k]) << i;
    EXPECT_EQ(rows->int64(i, 1).value(), numbers[k]) << i;
    EXPECT_FALSE(rows->boolean(i, 2).value()) << i;
  }
  const Bytes zero = {0x00, 0x00};
  const Bytes quoting = {0x22, 0x5c, 0x7b, 0x7d, 0x2c, 0x27};
  Bytes every;
  for (int b = 0; b < 256; ++b) every.push_back(static_cast<std::uint8_t>(b));
  auto blobs = c.exec("SELECT b FROM unnest($1::bytea[]) WITH ORDINALITY AS u(b, i) ORDER BY i",
                      Params().bytes_array({zero, Bytes{}, quoting, every}));
  ASSERT_TRUE(blobs) << c.last_error().message;
  ASSERT_EQ(blobs->size(), 4);
  EXPECT_EQ(blobs->bytes(0, 0), zero);
  EXPECT_TRUE(blobs->bytes(1, 0).empty());
  EXPECT_FALSE(blobs->is_null(1, 0));
  EXPECT_EQ(blobs->bytes(2, 0), quoting);
  EXPECT_EQ(blobs->bytes(3, 0), every);
  auto empty = c.exec("SELECT cardinality($1::text[]), cardinality($2::bigint[])",
                      Params().text_array({}).int64_array({}));
  ASSERT_TRUE(empty) << c.last_error().message;
  EXPECT_EQ(empty->int64(0, 0).value(), 0);
  EXPECT_EQ(empty->int64(0, 1).value(), 0);
}

TEST_F(LibpqTest, OnePipelineSegmentReturnsEveryResultInOrder) {
  auto c = connect();
  ASSERT_TRUE(c.exec(kCreate));
  ASSERT_TRUE(c.exec("TRUNCATE t"));
  c.send("BEGIN");
  for (int i = 0; i < 5; ++i) {
    c.send("INSERT INTO t (k, n) VALUES ($1, $2) RETURNING n",
           Params().text("order" + std::to_string(i)).int64(i * 10));
  }
  c.send("COMMIT");
  ASSERT_TRUE(c.sync());
  ASSERT_TRUE(c.next());  // BEGIN
  for (int i = 0; i < 5; ++i) {
    auto r = c.next();
    ASSERT_TRUE(r) << c.last_error().message;
    EXPECT_EQ(r->int64(0, 0).value(), i * 10);
  }
  ASSERT_TRUE(c.next());  // COMMIT
  ASSERT_TRUE(c.finish_segment());
  auto count = c.exec("SELECT count(*) FROM t WHERE k LIKE 'order%'");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->int64(0, 0).value(), 5);
}

TEST_F(LibpqTest, AFailedStatementAbortsItsSegmentAndTheConnectionStaysUsable) {
  auto c = connect();
  ASSERT_TRUE(c.exec(kCreate));
  ASSERT_TRUE(c.exec("INSERT INTO t (k, n) VALUES ('dup', 1) ON CONFLICT DO NOTHING"));
  c.send("BEGIN");
  c.send("INSERT INTO t (k, n) VALUES ('dup', 2)");
  c.send("INSERT INTO t (k, n) VALUES ('after-dup', 3)");
  c.send("COMMIT");
  ASSERT_TRUE(c.sync());
  ASSERT_TRUE(c.next());
  auto dup = c.next();
  ASSERT_FALSE(dup);
  EXPECT_EQ(c.last_error().sqlstate, "23505");
  EXPECT_EQ(c.last_error().code, Errc::internal);
  EXPECT_FALSE(c.last_error().connection_lost);
  EXPECT_FALSE(c.next());  // aborted with the segment
  ASSERT_TRUE(c.finish_segment());
  ASSERT_TRUE(c.usable());
  auto rows = c.exec("SELECT count(*) FROM t WHERE k = 'after-dup'");
  ASSERT_TRUE(rows) << c.last_error().message;
  EXPECT_EQ(rows->int64(0, 0).value(), 0);
  // The statements prepared in the aborted segment work in the next one.
  ASSERT_TRUE(
      c.exec("INSERT INTO t (k, n) VALUES ('dup', 2)"
             " ON CONFLICT (k) DO UPDATE SET n = excluded.n"));
}

TEST_F(LibpqTest, AWrongPasswordIsUnavailableAndTheReasonHoldsNoPassword) {
  const SecretBytes wrong = SecretBytes::copy_of(std::string_view("not-the-password-4f2a9c"));
  auto o = options(cluster_->primary_conninfo());
  o.password = &wrong;
  PgError e;
  auto c = Connection::open(o, {}, &e);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), make_error_code(Errc::store_unavailable));
  EXPECT_NE(e.message.find("password authentication failed"), std::string::npos) << e.message;
  EXPECT_EQ(e.message.find("not-the-password-4f2a9c"), std::string::npos);
  EXPECT_EQ(e.message.find(cluster_->password()), std::string::npos);
}

TEST_F(LibpqTest, AStandbyIsRefusedWhenReadWriteIsAskedAndTheNextHostIsTried) {
  PgError e;
  auto only_standby = Connection::open(
      options(cluster_->standby_conninfo() + " target_session_attrs=read-write"), {}, &e);
  ASSERT_FALSE(only_standby);
  EXPECT_EQ(only_standby.error(), make_error_code(Errc::store_unavailable));
  EXPECT_FALSE(e.message.empty());
  // Standby listed first, primary second: libpq moves on to the primary.
  auto both =
      Connection::open(options("host=127.0.0.1,127.0.0.1 port=" + cluster_->env("STANDBY_PORT") +
                               "," + cluster_->env("PRIMARY_PORT") +
                               " dbname=hookvault user=hookvault target_session_attrs=read-write"),
                       {}, &e);
  ASSERT_TRUE(both) << e.message;
  EXPECT_EQ(both->server(), "127.0.0.1:" + cluster_->env("PRIMARY_PORT"));
  auto ro = both->exec("SELECT pg_is_in_recovery()");
  ASSERT_TRUE(ro);
  EXPECT_FALSE(ro->boolean(0, 0).value());
}

TEST_F(LibpqTest, ATerminatedBackendIsAConnectionLost) {
  auto c = connect();
  ASSERT_TRUE(c.exec("SELECT 1"));
  cluster_->psql("primary", "SELECT pg_terminate_backend(" + std::to_string(c.backend_pid()) + ")");
  auto r = c.exec("SELECT 1", {}, std::chrono::steady_clock::now() + 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(Errc::store_unavailable));
  EXPECT_TRUE(c.last_error().connection_lost);
  EXPECT_FALSE(c.usable());
}

TEST_F(LibpqTest, ADeadlineBoundsAWaitAndLeavesTheConnectionUnusable) {
  auto c = connect();
  const auto start = std::chrono::steady_clock::now();
  auto r = c.exec("SELECT pg_sleep(30)", {}, start + 300ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(Errc::store_unavailable));
  EXPECT_LT(took, 5s);
  // Its results may still come: the connection cannot be trusted again.
  EXPECT_TRUE(c.last_error().connection_lost);
  EXPECT_FALSE(c.usable());
}

TEST_F(LibpqTest, TheStopDescriptorInterruptsAWait) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto o = options(cluster_->primary_conninfo());
  o.stop_fd = fds[0];
  auto c = Connection::open(o, {});
  ASSERT_TRUE(c);
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    ASSERT_EQ(::write(fds[1], "x", 1), 1);
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = c->exec("SELECT pg_sleep(30)");
  const auto took = std::chrono::steady_clock::now() - start;
  stopper.join();
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_FALSE(r);
  EXPECT_EQ(c->last_error().message, "stopped");
  EXPECT_LT(took, 5s);
}

// What PostgreSQL does when a commit's wait for the synchronous standby is
// cancelled: the commit succeeds, with a WARNING. The store must see that
// warning to answer 503: the commit is local only.
TEST_F(LibpqTest, ACancelledWaitForTheSynchronousStandbyIsAWarningOnTheCommit) {
  auto c = connect({"SET synchronous_commit = on"});
  ASSERT_TRUE(c.exec(kCreate));
  cluster_->run("stop-standby");
  const int pid = c.backend_pid();
  std::thread canceller([pid] {
    // The commit below waits for the stopped standby until cancelled.
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(100ms);
      const auto waiting = cluster_->psql(
          "primary", "SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
                         " AND wait_event = 'SyncRep'");
      if (waiting == "1") break;
    }
    cluster_->psql("primary", "SELECT pg_cancel_backend(" + std::to_string(pid) + ")");
  });
  c.send("BEGIN");
  c.send(
      "INSERT INTO t (k, n) VALUES ('unreplicated', 1)"
      " ON CONFLICT (k) DO UPDATE SET n = t.n + 1");
  c.send("COMMIT");
  ASSERT_TRUE(c.sync());
  ASSERT_TRUE(c.next());
  ASSERT_TRUE(c.next());
  auto commit = c.next(std::chrono::steady_clock::now() + 30s);
  canceller.join();
  ASSERT_TRUE(commit) << c.last_error().message;  // the server says: committed
  ASSERT_TRUE(c.finish_segment());
  const auto warnings = c.take_warnings();
  ASSERT_EQ(warnings.size(), 1U);
  EXPECT_NE(warnings[0].find("canceling wait for synchronous replication"), std::string::npos)
      << warnings[0];
  EXPECT_TRUE(c.take_warnings().empty());
  cluster_->run("start-standby");
}

}  // namespace
}  // namespace hookvault::store::pg
