// Tests of the crypto stage: base64, the hybrid envelope, record AEAD and KEK.
//
// In Tink's habit, every bit flip and every truncation of authenticated data
// must fail. Secrets are compared with SecretBytes::equals(), never printed;
// failures print only error names.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/aead.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/hybrid.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

using testing::HybridParts;
using testing::shared_rsa;
using testing::TempDir;
using testing::write_file;

// ---------------------------------------------------------------------------
// Helpers

// "ok" or the error's stable name: what failure messages may print.
template <class T>
std::string outcome(const Result<T>& r) {
  return r ? std::string("ok") : std::string(error_name(to_errc(r.error())));
}

std::string decoded(std::string_view text) {
  auto r = base64_decode_lenient(text);
  if (!r) return "<" + std::string(error_name(to_errc(r.error()))) + ">";
  return std::string(as_string(*r));
}

template <auto Free>
struct Free_ {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using Bio = std::unique_ptr<BIO, Free_<BIO_free_all>>;
using Pkey = std::unique_ptr<EVP_PKEY, Free_<EVP_PKEY_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Free_<EVP_PKEY_CTX_free>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Free_<EVP_CIPHER_CTX_free>>;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Pkey read_private(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// PKCS#1 ("traditional" RSA) form of a PKCS#8 PEM.
std::string to_traditional(const std::string& pkcs8_pem) {
  Pkey key = read_private(pkcs8_pem);
  Bio out(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey_traditional(out.get(), key.get(), nullptr, nullptr, 0, nullptr,
                                                 nullptr),
            1);
  return bio_text(out.get());
}

std::string encrypted_pem(const std::string& pkcs8_pem) {
  Pkey key = read_private(pkcs8_pem);
  Bio out(BIO_new(BIO_s_mem()));
  static char pass[] = "correct horse";
  EXPECT_EQ(PEM_write_bio_PKCS8PrivateKey(out.get(), key.get(), EVP_aes_256_cbc(), pass,
                                          sizeof pass - 1, nullptr, nullptr),
            1);
  return bio_text(out.get());
}

std::string keygen_pem(const char* type, const char* param) {
  Pkey key(param ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, param)
                 : EVP_PKEY_Q_keygen(nullptr, nullptr, type));
  EXPECT_NE(key, nullptr);
  Bio out(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr),
            1);
  return bio_text(out.get());
}

// RSA-OAEP with a chosen hash (the vendor uses SHA-256 for both OAEP and MGF1).
std::string rsa_oaep_encrypt(const std::string& public_pem, std::string_view data,
                             const EVP_MD* md) {
  Bio bio(BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size())));
  Pkey pub(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  PkeyCtx ctx(EVP_PKEY_CTX_new(pub.get(), nullptr));
  EXPECT_EQ(EVP_PKEY_encrypt_init(ctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md), 1);
  std::size_t len = 0;
  EXPECT_EQ(EVP_PKEY_encrypt(ctx.get(), nullptr, &len, as_bytes(data).data(), data.size()), 1);
  std::string out(len, '\0');
  EXPECT_EQ(EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                             as_bytes(data).data(), data.size()),
            1);
  out.resize(len);
  return out;
}

// Independent AES-256-GCM encryption/decryption, to pin the documented layouts.
std::string gcm_encrypt(ByteView key, std::string_view iv, std::string_view aad,
                        std::string_view plaintext, std::string* tag) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  EXPECT_EQ(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr), 1);
  EXPECT_EQ(
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr),
      1);
  EXPECT_EQ(EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), as_bytes(iv).data()), 1);
  int len = 0;
  if (!aad.empty()) {
    EXPECT_EQ(EVP_EncryptUpdate(ctx.get(), nullptr, &len, as_bytes(aad).data(),
                                static_cast<int>(aad.size())),
              1);
  }
  std::string ct(plaintext.size() + 16, '\0');
  auto* out = reinterpret_cast<unsigned char*>(ct.data());
  len = 0;
  if (!plaintext.empty()) {
    EXPECT_EQ(EVP_EncryptUpdate(ctx.get(), out, &len, as_bytes(plaintext).data(),
                                static_cast<int>(plaintext.size())),
              1);
  }
  int fin = 0;
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx.get(), out + len, &fin), 1);
  ct.resize(static_cast<std::size_t>(len) + static_cast<std::size_t>(fin));
  tag->assign(16, '\0');
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag->data()), 1);
  return ct;
}

// True when GCM opens; the plaintext goes into *plain (a SecretBytes).
bool gcm_decrypt(ByteView key, ByteView iv, ByteView aad, ByteView ct, ByteView tag,
                 SecretBytes* plain) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr);
  EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), iv.data());
  int len = 0;
  if (!aad.empty()) {
    EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size()));
  }
  *plain = SecretBytes(ct.size());
  len = 0;
  if (!ct.empty()) {
    EVP_DecryptUpdate(ctx.get(), plain->reveal_mutable().data(), &len, ct.data(),
                      static_cast<int>(ct.size()));
  }
  Bytes tag_copy(tag.begin(), tag.end());
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag.size()),
                      tag_copy.data());
  unsigned char fin_buf[16];
  int fin = 0;
  return EVP_DecryptFinal_ex(ctx.get(), fin_buf, &fin) == 1;
}

Bytes sha256(std::string_view a, ByteView b) {
  Bytes out(32);
  unsigned int len = 0;
  auto* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, a.data(), a.size());
  EVP_DigestUpdate(ctx, b.data(), b.size());
  EVP_DigestFinal_ex(ctx, out.data(), &len);
  EVP_MD_CTX_free(ctx);
  return out;
}

std::string concat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) out.append(p);
  return out;
}

// ---------------------------------------------------------------------------
// base64

struct Rfc4648Vector {
  const char* plain;
  const char* encoded;
};
constexpr Rfc4648Vector kRfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(Base64, Rfc4648VectorsEncode) {
  for (const auto& v : kRfc4648) {
    EXPECT_EQ(base64_encode(as_bytes(v.plain)), v.encoded);
    std::string unpadded = v.encoded;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    EXPECT_EQ(base64url_encode(as_bytes(v.plain)), unpadded);
  }
}

TEST(Base64, Rfc4648VectorsDecodeWithAndWithoutPadding) {
  for (const auto& v : kRfc4648) {
    EXPECT_EQ(decoded(v.encoded), v.plain) << v.encoded;
    std::string unpadded = v.encoded;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    EXPECT_EQ(decoded(unpadded), v.plain) << unpadded;
  }
}

TEST(Base64, UrlAndStandardAlphabets) {
  const std::string bytes("\xfb\xff\xbf\xfe", 4);
  EXPECT_EQ(base64_encode(as_bytes(bytes)), "+/+//g==");
  EXPECT_EQ(base64url_encode(as_bytes(bytes)), "-_-__g");
  EXPECT_EQ(decoded("+/+//g=="), bytes);
  EXPECT_EQ(decoded("-_-__g"), bytes);
  EXPECT_EQ(decoded("-_-__g=="), bytes);
  EXPECT_EQ(decoded("+_-/_g"), bytes);  // mixed alphabets are accepted
}

TEST(Base64, RoundTripEveryLengthAndByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n <= all.size(); ++n) {
    const std::string_view data(all.data() + (256 - n) / 2, n);
    EXPECT_EQ(decoded(base64url_encode(as_bytes(data))), data) << "length " << n;
    EXPECT_EQ(decoded(base64_encode(as_bytes(data))), data) << "length " << n;
  }
}

TEST(Base64, RejectsCharactersOutsideBothAlphabets) {
  for (const char* bad : {"Zm9v!", "Zm 9v", "Zm9v\n", " Zm9v", "Zm9\tv", "Zm.v", "Zm9v\xc3\xa9",
                          "Zm*v", "Zm9vYg%3D"}) {
    EXPECT_EQ(decoded(bad), "<bad_encoding>") << bad;
  }
  EXPECT_EQ(decoded(std::string_view("Zm\0v", 4)), "<bad_encoding>");
}

TEST(Base64, RejectsImpossibleLength) {
  for (const char* bad : {"Z", "Zm9vY", "Zm9vYmFyZ", "Z===", "Zm9vY==="}) {
    EXPECT_EQ(decoded(bad), "<bad_encoding>") << bad;
  }
}

TEST(Base64, RejectsNonCanonicalTrailingBits) {
  // "f" is Zg; Zh..Zv differ only in the 4 discarded bits.
  for (const char* bad : {"Zh", "Zh==", "Zv", "Zm9=", "Zm9", "Zm-", "Zm_=", "AB", "AAB"}) {
    EXPECT_EQ(decoded(bad), "<bad_encoding>") << bad;
  }
  EXPECT_EQ(decoded("AA"), std::string(1, '\0'));
  EXPECT_EQ(decoded("AAA"), std::string(2, '\0'));
}

TEST(Base64, RejectsMisplacedOrWrongPadding) {
  for (const char* bad : {"Zg==Zg==", "Zm=v", "=Zm9", "Zg=", "Zm8==", "Zm9v=", "Zm9v==", "=",
                          "==", "===", "====", "Zg===", "Z=g="}) {
    EXPECT_EQ(decoded(bad), "<bad_encoding>") << bad;
  }
}

// ---------------------------------------------------------------------------
// Hybrid envelope

constexpr std::string_view kPlaintext = "dyn_wallet_api_key_0123456789abcdef";  // 35 bytes

HybridEnvelope parsed(const Json& json) {
  auto r = parse_hybrid_envelope(json);
  EXPECT_TRUE(r) << outcome(r);
  return r ? *r : HybridEnvelope{};
}

HybridEnvelope from_parts(const HybridParts& p, std::optional<std::string> kid = std::nullopt,
                          std::string (*encode)(ByteView) = base64url_encode) {
  return {std::string(kHybridAlg), encode(as_bytes(p.iv)), encode(as_bytes(p.ct)),
          encode(as_bytes(p.tag)), encode(as_bytes(p.ek)), std::move(kid)};
}

HybridDecryptor decryptor(std::initializer_list<std::pair<std::string, const std::string*>> keys,
                          std::vector<std::string> algs = {std::string(kHybridAlg)}) {
  std::vector<std::pair<std::string, SecretBytes>> kid_pem;
  for (const auto& [kid, pem] : keys) kid_pem.emplace_back(kid, SecretBytes::copy_of(*pem));
  return HybridDecryptor::from_pem(kid_pem, std::move(algs));
}

// A second and third RSA-2048 key, generated once.
const testing::RsaPair& other_rsa(int index) {
  static const testing::RsaPair keys[] = {testing::generate_rsa(2048), testing::generate_rsa(2048)};
  return keys[index];
}

class HybridTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = parsed(testing::hybrid_encrypt(rsa_.public_pem, kPlaintext, std::nullopt, &parts_));
  }
  std::string decrypt(const HybridEnvelope& e) const { return outcome(dec_.decrypt(e)); }

  const testing::RsaPair& rsa_ = shared_rsa(2048);
  HybridDecryptor dec_ = decryptor({{"", &rsa_.private_pem}});
  HybridParts parts_;
  HybridEnvelope env_;
};

TEST_F(HybridTest, RoundTrip) {
  auto r = dec_.decrypt(env_);
  ASSERT_TRUE(r) << outcome(r);
  EXPECT_TRUE(r->equals(as_bytes(kPlaintext)));
  EXPECT_EQ(dec_.key_count(), 1U);
  EXPECT_EQ(parts_.iv.size(), 16U);
  EXPECT_EQ(parts_.tag.size(), 16U);
  EXPECT_EQ(parts_.ek.size(), 256U);
}

TEST(Hybrid, VendorShapeRoundTripRsa4096WithKid) {
  const auto& rsa = shared_rsa(4096);
  const std::string share =
      R"({"pubkey":{"pubkey":{"0":4,"1":17,"2":250,"3":9}},"secretShare":"0x5e1f\u00e9"})";
  HybridParts parts;
  const Json json = testing::hybrid_encrypt(rsa.public_pem, share, "dynamic_rsa_lSuvWlCy", &parts);
  EXPECT_EQ(parts.ek.size(), 512U);
  const HybridEnvelope env = parsed(json);
  ASSERT_TRUE(env.kid.has_value());
  EXPECT_EQ(*env.kid, "dynamic_rsa_lSuvWlCy");
  const auto dec = decryptor({{"dynamic_rsa_lSuvWlCy", &rsa.private_pem}});
  auto r = dec.decrypt(env);
  ASSERT_TRUE(r) << outcome(r);
  EXPECT_TRUE(r->equals(as_bytes(share)));  // verbatim bytes
}

TEST_F(HybridTest, EmptyPlaintext) {
  HybridParts parts;
  const auto env = parsed(testing::hybrid_encrypt(rsa_.public_pem, "", std::nullopt, &parts));
  EXPECT_EQ(env.ct, "");
  auto r = dec_.decrypt(env);
  ASSERT_TRUE(r) << outcome(r);
  EXPECT_TRUE(r->empty());
}

TEST_F(HybridTest, StandardBase64WithPaddingAccepted) {
  const HybridEnvelope env = from_parts(parts_, std::nullopt, base64_encode);
  ASSERT_NE(env.iv.find('='), std::string::npos);  // 16 bytes -> "...=="
  ASSERT_NE(env.ek.find('='), std::string::npos);  // 256 bytes -> "...="
  ASSERT_NE(env.ct.find('='), std::string::npos);  // 35 bytes -> "...="
  auto r = dec_.decrypt(env);
  ASSERT_TRUE(r) << outcome(r);
  EXPECT_TRUE(r->equals(as_bytes(kPlaintext)));
}

TEST_F(HybridTest, EveryIvBitFlipFails) {
  for (std::size_t i = 0; i < parts_.iv.size() * 8; ++i) {
    HybridParts p = parts_;
    p.iv[i / 8] = static_cast<char>(p.iv[i / 8] ^ (1 << (i % 8)));
    EXPECT_EQ(decrypt(from_parts(p)), "auth_failed") << "bit " << i;
  }
}

TEST_F(HybridTest, EveryTagBitFlipFails) {
  for (std::size_t i = 0; i < parts_.tag.size() * 8; ++i) {
    HybridParts p = parts_;
    p.tag[i / 8] = static_cast<char>(p.tag[i / 8] ^ (1 << (i % 8)));
    EXPECT_EQ(decrypt(from_parts(p)), "auth_failed") << "bit " << i;
  }
}

TEST_F(HybridTest, EveryCiphertextBitFlipFails) {
  for (std::size_t i = 0; i < parts_.ct.size() * 8; ++i) {
    HybridParts p = parts_;
    p.ct[i / 8] = static_cast<char>(p.ct[i / 8] ^ (1 << (i % 8)));
    EXPECT_EQ(decrypt(from_parts(p)), "auth_failed") << "bit " << i;
  }
}

TEST_F(HybridTest, EncryptedKeyBitFlipsFail) {
  // Every bit of the first and last bytes, plus one bit in every fourth byte
  // (rotating through the bit positions): 16 + 64 RSA decryptions.
  std::vector<std::size_t> bits;
  const std::size_t n = parts_.ek.size();
  for (std::size_t b = 0; b < 8; ++b) {
    bits.push_back(b);
    bits.push_back((n - 1) * 8 + b);
  }
  for (std::size_t byte = 2; byte < n - 1; byte += 4) bits.push_back(byte * 8 + (byte / 4) % 8);
  ASSERT_GE(bits.size(), 64U + 16U);
  for (std::size_t i : bits) {
    HybridParts p = parts_;
    p.ek[i / 8] = static_cast<char>(p.ek[i / 8] ^ (1 << (i % 8)));
    EXPECT_EQ(decrypt(from_parts(p)), "no_matching_key") << "bit " << i;
  }
}

TEST_F(HybridTest, EveryTruncationFails) {
  for (std::size_t n = 0; n < parts_.iv.size(); ++n) {
    HybridParts p = parts_;
    p.iv.resize(n);
    EXPECT_EQ(decrypt(from_parts(p)), "bad_length") << "iv length " << n;
  }
  for (std::size_t n = 0; n < parts_.tag.size(); ++n) {
    HybridParts p = parts_;
    p.tag.resize(n);
    EXPECT_EQ(decrypt(from_parts(p)), "bad_length") << "tag length " << n;
  }
  for (std::size_t n = 0; n < parts_.ek.size(); ++n) {
    HybridParts p = parts_;
    p.ek.resize(n);
    EXPECT_EQ(decrypt(from_parts(p)), "bad_length") << "ek length " << n;
  }
  for (std::size_t n = 0; n < parts_.ct.size(); ++n) {
    HybridParts p = parts_;
    p.ct.resize(n);
    EXPECT_EQ(decrypt(from_parts(p)), "auth_failed") << "ct length " << n;
  }
}

TEST_F(HybridTest, ExtendedFieldsFail) {
  HybridParts p = parts_;
  p.iv.push_back('\0');
  EXPECT_EQ(decrypt(from_parts(p)), "bad_length");
  p = parts_;
  p.tag.push_back('\0');
  EXPECT_EQ(decrypt(from_parts(p)), "bad_length");
  p = parts_;
  p.ek.push_back('\0');
  EXPECT_EQ(decrypt(from_parts(p)), "bad_length");
  p = parts_;
  p.ct.push_back('\0');
  EXPECT_EQ(decrypt(from_parts(p)), "auth_failed");
}

TEST_F(HybridTest, TruncatedEncodedTextNeverDecrypts) {
  for (std::string HybridEnvelope::*field :
       {&HybridEnvelope::iv, &HybridEnvelope::ct, &HybridEnvelope::tag, &HybridEnvelope::ek}) {
    const std::string& full = env_.*field;
    for (std::size_t n = 0; n < full.size(); ++n) {
      HybridEnvelope e = env_;
      (e.*field).resize(n);
      const std::string got = decrypt(e);
      EXPECT_TRUE(got == "bad_encoding" || got == "bad_length" || got == "auth_failed") << got;
    }
  }
}

TEST_F(HybridTest, SwappedFieldsFail) {
  HybridParts p = parts_;
  std::swap(p.iv, p.tag);
  EXPECT_EQ(decrypt(from_parts(p)), "auth_failed");
}

TEST_F(HybridTest, WrongRsaKeyIsNoMatchingKey) {
  const auto wrong = decryptor({{"", &other_rsa(0).private_pem}});
  EXPECT_EQ(outcome(wrong.decrypt(env_)), "no_matching_key");
}

TEST_F(HybridTest, KeyOfAnotherSizeIsBadLength) {
  const auto wrong = decryptor({{"", &shared_rsa(4096).private_pem}});
  EXPECT_EQ(outcome(wrong.decrypt(env_)), "bad_length");
}

TEST_F(HybridTest, NoKeysIsNoMatchingKey) {
  const auto none = decryptor({});
  EXPECT_EQ(none.key_count(), 0U);
  EXPECT_EQ(outcome(none.decrypt(env_)), "no_matching_key");
}

TEST_F(HybridTest, OaepWithSha1IsRejected) {
  const std::string key(32, '\x42');
  HybridParts p = parts_;
  p.ek = rsa_oaep_encrypt(rsa_.public_pem, key, EVP_sha1());
  EXPECT_EQ(decrypt(from_parts(p)), "no_matching_key");
}

TEST_F(HybridTest, AesKeyOfWrongLengthIsBadLength) {
  for (std::size_t n : {0U, 16U, 24U, 31U, 33U, 64U}) {
    HybridParts p = parts_;
    p.ek = rsa_oaep_encrypt(rsa_.public_pem, std::string(n, '\x42'), EVP_sha256());
    EXPECT_EQ(decrypt(from_parts(p)), "bad_length") << "key length " << n;
  }
}

TEST_F(HybridTest, UnknownAlgIsRejectedFirst) {
  for (const char* alg :
       {"", "hybrid-rsa-aes-256", "HYBRID-RSA-AES-128", "RSA-OAEP", "HYBRID-RSA-AES-256 "}) {
    HybridEnvelope e = env_;
    e.alg = alg;
    EXPECT_EQ(decrypt(e), "unknown_alg") << alg;
    e.iv = "!!";  // alg is checked before encodings
    EXPECT_EQ(decrypt(e), "unknown_alg") << alg;
  }
}

TEST_F(HybridTest, AllowListAcceptsConfiguredAlgs) {
  const auto both =
      decryptor({{"", &rsa_.private_pem}}, {std::string(kHybridAlg), "HYBRID-RSA-AES-256-GCM"});
  HybridEnvelope e = env_;
  e.alg = "HYBRID-RSA-AES-256-GCM";
  EXPECT_EQ(outcome(both.decrypt(e)), "ok");
  EXPECT_EQ(decrypt(e), "unknown_alg");  // not in the default list
  const auto only_other = decryptor({{"", &rsa_.private_pem}}, {"HYBRID-RSA-AES-256-GCM"});
  EXPECT_EQ(outcome(only_other.decrypt(env_)), "unknown_alg");
}

TEST_F(HybridTest, NonBase64IsBadEncoding) {
  for (std::string HybridEnvelope::*field :
       {&HybridEnvelope::iv, &HybridEnvelope::ct, &HybridEnvelope::tag, &HybridEnvelope::ek}) {
    for (const char* bad : {"!!!!", "a b", "****", "Zh", "Zg=Z"}) {
      HybridEnvelope e = env_;
      e.*field = bad;
      EXPECT_EQ(decrypt(e), "bad_encoding") << bad;
    }
    HybridEnvelope e = env_;
    (e.*field).insert(4, " ");
    EXPECT_EQ(decrypt(e), "bad_encoding");
    e = env_;
    e.*field += "\n";
    EXPECT_EQ(decrypt(e), "bad_encoding");
  }
}

TEST(Hybrid, KidSelectsTheRightKeyAmongSeveral) {
  const auto& k1 = shared_rsa(2048);
  const auto& k2 = other_rsa(0);
  const auto& k3 = other_rsa(1);
  const auto dec =
      decryptor({{"k1", &k1.private_pem}, {"k2", &k2.private_pem}, {"k3", &k3.private_pem}});
  ASSERT_EQ(dec.key_count(), 3U);
  for (const auto* pair : {&k1, &k2, &k3}) {
    const std::string kid = pair == &k1 ? "k1" : pair == &k2 ? "k2" : "k3";
    auto r = dec.decrypt(parsed(testing::hybrid_encrypt(pair->public_pem, kPlaintext, kid)));
    ASSERT_TRUE(r) << kid << ": " << outcome(r);
    EXPECT_TRUE(r->equals(as_bytes(kPlaintext)));
  }
  // Only the named key is tried: an envelope for k2 labelled k1 fails, which
  // shows k2 was not tried after k1.
  EXPECT_EQ(outcome(dec.decrypt(parsed(testing::hybrid_encrypt(k2.public_pem, kPlaintext, "k1")))),
            "no_matching_key");
}

TEST(Hybrid, UnknownOrAbsentKidTriesEveryKeyInOrder) {
  const auto& k1 = shared_rsa(2048);
  const auto& k3 = other_rsa(1);
  const auto dec = decryptor(
      {{"k1", &k1.private_pem}, {"", &other_rsa(0).private_pem}, {"k3", &k3.private_pem}});
  for (const std::optional<std::string>& kid :
       {std::optional<std::string>("dynamic_rsa_unknown"), std::optional<std::string>(),
        std::optional<std::string>("")}) {
    auto r = dec.decrypt(parsed(testing::hybrid_encrypt(k3.public_pem, kPlaintext, kid)));
    ASSERT_TRUE(r) << outcome(r);
    EXPECT_TRUE(r->equals(as_bytes(kPlaintext)));
  }
}

TEST(Hybrid, KidPickingAKeyOfTheWrongSizeIsBadLength) {
  const auto dec =
      decryptor({{"big", &shared_rsa(4096).private_pem}, {"small", &shared_rsa(2048).private_pem}});
  const Json json = testing::hybrid_encrypt(shared_rsa(2048).public_pem, kPlaintext, "big");
  EXPECT_EQ(outcome(dec.decrypt(parsed(json))), "bad_length");
  // Without the kid the 2048-bit key is found by size.
  const Json untagged = testing::hybrid_encrypt(shared_rsa(2048).public_pem, kPlaintext);
  EXPECT_EQ(outcome(dec.decrypt(parsed(untagged))), "ok");
}

// Key choice without a kid: the delivery's KeyChoice first, then the key that
// opened the last envelope, then configuration order. Counted in RSA
// operations (rsa_operations(): every OAEP decryption, successful or not).
TEST(HybridKeyChoice, KeyThatWorkedLastIsTriedFirstForTheNextEnvelope) {
  const auto& previous = other_rsa(0);
  const auto& current = shared_rsa(2048);
  const auto dec = decryptor({{"", &previous.private_pem}, {"", &current.private_pem}});
  const HybridEnvelope env = parsed(testing::hybrid_encrypt(current.public_pem, kPlaintext));
  EXPECT_EQ(outcome(dec.decrypt(env)), "ok");
  EXPECT_EQ(dec.rsa_operations(), 2U);  // previous (fails), then current
  for (int i = 0; i < 5; ++i) EXPECT_EQ(outcome(dec.decrypt(env)), "ok");
  EXPECT_EQ(dec.rsa_operations(), 7U);  // current first: one each
  // An envelope for the previous key still opens, and moves the first try.
  const HybridEnvelope old_env = parsed(testing::hybrid_encrypt(previous.public_pem, kPlaintext));
  EXPECT_EQ(outcome(dec.decrypt(old_env)), "ok");
  EXPECT_EQ(dec.rsa_operations(), 9U);
  EXPECT_EQ(outcome(dec.decrypt(old_env)), "ok");
  EXPECT_EQ(dec.rsa_operations(), 10U);
}

TEST(HybridKeyChoice, DeliveryChoiceComesFirstAndReportsTheKeyThatOpened) {
  const auto& k0 = other_rsa(0);
  const auto& k1 = other_rsa(1);
  const auto& k2 = shared_rsa(2048);
  const auto dec = decryptor({{"", &k0.private_pem}, {"", &k1.private_pem}, {"", &k2.private_pem}});
  KeyChoice choice;
  const HybridEnvelope for_k2 = parsed(testing::hybrid_encrypt(k2.public_pem, kPlaintext));
  EXPECT_EQ(outcome(dec.decrypt(for_k2, choice)), "ok");
  EXPECT_EQ(choice.key, 2U);
  EXPECT_EQ(dec.rsa_operations(), 3U);
  // The last key that worked is now k2; the delivery's choice (k1) still
  // comes first.
  KeyChoice other{1};
  const HybridEnvelope for_k1 = parsed(testing::hybrid_encrypt(k1.public_pem, kPlaintext));
  EXPECT_EQ(outcome(dec.decrypt(for_k1, other)), "ok");
  EXPECT_EQ(other.key, 1U);
  EXPECT_EQ(dec.rsa_operations(), 4U);
  // A failure leaves the choice as it was and tries each key once.
  KeyChoice kept{1};
  const HybridEnvelope foreign =
      parsed(testing::hybrid_encrypt(testing::generate_rsa(2048).public_pem, kPlaintext));
  EXPECT_EQ(outcome(dec.decrypt(foreign, kept)), "no_matching_key");
  EXPECT_EQ(kept.key, 1U);
  EXPECT_EQ(dec.rsa_operations(), 7U);
  // An out-of-range choice is ignored.
  KeyChoice stale{42};
  EXPECT_EQ(outcome(dec.decrypt(for_k2, stale)), "ok");
  EXPECT_EQ(stale.key, 2U);
}

TEST(HybridKeyChoice, KidStillNamesTheOnlyKeyTried) {
  const auto& k1 = shared_rsa(2048);
  const auto& k2 = other_rsa(0);
  const auto dec = decryptor({{"k1", &k1.private_pem}, {"k2", &k2.private_pem}});
  KeyChoice choice{0};
  EXPECT_EQ(outcome(dec.decrypt(parsed(testing::hybrid_encrypt(k2.public_pem, kPlaintext, "k2")),
                                choice)),
            "ok");
  EXPECT_EQ(choice.key, 1U);
  EXPECT_EQ(dec.rsa_operations(), 1U);
}

TEST(HybridEnvelopeParse, ReadsFieldsAndIgnoresUnknownMembers) {
  Json json = {{"alg", "A"}, {"iv", "B"},  {"ct", "C"}, {"tag", "D"},
               {"ek", "E"},  {"kid", "K"}, {"extra", 1}};
  auto r = parse_hybrid_envelope(json);
  ASSERT_TRUE(r) << outcome(r);
  EXPECT_EQ(r->alg, "A");
  EXPECT_EQ(r->iv, "B");
  EXPECT_EQ(r->ct, "C");
  EXPECT_EQ(r->tag, "D");
  EXPECT_EQ(r->ek, "E");
  EXPECT_EQ(r->kid, std::optional<std::string>("K"));
  json.erase("kid");
  r = parse_hybrid_envelope(json);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->kid.has_value());
  json["kid"] = nullptr;
  r = parse_hybrid_envelope(json);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->kid.has_value());
}

TEST(HybridEnvelopeParse, MissingOrNonStringFieldsAreBadEnvelope) {
  const Json full = {{"alg", "A"}, {"iv", "B"}, {"ct", "C"}, {"tag", "D"}, {"ek", "E"}};
  for (const char* name : {"alg", "iv", "ct", "tag", "ek"}) {
    Json missing = full;
    missing.erase(name);
    EXPECT_EQ(outcome(parse_hybrid_envelope(missing)), "bad_envelope") << name;
    for (const Json& wrong :
         {Json(nullptr), Json(1), Json(true), Json::array({"x"}), Json::object({{"x", "y"}})}) {
      Json bad = full;
      bad[name] = wrong;
      EXPECT_EQ(outcome(parse_hybrid_envelope(bad)), "bad_envelope") << name;
    }
  }
  Json bad_kid = full;
  bad_kid["kid"] = 7;
  EXPECT_EQ(outcome(parse_hybrid_envelope(bad_kid)), "bad_envelope");
  for (const Json& not_object : {Json(nullptr), Json("x"), Json(1), Json::array({full})}) {
    EXPECT_EQ(outcome(parse_hybrid_envelope(not_object)), "bad_envelope");
  }
}

TEST(HybridLoad, Pkcs8AndTraditionalPemFiles) {
  TempDir dir;
  const auto& rsa = shared_rsa(2048);
  write_file(dir / "pkcs8.pem", rsa.private_pem);
  const std::string traditional = to_traditional(rsa.private_pem);
  // The PEM label is assembled so that no committed file carries a key marker.
  ASSERT_NE(traditional.find(std::string("BEGIN RSA ") + "PRIVATE KEY"), std::string::npos);
  write_file(dir / "traditional.pem", traditional);
  for (const char* name : {"pkcs8.pem", "traditional.pem"}) {
    const auto dec = HybridDecryptor::load({{"kid", dir / name}});
    EXPECT_EQ(dec.key_count(), 1U);
    auto r = dec.decrypt(parsed(testing::hybrid_encrypt(rsa.public_pem, kPlaintext, "kid")));
    ASSERT_TRUE(r) << name << ": " << outcome(r);
    EXPECT_TRUE(r->equals(as_bytes(kPlaintext)));
  }
}

// The message names the file and never contains key material.
void expect_load_error(const std::filesystem::path& file, const std::string& content) {
  try {
    (void)HybridDecryptor::load({{"", file}});
    ADD_FAILURE() << "loaded " << file;
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    EXPECT_EQ(what.find("BEGIN"), std::string::npos);
    if (content.size() > 100) {
      EXPECT_EQ(what.find(content.substr(40, 24)), std::string::npos);
    }
  }
}

TEST(HybridLoad, RejectsNonRsaKeysNamingTheFileOnly) {
  TempDir dir;
  const std::string ec = keygen_pem("EC", "P-256");
  const std::string ed = keygen_pem("ED25519", nullptr);
  write_file(dir / "ec.pem", ec);
  write_file(dir / "ed25519.pem", ed);
  expect_load_error(dir / "ec.pem", ec);
  expect_load_error(dir / "ed25519.pem", ed);
}

TEST(HybridLoad, RejectsMissingGarbagePublicAndEncryptedKeys) {
  TempDir dir;
  expect_load_error(dir / "missing.pem", "");
  const std::string garbage = std::string("-----BEGIN ") + "PRIVATE KEY-----\nnot base64 at all!\n";
  write_file(dir / "garbage.pem", garbage);
  expect_load_error(dir / "garbage.pem", garbage);
  const std::string& pub = shared_rsa(2048).public_pem;
  write_file(dir / "public.pem", pub);
  expect_load_error(dir / "public.pem", pub);
  const std::string encrypted = encrypted_pem(shared_rsa(2048).private_pem);
  write_file(dir / "encrypted.pem", encrypted);
  expect_load_error(dir / "encrypted.pem", encrypted);  // no passphrase prompt
  expect_load_error(dir.path(), "");                    // a folder
}

TEST(HybridLoad, FromPemRejectsNonRsaWithoutContent) {
  std::vector<std::pair<std::string, SecretBytes>> kid_pem;
  const std::string ec = keygen_pem("EC", "P-256");
  kid_pem.emplace_back("ec-kid", SecretBytes::copy_of(ec));
  try {
    (void)HybridDecryptor::from_pem(kid_pem);
    ADD_FAILURE() << "loaded an EC key";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ec-kid"), std::string::npos) << what;
    EXPECT_EQ(what.find("BEGIN"), std::string::npos);
  }
}

TEST(Hybrid, MoveKeepsKeys) {
  const auto& rsa = shared_rsa(2048);
  HybridDecryptor a = decryptor({{"", &rsa.private_pem}});
  HybridDecryptor b = std::move(a);
  EXPECT_EQ(b.key_count(), 1U);
  EXPECT_EQ(outcome(b.decrypt(parsed(testing::hybrid_encrypt(rsa.public_pem, kPlaintext)))), "ok");
}

TEST(Hybrid, ConcurrentDecryptsShareOneDecryptor) {
  const auto& k1 = shared_rsa(2048);
  const auto& k2 = other_rsa(0);
  const auto dec = decryptor({{"k1", &k1.private_pem}, {"k2", &k2.private_pem}});
  std::vector<HybridEnvelope> envs;
  envs.reserve(8);
  for (int i = 0; i < 8; ++i) {
    envs.push_back(
        parsed(testing::hybrid_encrypt(i % 2 ? k2.public_pem : k1.public_pem, kPlaintext)));
  }
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 16; ++i) {
        const auto& e = envs[static_cast<std::size_t>((t + i) % 8)];
        auto r = dec.decrypt(e);
        (r && r->equals(as_bytes(kPlaintext)) ? ok : failed)++;
        HybridEnvelope bad = e;
        bad.tag = bad.iv;  // same length, wrong value
        (outcome(dec.decrypt(bad)) == "auth_failed" ? ok : failed)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 4 * 16 * 2);
  EXPECT_EQ(failed.load(), 0);
}

// ---------------------------------------------------------------------------
// Record AEAD

class AeadTest : public ::testing::Test {
 protected:
  SecretBytes dek_ = SecretBytes::random(kDekBytes);
  const Bytes ad_ = associated_data({"hookvault", "events", "dynamic", "evt-1", "payload"});
  const std::string plaintext_ = R"({"eventId":"evt-1","data":{"x":1}})";
};

TEST_F(AeadTest, RoundTrip) {
  const Bytes sealed = aead_seal(dek_, as_bytes(plaintext_), ad_);
  EXPECT_EQ(sealed.size(), plaintext_.size() + kSealOverhead);
  EXPECT_EQ(sealed[0], 0x01);
  auto r = aead_open(dek_, sealed, ad_);
  ASSERT_TRUE(r) << outcome(r);
  EXPECT_TRUE(r->equals(as_bytes(plaintext_)));
}

TEST_F(AeadTest, EmptyPlaintextAndEmptyAssociatedData) {
  const Bytes sealed = aead_seal(dek_, {}, {});
  EXPECT_EQ(sealed.size(), kSealOverhead);
  auto r = aead_open(dek_, sealed, {});
  ASSERT_TRUE(r) << outcome(r);
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(outcome(aead_open(dek_, sealed, ad_)), "store_corrupt");
}

TEST_F(AeadTest, FreshNonceEverySeal) {
  const Bytes a = aead_seal(dek_, as_bytes(plaintext_), ad_);
  const Bytes b = aead_seal(dek_, as_bytes(plaintext_), ad_);
  EXPECT_NE(Bytes(a.begin() + 1, a.begin() + 13), Bytes(b.begin() + 1, b.begin() + 13));
  EXPECT_NE(a, b);
}

TEST_F(AeadTest, LayoutMatchesTheHeader) {
  const Bytes sealed = aead_seal(dek_, as_bytes(plaintext_), ad_);
  const ByteView nonce(sealed.data() + 1, 12);
  const ByteView commit(sealed.data() + 13, 32);
  const ByteView ct(sealed.data() + 45, plaintext_.size());
  const ByteView tag(sealed.data() + 45 + plaintext_.size(), 16);

  const std::string message = concat({"hookvault-commit-v1", as_string(nonce)});
  unsigned char mac[32];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), dek_.reveal().data(), static_cast<int>(dek_.size()), as_bytes(message).data(),
       message.size(), mac, &mac_len);
  EXPECT_EQ(to_hex(commit), to_hex(ByteView(mac, mac_len)));

  const std::string aad = concat({"hookvault-aead-v1", as_string(ad_)});
  SecretBytes plain;
  ASSERT_TRUE(gcm_decrypt(dek_.reveal(), nonce, as_bytes(aad), ct, tag, &plain));
  EXPECT_TRUE(plain.equals(as_bytes(plaintext_)));
}

TEST_F(AeadTest, EveryBitFlipFails) {
  const Bytes sealed = aead_seal(dek_, as_bytes(plaintext_), ad_);
  for (std::size_t i = 0; i < sealed.size() * 8; ++i) {
    Bytes bad = sealed;
    bad[i / 8] = static_cast<std::uint8_t>(bad[i / 8] ^ (1U << (i % 8)));
    EXPECT_EQ(outcome(aead_open(dek_, bad, ad_)), "store_corrupt") << "bit " << i;
  }
}

TEST_F(AeadTest, EveryTruncationAndExtensionFails) {
  const Bytes sealed = aead_seal(dek_, as_bytes(plaintext_), ad_);
  for (std::size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_EQ(outcome(aead_open(dek_, ByteView(sealed.data(), n), ad_)), "store_corrupt")
        << "length " << n;
    EXPECT_EQ(outcome(aead_open(dek_, ByteView(sealed).subspan(n + 1), ad_)), "store_corrupt")
        << "dropped prefix " << n + 1;
  }
  Bytes longer = sealed;
  longer.push_back(0);
  EXPECT_EQ(outcome(aead_open(dek_, longer, ad_)), "store_corrupt");
}

TEST_F(AeadTest, WrongAssociatedDataFails) {
  const Bytes sealed = aead_seal(dek_, as_bytes(plaintext_), ad_);
  for (const Bytes& other :
       {associated_data({"hookvault", "events", "dynamic", "evt-2", "payload"}),
        associated_data({"hookvault", "events", "dynamic", "evt-1"}),
        associated_data({"hookvault", "events", "dynamic", "evt-1", "payload", ""}), Bytes{}}) {
    EXPECT_EQ(outcome(aead_open(dek_, sealed, other)), "store_corrupt");
  }
}

TEST_F(AeadTest, WrongDekFailsAtTheCommitment) {
  const Bytes sealed = aead_seal(dek_, as_bytes(plaintext_), ad_);
  const SecretBytes other = SecretBytes::random(kDekBytes);
  EXPECT_EQ(outcome(aead_open(other, sealed, ad_)), "store_corrupt");
  SecretBytes flipped = dek_.clone();
  flipped.reveal_mutable()[31] ^= 1;
  EXPECT_EQ(outcome(aead_open(flipped, sealed, ad_)), "store_corrupt");

  // A record whose GCM part is valid under the other DEK but whose commitment
  // belongs to dek_ is refused: the commitment binds the record to one DEK.
  Bytes forged = aead_seal(other, as_bytes(plaintext_), ad_);
  const std::string message =
      concat({"hookvault-commit-v1", as_string(ByteView(forged.data() + 1, 12))});
  unsigned int len = 0;
  HMAC(EVP_sha256(), dek_.reveal().data(), static_cast<int>(dek_.size()), as_bytes(message).data(),
       message.size(), forged.data() + 13, &len);
  EXPECT_EQ(outcome(aead_open(dek_, forged, ad_)), "store_corrupt");
}

TEST_F(AeadTest, DekOfWrongLengthFailsToOpen) {
  const Bytes sealed = aead_seal(dek_, as_bytes(plaintext_), ad_);
  EXPECT_EQ(outcome(aead_open(SecretBytes(16), sealed, ad_)), "store_corrupt");
  EXPECT_EQ(outcome(aead_open(SecretBytes(), sealed, ad_)), "store_corrupt");
}

TEST(AssociatedData, LengthPrefixedParts) {
  EXPECT_NE(associated_data({"ab", "c"}), associated_data({"a", "bc"}));
  EXPECT_NE(associated_data({"a"}), associated_data({"a", ""}));
  const Bytes ad = associated_data({"ab", ""});
  EXPECT_EQ(to_hex(ad),
            "000000026162"
            "00000000");
  EXPECT_TRUE(associated_data({}).empty());
}

// ---------------------------------------------------------------------------
// KEK

class KekTest : public ::testing::Test {
 protected:
  std::unique_ptr<Kek> kek_ = make_memory_kek(SecretBytes::random(32), "memory:test");
  SecretBytes dek_ = SecretBytes::random(kDekBytes);
  const Bytes ad_ = associated_data({"hookvault", "events", "dynamic", "evt-1"});
};

TEST_F(KekTest, WrapUnwrapRoundTrip) {
  EXPECT_EQ(kek_->id(), "memory:test");
  EXPECT_EQ(kek_->version(), 1U);
  auto wrapped = kek_->wrap(dek_, ad_);
  ASSERT_TRUE(wrapped) << outcome(wrapped);
  EXPECT_EQ(wrapped->bytes.size(), 60U);
  auto dek = kek_->unwrap(wrapped->bytes, kek_->version(), ad_);
  ASSERT_TRUE(dek) << outcome(dek);
  EXPECT_TRUE(dek->equals(dek_.reveal()));
  auto again = kek_->wrap(dek_, ad_);
  ASSERT_TRUE(again);
  EXPECT_NE(again->bytes, wrapped->bytes);  // fresh nonce
}

TEST_F(KekTest, LayoutMatchesTheHeader) {
  const SecretBytes key = SecretBytes::random(32);
  const auto kek = make_memory_kek(key.clone(), "memory:layout");
  auto wrapped = kek->wrap(dek_, ad_);
  ASSERT_TRUE(wrapped);
  const ByteView w = wrapped->bytes;
  const std::string aad =
      concat({"hookvault-kek-wrap-v1", std::string_view("\0\0\0\x01", 4), as_string(ad_)});
  SecretBytes plain;
  ASSERT_TRUE(gcm_decrypt(key.reveal(), w.subspan(0, 12), as_bytes(aad), w.subspan(12, 32),
                          w.subspan(44, 16), &plain));
  EXPECT_TRUE(plain.equals(dek_.reveal()));

  // And a wrap made independently to the documented layout unwraps.
  const std::string nonce(12, '\x07');
  std::string tag;
  const std::string ct = gcm_encrypt(key.reveal(), nonce, aad, as_string(dek_.reveal()), &tag);
  const std::string manual = concat({nonce, ct, tag});
  auto dek = kek->unwrap(as_bytes(manual), 1, ad_);
  ASSERT_TRUE(dek) << outcome(dek);
  EXPECT_TRUE(dek->equals(dek_.reveal()));
}

TEST_F(KekTest, WrongAssociatedDataFails) {
  auto wrapped = kek_->wrap(dek_, ad_);
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(outcome(kek_->unwrap(wrapped->bytes, 1, associated_data({"hookvault", "events"}))),
            "store_corrupt");
  EXPECT_EQ(outcome(kek_->unwrap(wrapped->bytes, 1, {})), "store_corrupt");
}

TEST_F(KekTest, UnknownVersionIsKekUnavailable) {
  auto wrapped = kek_->wrap(dek_, ad_);
  ASSERT_TRUE(wrapped);
  for (std::uint32_t v : {0U, 2U, 0x01000000U, 0xFFFFFFFFU}) {
    EXPECT_EQ(outcome(kek_->unwrap(wrapped->bytes, v, ad_)), "kek_unavailable") << v;
  }
}

TEST_F(KekTest, TamperedWrappedKeyFails) {
  auto wrapped = kek_->wrap(dek_, ad_);
  ASSERT_TRUE(wrapped);
  for (std::size_t i = 0; i < wrapped->bytes.size() * 8; ++i) {
    Bytes bad = wrapped->bytes;
    bad[i / 8] = static_cast<std::uint8_t>(bad[i / 8] ^ (1U << (i % 8)));
    EXPECT_EQ(outcome(kek_->unwrap(bad, 1, ad_)), "store_corrupt") << "bit " << i;
  }
  for (std::size_t n = 0; n < wrapped->bytes.size(); ++n) {
    EXPECT_EQ(outcome(kek_->unwrap(ByteView(wrapped->bytes.data(), n), 1, ad_)), "store_corrupt")
        << "length " << n;
  }
  Bytes longer = wrapped->bytes;
  longer.push_back(0);
  EXPECT_EQ(outcome(kek_->unwrap(longer, 1, ad_)), "store_corrupt");
}

TEST_F(KekTest, AnotherKekCannotUnwrap) {
  auto wrapped = kek_->wrap(dek_, ad_);
  ASSERT_TRUE(wrapped);
  const auto other = make_memory_kek(SecretBytes::random(32), "memory:test");
  EXPECT_EQ(outcome(other->unwrap(wrapped->bytes, 1, ad_)), "store_corrupt");
}

TEST_F(KekTest, WrapRejectsDekOfWrongLength) {
  EXPECT_EQ(outcome(kek_->wrap(SecretBytes(16), ad_)), "internal");
}

TEST(MemoryKek, RejectsKeyOfWrongLength) {
  EXPECT_THROW((void)make_memory_kek(SecretBytes(31), "x"), std::invalid_argument);
  EXPECT_THROW((void)make_memory_kek(SecretBytes(33), "x"), std::invalid_argument);
}

std::string expected_file_id(const SecretBytes& key) {
  return "file:" + to_hex(sha256("hookvault-kek-id", key.reveal())).substr(0, 8);
}

TEST(FileKek, LoadsBase64TextAndRawBytesAlike) {
  TempDir dir;
  const SecretBytes key = SecretBytes::random(32);
  write_file(dir / "b64", base64_encode(key.reveal()) + "\n");
  write_file(dir / "b64url", base64url_encode(key.reveal()));
  write_file(dir / "crlf", base64_encode(key.reveal()) + "\r\n");
  write_file(dir / "raw", key.reveal_string());

  const std::string id = expected_file_id(key);
  ASSERT_EQ(id.size(), 13U);
  std::vector<std::unique_ptr<Kek>> keks;
  for (const char* name : {"b64", "b64url", "crlf", "raw"}) {
    keks.push_back(open_file_kek(dir / name));
    EXPECT_EQ(keks.back()->id(), id) << name;
    EXPECT_EQ(keks.back()->version(), 1U);
  }
  // Same key: what one wraps, every other unwraps.
  const SecretBytes dek = SecretBytes::random(kDekBytes);
  const Bytes ad = associated_data({"row", "7"});
  auto wrapped = keks[0]->wrap(dek, ad);
  ASSERT_TRUE(wrapped);
  for (const auto& kek : keks) {
    auto r = kek->unwrap(wrapped->bytes, 1, ad);
    ASSERT_TRUE(r) << outcome(r);
    EXPECT_TRUE(r->equals(dek.reveal()));
  }
  // And a memory KEK of the same key too.
  const auto mem = make_memory_kek(key.clone(), "memory:x");
  EXPECT_EQ(outcome(mem->unwrap(wrapped->bytes, 1, ad)), "ok");
}

TEST(FileKek, DifferentKeysHaveDifferentIds) {
  TempDir dir;
  write_file(dir / "a", base64_encode(SecretBytes::random(32).reveal()) + "\n");
  write_file(dir / "b", base64_encode(SecretBytes::random(32).reveal()) + "\n");
  EXPECT_NE(open_file_kek(dir / "a")->id(), open_file_kek(dir / "b")->id());
}

void expect_kek_error(const std::filesystem::path& file, const std::string& content) {
  try {
    (void)open_file_kek(file);
    ADD_FAILURE() << "opened " << file;
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    if (content.size() >= 16) {
      EXPECT_EQ(what.find(content.substr(0, 16)), std::string::npos);
    }
  }
}

TEST(FileKek, WrongSizesAndMissingFilesThrowNamingTheFile) {
  TempDir dir;
  expect_kek_error(dir / "missing", "");
  struct Case {
    const char* name;
    std::string content;
  };
  const Case cases[] = {
      {"empty", ""},
      {"raw31", std::string(31, 'k')},
      {"raw33", std::string(33, '\x01')},
      {"b64_16", base64_encode(SecretBytes::random(16).reveal()) + "\n"},
      {"b64_33", base64_encode(SecretBytes::random(33).reveal()) + "\n"},
      {"b64_31_url", base64url_encode(SecretBytes::random(31).reveal())},
      {"spaces", " " + base64_encode(SecretBytes::random(32).reveal()) + " \n"},
      {"two_lines", base64_encode(SecretBytes::random(32).reveal()) + "\n" +
                        base64_encode(SecretBytes::random(32).reveal()) + "\n"},
      {"huge", std::string(10000, 'A')},
  };
  for (const auto& c : cases) {
    write_file(dir / c.name, c.content);
    SCOPED_TRACE(c.name);
    expect_kek_error(dir / c.name, c.content);
  }
  expect_kek_error(dir.path(), "");  // a folder
}

}  // namespace
}  // namespace hookvault
