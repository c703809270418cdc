#include "test_support.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "hookvault/base64.hpp"
#include "hookvault/bytes.hpp"

namespace hookvault::testing {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("openssl: ") + what);
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  check(ext != nullptr, "X509V3_EXT_nconf_nid");
  check(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

// PEM text written by `write` into a memory BIO.
template <class Write>
std::string to_pem(Write write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio != nullptr, "BIO_new");
  check(write(bio.get()), "PEM_write");
  return bio_string(bio.get());
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/hookvault-test-XXXXXX";
  check(mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

RsaPair generate_rsa(int bits) {
  PkeyPtr key(EVP_RSA_gen(static_cast<unsigned>(bits)));
  check(key != nullptr, "EVP_RSA_gen");
  BioPtr priv(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  BioPtr pub(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PUBKEY(pub.get(), key.get()) == 1, "PEM_write_bio_PUBKEY");
  return {bio_string(priv.get()), bio_string(pub.get())};
}

const RsaPair& shared_rsa(int bits) {
  static std::mutex mu;
  static std::map<int, RsaPair> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(bits);
  if (it == cache.end()) it = cache.emplace(bits, generate_rsa(bits)).first;
  return it->second;
}

Json hybrid_encrypt(const std::string& public_pem, std::string_view plaintext,
                    std::optional<std::string> kid, HybridParts* raw_parts) {
  BioPtr bio(BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size())));
  PkeyPtr pub(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  check(pub != nullptr, "PEM_read_bio_PUBKEY");

  unsigned char key[32], iv[16], tag[16];
  check(RAND_bytes(key, sizeof key) == 1 && RAND_bytes(iv, sizeof iv) == 1, "RAND_bytes");

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  check(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1, "init");
  check(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 16, nullptr) == 1, "ivlen");
  check(EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key, iv) == 1, "key");
  std::string ct(plaintext.size(), '\0');
  int len = 0;
  check(EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(ct.data()), &len,
                          reinterpret_cast<const unsigned char*>(plaintext.data()),
                          static_cast<int>(plaintext.size())) == 1,
        "update");
  int fin = 0;
  check(
      EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(ct.data()) + len, &fin) == 1,
      "final");
  check(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag) == 1, "tag");

  PkeyCtxPtr pctx(EVP_PKEY_CTX_new(pub.get(), nullptr));
  check(EVP_PKEY_encrypt_init(pctx.get()) == 1, "encrypt_init");
  check(EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_OAEP_PADDING) == 1, "oaep");
  check(EVP_PKEY_CTX_set_rsa_oaep_md(pctx.get(), EVP_sha256()) == 1, "oaep md");
  check(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx.get(), EVP_sha256()) == 1, "mgf1 md");
  std::size_t ek_len = 0;
  check(EVP_PKEY_encrypt(pctx.get(), nullptr, &ek_len, key, sizeof key) == 1, "ek len");
  std::string ek(ek_len, '\0');
  check(EVP_PKEY_encrypt(pctx.get(), reinterpret_cast<unsigned char*>(ek.data()), &ek_len, key,
                         sizeof key) == 1,
        "encrypt");
  ek.resize(ek_len);
  OPENSSL_cleanse(key, sizeof key);

  std::string iv_s(reinterpret_cast<char*>(iv), sizeof iv);
  std::string tag_s(reinterpret_cast<char*>(tag), sizeof tag);
  if (raw_parts) *raw_parts = {iv_s, ct, tag_s, ek};
  Json env = Json::object();
  env["alg"] = "HYBRID-RSA-AES-256";
  env["iv"] = base64url_encode(as_bytes(iv_s));
  env["ct"] = base64url_encode(as_bytes(ct));
  env["tag"] = base64url_encode(as_bytes(tag_s));
  env["ek"] = base64url_encode(as_bytes(ek));
  if (kid) env["kid"] = *kid;
  return env;
}

std::string hmac_hex(std::string_view key, std::string_view message) {
  unsigned char mac[32];
  unsigned int len = sizeof mac;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return to_hex(ByteView(mac, len));
}

double metric_sample(const std::string& rendered, const std::string& name) {
  std::istringstream lines(rendered);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ' ') {
      return std::stod(line.substr(name.size() + 1));
    }
  }
  return -1;
}

std::size_t count_of(std::string_view text, std::string_view needle) {
  std::size_t seen = 0;
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) {
    ++seen;
  }
  return seen;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

void write_file(const std::filesystem::path& p, std::string_view content, int mode) {
  std::filesystem::create_directories(p.parent_path());
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    check(out.good(), "write_file");
  }
  ::chmod(p.c_str(), static_cast<mode_t>(mode));
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Json> json_lines(std::string_view text) {
  std::vector<Json> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) out.push_back(Json::parse(line));
  }
  return out;
}

std::pair<int, std::string> run_shell(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TlsFiles write_self_signed_cert(const std::filesystem::path& dir) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  X509Ptr cert(X509_new());
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");
  std::uint64_t serial = 0;
  check(RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) == 1, "RAND_bytes");
  check(ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), (serial >> 1) | 1) == 1,
        "ASN1_INTEGER_set_uint64");
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr, "X509_gmtime_adj");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600) != nullptr,
        "X509_gmtime_adj");
  check(X509_set_pubkey(cert.get(), key.get()) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>("hookvault test server"),
                                   -1, -1, 0) == 1,
        "X509_NAME_add_entry_by_txt");
  check(X509_set_issuer_name(cert.get(), name) == 1, "X509_set_issuer_name");
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
  add_extension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), &ctx, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

  TlsFiles files{dir / "cert.pem", dir / "key.pem"};
  write_file(files.cert, to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()) == 1; }),
             0644);
  write_file(files.key, to_pem([&](BIO* b) {
               return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr,
                                               nullptr) == 1;
             }),
             0600);
  return files;
}

}  // namespace hookvault::testing
