#include "store/pg/schema.hpp"

#include <iterator>
#include <utility>

namespace hookvault::store::pg::schema {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

// Ends the open transaction after a failure (best effort: a lost connection
// ends it anyway).
void roll_back(Connection& c, std::optional<Clock::time_point> deadline) {
  if (!c.usable() || !c.in_transaction()) return;
  c.send_once("ROLLBACK");
  if (c.sync(deadline)) {
    static_cast<void>(c.next(deadline));
    static_cast<void>(c.finish_segment(deadline));
  }
}

// Reads every result of the segment; the last one's rows.
Result<Rows> read_segment(Connection& c, std::size_t results,
                          std::optional<Clock::time_point> deadline) {
  Result<Rows> last = err(Errc::internal);
  for (std::size_t i = 0; i < results; ++i) {
    last = c.next(deadline);
    if (!last) break;
  }
  const auto failure = last ? boost::system::error_code{} : last.error();
  if (auto end = c.finish_segment(deadline); !end) return end.error();
  if (failure) return failure;
  return last;
}

}  // namespace

Result<bool> ensure_schema(Connection& c, const WithinSchema& within, std::string* why,
                           std::optional<Clock::time_point> deadline) {
  const auto refuse = [&](std::string reason) -> Result<bool> {
    if (why != nullptr) *why = std::move(reason);
    roll_back(c, deadline);
    return Result<bool>(boost::system::in_place_error, err(Errc::store_unavailable));
  };
  const auto failed = [&](std::string_view doing) {
    return refuse(
        std::string(doing) + ": " + c.last_error().message +
        (c.last_error().sqlstate.empty() ? "" : " (SQLSTATE " + c.last_error().sqlstate + ")"));
  };

  c.send_once("BEGIN");
  c.send_once(kLockSchema, Params().int64(kSchemaLockClass));
  for (const char* sql : kCreate) c.send_once(sql);
  c.send_once(kSelectVersion);
  if (auto s = c.sync(deadline); !s) return failed("cannot reach the database");
  auto version = read_segment(c, 3 + std::size(kCreate), deadline);
  if (!version) return failed("cannot create the schema");
  const std::string found = version->text(0, 0);
  const bool fresh = found.empty();
  if (!fresh && found != kVersionText) {
    return refuse("the database holds hookvault's PostgreSQL schema version " + found +
                  "; this hookvault knows version " + kVersionText +
                  " only: run the hookvault that wrote it, or a newer one");
  }
  if (fresh) {
    c.send_once(kInsertVersion, Params().text(kVersionText));
    if (auto s = c.sync(deadline); !s) return failed("cannot reach the database");
    if (auto r = read_segment(c, 1, deadline); !r)
      return failed("cannot record the schema version");
  }
  if (within) {
    if (auto r = within(c, fresh); !r) {
      if (why != nullptr && why->empty()) *why = "cannot set up the new schema";
      roll_back(c, deadline);
      return Result<bool>(boost::system::in_place_error, r.error());
    }
  }
  c.send_once("COMMIT");
  if (auto s = c.sync(deadline); !s) return failed("cannot reach the database");
  if (auto r = read_segment(c, 1, deadline); !r) return failed("cannot commit the schema");
  return fresh;
}

}  // namespace hookvault::store::pg::schema
