// `hookvault init` (see init.hpp): keys, certificates, secrets and a config for
// a local setup, with OpenSSL 3 APIs. Never overwrites a file. What the daemon
// never needs (the admin CA's key, the signer's key and certificate) goes to
// the offline folder beside DIR, never into DIR.

#include "hookvault/init.hpp"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "crypto/ssl_ptr.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {
namespace {

namespace fs = std::filesystem;

using BnPtr = SslPtr<BIGNUM, BN_free>;
using X509ExtPtr = SslPtr<X509_EXTENSION, X509_EXTENSION_free>;

constexpr int kLeafDays = 825;
constexpr int kCaDays = 3650;
constexpr std::string_view kServerSan = "DNS:localhost,IP:127.0.0.1,IP:::1";

// File names, relative to DIR.
constexpr std::string_view kServerCert = "tls/cert.pem";
constexpr std::string_view kServerKey = "tls/key.pem";
constexpr std::string_view kCaCert = "tls/admin-ca.pem";
constexpr std::string_view kAdminCert = "tls/admin-cert.pem";
constexpr std::string_view kAdminKey = "tls/admin-key.pem";
// In the offline folder (init.hpp), or where an older init put them.
constexpr std::string_view kCaKeyName = "admin-ca.key";
constexpr std::string_view kSignerCertName = "signer-cert.pem";
constexpr std::string_view kSignerKeyName = "signer-key.pem";
constexpr std::string_view kLegacyCaKey = "tls/admin-ca.key";
constexpr std::string_view kLegacySignerCert = "tls/signer-cert.pem";
constexpr std::string_view kLegacySignerKey = "tls/signer-key.pem";
constexpr std::string_view kRsaKey = "keys/dynamic_rsa.pem";
constexpr std::string_view kRsaPub = "keys/dynamic_rsa.pub.pem";
constexpr std::string_view kKek = "keys/kek.key";
constexpr std::string_view kDynamicSecret = "secrets/dynamic_webhook_secret";
constexpr std::string_view kNoditKey = "secrets/nodit_signing_key";
constexpr std::string_view kConfig = "hookvault.toml";

constexpr std::string_view kConfigText =
    R"(# hookvault development setup, written by `hookvault init`.
# Paths are relative to this file. See config/hookvault.example.toml for every key.

[server]
listen = "127.0.0.1:8443"
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
tls_min_version = "1.2"
threads = 0
max_body_bytes = 1048576

[storage]
path = "data/hookvault.db"

[kek]
provider = "file"
file = "keys/kek.key"

[admin]
listen = "127.0.0.1:9443"
tls_cert = "tls/admin-cert.pem"
tls_key = "tls/admin-key.pem"
client_ca = "tls/admin-ca.pem"
[[admin.clients]]
subject_cn = "signer"            # signer-cert.pem + signer-key.pem, in the -offline folder beside this one
roles = ["materials:read"]       # also "events:read", "metrics:read", "admin"

[log]
format = "text"
level = "info"

[[sources]]
name = "dynamic"
provider = "dynamic"
path = "/webhooks/dynamic"
secret_files = ["secrets/dynamic_webhook_secret"]    # replace with the secret Dynamic's dashboard shows
rsa_private_keys = ["keys/dynamic_rsa.pem"]          # public half: keys/dynamic_rsa.pub.pem
max_event_age = "0s"

[[sources]]
name = "nodit"
provider = "nodit"
path = "/webhooks/nodit"
secret_files = ["secrets/nodit_signing_key"]         # replace with the signing key Nodit's dashboard shows
)";

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("init: " + what); }

void check_ssl(bool ok, const char* what) {
  if (!ok) {
    ERR_clear_error();
    fail(std::string("OpenSSL: ") + what + " failed");
  }
}

std::string errno_text(int err) { return std::system_category().message(err); }

int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool occupied(const fs::path& p) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(p, ec));  // a dangling link counts: never replaced
}

// mkdir with mode 0700; an existing folder is left as it is.
void make_private_dir(const fs::path& p) {
  if (::mkdir(p.c_str(), 0700) == 0) {
    ::chmod(p.c_str(), 0700);  // exactly 0700 whatever the umask
    return;
  }
  const int err = errno;
  std::error_code ec;
  if (err == EEXIST && fs::is_directory(p, ec)) return;
  fail("cannot create folder " + p.string() + ": " + errno_text(err));
}

// Places `content` at `file` unless something is already there. The bytes go to
// a temporary file created with O_CREAT|O_EXCL and mode 0600 (mkostemp), are
// fsync'ed, get their final mode, and are then linked to `file`; link() (or
// renameat2(RENAME_NOREPLACE) where hard links are unsupported) fails with EEXIST
// instead of replacing an existing file. Returns false when `file` existed.
bool create_file(const fs::path& file, mode_t mode, const std::function<void(BIO*)>& write) {
  if (occupied(file)) return false;
  std::string temp = (file.parent_path() / ("." + file.filename().string() + ".tmp-XXXXXX"));
  Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (fd.get() < 0) {
    fail("cannot create a file in " + file.parent_path().string() + ": " + errno_text(errno));
  }
  bool placed = false;
  bool temp_left = true;
  try {
    {
      BioPtr bio(BIO_new_fd(fd.get(), BIO_NOCLOSE));
      check_ssl(bio != nullptr, "BIO_new_fd");
      write(bio.get());
      check_ssl(BIO_flush(bio.get()) == 1, "BIO_flush");
    }
    if (::fchmod(fd.get(), mode) != 0 || ::fsync(fd.get()) != 0) {
      fail("cannot write " + file.string() + ": " + errno_text(errno));
    }
    if (::close(fd.release()) != 0) {
      fail("cannot write " + file.string() + ": " + errno_text(errno));
    }
    if (::link(temp.c_str(), file.c_str()) == 0) {
      placed = true;
    } else if (errno != EEXIST) {
      if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, file.c_str(), RENAME_NOREPLACE) == 0) {
        placed = true;
        temp_left = false;  // renamed into place
      } else if (errno != EEXIST) {
        fail("cannot create " + file.string() + ": " + errno_text(errno));
      }
    }
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  if (temp_left) ::unlink(temp.c_str());
  if (placed) {
    Fd dir(::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() >= 0) ::fsync(dir.get());
  }
  return placed;
}

void write_bytes(BIO* bio, std::string_view bytes) {
  check_ssl(BIO_write(bio, bytes.data(), static_cast<int>(bytes.size())) ==
                static_cast<int>(bytes.size()),
            "BIO_write");
}

PkeyPtr read_private_key(const fs::path& file) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    fail("cannot read " + file.string());
  }
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    fail(file.string() +
         " holds no usable PEM private key (passphrase-protected keys are not supported)");
  }
  return key;
}

X509Ptr read_certificate(const fs::path& file) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!cert) {
    ERR_clear_error();
    fail(file.string() + " holds no PEM certificate");
  }
  return cert;
}

struct CertSpec {
  std::string common_name;
  bool ca = false;
  bool server = false;  // serverAuth + SAN localhost/127.0.0.1/::1
  bool client = false;  // clientAuth
  int days = kLeafDays;
};

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, std::string_view value) {
  X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, std::string(value).c_str()));
  check_ssl(ext != nullptr, "X509V3_EXT_nconf_nid");
  check_ssl(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

// A certificate for `key`, signed by (issuer, issuer_key), or self-signed when
// issuer is null.
X509Ptr make_certificate(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  check_ssl(cert != nullptr, "X509_new");
  check_ssl(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");

  BnPtr serial(BN_new());
  check_ssl(
      serial != nullptr && BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1,
      "BN_rand");
  check_ssl(BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr,
            "BN_to_ASN1_INTEGER");
  check_ssl(X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) != nullptr, "X509_gmtime_adj");
  check_ssl(X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.days, 0, nullptr) != nullptr,
            "X509_time_adj_ex");
  check_ssl(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");

  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto add_name = [&](const char* field, const std::string& value) {
    check_ssl(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                         reinterpret_cast<const unsigned char*>(value.c_str()), -1,
                                         -1, 0) == 1,
              "X509_NAME_add_entry_by_txt");
  };
  add_name("O", "hookvault development");
  add_name("CN", spec.common_name);
  check_ssl(X509_set_issuer_name(cert.get(),
                                 issuer != nullptr ? X509_get_subject_name(issuer) : name) == 1,
            "X509_set_issuer_name");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  if (spec.ca) {
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    // The self-signed server certificate is its own trust anchor (curl --cacert).
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
  }
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) {
    add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  }
  if (spec.server) {
    add_extension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), &ctx, NID_subject_alt_name, kServerSan);
  }
  if (spec.client) add_extension(cert.get(), &ctx, NID_ext_key_usage, "clientAuth");

  check_ssl(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0,
            "X509_sign");
  return cert;
}

std::string public_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check_ssl(bio != nullptr && PEM_write_bio_PUBKEY(bio.get(), key) == 1, "PEM_write_bio_PUBKEY");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// The steps of one init run, with the report of what happened to each file.
class Initializer {
 public:
  Initializer(fs::path dir, std::ostream& out)
      : dir_(std::move(dir)), offline_(offline_folder(dir_)), out_(out) {
    result_.config_file = dir_ / kConfig;
    result_.offline_dir = offline_;
    offline_name_ = fs::path("..") / offline_.filename();
    // An older init put these files into tls/: they are used where they are
    // (never overwritten or moved) and the operator is told to move them.
    ca_key_name_ = legacy_or_offline(kLegacyCaKey, kCaKeyName);
    const bool legacy_signer =
        occupied(dir_ / kLegacySignerCert) || occupied(dir_ / kLegacySignerKey);
    signer_cert_name_ =
        legacy_signer ? fs::path(kLegacySignerCert) : offline_name_ / kSignerCertName;
    signer_key_name_ = legacy_signer ? fs::path(kLegacySignerKey) : offline_name_ / kSignerKeyName;
  }

  InitResult run() {
    prepare_folder();
    out_ << "hookvault init: " << dir_.string() << "\n";
    for (const char* sub : {"tls", "keys", "secrets", "data"}) make_private_dir(dir_ / sub);

    // Public listener: self-signed, trusted as itself.
    KeyFile server_key(*this, kServerKey, [] { return ec_key(); });
    cert_file(kServerCert, [&] {
      return make_certificate({"localhost", false, true, false, kLeafDays}, server_key.get(),
                              nullptr, nullptr);
    });

    // Admin listener: a CA signs the listener's certificate and the signer's.
    // The CA's key lives in the offline folder: a new CA gets one there; an
    // existing CA's key is used only when it is still around (it may have
    // been moved off the host, as it should) and only to sign what is missing.
    const bool new_ca = !occupied(dir_ / kCaCert);
    std::optional<KeyFile> ca_key;
    if (new_ca || occupied(dir_ / ca_key_name_)) {
      if (!occupied(dir_ / ca_key_name_)) make_private_dir(offline_);
      ca_key.emplace(*this, ca_key_name_, [] { return ec_key(); });
    }
    const auto ca_signing_key = [&](std::string_view what) -> EVP_PKEY* {
      if (!ca_key) {
        fail(std::string(what) + " must be signed by the admin CA, whose key " +
             (dir_ / ca_key_name_).lexically_normal().string() +
             " is not here (moved off this host?): bring it back for this run, or remove " +
             (dir_ / kCaCert).string() + " to start a new admin CA");
      }
      return ca_key->get();
    };
    X509Ptr ca_cert;
    const auto ca = [&]() -> X509* {
      if (!ca_cert) ca_cert = read_certificate(dir_ / kCaCert);
      return ca_cert.get();
    };
    cert_file(kCaCert, [&] {
      return make_certificate({"hookvault admin CA", true, false, false, kCaDays}, ca_key->get(),
                              nullptr, nullptr);
    });
    KeyFile admin_key(*this, kAdminKey, [] { return ec_key(); });
    cert_file(kAdminCert, [&] {
      return make_certificate({"localhost", false, true, false, kLeafDays}, admin_key.get(), ca(),
                              ca_signing_key(kAdminCert));
    });
    // The signer's certificate and key belong to the signing service. Without
    // them and without the CA's key (both moved away) there is nothing to do.
    signer_made_ = occupied(dir_ / signer_cert_name_) || occupied(dir_ / signer_key_name_) ||
                   ca_key.has_value();
    if (signer_made_) {
      if (!occupied(dir_ / signer_key_name_))
        make_private_dir(dir_ / signer_key_name_.parent_path());
      KeyFile signer_key(*this, signer_key_name_, [] { return ec_key(); });
      cert_file(signer_cert_name_, [&] {
        return make_certificate({"signer", false, false, true, kLeafDays}, signer_key.get(), ca(),
                                ca_signing_key("the signer certificate"));
      });
    }

    // Dynamic's delegation key pair.
    KeyFile rsa_key(*this, kRsaKey, [] {
      PkeyPtr key(EVP_RSA_gen(4096));
      check_ssl(key != nullptr, "EVP_RSA_gen");
      return key;
    });
    result_.rsa_public_pem = public_pem(rsa_key.get());
    report(kRsaPub, create_file(dir_ / kRsaPub, 0644,
                                [&](BIO* bio) { write_bytes(bio, result_.rsa_public_pem); }));

    write_secret(kKek, kek_text());
    const bool dynamic_created = write_secret(kDynamicSecret, dynamic_secret());
    const bool nodit_created = write_secret(kNoditKey, nodit_key());

    report(kConfig,
           create_file(dir_ / kConfig, 0644, [](BIO* bio) { write_bytes(bio, kConfigText); }));

    print_instructions(dynamic_created || nodit_created);
    return std::move(result_);
  }

 private:
  // A private key file: generated and written (0600) when absent, otherwise kept
  // and read only when something must be signed or derived with it.
  class KeyFile {
   public:
    KeyFile(Initializer& init, const fs::path& name, const std::function<PkeyPtr()>& generate)
        : path_(init.dir_ / name) {
      if (occupied(path_)) {
        init.report(name, false);
        return;
      }
      key_ = generate();
      const bool created = create_file(path_, 0600, [&](BIO* bio) {
        check_ssl(
            PEM_write_bio_PrivateKey(bio, key_.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
            "PEM_write_bio_PrivateKey");
      });
      if (!created) key_.reset();  // lost a race: use the file that is there
      init.report(name, created);
    }
    EVP_PKEY* get() {
      if (!key_) key_ = read_private_key(path_);
      return key_.get();
    }

   private:
    fs::path path_;
    PkeyPtr key_;
  };

  static PkeyPtr ec_key() {
    PkeyPtr key(EVP_EC_gen("P-256"));
    check_ssl(key != nullptr, "EVP_EC_gen");
    return key;
  }

  void cert_file(const fs::path& name, const std::function<X509Ptr()>& make) {
    if (occupied(dir_ / name)) {
      report(name, false);
      return;
    }
    X509Ptr cert = make();
    report(name, create_file(dir_ / name, 0644, [&](BIO* bio) {
             check_ssl(PEM_write_bio_X509(bio, cert.get()) == 1, "PEM_write_bio_X509");
           }));
  }

  bool write_secret(std::string_view name, const SecretBytes& content) {
    if (occupied(dir_ / name)) {
      report(name, false);
      return false;
    }
    const bool created = create_file(dir_ / name, 0600,
                                     [&](BIO* bio) { write_bytes(bio, content.reveal_string()); });
    report(name, created);
    return created;
  }

  // 32 random bytes, base64, newline (kek.hpp ignores the newline).
  static SecretBytes kek_text() {
    const SecretBytes key = SecretBytes::random(32);
    SecretBytes text(45);  // 44 characters + the NUL EVP_EncodeBlock writes
    const int n = EVP_EncodeBlock(text.reveal_mutable().data(), key.reveal().data(),
                                  static_cast<int>(key.size()));
    check_ssl(n == 44, "EVP_EncodeBlock");
    text.reveal_mutable()[44] = '\n';
    return text;
  }

  // "dyn_" + 32 characters of the base64url alphabet (64 symbols: no bias).
  static SecretBytes dynamic_secret() {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const SecretBytes random = SecretBytes::random(32);
    SecretBytes text(4 + 32);
    auto out = text.reveal_mutable();
    out[0] = 'd';
    out[1] = 'y';
    out[2] = 'n';
    out[3] = '_';
    for (std::size_t i = 0; i < 32; ++i) {
      out[4 + i] = static_cast<std::uint8_t>(kAlphabet[random.reveal()[i] & 63]);
    }
    return text;
  }

  // 64 lowercase hex characters, like the signing keys Nodit issues.
  static SecretBytes nodit_key() {
    static constexpr char kDigits[] = "0123456789abcdef";
    const SecretBytes random = SecretBytes::random(32);
    SecretBytes text(64);
    auto out = text.reveal_mutable();
    for (std::size_t i = 0; i < 32; ++i) {
      out[2 * i] = static_cast<std::uint8_t>(kDigits[random.reveal()[i] >> 4]);
      out[2 * i + 1] = static_cast<std::uint8_t>(kDigits[random.reveal()[i] & 15]);
    }
    return text;
  }

  // Refuses to pair an existing certificate (or public key) with a new key or
  // CA, then creates DIR (0700 when new).
  void prepare_folder() const {
    const std::pair<fs::path, fs::path> needs[] = {
        {kServerCert, kServerKey},    {kAdminCert, kAdminKey},
        {kAdminCert, kCaCert},        {signer_cert_name_, signer_key_name_},
        {signer_cert_name_, kCaCert}, {kRsaPub, kRsaKey},
    };
    for (const auto& [have, need] : needs) {
      if (occupied(dir_ / have) && !occupied(dir_ / need)) {
        fail((dir_ / have).lexically_normal().string() + " exists but " +
             (dir_ / need).lexically_normal().string() + " does not; restore it or remove " +
             have.string() + " so init can make a new pair");
      }
    }
    std::error_code ec;
    if (occupied(dir_) && !fs::is_directory(dir_, ec)) fail(dir_.string() + " is not a folder");
    if (!occupied(dir_)) {
      if (dir_.has_parent_path()) {
        fs::create_directories(dir_.parent_path(), ec);
        if (ec) fail("cannot create folder " + dir_.parent_path().string() + ": " + ec.message());
      }
    }
    make_private_dir(dir_);
  }

  void report(const fs::path& name, bool created) {
    if (created) {
      result_.created.push_back(name);
      out_ << "  created " << name.string() << "\n";
    } else {
      result_.kept.push_back(name);
      out_ << "  kept existing " << name.string() << "\n";
    }
  }

  // DIR-offline beside DIR (init.hpp).
  static fs::path offline_folder(const fs::path& dir) {
    fs::path abs = fs::absolute(dir).lexically_normal();
    if (!abs.has_filename()) abs = abs.parent_path();  // "dev/" -> "dev"
    if (!abs.has_filename() || abs == abs.root_path()) {
      fail("cannot put the offline folder beside " + dir.string() + ": name a folder below /");
    }
    return abs.parent_path() / (abs.filename().string() + "-offline");
  }

  // `legacy` (relative to DIR) when an older init left it there, else the
  // offline folder's `name`.
  fs::path legacy_or_offline(std::string_view legacy, std::string_view name) const {
    if (occupied(dir_ / legacy)) return fs::path(legacy);
    return offline_name_ / name;
  }

  void print_instructions(bool secrets_created) {
    out_ << "\nDynamic delegation public key (" << kRsaPub << "):\n"
         << "paste it into Dynamic's dashboard as the delegated access encryption key.\n\n"
         << result_.rsa_public_pem << "\n";
    if (secrets_created) {
      out_ << "The webhook secrets " << kDynamicSecret << " and " << kNoditKey
           << " are random placeholders:\nreplace each with the value the provider's dashboard "
              "shows (Dynamic: the webhook secret; Nodit: the signing key), keeping mode 0600.\n\n";
    } else {
      out_ << "The webhook secrets " << kDynamicSecret << " and " << kNoditKey
           << " were kept: they must hold the values the providers' dashboards show.\n\n";
    }
    print_offline();
    out_ << "Next: hookvault check-config --config " << result_.config_file.string() << "\n"
         << "      hookvault serve --config " << result_.config_file.string() << "\n";
  }

  // Where the keys the daemon never needs went, and why; and the files an
  // older init left where the daemon can read them.
  void print_offline() {
    const fs::path ca_key = (dir_ / ca_key_name_).lexically_normal();
    const fs::path signer_cert = (dir_ / signer_cert_name_).lexically_normal();
    const fs::path signer_key = (dir_ / signer_key_name_).lexically_normal();
    out_ << "Keys the daemon never needs:\n"
         << "  " << ca_key.string() << "  the admin CA's key: it signs admin client certificates\n";
    if (signer_made_) {
      out_ << "  " << signer_cert.string() << ", " << signer_key.filename().string()
           << "  the signing service's certificate and key (CN=signer), trusted through " << kCaCert
           << "\n";
    }
    out_ << "The daemon must never be able to read them (a compromised daemon could mint admin\n"
            "client certificates): move "
         << offline_.string()
         << " off this host, keep the CA key offline and give\n"
            "the signer its certificate and key. The daemon needs only "
         << kCaCert << ".\n";
    for (const fs::path& f : {ca_key_name_, signer_cert_name_, signer_key_name_}) {
      if (f.begin()->string() != "tls" || !occupied(dir_ / f)) continue;
      out_ << "WARNING: " << (dir_ / f).string()
           << " was put there by an older init, where the daemon can read it: move it, e.g. "
              "mkdir -m 700 -p "
           << offline_.string() << " && mv " << (dir_ / f).string() << " " << offline_.string()
           << "/\n";
    }
    out_ << "\n";
  }

  fs::path dir_;
  fs::path offline_;       // absolute
  fs::path offline_name_;  // "../<name>-offline", relative to DIR
  fs::path ca_key_name_;   // relative to DIR
  fs::path signer_cert_name_;
  fs::path signer_key_name_;
  bool signer_made_ = false;  // the signer's files exist or were made
  std::ostream& out_;
  InitResult result_;
};

}  // namespace

InitResult run_init(const std::filesystem::path& dir, std::ostream& out) {
  return Initializer(dir, out).run();
}

}  // namespace hookvault
