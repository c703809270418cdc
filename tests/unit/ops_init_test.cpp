#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cctype>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "hookvault/config.hpp"
#include "hookvault/init.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;

// Relative to DIR ("dev"); the offline folder is DIR's sibling "dev-offline".
const char* const kPrivateFiles[] = {
    "tls/key.pem",
    "tls/admin-key.pem",
    "../dev-offline/admin-ca.key",
    "../dev-offline/signer-key.pem",
    "keys/dynamic_rsa.pem",
    "keys/kek.key",
    "secrets/dynamic_webhook_secret",
    "secrets/nodit_signing_key",
};
const char* const kPublicFiles[] = {
    "hookvault.toml",     "tls/cert.pem",
    "tls/admin-cert.pem", "../dev-offline/signer-cert.pem",
    "tls/admin-ca.pem",   "keys/dynamic_rsa.pub.pem",
};

X509Ptr load_cert(const fs::path& p) {
  BioPtr bio(BIO_new_file(p.c_str(), "r"));
  return X509Ptr(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

PkeyPtr load_key(const fs::path& p) {
  BioPtr bio(BIO_new_file(p.c_str(), "r"));
  return PkeyPtr(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

// X509_verify_cert of `leaf` against the single trust anchor `anchor`, for `purpose`.
int verify(X509* leaf, X509* anchor, int purpose, const char* host = nullptr,
           const char* ip = nullptr) {
  StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), anchor);
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  if (host != nullptr) X509_VERIFY_PARAM_set1_host(param, host, 0);
  if (ip != nullptr) X509_VERIFY_PARAM_set1_ip_asc(param, ip);
  const int ok = X509_verify_cert(ctx.get());
  return ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx.get());
}

// One init shared by the tests: RSA-4096 generation takes a while.
class OpsInit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::ostringstream out;
    result_ = new InitResult(run_init(dir_->path() / "dev", out));
    output_ = new std::string(out.str());
  }
  static void TearDownTestSuite() {
    delete output_;
    delete result_;
    delete dir_;
  }
  static fs::path root() { return dir_->path() / "dev"; }
  static fs::path offline() { return dir_->path() / "dev-offline"; }

  static TempDir* dir_;
  static InitResult* result_;
  static std::string* output_;
};
TempDir* OpsInit::dir_ = nullptr;
InitResult* OpsInit::result_ = nullptr;
std::string* OpsInit::output_ = nullptr;

TEST_F(OpsInit, CreatesEveryFile) {
  EXPECT_EQ(result_->config_file, root() / "hookvault.toml");
  EXPECT_TRUE(result_->kept.empty());
  EXPECT_EQ(result_->created.size(), std::size(kPrivateFiles) + std::size(kPublicFiles));
  for (const char* f : kPrivateFiles) EXPECT_TRUE(fs::is_regular_file(root() / f)) << f;
  for (const char* f : kPublicFiles) EXPECT_TRUE(fs::is_regular_file(root() / f)) << f;
  for (const char* sub : {"tls", "keys", "secrets", "data"}) {
    EXPECT_TRUE(fs::is_directory(root() / sub)) << sub;
  }
  // No temporary file is left behind.
  for (const auto& entry : fs::recursive_directory_iterator(root())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}

TEST_F(OpsInit, GeneratedConfigPassesCheckConfig) {
  const Config config = load_config(result_->config_file);
  EXPECT_EQ(config.server.listen.host, "127.0.0.1");
  EXPECT_EQ(config.server.listen.port, 8443);
  EXPECT_TRUE(config.admin.enabled);
  EXPECT_EQ(config.admin.listen.port, 9443);
  EXPECT_EQ(config.storage.path, root() / "data/hookvault.db");
  EXPECT_EQ(config.log.format, "text");
  ASSERT_EQ(config.sources.size(), 2U);
  EXPECT_EQ(config.sources[0].name, "dynamic");
  EXPECT_EQ(config.sources[1].name, "nodit");
  EXPECT_FALSE(config.sources[1].history.has_value());
  const auto problems = check_config(config);
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  EXPECT_TRUE(problems.empty()) << all;
}

TEST_F(OpsInit, PrivateMaterialIsOwnerOnly) {
  for (const char* f : kPrivateFiles) EXPECT_EQ(mode_of(root() / f), 0600U) << f;
  for (const char* sub : {"tls", "keys", "secrets", "data"}) {
    EXPECT_EQ(mode_of(root() / sub), 0700U) << sub;
  }
  EXPECT_EQ(mode_of(root()), 0700U);
}

TEST_F(OpsInit, SecretsHaveTheProvidersShape) {
  const std::string dyn = read_file(root() / "secrets/dynamic_webhook_secret");
  ASSERT_EQ(dyn.size(), 36U);
  EXPECT_EQ(dyn.substr(0, 4), "dyn_");
  for (char c : dyn.substr(4))
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  const std::string nodit = read_file(root() / "secrets/nodit_signing_key");
  ASSERT_EQ(nodit.size(), 64U);
  for (char c : nodit) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  EXPECT_EQ(read_file(root() / "keys/kek.key").size(), 45U);  // base64 of 32 bytes + newline
}

TEST_F(OpsInit, PrintsThePublicKeyButNoSecret) {
  const std::string pub = read_file(root() / "keys/dynamic_rsa.pub.pem");
  EXPECT_EQ(pub, result_->rsa_public_pem);
  EXPECT_NE(output_->find(pub), std::string::npos);
  EXPECT_NE(output_->find("Dynamic's dashboard"), std::string::npos);
  EXPECT_NE(output_->find("delegated access encryption key"), std::string::npos);
  EXPECT_NE(output_->find("placeholders"), std::string::npos);
  EXPECT_EQ(output_->find("PRIVATE KEY"), std::string::npos);
  for (const char* f : kPrivateFiles) {
    const std::string content = read_file(root() / f);
    EXPECT_EQ(output_->find(content.substr(0, 40)), std::string::npos) << f;
  }
  EXPECT_EQ(output_->find(read_file(root() / "secrets/dynamic_webhook_secret")), std::string::npos);
  EXPECT_EQ(output_->find(read_file(root() / "secrets/nodit_signing_key")), std::string::npos);

  PkeyPtr key = load_key(root() / "keys/dynamic_rsa.pem");
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 4096);
}

TEST_F(OpsInit, ServerCertificateIsForLocalhost) {
  X509Ptr cert = load_cert(root() / "tls/cert.pem");
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_host(cert.get(), "example.com", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_ip_asc(cert.get(), "10.0.0.1", 0), 1);

  PkeyPtr key = load_key(root() / "tls/key.pem");
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_EC);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);

  // A client that trusts this certificate accepts it for 127.0.0.1 and localhost.
  EXPECT_EQ(verify(cert.get(), cert.get(), X509_PURPOSE_SSL_SERVER, "localhost"), X509_V_OK);
  EXPECT_EQ(verify(cert.get(), cert.get(), X509_PURPOSE_SSL_SERVER, nullptr, "127.0.0.1"),
            X509_V_OK);

  // Valid for 825 days.
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(cert.get()),
                           X509_get0_notAfter(cert.get())),
            1);
  EXPECT_EQ(days, 825);
}

TEST_F(OpsInit, AdminCertificatesChainToTheAdminCa) {
  X509Ptr ca = load_cert(root() / "tls/admin-ca.pem");
  X509Ptr admin = load_cert(root() / "tls/admin-cert.pem");
  X509Ptr signer = load_cert(offline() / "signer-cert.pem");
  ASSERT_TRUE(ca && admin && signer);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_check_ca(signer.get()), 0);

  EXPECT_EQ(verify(signer.get(), ca.get(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_EQ(verify(admin.get(), ca.get(), X509_PURPOSE_SSL_SERVER, "localhost"), X509_V_OK);
  EXPECT_EQ(verify(admin.get(), ca.get(), X509_PURPOSE_SSL_SERVER, nullptr, "127.0.0.1"),
            X509_V_OK);
  // The signer certificate is for clients only; the server's is not from this CA.
  EXPECT_NE(verify(signer.get(), ca.get(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
  X509Ptr server = load_cert(root() / "tls/cert.pem");
  EXPECT_NE(verify(server.get(), ca.get(), X509_PURPOSE_SSL_SERVER), X509_V_OK);

  char cn[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(signer.get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "signer");

  PkeyPtr signer_key = load_key(offline() / "signer-key.pem");
  PkeyPtr admin_key = load_key(root() / "tls/admin-key.pem");
  PkeyPtr ca_key = load_key(offline() / "admin-ca.key");
  ASSERT_TRUE(signer_key && admin_key && ca_key);
  EXPECT_EQ(X509_check_private_key(signer.get(), signer_key.get()), 1);
  EXPECT_EQ(X509_check_private_key(admin.get(), admin_key.get()), 1);
  EXPECT_EQ(X509_check_private_key(ca.get(), ca_key.get()), 1);
}

TEST_F(OpsInit, SecondRunKeepsEveryFileByteIdentical) {
  std::map<fs::path, std::string> before;
  for (const auto& entry : fs::recursive_directory_iterator(dir_->path())) {
    if (entry.is_regular_file()) before[entry.path()] = read_file(entry.path());
  }
  std::ostringstream out;
  const InitResult again = run_init(root(), out);
  EXPECT_TRUE(again.created.empty());
  EXPECT_EQ(again.kept.size(), std::size(kPrivateFiles) + std::size(kPublicFiles));
  EXPECT_EQ(again.rsa_public_pem, result_->rsa_public_pem);
  EXPECT_NE(out.str().find("kept existing tls/key.pem"), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find("created"), std::string::npos) << out.str();

  std::map<fs::path, std::string> after;
  for (const auto& entry : fs::recursive_directory_iterator(dir_->path())) {
    if (entry.is_regular_file()) after[entry.path()] = read_file(entry.path());
  }
  EXPECT_EQ(before, after);
  for (const char* f : kPrivateFiles) EXPECT_EQ(mode_of(root() / f), 0600U) << f;
}

// The audit finding: init wrote the admin CA's key and the signer's key into
// DIR/tls, which the README chowns to the service user and Docker mounts into
// the container, so a compromised daemon could mint admin client
// certificates. Now no file under DIR is the private key of the admin CA or
// of the signer certificate; they are in DIR-offline (0700, files 0600), and
// init says where they went and why.
TEST_F(OpsInit, KeysTheDaemonNeverNeedsAreNotInItsFolder) {
  X509Ptr ca = load_cert(root() / "tls/admin-ca.pem");
  ASSERT_TRUE(ca);
  std::vector<X509Ptr> not_for_the_daemon;
  not_for_the_daemon.push_back(std::move(ca));
  not_for_the_daemon.push_back(load_cert(offline() / "signer-cert.pem"));
  ASSERT_TRUE(not_for_the_daemon.back());
  for (const auto& entry : fs::recursive_directory_iterator(root())) {
    if (!entry.is_regular_file()) continue;
    PkeyPtr key = load_key(entry.path());
    if (!key) continue;
    for (const auto& cert : not_for_the_daemon) {
      EXPECT_NE(X509_check_private_key(cert.get(), key.get()), 1)
          << entry.path() << " is the key of a certificate the daemon must not be able to sign";
    }
  }
  EXPECT_EQ(result_->offline_dir, offline());
  EXPECT_EQ(mode_of(offline()), 0700U);
  EXPECT_NE(output_->find(offline().string()), std::string::npos) << *output_;
  EXPECT_NE(output_->find("off this host"), std::string::npos) << *output_;
  EXPECT_NE(output_->find("mint admin"), std::string::npos) << *output_;
  // The config names nothing of the offline folder.
  EXPECT_EQ(read_file(root() / "hookvault.toml").find("offline/"), std::string::npos);
}

// Separate folders: these tests change files.

// Moving the offline folder off the host, as init says to, leaves a setup
// that init runs on again without complaint and without making anything new;
// only a certificate that must be signed anew needs the CA key back.
TEST(OpsInitRepair, TheOfflineFolderMovedAwayChangesNothingUntilACertificateNeedsTheCa) {
  TempDir dir;
  std::ostringstream out;
  run_init(dir / "dev", out);
  fs::remove_all(dir / "dev-offline");
  std::ostringstream again;
  const InitResult r = run_init(dir / "dev", again);
  EXPECT_TRUE(r.created.empty()) << again.str();
  EXPECT_FALSE(fs::exists(dir / "dev-offline"));
  fs::remove(dir / "dev/tls/admin-cert.pem");
  try {
    std::ostringstream third;
    run_init(dir / "dev", third);
    FAIL() << "signed a certificate without the CA key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("dev-offline/admin-ca.key"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "dev/tls/admin-cert.pem"));
}

// A folder an older init made (the CA's and the signer's keys in tls/) is
// used as it is: nothing is moved or made twice, and each file is named in a
// warning with the command that moves it.
TEST(OpsInitRepair, AnOlderLayoutIsKeptAndEachKeyInItIsNamedToBeMoved) {
  TempDir dir;
  std::ostringstream out;
  run_init(dir / "dev", out);
  for (const char* f : {"admin-ca.key", "signer-cert.pem", "signer-key.pem"}) {
    fs::rename(dir / "dev-offline" / f, dir / "dev/tls" / f);
  }
  fs::remove(dir / "dev-offline");
  std::ostringstream again;
  const InitResult r = run_init(dir / "dev", again);
  EXPECT_TRUE(r.created.empty()) << again.str();
  EXPECT_FALSE(fs::exists(dir / "dev-offline"));
  for (const char* f : {"admin-ca.key", "signer-cert.pem", "signer-key.pem"}) {
    const std::string path = (dir / "dev/tls" / f).string();
    EXPECT_NE(again.str().find("WARNING: " + path), std::string::npos) << again.str();
    EXPECT_NE(again.str().find("&& mv " + path + " "), std::string::npos) << again.str();
  }
}

TEST(OpsInitRepair, MissingCertificateIsMadeFromTheKeptKey) {
  TempDir dir;
  std::ostringstream out;
  run_init(dir / "dev", out);
  const std::string key = read_file(dir / "dev/tls/admin-key.pem");
  const std::string signer = read_file(dir / "dev-offline/signer-cert.pem");
  fs::remove(dir / "dev/tls/admin-cert.pem");
  std::ostringstream again;
  const InitResult r = run_init(dir / "dev", again);
  ASSERT_EQ(r.created.size(), 1U);
  EXPECT_EQ(r.created[0], fs::path("tls/admin-cert.pem"));
  EXPECT_EQ(read_file(dir / "dev/tls/admin-key.pem"), key);
  EXPECT_EQ(read_file(dir / "dev-offline/signer-cert.pem"), signer);
  X509Ptr ca = load_cert(dir / "dev/tls/admin-ca.pem");
  X509Ptr admin = load_cert(dir / "dev/tls/admin-cert.pem");
  PkeyPtr admin_key = load_key(dir / "dev/tls/admin-key.pem");
  EXPECT_EQ(verify(admin.get(), ca.get(), X509_PURPOSE_SSL_SERVER, "localhost"), X509_V_OK);
  EXPECT_EQ(X509_check_private_key(admin.get(), admin_key.get()), 1);
}

TEST(OpsInitRepair, CertificateWithoutItsKeyIsAnErrorAndNothingIsWritten) {
  TempDir dir;
  std::ostringstream out;
  run_init(dir / "dev", out);
  fs::remove(dir / "dev/tls/key.pem");
  const std::string cert = read_file(dir / "dev/tls/cert.pem");
  std::ostringstream again;
  try {
    run_init(dir / "dev", again);
    FAIL() << "accepted a certificate without its key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("tls/key.pem"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "dev/tls/key.pem"));
  EXPECT_EQ(read_file(dir / "dev/tls/cert.pem"), cert);
}

TEST(OpsInitRepair, ExistingFilesOfTheOperatorAreKept) {
  TempDir dir;
  fs::create_directories(dir / "dev/secrets");
  testing::write_file(dir / "dev/secrets/dynamic_webhook_secret", "dyn_from_the_dashboard");
  testing::write_file(dir / "dev/hookvault.toml", "# mine\n", 0644);
  std::ostringstream out;
  const InitResult r = run_init(dir / "dev", out);
  EXPECT_EQ(read_file(dir / "dev/secrets/dynamic_webhook_secret"), "dyn_from_the_dashboard");
  EXPECT_EQ(read_file(dir / "dev/hookvault.toml"), "# mine\n");
  EXPECT_NE(out.str().find("kept existing secrets/dynamic_webhook_secret"), std::string::npos);
  EXPECT_NE(out.str().find("kept existing hookvault.toml"), std::string::npos);
  EXPECT_EQ(r.kept.size(), 2U);
}

TEST(OpsInitRepair, PathThatIsAFileIsAnError) {
  TempDir dir;
  testing::write_file(dir / "file", "x");
  std::ostringstream out;
  EXPECT_THROW(run_init(dir / "file", out), std::runtime_error);
}

}  // namespace
}  // namespace hookvault
