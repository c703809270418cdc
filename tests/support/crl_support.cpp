#include "crl_support.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>

namespace hookvault::testing {
namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const noexcept { Free(p); }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Crl = std::unique_ptr<X509_CRL, Deleter<X509_CRL, X509_CRL_free>>;
using Revoked = std::unique_ptr<X509_REVOKED, Deleter<X509_REVOKED, X509_REVOKED_free>>;
using Time = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME, ASN1_TIME_free>>;

Cert read_cert(const std::filesystem::path& file) {
  Bio bio(BIO_new_file(file.c_str(), "r"));
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) throw std::runtime_error("make_crl: no certificate in " + file.string());
  return cert;
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("make_crl: ") + what + " failed");
}

}  // namespace

std::string make_crl(const std::filesystem::path& ca_cert, const std::filesystem::path& ca_key,
                     const CrlOptions& options) {
  const Cert ca = read_cert(ca_cert);
  Bio key_bio(BIO_new_file(ca_key.c_str(), "r"));
  const Key key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)
                        : nullptr);
  if (!key) throw std::runtime_error("make_crl: no private key in " + ca_key.string());

  Crl crl(X509_CRL_new());
  check(crl != nullptr, "X509_CRL_new");
  check(X509_CRL_set_version(crl.get(), 1) == 1, "X509_CRL_set_version");  // v2
  check(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get())) == 1,
        "X509_CRL_set_issuer_name");
  Time last(X509_gmtime_adj(nullptr, static_cast<long>(options.last_update.count())));
  Time next(X509_gmtime_adj(nullptr, static_cast<long>(options.next_update.count())));
  check(last && next, "X509_gmtime_adj");
  check(X509_CRL_set1_lastUpdate(crl.get(), last.get()) == 1, "X509_CRL_set1_lastUpdate");
  check(X509_CRL_set1_nextUpdate(crl.get(), next.get()) == 1, "X509_CRL_set1_nextUpdate");
  for (const auto& file : options.revoked) {
    const Cert cert = read_cert(file);
    Revoked entry(X509_REVOKED_new());
    check(entry != nullptr, "X509_REVOKED_new");
    check(X509_REVOKED_set_serialNumber(entry.get(), X509_get_serialNumber(cert.get())) == 1,
          "X509_REVOKED_set_serialNumber");
    check(X509_REVOKED_set_revocationDate(entry.get(), last.get()) == 1,
          "X509_REVOKED_set_revocationDate");
    check(X509_CRL_add0_revoked(crl.get(), entry.get()) == 1, "X509_CRL_add0_revoked");
    entry.release();  // owned by the CRL now
  }
  check(X509_CRL_sort(crl.get()) == 1, "X509_CRL_sort");
  check(X509_CRL_sign(crl.get(), key.get(), EVP_sha256()) > 0, "X509_CRL_sign");
  Bio out(BIO_new(BIO_s_mem()));
  check(out && PEM_write_bio_X509_CRL(out.get(), crl.get()) == 1, "PEM_write_bio_X509_CRL");
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace hookvault::testing
