// [storage] with backend = "postgresql" (storage.hpp).
#include "config/storage.hpp"

#include <libpq-fe.h>

#include <cstring>
#include <memory>

#include "hookvault/pg_store.hpp"
#include "hookvault/secret.hpp"

namespace hookvault::config_internal {
namespace {

struct OptionsFree {
  void operator()(PQconninfoOption* o) const noexcept {
    // Wiped first: the parse copied whatever the string held.
    for (PQconninfoOption* p = o; p->keyword != nullptr; ++p) {
      if (p->val != nullptr) secure_wipe(p->val, std::strlen(p->val));
    }
    PQconninfoFree(o);
  }
};

}  // namespace

std::optional<std::string> conninfo_problem(const std::string& conninfo) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, OptionsFree> options(PQconninfoParse(conninfo.c_str(), &error));
  if (error != nullptr) {
    // libpq's message may quote the string, which may hold a secret.
    secure_wipe(error, std::strlen(error));
    PQfreemem(error);
  }
  if (!options) return "is not a valid libpq connection string or URI";
  for (const PQconninfoOption* p = options.get(); p->keyword != nullptr; ++p) {
    if (std::strcmp(p->keyword, "password") == 0 && p->val != nullptr) {
      return "holds a password: passwords are never written inline; give it with "
             "password_file, password_env or password_credential";
    }
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> check_postgresql(const StorageConfig& storage) {
  std::vector<std::pair<std::string, std::string>> problems;
  PgStoreOptions options;
  options.conninfo = storage.conninfo;
  if (storage.password) {
    try {
      options.password = std::make_shared<const SecretBytes>(load_secret(*storage.password));
    } catch (const std::exception& e) {
      problems.emplace_back(storage.password->key, e.what());
      return problems;
    }
  }
  std::string why;
  auto schema = check_pg_schema(options, &why);
  if (!schema) {
    problems.emplace_back("storage.conninfo", "cannot connect to the database: " + why);
  } else if (!schema->empty()) {
    problems.emplace_back("storage.conninfo", *schema);
  }
  return problems;
}

}  // namespace hookvault::config_internal
