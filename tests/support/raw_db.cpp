#include "raw_db.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <charconv>

namespace hookvault::testing {

namespace {

int open_flags(RawDb::Mode mode) {
  switch (mode) {
    case RawDb::Mode::read_only:
      return SQLITE_OPEN_READONLY;
    case RawDb::Mode::read_write:
      return SQLITE_OPEN_READWRITE;
    case RawDb::Mode::create:
      return SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  }
  return SQLITE_OPEN_READONLY;
}

std::string column_text(sqlite3_stmt* stmt, int i) {
  const auto* t = sqlite3_column_text(stmt, i);
  return t ? reinterpret_cast<const char*>(t) : "<null>";
}

}  // namespace

RawDb::RawDb(const std::filesystem::path& path, Mode mode) {
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, open_flags(mode), nullptr), SQLITE_OK) << path;
  EXPECT_EQ(sqlite3_busy_timeout(db_, 5000), SQLITE_OK);
}

RawDb::~RawDb() { EXPECT_EQ(sqlite3_close(db_), SQLITE_OK); }

void RawDb::exec(const std::string& sql) {
  char* msg = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (msg ? msg : "");
  sqlite3_free(msg);
}

std::string RawDb::text(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  std::string out = "<no row>";
  const int rc = sqlite3_step(stmt);
  EXPECT_EQ(rc, SQLITE_ROW) << sql;
  if (rc == SQLITE_ROW) out = column_text(stmt, 0);
  EXPECT_EQ(sqlite3_finalize(stmt), SQLITE_OK) << sql;
  return out;
}

std::string RawDb::bytes(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  std::string out;
  const int rc = sqlite3_step(stmt);
  EXPECT_EQ(rc, SQLITE_ROW) << sql;
  if (rc == SQLITE_ROW) {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, 0));
    out.assign(data ? data : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0)));
  }
  EXPECT_EQ(sqlite3_finalize(stmt), SQLITE_OK) << sql;
  return out;
}

std::int64_t RawDb::integer(const std::string& sql) {
  const std::string t = text(sql);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  EXPECT_TRUE(ec == std::errc() && end == t.data() + t.size()) << sql << ": not an integer: " << t;
  return v;
}

std::string RawDb::rows(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  std::string out;
  int rc = SQLITE_DONE;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      out += (i ? "|" : "");
      out += column_text(stmt, i);
    }
    out += "\n";
  }
  EXPECT_EQ(rc, SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db_);
  EXPECT_EQ(sqlite3_finalize(stmt), SQLITE_OK) << sql;
  return out;
}

}  // namespace hookvault::testing
