// check_config(): what `hookvault check-config` adds to load_config(): every
// referenced file is opened and parsed the way `serve` will, and each problem
// becomes one line "FILE: dotted.key: problem". Private material (keys,
// secrets, the KEK) is read into SecretBytes and never appears in a message.

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "config/files.hpp"
#include "config/storage.hpp"
#include "crypto/secret_file.hpp"
#include "crypto/ssl_ptr.hpp"
#include "hookvault/config.hpp"
#include "hookvault/hybrid.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/process.hpp"

namespace hookvault {
namespace {

namespace fs = std::filesystem;
using config_internal::readable_by_group_or_others;

class Problems {
 public:
  explicit Problems(std::string file_name) : file_name_(std::move(file_name)) {}

  void add(std::string_view key, std::string_view problem) {
    lines_.push_back(file_name_ + ": " + std::string(key) + ": " + std::string(problem));
  }
  // A message that already starts with the key (ConfigError from load_secret).
  void add_keyed(std::string_view keyed_message) {
    lines_.push_back(file_name_ + ": " + std::string(keyed_message));
  }
  std::vector<std::string> take() { return std::move(lines_); }

 private:
  std::string file_name_;
  std::vector<std::string> lines_;
};

// PEM readers must never prompt on the terminal for a passphrase.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

void check_private_mode(Problems& problems, std::string_view key, const fs::path& file) {
  if (readable_by_group_or_others(file)) {
    problems.add(key, file.string() + " is readable by group or others (chmod 600)");
  }
}

BioPtr memory_bio(const SecretBytes& bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.reveal().data(), static_cast<int>(bytes.size())));
}

// Reads a PEM file (wiped when released); reports and returns nullopt on failure.
std::optional<SecretBytes> read_pem(Problems& problems, std::string_view key,
                                    const fs::path& file) {
  try {
    return read_secret_file(file, kMaxPemBytes, "PEM file");
  } catch (const std::exception& e) {
    problems.add(key, e.what());
    return std::nullopt;
  }
}

// Loads the first certificate of a PEM file; reports and returns null on failure.
X509Ptr load_certificate(Problems& problems, std::string_view key, const fs::path& file) {
  const auto pem = read_pem(problems, key, file);
  if (!pem) return nullptr;
  BioPtr bio = memory_bio(*pem);  // borrows *pem, which outlives it
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  ERR_clear_error();
  if (!cert) problems.add(key, file.string() + " holds no PEM certificate");
  return cert;
}

PkeyPtr load_private_key(Problems& problems, std::string_view key, const fs::path& file) {
  check_private_mode(problems, key, file);
  const auto pem = read_pem(problems, key, file);
  if (!pem) return nullptr;
  BioPtr bio = memory_bio(*pem);  // borrows *pem, which outlives it
  PkeyPtr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  ERR_clear_error();
  if (!pkey) {
    problems.add(
        key,
        file.string() + " holds no PEM private key (passphrase-protected keys are not supported)");
  }
  return pkey;
}

void check_tls_pair(Problems& problems, std::string_view cert_key, const fs::path& cert_file,
                    std::string_view key_key, const fs::path& key_file) {
  X509Ptr cert = load_certificate(problems, cert_key, cert_file);
  PkeyPtr pkey = load_private_key(problems, key_key, key_file);
  if (cert && pkey && X509_check_private_key(cert.get(), pkey.get()) != 1) {
    problems.add(key_key,
                 key_file.string() + " does not match the certificate of " + std::string(cert_key));
  }
  ERR_clear_error();
}

using X509CrlPtr = SslPtr<X509_CRL, X509_CRL_free>;

// Every certificate of a PEM file (a client CA file may hold several).
std::vector<X509Ptr> load_certificates(const SecretBytes& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = memory_bio(pem);
  while (bio) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  ERR_clear_error();
  return out;
}

// [admin] client_crl as the listener will use it: readable, one or more PEM
// CRLs, each issued and signed by a certificate of client_ca, none expired
// or not yet valid (an expired CRL refuses every client: config.hpp).
void check_client_crl(Problems& problems, const fs::path& crl_file, const fs::path& ca_file) {
  constexpr std::string_view kKey = "admin.client_crl";
  const auto pem = read_pem(problems, kKey, crl_file);
  if (!pem) return;
  std::vector<X509Ptr> cas;
  try {
    cas = load_certificates(read_secret_file(ca_file, kMaxPemBytes, "PEM file"));
  } catch (const std::exception&) {
    return;  // admin.client_ca reports it
  }
  BioPtr bio = memory_bio(*pem);  // borrows *pem, which outlives it
  int count = 0;
  while (bio) {
    X509CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, no_passphrase, nullptr));
    if (!crl) break;
    ++count;
    const std::string which = crl_file.string() + " (CRL " + std::to_string(count) + ")";
    bool signed_by_ca = false;
    for (const auto& ca : cas) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca.get())) == 0 &&
          X509_CRL_verify(crl.get(), X509_get0_pubkey(ca.get())) == 1) {
        signed_by_ca = true;
        break;
      }
    }
    ERR_clear_error();
    if (!signed_by_ca) {
      problems.add(kKey, which + " is not signed by the client CA " + ca_file.string());
    }
    if (X509_cmp_current_time(X509_CRL_get0_lastUpdate(crl.get())) > 0) {
      problems.add(kKey, which + " is not valid yet (its lastUpdate is in the future)");
    }
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
    if (next != nullptr && X509_cmp_current_time(next) <= 0) {
      problems.add(kKey, which +
                             " has expired (its nextUpdate has passed): with it every client "
                             "certificate would be refused; install a fresh CRL");
    }
  }
  ERR_clear_error();
  if (count == 0) problems.add(kKey, crl_file.string() + " holds no PEM CRL");
}

void check_storage(Problems& problems, const fs::path& db) {
  std::error_code ec;
  const auto status = fs::status(db, ec);
  if (fs::exists(status)) {
    if (!fs::is_regular_file(status)) {
      problems.add("storage.path", db.string() + " exists and is not a regular file");
    } else if (::access(db.c_str(), R_OK | W_OK) != 0) {
      problems.add("storage.path", db.string() + " is not writable");
    }
  }
  // The store holds wrapped keys, sealed payloads and the audit log; the
  // store creates these files 0600 (SQLite gives the -wal and -shm files the
  // database's mode), so anything wider was widened by hand or by a copy.
  for (const char* suffix : {"", "-wal", "-shm"}) {
    check_private_mode(problems, "storage.path", db.string() + suffix);
  }
  // SQLite's WAL and journal files live beside the database: the folder must be
  // writable, or creatable under the nearest existing ancestor.
  fs::path folder = db.parent_path();
  if (folder.empty()) folder = ".";
  fs::path existing = folder;
  while (!fs::exists(existing, ec) && existing.has_parent_path() &&
         existing.parent_path() != existing) {
    existing = existing.parent_path();
  }
  if (!fs::is_directory(existing, ec)) {
    problems.add("storage.path", existing.string() + " is not a folder");
  } else if (::access(existing.c_str(), W_OK | X_OK) != 0) {
    if (existing == folder) {
      problems.add("storage.path", "folder " + folder.string() + " is not writable");
    } else {
      problems.add("storage.path", "folder " + folder.string() + " does not exist and " +
                                       existing.string() + " is not writable to create it");
    }
  }
}

// Loads the secret as `serve` will and checks its file's mode; false when it
// cannot be loaded.
bool check_secret(Problems& problems, const SecretSource& source) {
  if (source.kind == SecretSource::Kind::file)
    check_private_mode(problems, source.key, source.path);
  try {
    SecretBytes secret = load_secret(source);
  } catch (const ConfigError& e) {
    problems.add_keyed(e.what());
    return false;
  }
  if (source.kind == SecretSource::Kind::credential) {
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) {
      check_private_mode(problems, source.key, fs::path(dir) / source.name);
    }
  }
  return true;
}

void check_source(Problems& problems, const SourceConfig& source, std::size_t index) {
  const std::string prefix = "sources[" + std::to_string(index) + "]";
  for (const auto& secret : source.secrets) check_secret(problems, secret);
  for (std::size_t i = 0; i < source.rsa_private_keys.size(); ++i) {
    const RsaKeySpec& spec = source.rsa_private_keys[i];
    const std::string key = prefix + ".rsa_private_keys[" + std::to_string(i) + "]";
    check_private_mode(problems, key, spec.file);
    try {
      // One key at a time, so every bad file is listed.
      HybridDecryptor decryptor = HybridDecryptor::load({spec}, source.accepted_algs);
    } catch (const std::exception& e) {
      problems.add(key, e.what());
    }
  }
  if (source.history) check_secret(problems, source.history->api_key);
}

// Opens the module, finds the token, logs in and finds the key, as `serve`
// will; the first step that fails is reported under the key that names it.
void check_pkcs11_kek(Problems& problems, const KekConfig& kek) {
  if (!check_secret(problems, kek.pin)) return;
  try {
    auto opened = open_configured_kek(kek);
  } catch (const Pkcs11Error& e) {
    switch (e.stage()) {
      case Pkcs11Error::Stage::module:
        problems.add("kek.module", e.what());
        break;
      case Pkcs11Error::Stage::token:
        problems.add("kek.token_label", e.what());
        break;
      case Pkcs11Error::Stage::login:
        problems.add(kek.pin.key, e.what());
        break;
      case Pkcs11Error::Stage::key:
        problems.add("kek.key_label", e.what());
        break;
    }
  } catch (const ConfigError& e) {  // the PIN, read again
    problems.add_keyed(e.what());
  } catch (const std::exception& e) {
    problems.add("kek.provider", e.what());
  }
}

// Every connection up to the caps holds a file descriptor: `serve` raises its
// soft RLIMIT_NOFILE to files_needed(), which the hard limit must allow.
// Checked against this process's limit: run check-config as the service runs
// (the unit's LimitNOFILE=, the container's --ulimit).
void check_file_limit(Problems& problems, const Config& config) {
  const std::uint64_t needed = files_needed(config);
  const std::uint64_t hard = file_limit().hard;
  if (needed <= hard) return;
  std::string what = std::to_string(config.server.max_connections) + " connections";
  if (config.admin.enabled) {
    what += ", admin.max_connections " + std::to_string(config.admin.max_connections);
  }
  what += " and " + std::to_string(kReservedFiles) + " files of hookvault's own need " +
          std::to_string(needed) + " open files, but the hard limit (RLIMIT_NOFILE) is " +
          std::to_string(hard) +
          ": raise it (LimitNOFILE= in the unit, `ulimit -Hn`, `docker run --ulimit nofile=`) "
          "or lower max_connections";
  problems.add("server.max_connections", what);
}

}  // namespace

std::vector<std::string> check_config(const Config& config) {
  Problems problems(config.file.string());

  check_tls_pair(problems, "server.tls_cert", config.server.tls_cert, "server.tls_key",
                 config.server.tls_key);

  if (config.admin.enabled) {
    check_tls_pair(problems, "admin.tls_cert", config.admin.tls_cert, "admin.tls_key",
                   config.admin.tls_key);
    load_certificate(problems, "admin.client_ca", config.admin.client_ca);
    if (!config.admin.client_crl.empty()) {
      check_client_crl(problems, config.admin.client_crl, config.admin.client_ca);
    }
  }

  if (config.kek.provider == "pkcs11") {
    check_pkcs11_kek(problems, config.kek);
  } else {
    check_private_mode(problems, "kek.file", config.kek.file);
    try {
      auto kek = open_file_kek(config.kek.file);
    } catch (const std::exception& e) {
      problems.add("kek.file", e.what());
    }
  }

  if (config.storage.backend == StorageBackend::postgresql) {
    for (const auto& [key, problem] : config_internal::check_postgresql(config.storage)) {
      problems.add(key, problem);
    }
  } else {
    check_storage(problems, config.storage.path);
  }
  check_file_limit(problems, config);

  for (std::size_t i = 0; i < config.sources.size(); ++i) {
    check_source(problems, config.sources[i], i);
  }
  return problems.take();
}

}  // namespace hookvault
