// A separate sqlite3 connection to a store's file, as another process or an
// attacker with the disk would have: for reading what the store wrote and for
// tampering with it. Every SQLite call is checked with a gtest expectation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

struct sqlite3;

namespace hookvault::testing {

class RawDb {
 public:
  enum class Mode {
    read_only,   // the file must exist; writes fail
    read_write,  // the file must exist
    create,      // read-write, creating the file if needed
  };
  explicit RawDb(const std::filesystem::path& path, Mode mode = Mode::read_write);
  ~RawDb();  // expects the close to succeed: every statement was finalized
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Runs one or more statements; expects them to succeed.
  void exec(const std::string& sql);
  // The first column of the first row as text ("<null>" for NULL); expects a
  // row ("<no row>" when there is none).
  std::string text(const std::string& sql);
  // The bytes of the first column of the first row (a BLOB or TEXT); expects a row.
  std::string bytes(const std::string& sql);
  // The first column of the first row; expects a row whose value is an integer
  // (a NULL or a non-numeric text fails the test instead of reading as 0).
  std::int64_t integer(const std::string& sql);
  // Every row of `sql`, columns joined with '|' ("<null>" for NULL), rows
  // ended with '\n'; expects the statement to run to its end.
  std::string rows(const std::string& sql);

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace hookvault::testing
